import { QueryObject } from "./query-object";
import type { TransactionScope, PgClient } from "./transaction-scope";

/**
 * Default piece size of writes: 256 KiB. The server receives a piece (about 2.5 ms per MiB here)
 * before it stores it (about 6 ms per MiB), one after the other; with pieces smaller than the
 * object, the client's sending of the next piece overlaps the server's storing of this one. For
 * 1 MiB objects this took 16 ms down to 12.6 ms each; for 64 MiB objects it made no difference.
 */
export const WRITE_PIECE_SIZE = 256 * 1024;

/**
 * How a default-sized write begins: its first MiB goes in 64 KiB pieces. A backend receives each
 * piece into memory it allocates for the message and again for the bytea. Written in 256 KiB
 * pieces, each 1 MiB object cost the server about 210 page faults (about 20 us each on that
 * machine), in 64 KiB pieces about 58: allocations below glibc's mmap threshold (128 KiB) are
 * served from memory the backend already has. 1 MiB objects took 19.7-20.2 ms instead of
 * 22.8-23.8 ms; 4 MiB and 64 MiB objects were as fast as before. On a host where page faults
 * cost little, first pieces of 64, 128 and 256 KiB wrote 1 MiB objects equally fast (8.4-9.1 ms).
 */
export const FIRST_PIECES = { size: 64 * 1024, bytes: 1024 * 1024 } as const;

/**
 * Unanswered `lowrite` calls a writer keeps: at least two (one being stored by the server, the next
 * on the wire), and more while they hold less than {@link MAX_BYTES_IN_FLIGHT}, so that small pieces
 * keep the server as busy as large ones.
 */
const MIN_DEPTH = 2;
const MAX_BYTES_IN_FLIGHT = 512 * 1024;

/** What pg's protocol connection offers a custom query object (see pg/lib/query.js). */
interface PgConnection {
  stream: NodeJS.WritableStream & { cork(): void; uncork(): void; writable: boolean };
  parse(query: { text: string; name?: string; types?: number[] }): void;
  execute(config: { portal?: string; rows?: number }): void;
  flush(): void;
  sync(): void;
}

interface Slot {
  resolve(): void;
  reject(err: unknown): void;
}

/** A piece sent and not yet answered. Its writer is released once the socket took it and there is room. */
interface Sent {
  bytes: number;
  slot: Slot;
  written: boolean;
  released: boolean;
}

const EXECUTE_AND_FLUSH = Buffer.from([
  0x45, 0, 0, 0, 9, 0, 0, 0, 0, 0, // Execute: unnamed portal, all rows
  0x48, 0, 0, 0, 4, // Flush: answer now, there is no Sync yet
]);
/** End of a Bind message: one result format code, text (the `lowrite` count is not read). */
const BIND_TRAILER = Buffer.from([0, 1, 0, 0]);

/**
 * Bind of `(fd, piece)`, both parameters binary. The piece is not copied into the message: the
 * header and the piece go to the socket as two buffers.
 */
function bindHeader(fd: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(27);
  header[0] = 0x42; // 'B'
  header.writeInt32BE(26 + length + BIND_TRAILER.length, 1); // everything after the type byte
  header[5] = 0; // unnamed portal
  header[6] = 0; // unnamed statement
  header.writeInt16BE(2, 7); // two parameter format codes
  header.writeInt16BE(1, 9); // $1 binary
  header.writeInt16BE(1, 11); // $2 binary
  header.writeInt16BE(2, 13); // two parameters
  header.writeInt32BE(4, 15); // $1: int4
  header.writeInt32BE(fd, 19);
  header.writeInt32BE(length, 23); // $2: bytea, whose bytes follow the header
  return header;
}

/**
 * One run of pipelined `lowrite` calls, a pg "submittable": Parse once, then Bind/Execute/Flush per
 * piece with as many unanswered as {@link MIN_DEPTH} and {@link MAX_BYTES_IN_FLIGHT} allow, and a
 * single Sync at the end. pg hands every message of the server to the active query object, so
 * while this one is active it sees the answers in order.
 * After an error the server skips everything up to our Sync, so nothing past it is applied.
 */
class LowriteRun extends QueryObject {
  /** Settles at ReadyForQuery (or the first error): the connection is free again. */
  readonly done: Promise<void>;
  private connection: PgConnection | undefined;
  private readonly waiting: { piece: Buffer; slot: Slot }[] = [];
  private readonly inFlight: Sent[] = [];
  private bytesInFlight = 0;
  private synced = false;
  private endRequested = false;
  private failure: unknown;
  private settle!: { resolve(): void; reject(err: unknown): void };

  constructor(
    private readonly sql: string,
    private readonly fd: number,
  ) {
    super();
    this.done = new Promise<void>((resolve, reject) => (this.settle = { resolve, reject }));
    // Rejections are also delivered to each piece's own promise; do not report them twice.
    this.done.catch(() => undefined);
  }

  /** Whether pieces may still be added (no Sync sent, no error seen). */
  get open(): boolean {
    return !this.synced && this.failure === undefined;
  }

  /** Queues a piece; resolves once the socket has taken it and there is room for another. */
  add(piece: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ piece, slot: { resolve, reject } });
      this.pump();
    });
  }

  /** Ends the run after the pieces already added: sends Sync; `done` settles at ReadyForQuery. */
  end(): Promise<void> {
    if (this.waiting.length === 0) this.sync();
    else this.endRequested = true;
    return this.done;
  }

  submit(connection: PgConnection): null {
    this.connection = connection;
    connection.parse({ text: this.sql, types: [] });
    this.pump();
    if (this.endRequested && this.waiting.length === 0) this.sync();
    return null;
  }

  private pump(): void {
    const connection = this.connection;
    if (connection === undefined) return;
    while (this.failure === undefined && !this.synced && this.waiting.length > 0 && this.hasRoom()) {
      const { piece, slot } = this.waiting.shift()!;
      const sent: Sent = { bytes: piece.length, slot, written: false, released: false };
      this.inFlight.push(sent);
      this.bytesInFlight += piece.length;
      const stream = connection.stream;
      stream.cork();
      stream.write(bindHeader(this.fd, piece.length));
      stream.write(piece);
      stream.write(BIND_TRAILER);
      // The caller may reuse its buffer once the socket is done with it, and not before.
      stream.write(EXECUTE_AND_FLUSH, () => {
        sent.written = true;
        this.release();
      });
      stream.uncork();
    }
    if (this.endRequested && this.waiting.length === 0) this.sync();
  }

  /** Whether another piece may go out before an answer comes. */
  private hasRoom(): boolean {
    return this.inFlight.length < MIN_DEPTH || this.bytesInFlight < MAX_BYTES_IN_FLIGHT;
  }

  /** Lets writers go on while there is room for another piece. */
  private release(): void {
    if (!this.hasRoom()) return;
    for (const sent of this.inFlight) {
      if (sent.written && !sent.released) {
        sent.released = true;
        sent.slot.resolve();
      }
    }
  }

  private sync(): void {
    if (this.synced) return;
    this.synced = true;
    this.connection?.sync();
  }

  override handleCommandComplete(): void {
    const answered = this.inFlight.shift();
    if (answered !== undefined) this.bytesInFlight -= answered.bytes;
    if (answered !== undefined && !answered.released) {
      answered.released = true;
      answered.slot.resolve();
    }
    this.pump();
    this.release();
    // Idle: give the connection back, so statements queued behind us are not kept waiting for
    // the next piece of a slow producer.
    if (this.inFlight.length === 0 && this.waiting.length === 0) this.sync();
  }

  handleError(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    // The server ignores everything until a Sync; pg moves on at the ReadyForQuery that follows.
    if (!this.synced) {
      this.synced = true;
      this.connection?.sync();
    }
    this.bytesInFlight = 0;
    for (const sent of this.inFlight.splice(0)) if (!sent.released) sent.slot.reject(err);
    for (const { slot } of this.waiting.splice(0)) slot.reject(err);
    this.settle.reject(err);
    this.finished(err);
  }

  handleReadyForQuery(): void {
    if (this.failure !== undefined) return;
    // A ReadyForQuery before every piece was answered would mean the protocol is out of step.
    if (this.inFlight.length > 0 || this.waiting.length > 0) {
      this.handleError(new Error("the connection answered a pipelined lowrite out of order"));
      return;
    }
    this.settle.resolve();
    this.finished();
  }
}

/**
 * Writes pieces into an open descriptor with a second `lowrite` in flight, so the server never waits
 * for the client between pieces (pg itself waits for each answer). Runs hold the connection through
 * the transaction scope's queue, and end (Sync) whenever the writer goes idle, so statements queued
 * by others run between bursts.
 *
 * @example
 * const writer = new PipelinedWriter(scope, fd, "SELECT lowrite($1, $2)");
 * await writer.write(piece);
 * await writer.flush();
 */
export class PipelinedWriter {
  private run: LowriteRun | undefined;
  private lastRun: Promise<void> = Promise.resolve();
  /** The first failure: the transaction is aborted, so every later write gets this error. */
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly scope: TransactionScope,
    private readonly fd: number,
    private readonly sql: string,
  ) {}

  /** Resolves when the next piece may be written; rejects with the first error of the run. */
  write(piece: Buffer): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure.error);
    let run = this.run;
    if (run === undefined || !run.open) {
      const fresh = new LowriteRun(this.sql, this.fd);
      run = this.run = fresh;
      const submitted = this.scope.exclusive((client: PgClient) => {
        client.query(fresh as unknown as Parameters<PgClient["query"]>[0]);
        return fresh.done;
      });
      this.lastRun = submitted;
      submitted.catch((error: unknown) => (this.failure ??= { error }));
      // The first piece of a run must also fail when the scope refuses to start it.
      return Promise.race([fresh.add(piece), submitted.then(() => new Promise<void>(() => undefined))]);
    }
    return run.add(piece);
  }

  /** Waits until every piece is stored (and the connection is free); rejects with the run's error. */
  async flush(): Promise<void> {
    const run = this.run;
    this.run = undefined;
    if (run !== undefined && run.open) void run.end();
    await this.lastRun;
  }
}
