import { LargeObjectError, toLargeObjectError } from "../errors";
import { MAX_LARGE_OBJECT_SIZE, integerLiteral, toChunkSize, toOffset, toOid, toSignedOffset, type Offset } from "../validation";
import { largeObjectExists } from "../connection/catalog";
import type { DataSource } from "typeorm";
import { dataSourceOf, type LargeObjectSource } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { isReplicated, toReadFrom, type ReadFrom } from "../connection/replica-routing";
import { chunkToBuffer, type LargeObjectContent } from "./content";
import { MODE_FLAGS, toMode, type LargeObjectMode } from "./modes";
import { LargeObjectReadStream, type ReadStreamOptions } from "./read-stream";
import { LargeObjectWriteStream, type WriteStreamOptions } from "./write-stream";
import { readWholeIfSmall } from "./whole-read";
import { CLOSE_DESCRIPTOR, PipelinedWriter, WRITE_PIECE_SIZE, createNeedsTransaction, createOnScope, lowriteSql } from "./writes";

/** Where a seek counts from: the start, the current position or the end (or 0, 1, 2 as in lseek). */
export type Whence = "set" | "cur" | "end" | 0 | 1 | 2;

const WHENCE: Record<string, number> = { set: 0, cur: 1, end: 2, "0": 0, "1": 1, "2": 2 };

/** Default piece size of reads: 1 MiB, where round trips stop mattering. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Largest single `loread` (the server builds the whole bytea in memory). */
const MAX_READ_PIECE = 16 * 1024 * 1024;

/**
 * Per data source, a data-modifying CTE (naming the oid as `$1`) that runs in the statement opening
 * an object for writing: registration uses it to forget what is recorded of a staged object's
 * content, since a write may change it.
 */
const writeOpenSteps = new WeakMap<DataSource, () => string>();

/** @internal Sets the step that every write open through {@link LargeObject.open} on `dataSource` runs. */
export function setWriteOpenStep(dataSource: DataSource, step: () => string): void {
  writeOpenSteps.set(dataSource, step);
}

/** Options of {@link LargeObject.open}. */
export interface OpenOptions {
  /**
   * Bytes per `read()` without an argument and per iteration step (default 1 MiB), and per
   * `lowrite` of `write()` and write streams (default 256 KiB; write streams start with 64 KiB
   * pieces for their first MiB).
   */
  chunkSize?: number;
  /**
   * Where a handle opened for reading ("r") on a data source or its manager runs when the data
   * source has read replicas (default: the data source's, see `configureReplicaReads`). A runner or
   * transactional manager always reads where it is connected.
   */
  readFrom?: ReadFrom;
}

/** Options of {@link LargeObject.create}. */
export interface CreateOptions {
  /** Initial content: a Buffer, Uint8Array, string (UTF-8), Readable or async iterable of chunks. */
  data?: LargeObjectContent;
}

/**
 * A query naming one large object: at most one row, with an `oid` column (null for none). `with`
 * is put before the statement that opens it, for data-modifying CTEs the query reads from.
 * @internal
 */
export interface ObjectSelection {
  sql: string;
  values: unknown[];
  with?: string;
}

/** @internal Options of the internal opens: `empty` truncates a write descriptor's object in the statement that opens it. */
export interface ScopeOpenOptions extends OpenOptions {
  empty?: boolean;
}

/**
 * One open PostgreSQL large object: a descriptor inside a transaction. Opened on a runner that is in
 * a transaction, it joins that transaction; otherwise it owns one, committed by `close()` and rolled
 * back by `abort()`.
 *
 * @example
 * await using lo = await LargeObject.open(dataSource, oid, "r");
 * for await (const chunk of lo) process.stdout.write(chunk);
 */
export class LargeObject {
  private closed = false;
  /** Set when the last run of a write stream closed the descriptor. */
  private descriptorClosed = false;
  private closing: Promise<void> | undefined;
  private readonly chunkSize: number;
  /** The chunk size the handle was opened with, if any: writes then use it instead of their defaults. */
  private readonly ownChunkSize: number | undefined;
  /** A small object read whole when it was opened (see openReadOnly): its bytes, and the position in them. */
  private held: Buffer | undefined;
  private position = 0;

  private constructor(
    /** @internal The transaction this descriptor lives in. */
    readonly scope: TransactionScope,
    /** The object's oid. */
    readonly oid: number,
    /** The mode it was opened with. */
    readonly mode: LargeObjectMode,
    private readonly fd: number,
    options: OpenOptions,
    /** A read-only descriptor's size, which cannot change while it is open (see openOnScope). */
    private readonly readOnlySize?: number,
    held?: Buffer,
  ) {
    this.held = held;
    this.chunkSize = options.chunkSize === undefined ? DEFAULT_CHUNK_SIZE : toChunkSize(options.chunkSize, "chunkSize");
    this.ownChunkSize = options.chunkSize === undefined ? undefined : this.chunkSize;
  }

  /**
   * Creates a large object, optionally filled with `data`, and returns its oid. Without a
   * transaction on the source the object and its content are committed together or not at all.
   *
   * @example
   * const oid = await LargeObject.create(dataSource, { data: fs.createReadStream("video.mp4") });
   */
  static async create(source: LargeObjectSource, options: CreateOptions = {}): Promise<number> {
    // Content that is one statement needs no transaction of its own: that statement is one. With
    // replicas the commit is kept, since it learns the WAL position that read-your-writes waits for.
    const transaction = createNeedsTransaction(options.data) || isReplicated(dataSourceOf(source));
    return TransactionScope.using(source, { transaction }, (scope) => createOnScope(scope, options.data)).catch(
      (err: unknown) => {
        throw toLargeObjectError(err);
      },
    );
  }

  /**
   * Opens an existing object. `mode` is "r" (default), "w" (write in place, nothing is truncated),
   * "rw", or "a" (append).
   *
   * @example
   * const lo = await LargeObject.open(queryRunner, oid, "rw");
   */
  static async open(
    source: LargeObjectSource,
    oid: number,
    mode: LargeObjectMode = "r",
    options: OpenOptions = {},
  ): Promise<LargeObject> {
    const validOid = toOid(oid);
    const validMode = toMode(mode);
    if (options.chunkSize !== undefined) toChunkSize(options.chunkSize, "chunkSize");
    if (validMode === "r") {
      const readFrom = options.readFrom === undefined ? undefined : toReadFrom(options.readFrom);
      return TransactionScope.reading(source, readFrom, (scope) => LargeObject.openReadOnly(scope, validOid, options));
    }
    const step = writeOpenSteps.get(dataSourceOf(source));
    const scope = await TransactionScope.begin(source, { transaction: true });
    if (step === undefined) return LargeObject.openOnScope(scope, validOid, validMode, options);
    try {
      const handle = await LargeObject.openSelected(
        scope,
        { sql: "SELECT $1::oid AS oid", values: [validOid], with: step() },
        validMode,
        options,
      );
      return handle!;
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw toLargeObjectError(err, { oid: validOid });
    }
  }

  /**
   * Opens `oid` inside an existing scope; the handle ends the scope when it closes. With `empty`, a
   * write descriptor's object is truncated in the statement that opens it.
   * @internal
   */
  static async openOnScope(
    scope: TransactionScope,
    oid: number,
    mode: LargeObjectMode,
    options: ScopeOpenOptions = {},
  ): Promise<LargeObject> {
    try {
      const handle = await LargeObject.openSelected(scope, { sql: "SELECT $1::oid AS oid", values: [oid] }, mode, options);
      return handle!;
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw toLargeObjectError(err, { oid });
    }
  }

  /**
   * Opens the object that `selection` names (a query of at most one row with an `oid` column) in
   * the statement that runs the selection. Resolves `undefined` when the selection finds no row and
   * `null` when its oid is null. With `empty`, a write descriptor's object is truncated in the same
   * statement. The caller ends the scope on failure. {@link openOnScope} names its object by oid,
   * and the repository opens the object it creates for a null column in the statement that creates it.
   * @internal
   */
  static async openSelected(
    scope: TransactionScope,
    selection: ObjectSelection,
    mode: LargeObjectMode,
    options: ScopeOpenOptions = {},
  ): Promise<LargeObject | null | undefined> {
    const open = `SELECT s.oid, lo_open(s.oid, $${selection.values.length + 1}) AS fd FROM (${selection.sql}) AS s`;
    const prefix = selection.with === undefined ? "" : `WITH ${selection.with} `;
    const values = [...selection.values, MODE_FLAGS[mode]];
    // OFFSET 0 keeps lo_open a step of its own, run once, before what uses its descriptor. A plain
    // write open has no such use, so it goes without the extra level and its cost.
    const opened = `(${open} OFFSET 0) AS opened`;
    if (mode !== "r") {
      const rows = await scope.query<{ oid: number | null; fd: number | null }>(
        options.empty === true ? `${prefix}SELECT oid, fd, lo_truncate64(fd, 0) AS emptied FROM ${opened}` : `${prefix}${open}`,
        values,
      );
      if (rows.length === 0) return undefined;
      const { oid, fd } = rows[0]!;
      return oid === null ? null : new LargeObject(scope, oid, mode, fd!, options);
    }
    // A read-only descriptor reads the object as of its opening, so its size is known for good:
    // measured here in the same round trip, it spares a read stream the statement of size().
    const rows = await scope.query<{ oid: number | null; fd: number | null; size: string | null }>(
      `${prefix}SELECT oid, fd, size, lo_lseek64(fd, 0, 0) AS restored
         FROM (SELECT oid, fd, lo_lseek64(fd, 0, 2) AS size FROM ${opened} OFFSET 0) AS measured`,
      values,
    );
    if (rows.length === 0) return undefined;
    const { oid, fd, size } = rows[0]!;
    return oid === null ? null : new LargeObject(scope, oid, mode, fd!, options, Number(size));
  }

  /**
   * Opens `oid` read-only in a scope of its own making: read whole as it opens when it is small
   * (see {@link openWholeIfSmall}), else on a descriptor.
   * @internal
   */
  static async openReadOnly(scope: TransactionScope, oid: number, options: OpenOptions = {}): Promise<LargeObject> {
    let whole: LargeObject | null | undefined | false;
    try {
      whole = await LargeObject.openWholeIfSmall(scope, `SELECT ${integerLiteral(oid)}::oid AS oid`, options);
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw toLargeObjectError(err, { oid });
    }
    return whole || LargeObject.openOnScope(scope, oid, "r", options);
  }

  /**
   * On a runner nothing has used yet, one statement finds the object that `selection` names
   * (literal SQL, see readWholeIfSmall), measures it and, when it has at most WHOLE_READ_LIMIT
   * bytes, reads it whole: that statement is its own snapshot and transaction, so the handle holds
   * the bytes, the scope ends here and a small read is one round trip. Resolves `undefined` for no
   * row, `null` for a null oid, and false when the object is larger (or the scope has begun):
   * the caller then opens it on a descriptor, its transaction starting with that open. The caller
   * ends the scope on failure.
   * @internal
   */
  static async openWholeIfSmall(scope: TransactionScope, selection: string, options: OpenOptions = {}): Promise<LargeObject | null | undefined | false> {
    if (!scope.untouched) return false;
    const read = await scope.alone((client) => readWholeIfSmall(client, selection));
    if (!read.found) return undefined;
    if (read.oid === null) return null;
    if (read.content === undefined) return false;
    await scope.end();
    return new LargeObject(scope, read.oid, "r", -1, options, read.size, read.content);
  }

  /**
   * Deletes a large object. Throws ERR_LO_NOT_FOUND when there is none.
   *
   * @example
   * await LargeObject.unlink(dataSource, oid);
   */
  static async unlink(source: LargeObjectSource, oid: number): Promise<void> {
    const validOid = toOid(oid);
    await TransactionScope.using(source, { transaction: false }, (scope) =>
      scope.query("SELECT lo_unlink($1)", [validOid]),
    ).catch((err: unknown) => {
      throw toLargeObjectError(err, { oid: validOid });
    });
  }

  /**
   * Whether a large object with this oid exists (read from `pg_largeobject_metadata`, which every
   * role may read).
   *
   * @example
   * if (!(await LargeObject.exists(dataSource, oid))) throw new Error("gone");
   */
  static async exists(source: LargeObjectSource, oid: number): Promise<boolean> {
    const validOid = toOid(oid);
    return TransactionScope.using(source, { transaction: false, readOnly: true }, (scope) => largeObjectExists(scope, validOid)).catch(
      (err: unknown) => {
        throw toLargeObjectError(err, { oid: validOid });
      },
    );
  }

  /** Whether `close()` or `abort()` has run. */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Reads up to `size` bytes (default: the chunk size) from the current position; an empty Buffer
   * at the end.
   *
   * @example
   * const head = await lo.read(512);
   */
  async read(size?: Offset): Promise<Buffer> {
    this.assertOpen();
    this.assertCan("read");
    const wanted = size === undefined ? this.chunkSize : toOffset(size, "size", this.oid);
    if (this.held !== undefined) {
      // A copy, as a read from the server would be: the caller may change it.
      const bytes = Buffer.from(this.held.subarray(Math.min(this.position, this.held.length), Math.min(this.position + wanted, this.held.length)));
      this.position += bytes.length;
      return bytes;
    }
    const pieces: Buffer[] = [];
    let total = 0;
    while (total < wanted) {
      const piece = Math.min(wanted - total, MAX_READ_PIECE);
      const data = await this.run((scope) =>
        scope.query<{ data: Buffer }>("SELECT loread($1, $2) AS data", [this.fd, piece]),
      ).then((rows) => rows[0]!.data);
      pieces.push(data);
      total += data.length;
      if (data.length < piece) break;
    }
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, total);
  }

  /**
   * Writes `data` at the current position (at the end in append mode) and returns the bytes
   * written. Large buffers go in pieces of the chunk size.
   *
   * @example
   * await lo.write(Buffer.from("hello"));
   */
  async write(data: Uint8Array | string): Promise<number> {
    this.assertOpen();
    this.assertCan("write");
    const buffer = chunkToBuffer(data, this.oid);
    const pieceSize = this.ownChunkSize ?? WRITE_PIECE_SIZE;
    for (let offset = 0; offset < buffer.length; offset += pieceSize) {
      await this.writePiece(buffer.subarray(offset, offset + pieceSize));
    }
    return buffer.length;
  }

  /** @internal Writes one piece with a single statement. */
  async writePiece(piece: Buffer): Promise<void> {
    this.assertOpen();
    this.assertCan("write");
    await this.run(async (scope) => scope.query(await this.writeSql(), [this.fd, piece]));
  }

  /** @internal A writer keeping a second `lowrite` in flight on the connection: the hot path of write streams. */
  async pipelinedWriter(): Promise<PipelinedWriter> {
    this.assertOpen();
    this.assertCan("write");
    return new PipelinedWriter(this.scope, this.fd, await this.writeSql());
  }

  /**
   * @internal Ends a write stream's writes before the handle closes: the last run also closes the
   * descriptor in a joined transaction, or commits an owned one, where it can (one round trip less).
   */
  async finishWrites(writer: PipelinedWriter | undefined): Promise<void> {
    if (writer === undefined) return;
    const owned = this.scope.ownsTransaction;
    const last = owned ? this.scope.commitStatement : CLOSE_DESCRIPTOR;
    if ((await writer.flush(last)) && !owned) this.descriptorClosed = true;
  }

  private writeSql(): Promise<string> {
    return lowriteSql(this.scope, { append: this.mode === "a" });
  }

  /**
   * Moves the position and returns the new one. 64-bit: offsets past 2 GiB work.
   *
   * @example
   * await lo.seek(-16, "end");
   */
  async seek(offset: Offset, whence: Whence = "set"): Promise<number> {
    this.assertOpen();
    const key = String(whence);
    // hasOwn: "toString" and friends must not be found on Object.prototype.
    const from = Object.hasOwn(WHENCE, key) ? WHENCE[key] : undefined;
    if (from === undefined) {
      throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `unknown whence ${JSON.stringify(whence)}: use "set", "cur" or "end"`, { oid: this.oid });
    }
    const distance = from === 0 ? toOffset(offset, "offset", this.oid) : toSignedOffset(offset, "offset", this.oid);
    if (this.held !== undefined) {
      const target = (from === 0 ? 0 : from === 1 ? this.position : this.held.length) + distance;
      // PostgreSQL's own bounds for a descriptor's position.
      if (target < 0 || target > MAX_LARGE_OBJECT_SIZE) {
        throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `invalid large object seek target: ${target}`, { oid: this.oid, offset: target });
      }
      this.position = target;
      return target;
    }
    const rows = await this.run((scope) =>
      scope.query<{ pos: string }>("SELECT lo_lseek64($1, $2, $3) AS pos", [this.fd, distance, from]),
    );
    return Number(rows[0]!.pos);
  }

  /** The current position. */
  async tell(): Promise<number> {
    this.assertOpen();
    if (this.held !== undefined) return this.position;
    const rows = await this.run((scope) => scope.query<{ pos: string }>("SELECT lo_tell64($1) AS pos", [this.fd]));
    return Number(rows[0]!.pos);
  }

  /**
   * The object's size in bytes; the position is left where it was.
   *
   * @example
   * const bytes = await lo.size();
   */
  async size(): Promise<number> {
    this.assertOpen();
    if (this.readOnlySize !== undefined) return this.readOnlySize;
    // Each OFFSET 0 keeps its subquery from being flattened, which fixes the order of the calls.
    const rows = await this.run((scope) =>
      scope.query<{ size: string }>(
        `SELECT size, lo_lseek64($1, pos, 0) AS restored
           FROM (SELECT pos, lo_lseek64($1, 0, 2) AS size
                   FROM (SELECT lo_tell64($1) AS pos OFFSET 0) AS here OFFSET 0) AS measured`,
        [this.fd],
      ),
    );
    return Number(rows[0]!.size);
  }

  /**
   * Cuts the object to `length` bytes, or extends it with zeros; the position does not move.
   *
   * @example
   * await lo.truncate(0);
   */
  async truncate(length: Offset = 0): Promise<void> {
    this.assertOpen();
    this.assertCan("write");
    const valid = toOffset(length, "length", this.oid);
    await this.run((scope) => scope.query("SELECT lo_truncate64($1, $2)", [this.fd, valid]));
  }

  /**
   * A Readable of the bytes from `start` to `end` inclusive (as `fs.createReadStream`), read through
   * binary COPY; independent of the handle's position. With `autoClose` (default) the handle closes
   * when the stream ends and aborts when it fails or is destroyed.
   *
   * @example
   * await pipeline(lo.createReadStream({ start: 0, end: 1023 }), res);
   */
  createReadStream(options: ReadStreamOptions = {}): LargeObjectReadStream {
    this.assertOpen();
    this.assertCan("read");
    return new LargeObjectReadStream(this, options);
  }

  /**
   * A Writable that writes at the current position (at the end in append mode), in pieces of the
   * chunk size. With `autoClose` (default) the handle closes, committing an owned transaction, when
   * the stream finishes, and aborts when it fails or is destroyed.
   *
   * @example
   * await pipeline(fs.createReadStream("in.bin"), lo.createWriteStream());
   */
  createWriteStream(options: WriteStreamOptions = {}): LargeObjectWriteStream {
    this.assertOpen();
    this.assertCan("write");
    // Without a chunk size of the handle's own, the stream's defaults apply (it starts smaller).
    return new LargeObjectWriteStream(this, { chunkSize: this.ownChunkSize, ...options });
  }

  /**
   * Closes the descriptor and commits an owned transaction. Never truncates or changes data.
   * Idempotent: every call returns the same promise, settled once the commit is done.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown(undefined);
    return this.closing;
  }

  /**
   * Closes the descriptor and rolls back an owned transaction: nothing written through this handle
   * is kept. In a joined transaction rolling back is the caller's decision. Idempotent; after
   * `close()` has begun it only waits for it.
   */
  abort(reason: unknown = new Error("aborted")): Promise<void> {
    this.closing ??= this.shutdown(reason);
    return this.closing.catch(() => undefined);
  }

  private async shutdown(abortReason: unknown): Promise<void> {
    this.closed = true;
    this.held = undefined;
    // An owned transaction's COMMIT or ROLLBACK closes the descriptor anyway; a joined one keeps going.
    const closeDescriptor = !this.scope.ownsTransaction && !this.scope.isEnded && !this.descriptorClosed;
    if (abortReason !== undefined) {
      if (closeDescriptor) await this.scope.query(CLOSE_DESCRIPTOR, [this.fd]).catch(() => undefined);
      await this.scope.end(abortReason).catch(() => undefined);
      return;
    }
    try {
      if (closeDescriptor) await this.scope.query(CLOSE_DESCRIPTOR, [this.fd]);
      await this.scope.end();
    } catch (err) {
      await this.scope.end(err).catch(() => undefined);
      throw toLargeObjectError(err, { oid: this.oid });
    }
  }

  /** `await using` closes the handle (and commits an owned transaction). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Iterates over chunks from the current position to the end. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      const chunk = await this.read();
      if (chunk.length === 0) return;
      yield chunk;
    }
  }

  /**
   * @internal The whole object, for a small one read when it was opened (see openReadOnly), whose
   * scope has ended already; undefined for a handle on a descriptor.
   */
  get heldContent(): Buffer | undefined {
    return this.held;
  }

  private assertOpen(): void {
    if (this.closed || (this.held === undefined && this.scope.isEnded)) {
      throw new LargeObjectError("ERR_LO_CLOSED", `large object ${this.oid} is closed`, { oid: this.oid });
    }
  }

  private assertCan(operation: "read" | "write"): void {
    const allowed = operation === "read" ? this.mode === "r" || this.mode === "rw" : this.mode !== "r";
    if (!allowed) {
      throw new LargeObjectError("ERR_LO_MODE", `cannot ${operation} large object ${this.oid}: it was opened in mode "${this.mode}"`, {
        oid: this.oid,
      });
    }
  }

  private async run<T>(task: (scope: TransactionScope) => Promise<T>): Promise<T> {
    try {
      return await task(this.scope);
    } catch (err) {
      throw toLargeObjectError(err, { oid: this.oid });
    }
  }
}
