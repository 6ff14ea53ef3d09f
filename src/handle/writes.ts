import { LargeObjectError, toLargeObjectError } from "../errors";
import type { PgClient } from "../connection/source";
import type { TransactionScope } from "../connection/transaction-scope";
import { LowriteRun, type RunStatement } from "../protocol/lowrite-run";
import { chunkToBuffer, singlePiece, type LargeObjectContent } from "./content";
import { afterSteps, compressionStep } from "./compression";
import { createFromBytes } from "./create-batch";
import { INV_WRITE } from "./modes";

// Every write of the library goes through this module: piece sizes, the assembly of pieces, the
// pipelined writer, the statement of a write with its compression step (see ./compression), and
// new objects.

/**
 * Default piece size of writes: 256 KiB. The server receives a piece before it stores it, one
 * after the other, so with pieces smaller than the object the sending of the next piece overlaps
 * the storing of this one.
 * @internal
 */
export const WRITE_PIECE_SIZE = 256 * 1024;

/**
 * How a default-sized write begins: its first MiB goes in 64 KiB pieces, which a backend receives
 * in memory below glibc's mmap threshold (128 KiB) that it already has, instead of faulting in new
 * pages for every piece.
 * @internal
 */
export const FIRST_PIECES = { size: 64 * 1024, bytes: 1024 * 1024 } as const;

/** Content up to this size goes in a single statement (`lo_from_bytea`, `lo_put`): 1 MiB. */
const STATEMENT_PIECE_LIMIT = 1024 * 1024;

/** @internal A different piece size for the start of a write: `size` until `bytes` have been written. */
export interface FirstPieces {
  size: number;
  bytes: number;
}

/**
 * Gathers incoming chunks into pieces of `pieceSize` in one buffer that is reused for every piece,
 * so a long write allocates nothing per piece (garbage that would otherwise pile up as RSS until
 * the next GC). Chunks arriving whole-piece aligned pass through as views, without a copy. With
 * `first`, the pieces up to `first.bytes` are `first.size` long instead.
 * `write` must be done with a piece (the socket has taken it) before it resolves.
 * @internal
 */
export class PieceAssembler {
  private buffer: Buffer | undefined;
  private filled = 0;
  /** Bytes handed to `write` so far. */
  private emitted = 0;

  constructor(
    readonly pieceSize: number,
    private readonly write: (piece: Buffer) => Promise<void>,
    private readonly first?: FirstPieces,
  ) {}

  /** Bytes held, not yet written. */
  get pending(): number {
    return this.filled;
  }

  /** Adds a chunk, writing every piece it completes. */
  async push(chunk: Buffer): Promise<void> {
    let rest = chunk;
    while (rest.length > 0) {
      const size = this.currentSize();
      if (this.filled === 0 && rest.length >= size) {
        await this.emit(rest.subarray(0, size));
        rest = rest.subarray(size);
        continue;
      }
      this.buffer ??= Buffer.allocUnsafe(Math.max(this.pieceSize, this.first?.size ?? 0));
      const count = rest.copy(this.buffer, this.filled, 0, Math.min(rest.length, size - this.filled));
      this.filled += count;
      rest = rest.subarray(count);
      if (this.filled === size) await this.writeHeld();
    }
  }

  /** Writes what is held, as one shorter piece. */
  async flush(): Promise<void> {
    if (this.filled > 0) await this.writeHeld();
  }

  private currentSize(): number {
    return this.first !== undefined && this.emitted < this.first.bytes ? this.first.size : this.pieceSize;
  }

  private async writeHeld(): Promise<void> {
    const piece = this.buffer!.subarray(0, this.filled);
    // Reset first: if the write fails, nothing is held twice.
    this.filled = 0;
    await this.emit(piece);
  }

  private async emit(piece: Buffer): Promise<void> {
    this.emitted += piece.length;
    await this.write(piece);
  }
}

/**
 * Feeds every piece of `data` (`pieceSize` bytes, the last one shorter; `first.size` bytes up to
 * `first.bytes`), in order, to `write`, and awaits each write before reading on. Pieces are views
 * of one reused buffer, or of the caller's chunks: `write` must be done with a piece when it resolves.
 * @internal
 */
export async function forEachPiece(
  data: LargeObjectContent,
  pieceSize: number,
  write: (piece: Buffer) => Promise<void>,
  first?: FirstPieces,
): Promise<void> {
  const iterable = data !== null && typeof data === "object" && (Symbol.asyncIterator in data || Symbol.iterator in data);
  if (typeof data !== "string" && !(data instanceof Uint8Array) && !iterable) {
    throw new LargeObjectError(
      "ERR_LO_INVALID_VALUE",
      `content must be a Buffer, Uint8Array, string, Readable or (async) iterable of chunks, got ${data === null ? "null" : typeof data}`,
    );
  }
  const pieces = new PieceAssembler(pieceSize, write, first);
  const chunks: AsyncIterable<unknown> | Iterable<unknown> =
    typeof data === "string" || data instanceof Uint8Array ? [data] : (data as AsyncIterable<unknown>);
  for await (const chunk of chunks) await pieces.push(chunkToBuffer(chunk));
  await pieces.flush();
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
 * @internal
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
      const scope = this.scope;
      // On a runner the caller also uses, an idle run ends at once: the caller's next statement
      // may reach pg directly, behind the run, while the caller waits for it before writing more.
      const fresh = new LowriteRun(this.sql, this.fd, () => scope.sharedWithCaller || scope.othersWaiting());
      run = this.run = fresh;
      const submitted = scope.exclusive((client: PgClient) => {
        // Work queued behind an idle run ends it, so that work does not wait for the next piece.
        const stopListening = scope.onContention(() => fresh.syncIfIdle());
        client.query(fresh as unknown as Parameters<PgClient["query"]>[0]);
        return fresh.done.finally(stopListening);
      });
      this.lastRun = submitted;
      submitted.catch((error: unknown) => (this.failure ??= { error }));
      // The first piece of a run must also fail when the scope refuses to start it.
      return Promise.race([fresh.add(piece), submitted.then(() => new Promise<void>(() => undefined))]);
    }
    return run.add(piece);
  }

  /**
   * Waits until every piece is stored (and the connection is free); rejects with the run's error.
   * With `last`, a statement that takes the descriptor as `$1` (or no parameter), or statements
   * with their own text parameters, go after the last piece in the same run when the run is still
   * open; resolves whether they did.
   */
  async flush(last?: string | readonly RunStatement[]): Promise<boolean> {
    const run = this.run;
    this.run = undefined;
    const inRun = last !== undefined && run !== undefined && run.open;
    const statements = typeof last === "string" ? [{ sql: last, values: last.includes("$1") ? [String(this.fd)] : [] }] : last;
    if (run !== undefined && run.open) void run.end(inRun ? statements : undefined);
    await this.lastRun;
    return inRun;
  }
}

/**
 * The statement of a write, `SELECT lowrite($1, $2)`: an append goes to the end first, and every
 * write chooses the compression of the pages it stores (steps run once per statement, before it).
 * @internal
 */
export async function lowriteSql(scope: TransactionScope, options: { append: boolean }): Promise<string> {
  return afterSteps("SELECT lowrite($1, $2)", [options.append ? "lo_lseek64($1, 0, 2)" : undefined, await compressionStep(scope)]);
}

/**
 * Whether {@link createOnScope} needs a transaction for `data`: only content it streams does. No
 * content, or bytes in memory up to 1 MiB, is a single statement, which is its own transaction.
 * @internal
 */
export function createNeedsTransaction(data: LargeObjectContent | null | undefined): boolean {
  return data !== undefined && data !== null && singlePiece(data, STATEMENT_PIECE_LIMIT) === undefined;
}

/**
 * Writes `data` in pieces of {@link WRITE_PIECE_SIZE} (after {@link FIRST_PIECES}) through a
 * pipelined writer, made when the first piece arrives, and returns the bytes written once the
 * server has stored them all.
 * @internal
 */
export async function pipePieces(
  data: LargeObjectContent,
  makeWriter: () => Promise<PipelinedWriter>,
  options: { last?: string; lastSent?: () => void } = {},
): Promise<number> {
  let writer: PipelinedWriter | undefined;
  let written = 0;
  try {
    await forEachPiece(
      data,
      WRITE_PIECE_SIZE,
      async (piece) => {
        writer ??= await makeWriter();
        await writer.write(piece);
        written += piece.length;
      },
      FIRST_PIECES,
    );
    if (writer !== undefined && (await writer.flush(options.last))) options.lastSent?.();
    return written;
  } catch (err) {
    // Let a run still on the wire end before the caller issues its clean-up statements.
    await writer?.flush().catch(() => undefined);
    throw err;
  }
}

/**
 * Streams `data` into an object that `open` creates when the first piece arrives (so an empty
 * source creates nothing), with a second `lowrite` in flight as in the write streams. Returns the
 * object and its write descriptor, or undefined when `data` had no bytes.
 * @internal
 */
export async function pipeIntoNewObject(
  scope: TransactionScope,
  data: LargeObjectContent,
  open: () => Promise<{ oid: number; fd: number }>,
): Promise<{ oid: number; fd: number; closed: boolean } | undefined> {
  let target: { oid: number; fd: number } | undefined;
  let closed = false;
  // The descriptor is closed by the last piece's run when it can be, saving a round trip.
  await pipePieces(
    data,
    async () => {
      target = await open();
      return new PipelinedWriter(scope, target.fd, await lowriteSql(scope, { append: false }));
    },
    { last: CLOSE_DESCRIPTOR, lastSent: () => (closed = true) },
  );
  return target === undefined ? undefined : { ...target, closed };
}

/** @internal Closes the descriptor `$1`. */
export const CLOSE_DESCRIPTOR = "SELECT lo_close($1)";

/**
 * Fills object `oid` from `data` with `lo_put`, one statement per MiB: no descriptor, so no
 * transaction is needed (the autocommit hooks of `insert()`).
 * @internal
 */
export async function putPieces(scope: TransactionScope, oid: number, data: LargeObjectContent): Promise<void> {
  let offset = 0;
  await forEachPiece(data, STATEMENT_PIECE_LIMIT, async (piece) => {
    await scope.query("SELECT lo_put($1, $2, $3)", [oid, offset, piece]);
    offset += piece.length;
  });
}

/**
 * Creates an object in `scope` and fills it from `data`: bytes or text of up to 1 MiB in a single
 * `lo_from_bytea` (which needs no transaction, see {@link createNeedsTransaction}), anything else
 * through a write descriptor in 256 KiB pieces (64 KiB for the first MiB). In a joined transaction
 * a failure unlinks the half-written object; an owned one is rolled back by the caller.
 * @internal
 */
export async function createOnScope(scope: TransactionScope, data?: LargeObjectContent | null): Promise<number> {
  if (data === undefined || data === null) {
    const rows = await scope.query<{ oid: number }>("SELECT lo_create(0) AS oid");
    return rows[0]!.oid;
  }
  const whole = singlePiece(data, STATEMENT_PIECE_LIMIT);
  // In the caller's transaction, creates issued together share a statement.
  if (whole !== undefined && scope.inTransaction && !scope.ownsTransaction) return createFromBytes(scope, whole);
  if (whole !== undefined) {
    // One statement, in a transaction of the scope's own or in none: its pages' compression is
    // chosen for that statement's transaction alone.
    const sql = afterSteps("SELECT lo_from_bytea(0, $1) AS oid", [await compressionStep(scope)]);
    const rows = await scope.query<{ oid: number }>(sql, [whole]);
    return rows[0]!.oid;
  }
  let created: { oid: number; fd: number; closed?: boolean } | undefined;
  try {
    created = await pipeIntoNewObject(scope, data, async () => {
      const rows = await scope.query<{ oid: number; fd: number }>(
        "SELECT oid, lo_open(oid, $1) AS fd FROM (SELECT lo_create(0) AS oid OFFSET 0) AS created",
        [INV_WRITE],
      );
      return (created = rows[0]!);
    });
  } catch (err) {
    if (created !== undefined && !scope.ownsTransaction) {
      await scope.query("SELECT lo_unlink($1)", [created.oid]).catch(() => undefined);
    }
    throw toLargeObjectError(err, { oid: created?.oid });
  }
  if (created === undefined) {
    const rows = await scope.query<{ oid: number }>("SELECT lo_create(0) AS oid");
    return rows[0]!.oid;
  }
  if (!scope.ownsTransaction && created.closed !== true) await scope.query(CLOSE_DESCRIPTOR, [created.fd]);
  return created.oid;
}
