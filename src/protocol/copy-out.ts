import { QueryObject } from "./query-object";

/** What pg's protocol connection offers a custom query object (see pg/lib/query.js). */
interface CopyConnection {
  stream: NodeJS.ReadableStream;
  query(text: string): void;
}

type DataListener = (chunk: Buffer) => void;

const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
const ERROR_RESPONSE = 0x45; // 'E'
/** Type byte and length of a backend message. */
const HEADER = 5;

/**
 * Runs `COPY ... TO STDOUT` as a pg "submittable" and hands the payload of every CopyData message to
 * `onData` as views of the socket's own chunks: no copy, however the messages fall across chunks.
 * While the COPY runs it reads the socket in place of pg's parser; at CopyDone, or at an
 * ErrorResponse, it gives pg back the socket and the bytes from there on, so pg sees the end of
 * the statement (CommandComplete or the error, then ReadyForQuery) as for any other query.
 * Other messages the server may slip into a COPY (notices, parameter changes) are skipped.
 *
 * @example
 * const copy = new CopyOut("COPY (SELECT ...) TO STDOUT (FORMAT binary)", (bytes) => decoder.write(bytes));
 * client.query(copy);
 * await copy.done;
 * @internal
 */
export class CopyOut extends QueryObject {
  /** Settles at the ReadyForQuery after the COPY (the connection is free again), or at its error. */
  readonly done: Promise<void>;
  private settle!: { resolve(): void; reject(err: unknown): void };
  private stream: NodeJS.ReadableStream | undefined;
  private pgListener: DataListener | undefined;
  /** A message header split across chunks. */
  private partial: Buffer | undefined;
  private code = 0;
  /** Bytes of the current message's body still to come; -1 between messages. */
  private remaining = -1;
  private paused = false;

  constructor(
    private readonly text: string,
    private readonly onData: (bytes: Buffer) => void,
  ) {
    super();
    this.done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
  }

  /** Stops reading the socket (the server then waits once the kernel's buffers are full). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.stream?.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.stream?.resume();
  }

  submit(connection: CopyConnection): Error | null {
    const stream = connection.stream;
    const listeners = stream.listeners("data") as DataListener[];
    if (listeners.length !== 1) return new Error(`expected one reader of the connection, found ${listeners.length}`);
    this.pgListener = listeners[0];
    this.stream = stream;
    stream.removeListener("data", this.pgListener!);
    stream.on("data", this.read);
    if (this.paused) stream.pause();
    connection.query(this.text);
    return null;
  }

  private readonly read = (chunk: Buffer): void => {
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining > 0) {
        const count = Math.min(this.remaining, chunk.length - at);
        if (this.code === COPY_DATA) this.onData(chunk.subarray(at, at + count));
        at += count;
        this.remaining -= count;
        continue;
      }
      if (this.remaining === 0) {
        this.remaining = -1;
        if (this.code === COPY_DONE) return this.detach(chunk.subarray(at));
      }
      const start = at;
      const whole = this.partial === undefined && chunk.length - at >= HEADER;
      let header: Buffer;
      if (whole) {
        header = chunk.subarray(at, at + HEADER);
        at += HEADER;
      } else {
        const had = this.partial ?? Buffer.alloc(0);
        const take = Math.min(HEADER - had.length, chunk.length - at);
        header = Buffer.concat([had, chunk.subarray(at, at + take)]);
        at += take;
        if (header.length < HEADER) {
          this.partial = header;
          return;
        }
        this.partial = undefined;
      }
      this.code = header[0]!;
      if (this.code === ERROR_RESPONSE) {
        // pg reads the error (and what follows) from the start of its message.
        return this.detach(whole ? chunk.subarray(start) : Buffer.concat([header, chunk.subarray(at)]));
      }
      this.remaining = header.readUInt32BE(1) - 4;
    }
    if (this.remaining === 0 && this.code === COPY_DONE) this.detach(Buffer.alloc(0));
  };

  /** Gives pg its socket back, with the bytes it has not seen. */
  private detach(rest: Buffer): void {
    const stream = this.stream;
    const pgListener = this.pgListener;
    if (stream === undefined || pgListener === undefined) return;
    this.stream = undefined;
    this.pgListener = undefined;
    stream.removeListener("data", this.read);
    stream.on("data", pgListener);
    if (this.paused) {
      this.paused = false;
      stream.resume();
    }
    if (rest.length > 0) pgListener(rest);
  }

  handleReadyForQuery(): void {
    this.settle.resolve();
    this.finished();
  }

  handleError(err: unknown): void {
    // A lost connection reaches us while we still read its socket.
    this.detach(Buffer.alloc(0));
    this.settle.reject(err);
    this.finished(err);
  }
}
