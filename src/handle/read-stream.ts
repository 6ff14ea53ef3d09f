import { Readable } from "node:stream";
import { LargeObjectError, toLargeObjectError } from "../errors";
import { integerLiteral, toChunkSize, toOffset, type Offset } from "../validation";
import { byteaCopy } from "../protocol/copy-decoder";
import type { CopyOut } from "../protocol/copy-out";
import type { PgClient } from "../connection/source";
import type { TransactionScope } from "../connection/transaction-scope";

/** Options of a large-object read stream. */
export interface ReadStreamOptions {
  /** First byte to read (default 0). */
  start?: Offset;
  /** Last byte to read, inclusive (default: the last byte of the object). */
  end?: Offset;
  /** Bytes the stream buffers before it stops reading from the server (default 1 MiB). */
  highWaterMark?: number;
  /** Close the handle (committing an owned transaction) at the end, abort it on error (default true). */
  autoClose?: boolean;
  /** Destroys the stream when aborted. */
  signal?: AbortSignal;
}

/**
 * Bytes per `lo_get` call: one COPY row. The server builds a whole row before it sends any of it,
 * and large rows cost it more than their size, so rows stay well below the default read size.
 */
const PIECE_SIZE = 256 * 1024;
/**
 * Bytes per COPY statement. A stream destroyed mid-window drains the rest of the window, so this
 * bounds the work a destroy costs while keeping statements rare enough not to matter.
 */
const WINDOW_SIZE = 16 * 1024 * 1024;
/**
 * Bytes per COPY statement on a runner the caller also uses, where a window is never paused (see
 * runCopy): it bounds what such a stream buffers beyond its highWaterMark.
 */
const SHARED_WINDOW_SIZE = 2 * 1024 * 1024;
/** Bytes a stream buffers by default before it pauses the COPY. */
const HIGH_WATER_MARK = 1024 * 1024;

/**
 * What a read stream needs of its large-object handle (a {@link LargeObject}; named by shape, so
 * the handle may import the stream).
 * @internal
 */
export interface ReadableHandle {
  readonly oid: number;
  readonly scope: TransactionScope;
  /** The whole object, when the handle read it as it opened (its scope has ended then). */
  readonly heldContent?: Buffer | undefined;
  size(): Promise<number>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
}

/**
 * Streams a byte range of a large object. Bytes travel through `COPY (SELECT lo_get(...)) TO STDOUT
 * (FORMAT binary)`, which avoids the hex decoding of text results; backpressure pauses the socket.
 *
 * @example
 * const stream = lo.createReadStream({ start: 1024 });
 * for await (const chunk of stream) hash.update(chunk);
 */
export class LargeObjectReadStream extends Readable {
  /** Bytes pushed so far. */
  bytesRead = 0;
  private position: number;
  private readonly start: number;
  private endExclusive: number | undefined;
  private readonly autoClose: boolean;
  private copy: CopyOut | undefined;
  private window: Promise<void> | undefined;
  private completed = false;

  constructor(
    private readonly handle: ReadableHandle,
    options: ReadStreamOptions = {},
  ) {
    // Every check comes before super(): once constructed, the stream schedules _construct, which
    // would then run on a handle the caller has already aborted and emit an error nobody listens to.
    const highWaterMark = options.highWaterMark === undefined ? HIGH_WATER_MARK : toChunkSize(options.highWaterMark, "highWaterMark", handle.oid);
    const start = options.start === undefined ? 0 : toOffset(options.start, "start", handle.oid);
    const end = options.end === undefined ? undefined : toOffset(options.end, "end", handle.oid);
    if (end !== undefined && end < start) {
      throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `start (${start}) is after end (${end})`, {
        oid: handle.oid,
        offset: start,
      });
    }
    super({ highWaterMark, ...(options.signal ? { signal: options.signal } : {}) });
    this.autoClose = options.autoClose ?? true;
    this.position = start;
    this.start = start;
    if (end !== undefined) this.endExclusive = end + 1;
  }

  /** The first byte after the range, once known (the object's size bounds it). */
  get rangeEnd(): number | undefined {
    return this.endExclusive;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    this.handle.size().then(
      (size) => {
        this.endExclusive = Math.min(this.endExclusive ?? size, size);
        callback();
      },
      (err: unknown) => callback(toLargeObjectError(err, { oid: this.handle.oid })),
    );
  }

  override _read(): void {
    const held = this.handle.heldContent;
    if (held !== undefined) {
      // The range in one push: it is at most the small-object limit, and already in memory.
      if (this.completed) return;
      const bytes = held.subarray(Math.min(this.position, held.length), Math.min(this.endExclusive!, held.length));
      this.position += bytes.length;
      this.bytesRead += bytes.length;
      if (bytes.length > 0) this.push(bytes);
      this.finish();
      return;
    }
    if (this.copy !== undefined) {
      this.copy.resume();
      return;
    }
    if (this.window === undefined) this.nextWindow();
  }

  private nextWindow(): void {
    const from = this.position;
    const until = Math.min(this.endExclusive!, from + (this.handle.scope.sharedWithCaller ? SHARED_WINDOW_SIZE : WINDOW_SIZE));
    if (from >= until) {
      this.finish();
      return;
    }
    const oid = this.handle.oid;
    // COPY takes no parameters: every spliced value is an integer validated before this point.
    const sql =
      `COPY (SELECT lo_get(${integerLiteral(oid)}::oid, s, LEAST(${PIECE_SIZE}::int8, ${integerLiteral(until)}::int8 - s)::int4)` +
      ` FROM generate_series(${integerLiteral(from)}::int8, ${integerLiteral(until - 1)}::int8, ${PIECE_SIZE}::int8) AS s)` +
      " TO STDOUT (FORMAT binary)";
    // The last window of a stream that closes its handle commits an owned transaction in the same
    // round trip (a read-only one: nothing can be lost by committing it early).
    const ending = this.autoClose && until >= this.endExclusive! ? this.handle.scope.endingStatement : undefined;
    const text = ending === undefined ? sql : `${sql}; ${ending}`;
    this.window = this.handle.scope
      .exclusive((client) => this.runCopy(client, text))
      .then(
        () => {
          this.copy = undefined;
          this.window = undefined;
          this.position = until;
          // A window drained into the buffer (see runCopy) waits for the consumer before the next.
          if (!this.destroyed && this.readableLength < this.readableHighWaterMark) this.nextWindow();
        },
        (err: unknown) => {
          this.copy = undefined;
          this.window = undefined;
          this.destroy(toLargeObjectError(err, { oid, offset: this.start + this.bytesRead }));
        },
      );
  }

  private runCopy(client: PgClient, sql: string): Promise<void> {
    const scope = this.handle.scope;
    // A paused COPY holds the client, so work queued behind it on the same connection (a write
    // stream fed by this one, in the same transaction) would wait for a consumer that waits for
    // it. With others waiting, the window is drained into the buffer instead: at most one window
    // beyond highWaterMark. On a runner the caller also uses, its statements reach pg past our
    // queue, unseen, so a window is never paused there.
    const holds = !scope.sharedWithCaller;
    const { copy, decoder, unreadable } = byteaCopy(sql, (bytes) => {
      if (this.destroyed) return;
      this.bytesRead += bytes.length;
      if (!this.push(bytes) && holds && !scope.othersWaiting()) copy.pause();
    });
    this.copy = copy;
    const stopListening = scope.onContention(() => copy.resume());
    client.query(copy as unknown as Parameters<PgClient["query"]>[0]);
    return copy.done
      .then(() => {
        const failure = unreadable();
        if (failure !== undefined) {
          const message = `unreadable COPY output: ${(failure as Error).message}`;
          throw new LargeObjectError("ERR_LO_CONNECTION", message, { cause: failure });
        }
        if (!decoder.done && !this.destroyed) throw new Error("COPY output ended early");
      })
      .finally(stopListening);
  }

  private finish(): void {
    this.completed = true;
    const done = this.autoClose ? this.handle.close() : Promise.resolve();
    done.then(
      () => this.push(null),
      (err: unknown) => this.destroy(toLargeObjectError(err, { oid: this.handle.oid })),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const copy = this.copy;
    const window = this.window;
    // A COPY in progress must be read to its end before the connection can take another statement.
    if (copy !== undefined) copy.resume();
    const drained = window === undefined ? Promise.resolve() : window.catch(() => undefined);
    drained
      .then(() => {
        if (!this.autoClose) return undefined;
        return this.completed && error === null
          ? this.handle.close()
          : this.handle.abort(error ?? new Error("read stream destroyed"));
      })
      .then(
        () => callback(error),
        (closeError: unknown) => callback(error ?? toLargeObjectError(closeError, { oid: this.handle.oid })),
      );
  }
}
