import { Writable } from "node:stream";
import { toLargeObjectError } from "../errors";
import { toChunkSize } from "../validation";
import { chunkToBuffer } from "./content";
import { FIRST_PIECES, PieceAssembler, WRITE_PIECE_SIZE, type PipelinedWriter } from "./writes";

/** Options of a large-object write stream. */
export interface WriteStreamOptions {
  /**
   * Bytes per `lowrite` (default 256 KiB, after a first MiB in 64 KiB pieces): small incoming chunks
   * are gathered to this size.
   */
  chunkSize?: number;
  /** Bytes the stream accepts before `write()` returns false (default: the chunk size). */
  highWaterMark?: number;
  /** Close the handle (committing an owned transaction) on finish, abort it on error (default true). */
  autoClose?: boolean;
  /** Destroys the stream, rolling back an owned transaction, when aborted. */
  signal?: AbortSignal;
}

/**
 * What a write stream needs of its large-object handle (a {@link LargeObject}; named by shape, so
 * the handle may import the stream).
 * @internal
 */
export interface WritableHandle {
  readonly oid: number;
  pipelinedWriter(): Promise<PipelinedWriter>;
  finishWrites(writer: PipelinedWriter | undefined): Promise<void>;
  close(): Promise<void>;
  abort(reason?: unknown): Promise<void>;
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
  private readonly pieces: PieceAssembler;
  private readonly autoClose: boolean;
  private completed = false;
  private writer: PipelinedWriter | undefined;

  constructor(
    private readonly handle: WritableHandle,
    options: WriteStreamOptions = {},
  ) {
    const chunkSize = options.chunkSize === undefined ? WRITE_PIECE_SIZE : toChunkSize(options.chunkSize, "chunkSize", handle.oid);
    const highWaterMark = options.highWaterMark === undefined ? chunkSize : toChunkSize(options.highWaterMark, "highWaterMark", handle.oid);
    super({ highWaterMark, ...(options.signal ? { signal: options.signal } : {}) });
    const first = options.chunkSize === undefined ? FIRST_PIECES : undefined;
    this.pieces = new PieceAssembler(chunkSize, (piece) => this.writePiece(piece), first);
    this.autoClose = options.autoClose ?? true;
  }

  override _write(chunk: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: { chunk: unknown }[], callback: (error?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.pieces
      .flush()
      // A handle that closes after the stream may close its descriptor (or commit) with the last piece.
      .then(async () => {
        if (this.autoClose) await this.handle.finishWrites(this.writer);
        else await this.writer?.flush();
      })
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
    // Pieces still on the wire are answered before anything else can use the connection.
    const settled = this.writer === undefined ? Promise.resolve() : this.writer.flush().catch(() => undefined);
    if (this.completed || !this.autoClose) {
      settled.then(() => callback(error), callback);
      return;
    }
    // Started now, so the handle reads as closed at once; its rollback queues behind the flush.
    const aborted = this.handle.abort(error ?? new Error("write stream destroyed"));
    Promise.all([settled, aborted]).then(
      () => callback(error),
      (abortError: unknown) => callback(error ?? toLargeObjectError(abortError)),
    );
  }

  private async writeAll(chunks: unknown[]): Promise<void> {
    try {
      for (const chunk of chunks) {
        await this.pieces.push(chunkToBuffer(chunk));
      }
    } catch (err) {
      throw toLargeObjectError(err, { oid: this.handle.oid, offset: this.bytesWritten });
    }
  }

  private async writePiece(piece: Buffer): Promise<void> {
    this.writer ??= await this.handle.pipelinedWriter();
    await this.writer.write(piece);
    this.bytesWritten += piece.length;
  }
}
