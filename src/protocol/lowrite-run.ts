import { QueryObject } from "./query-object";

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
  bind(config: { values?: (string | null)[] }): void;
  execute(config: { portal?: string; rows?: number }): void;
  flush(): void;
  sync(): void;
}

/** A statement with text parameters, sent after a run's last piece (see {@link LowriteRun.end}).
 * @internal
 */
export interface RunStatement {
  sql: string;
  values: (string | null)[];
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
 * @internal
 */
export class LowriteRun extends QueryObject {
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
  /** Statements sent after the last piece, before the Sync (see `end`). */
  private last: readonly RunStatement[] = [];

  constructor(
    private readonly sql: string,
    private readonly fd: number,
    /** Whether to end the run whenever every piece is answered (by default always; see `syncIfIdle`). */
    private readonly endWhenIdle: () => boolean = () => true,
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

  /**
   * Ends the run after the pieces already added: sends Sync; `done` settles at ReadyForQuery. With
   * `last`, those statements (such as `SELECT lo_close($1)` or `COMMIT`, with text parameters) go
   * after the last piece, in order, before the Sync: after an error the server skips the rest.
   */
  end(last: readonly RunStatement[] = []): Promise<void> {
    if (this.open) this.last = last;
    this.endRequested = true;
    if (this.waiting.length === 0) this.sync();
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
    const connection = this.connection;
    const last = this.last;
    if (connection === undefined) return;
    this.synced = true;
    this.last = [];
    if (this.failure === undefined) {
      for (const statement of last) {
        connection.parse({ text: statement.sql, types: [] });
        connection.bind({ values: statement.values });
        connection.execute({});
        // Answered like a piece: its CommandComplete comes before ReadyForQuery.
        this.inFlight.push({ bytes: 0, slot: { resolve: () => undefined, reject: () => undefined }, written: true, released: true });
      }
    }
    connection.sync();
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
    // the next piece of a slow producer. With nobody waiting, the run stays open for the next
    // piece, or for the statement that ends it.
    if (this.inFlight.length === 0 && this.waiting.length === 0 && this.endWhenIdle()) this.sync();
  }

  /** Ends the run if every piece is answered: someone else now waits for the connection. */
  syncIfIdle(): void {
    if (this.connection !== undefined && this.inFlight.length === 0 && this.waiting.length === 0) this.sync();
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
