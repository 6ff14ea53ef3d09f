import { Writable } from "node:stream";
import { toLargeObjectError } from "./errors";
import { toChunkSize } from "./arguments";
import { Rechunker, chunkToBuffer } from "./content";
import type { LargeObject } from "./large-object";

/** Options of a large-object write stream. */
export interface WriteStreamOptions {
  /** Bytes per `lowrite` (default 1 MiB): small incoming chunks are gathered to this size. */
  chunkSize?: number;
  /** Bytes the stream accepts before `write()` returns false (default: the chunk size). */
  highWaterMark?: number;
  /** Close the handle (committing an owned transaction) on finish, abort it on error (default true). */
  autoClose?: boolean;
  /** Destroys the stream, rolling back an owned transaction, when aborted. */
  signal?: AbortSignal;
}

/**
 * Writes into a large object in pieces of `chunkSize`. Finishing closes the handle (committing an
 * owned transaction); an error or destroy before that rolls it back.
 *
 * @example
 * await pipeline(req, lo.createWriteStream());
 */
export class LargeObjectWriteStream extends Writable {
  /** Bytes handed to the server so far. */
  bytesWritten = 0;
  private readonly rechunker: Rechunker;
  private readonly autoClose: boolean;
  private completed = false;

  constructor(
    private readonly handle: LargeObject,
    options: WriteStreamOptions = {},
  ) {
    const chunkSize = options.chunkSize === undefined ? 1024 * 1024 : toChunkSize(options.chunkSize, "chunkSize", handle.oid);
    const highWaterMark = options.highWaterMark === undefined ? chunkSize : toChunkSize(options.highWaterMark, "highWaterMark", handle.oid);
    super({ highWaterMark, ...(options.signal ? { signal: options.signal } : {}) });
    this.rechunker = new Rechunker(chunkSize);
    this.autoClose = options.autoClose ?? true;
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: unknown }[], callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    const rest = this.rechunker.flush();
    (rest === undefined ? Promise.resolve() : this.writePiece(rest))
      .then(() => (this.autoClose ? this.handle.close() : undefined))
      .then(
        () => {
          this.completed = true;
          callback();
        },
        (err: unknown) => callback(toLargeObjectError(err, { oid: this.handle.oid })),
      );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.completed || !this.autoClose) {
      callback(error);
      return;
    }
    this.handle.abort(error ?? new Error("write stream destroyed")).then(
      () => callback(error),
      (abortError: unknown) => callback(error ?? toLargeObjectError(abortError)),
    );
  }

  private async writeAll(chunks: unknown[]): Promise<void> {
    try {
      for (const chunk of chunks) {
        for (const piece of this.rechunker.push(chunkToBuffer(chunk))) await this.writePiece(piece);
      }
    } catch (err) {
      throw toLargeObjectError(err, { oid: this.handle.oid, offset: this.bytesWritten });
    }
  }

  private async writePiece(piece: Buffer): Promise<void> {
    await this.handle.writePiece(piece);
    this.bytesWritten += piece.length;
  }
}
