/**
 * Decodes PostgreSQL's binary COPY format for rows of one bytea column, handing out the payload
 * bytes as views of the incoming chunks (no copy, no hex decoding).
 */
import { CopyOut } from "./copy-out";

const SIGNATURE = Buffer.from("PGCOPY\n\xff\r\n\0", "latin1");
const HEADER_FIXED = SIGNATURE.length + 8; // signature, flags (int32), extension length (int32)

type State = "header" | "extension" | "tuple" | "length" | "data" | "done";

/** @internal The decoder of COPY rows of one bytea column; see the top of this file. */
export class ByteaCopyDecoder {
  private state: State = "header";
  private carry: Buffer = Buffer.alloc(0);
  private remaining = 0;

  /** Rows decoded so far. */
  rows = 0;

  constructor(private readonly onData: (bytes: Buffer) => void) {}

  /** Whether the trailer has been seen. */
  get done(): boolean {
    return this.state === "done";
  }

  /** Feeds one chunk of COPY output. */
  write(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.state !== "done") {
      if (this.state === "data") {
        const count = Math.min(this.remaining, chunk.length - at);
        if (count > 0) this.onData(chunk.subarray(at, at + count));
        at += count;
        this.remaining -= count;
        if (this.remaining === 0) this.state = "tuple";
        continue;
      }
      if (this.state === "extension") {
        const count = Math.min(this.remaining, chunk.length - at);
        at += count;
        this.remaining -= count;
        if (this.remaining === 0) this.state = "tuple";
        continue;
      }
      const need = this.state === "header" ? HEADER_FIXED : this.state === "tuple" ? 2 : 4;
      const take = Math.min(need - this.carry.length, chunk.length - at);
      const field =
        this.carry.length === 0 && take === need
          ? chunk.subarray(at, at + need)
          : Buffer.concat([this.carry, chunk.subarray(at, at + take)]);
      at += take;
      if (field.length < need) {
        this.carry = field;
        continue;
      }
      this.carry = Buffer.alloc(0);
      this.header(field);
    }
  }

  private header(field: Buffer): void {
    switch (this.state) {
      case "header":
        if (!field.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new Error("not a binary COPY stream");
        this.remaining = field.readUInt32BE(SIGNATURE.length + 4);
        this.state = this.remaining === 0 ? "tuple" : "extension";
        return;
      case "tuple": {
        const fields = field.readInt16BE(0);
        if (fields === -1) this.state = "done";
        else if (fields !== 1) throw new Error(`expected one column per COPY row, got ${fields}`);
        else this.state = "length";
        return;
      }
      case "length": {
        const length = field.readInt32BE(0);
        if (length < 0) throw new Error("unexpected NULL in COPY output");
        this.rows += 1;
        this.remaining = length;
        this.state = length === 0 ? "tuple" : "data";
        return;
      }
      default:
        throw new Error(`unexpected decoder state ${this.state}`);
    }
  }
}

/** A binary COPY of rows of one bytea column, decoded as it arrives (see {@link byteaCopy}). */
export interface ByteaCopy {
  readonly copy: CopyOut;
  readonly decoder: ByteaCopyDecoder;
  /** The decoder's error, when the rows were out of step with it. */
  unreadable(): unknown;
}

/**
 * Runs `COPY (...) TO STDOUT (FORMAT binary)` of one bytea column through a {@link CopyOut}, handing
 * each row's bytes to `onData`. Rows out of step with the decoder stop the bytes; the protocol is
 * not out of step, so the rest is read (the COPY resumed if paused) and dropped. Send `copy` with
 * `client.query` and await `copy.done`.
 * @internal
 */
export function byteaCopy(sql: string, onData: (bytes: Buffer) => void): ByteaCopy {
  const decoder = new ByteaCopyDecoder(onData);
  let failure: unknown;
  const copy = new CopyOut(sql, (bytes) => {
    if (failure !== undefined) return;
    try {
      decoder.write(bytes);
    } catch (err) {
      failure = err;
      copy.resume();
    }
  });
  return { copy, decoder, unreadable: () => failure };
}
