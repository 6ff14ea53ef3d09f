import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import type { DataSource, QueryRunner } from "typeorm";
import { DataStore, ERRORS, Upload } from "@tus/server";
import { invalidArgument } from "../errors";
import { dataSourceOf, isDataSource } from "../connection/source";
import { connectWithin } from "../connection/pool-acquire";
import { TransactionScope, markPrivateRunner } from "../connection/transaction-scope";
import { chunkToBuffer } from "../handle/content";
import { LargeObject } from "../handle/large-object";
import { INV_WRITE } from "../handle/modes";
import { PieceAssembler, PipelinedWriter, WRITE_PIECE_SIZE, lowriteSql } from "../handle/writes";
import { recordsTable } from "../orm/column-objects";
import { discardStagedObject, stageLargeObject, touchStagedObject } from "../cleanup/staged";
import { toTusError, tusError } from "./errors";
import { UPLOAD_COLUMNS, ensureUploadsTable, toUploadRow, type UploadRow } from "./uploads-table";

/** How long an unfinished upload may wait for its next byte by default: one day. */
export const DEFAULT_TUS_EXPIRATION_MS = 24 * 60 * 60 * 1000;
/** How many bytes of a PATCH become durable at a time by default: 4 MiB. */
export const DEFAULT_COMMIT_EVERY_BYTES = 4 * 1024 * 1024;
/** The `upload.storage.type` of uploads this store holds. */
export const LARGE_OBJECT_STORAGE_TYPE = "large-object";

/** Finished uploads kept in memory for the requests that follow their last byte (see `finished`). */
const FINISHED_KEPT = 1000;
/** Uploads whose running SHA-256 is kept between their PATCHes (see `hashes`). */
const HASHES_KEPT = 10_000;
/** Expired uploads removed per transaction by `deleteExpired()`. */
const EXPIRE_BATCH = 500;

/** Options of {@link LargeObjectTusStore}. */
export interface LargeObjectTusStoreOptions {
  /** The data source the uploads are stored through (a registered one: staged objects need the record table). */
  source: DataSource;
  /**
   * How long an unfinished upload may wait for its next byte, in milliseconds (default one day).
   * After that HEAD and PATCH answer 410 and `deleteExpired()` removes it.
   */
  expirationMs?: number;
  /**
   * A PATCH commits what it has received every this many bytes (default 4 MiB): a connection cut
   * mid-PATCH keeps every piece committed before the cut, and HEAD reports exactly that offset.
   */
  commitEveryBytes?: number;
}

/** One piece of a PATCH: its own transaction, the upload's row locked, a descriptor at the offset. */
interface Piece {
  /** The runner to release after the scope ends; undefined when the scope releases its own. */
  runner: QueryRunner | undefined;
  scope: TransactionScope;
  row: UploadRow;
  writer: PipelinedWriter;
  /** SHA-256 of the upload's bytes so far, when every one of them went through this process. */
  hash: Hash | undefined;
}

function positiveInteger(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw invalidArgument(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * A `DataStore` for `@tus/server` that keeps every upload in a PostgreSQL large object: the object
 * is created staged with the upload, each PATCH appends to it and commits every
 * `commitEveryBytes`, and the finished object is handed to `onUploadFinish` as
 * `upload.storage.path` (its oid), for the application to adopt into an entity.
 *
 * @example
 * const server = new Server({ path: "/files", datastore: new LargeObjectTusStore({ source: dataSource }) });
 */
export class LargeObjectTusStore extends DataStore {
  readonly source: DataSource;
  readonly expirationMs: number;
  readonly commitEveryBytes: number;
  private table: Promise<string> | undefined;
  /**
   * Uploads whose last byte was committed, whose row is gone with it: `@tus/server` asks for the
   * upload once more after `onUploadFinish` when it answers a creation-with-upload, and a client may
   * HEAD it. Bounded; a process that restarts answers 404 for them instead.
   */
  private readonly finished = new Map<string, { upload: Upload; at: number }>();
  /**
   * Per unfinished upload, the SHA-256 of its committed bytes and the offset it stands at: bytes
   * below a committed offset never change, so the next PATCH at that offset goes on from a copy.
   * An upload some of whose bytes went through another process has none, and is read once when
   * it finishes.
   */
  private readonly hashes = new Map<string, { offset: number; hash: Hash }>();

  constructor(options: LargeObjectTusStoreOptions) {
    super();
    const source = (options as Partial<LargeObjectTusStoreOptions> | undefined)?.source;
    if (!isDataSource(source)) throw invalidArgument("LargeObjectTusStore needs a DataSource as `source`");
    dataSourceOf(source);
    this.source = source;
    this.expirationMs = positiveInteger(options.expirationMs, "expirationMs", DEFAULT_TUS_EXPIRATION_MS);
    this.commitEveryBytes = positiveInteger(options.commitEveryBytes, "commitEveryBytes", DEFAULT_COMMIT_EVERY_BYTES);
    this.extensions = ["creation", "creation-with-upload", "creation-defer-length", "termination", "expiration"];
  }

  /** Creates the staged object and the upload's row in one transaction. */
  override async create(upload: Upload): Promise<Upload> {
    try {
      const table = await this.uploadsTable();
      const created = await this.inTransaction(async (runner, scope) => {
        const staged = await stageLargeObject(runner, { label: "tus" });
        if (upload.size === 0) return { oid: staged.oid, at: new Date() };
        const rows = await scope.query<{ at: Date }>(
          `INSERT INTO ${table} ("id", "oid", "length", "metadata") VALUES ($1, $2, $3, $4) RETURNING "touched_at" AS at`,
          [upload.id, staged.oid, upload.size ?? null, upload.metadata === undefined ? null : JSON.stringify(upload.metadata)],
        );
        return { oid: staged.oid, at: rows[0]!.at };
      });
      upload.storage = { type: LARGE_OBJECT_STORAGE_TYPE, path: String(created.oid) };
      upload.creation_date = created.at.toISOString();
      // An empty upload is finished as soon as it exists.
      if (upload.size === 0) this.remember(upload);
      return upload;
    } catch (err) {
      throw toTusError(err);
    }
  }

  /** The upload as committed: its offset is the object's durable size. */
  override async getUpload(id: string): Promise<Upload> {
    let row: (UploadRow & { present: boolean }) | undefined;
    try {
      const table = await this.uploadsTable();
      row = await TransactionScope.using(this.source, { transaction: false }, async (scope) => {
        const rows = await scope.query(
          `SELECT ${UPLOAD_COLUMNS}, EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = u."oid"::pg_catalog.oid) AS present
             FROM ${table} u WHERE u."id" = $1`,
          [id],
        );
        return rows[0] === undefined ? undefined : { ...toUploadRow(rows[0]), present: rows[0].present === true };
      });
    } catch (err) {
      throw toTusError(err);
    }
    if (row === undefined) {
      const done = this.finished.get(id);
      if (done !== undefined) return done.upload;
      throw tusError("ERR_LO_NOT_FOUND", ERRORS.FILE_NOT_FOUND, `no upload ${id}`);
    }
    if (!row.present) {
      throw tusError("ERR_LO_NOT_FOUND", ERRORS.FILE_NO_LONGER_EXISTS, `the object of upload ${id} was removed`, row.oid);
    }
    return this.toUpload(row);
  }

  /**
   * Appends the request body at `offset`, committing every `commitEveryBytes`. Resolves the new
   * offset; a body that ends early (a cut, or `@tus/server` ending it for a newer request) keeps
   * what arrived, a body that fails keeps only the pieces committed before the failure.
   */
  override async write(stream: Readable, id: string, offset: number): Promise<number> {
    let position = offset;
    let piece: Piece | undefined;
    let received = 0;
    const assembler = new PieceAssembler(WRITE_PIECE_SIZE, (part) => piece!.writer.write(part));
    try {
      for await (const chunk of stream as AsyncIterable<unknown>) {
        let rest = chunkToBuffer(chunk);
        while (rest.length > 0) {
          piece ??= await this.beginPiece(id, position, position === offset);
          const part = rest.subarray(0, this.commitEveryBytes - received);
          rest = rest.subarray(part.length);
          const length = piece.row.length;
          if (length !== null && position + part.length > length) {
            throw tusError("ERR_LO_TOO_LARGE", ERRORS.ERR_SIZE_EXCEEDED, `upload ${id} would exceed its length of ${length} bytes`);
          }
          piece.hash?.update(part);
          await assembler.push(part);
          position += part.length;
          received += part.length;
          if (received === this.commitEveryBytes) {
            await this.commitPiece(piece, assembler, position);
            piece = undefined;
            received = 0;
          }
        }
      }
      // An empty body still ends the upload when a deferred length was just declared at this offset.
      if (piece === undefined && position === offset) piece = await this.beginPiece(id, position, true);
      if (piece !== undefined) await this.commitPiece(piece, assembler, position);
      return position;
    } catch (err) {
      if (piece !== undefined) await this.abortPiece(piece, err);
      throw toTusError(err, piece?.row.oid);
    }
  }

  /** Sets a deferred `Upload-Length` (creation-defer-length). */
  override async declareUploadLength(id: string, length: number): Promise<void> {
    try {
      const table = await this.uploadsTable();
      await this.inTransaction(async (_runner, scope) => {
        const row = await this.lockRow(scope, table, id);
        if (row.length !== null || length < row.offset) {
          throw tusError("ERR_LO_INVALID_ARGUMENT", ERRORS.INVALID_LENGTH, `upload ${id} cannot take the length ${length}`);
        }
        await scope.query(`UPDATE ${table} SET "length" = $2 WHERE "id" = $1`, [id, length]);
      });
    } catch (err) {
      throw toTusError(err);
    }
  }

  /** Terminates an upload: its row goes and its object is unlinked at once, unless a row adopted it. */
  override async remove(id: string): Promise<void> {
    try {
      const table = await this.uploadsTable();
      const done = this.finished.get(id);
      await this.inTransaction(async (runner, scope) => {
        // int8 arrives as a string.
        const rows = await scope.query<{ oid: string }>(`DELETE FROM ${table} u WHERE u."id" = $1 AND u."id" IN (
            SELECT l."id" FROM ${table} l WHERE l."id" = $1 FOR UPDATE NOWAIT) RETURNING u."oid"`, [id]);
        const gone = rows[0]?.oid ?? done?.upload.storage?.path;
        const oid = gone === undefined ? undefined : Number(gone);
        if (oid === undefined) throw tusError("ERR_LO_NOT_FOUND", ERRORS.FILE_NOT_FOUND, `no upload ${id}`);
        await discardStagedObject(runner, oid);
      });
      this.finished.delete(id);
      this.hashes.delete(id);
    } catch (err) {
      throw toTusError(err);
    }
  }

  /**
   * Removes the unfinished uploads that have waited longer than `expirationMs` for their next byte,
   * rows and objects. An upload receiving a piece holds its row and is skipped; an object a row
   * adopted is never unlinked. Resolves how many uploads it removed.
   *
   * @example
   * setInterval(() => void store.deleteExpired(), 60 * 60 * 1000);
   */
  override async deleteExpired(): Promise<number> {
    const cutoff = Date.now() - this.expirationMs;
    for (const [id, done] of this.finished) if (done.at < cutoff) this.finished.delete(id);
    try {
      const table = await this.uploadsTable();
      let removed = 0;
      for (;;) {
        const batch = await this.inTransaction(async (runner, scope) => {
          const rows = await scope.query<{ id: string; oid: string }>(
            `DELETE FROM ${table} u WHERE u."id" IN (
               SELECT e."id" FROM ${table} e
                WHERE e."touched_at" < pg_catalog.clock_timestamp() - $1::double precision * interval '1 millisecond'
                ORDER BY e."touched_at" LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING u."id", u."oid"`,
            [this.expirationMs, EXPIRE_BATCH],
          );
          for (const { id, oid } of rows) {
            this.hashes.delete(id);
            await discardStagedObject(runner, Number(oid));
          }
          return rows.length;
        });
        removed += batch;
        if (batch < EXPIRE_BATCH) return removed;
      }
    } catch (err) {
      throw toTusError(err);
    }
  }

  /** How long an unfinished upload may wait for its next byte (`@tus/server` counts from `upload.creation_date`). */
  override getExpiration(): number {
    return this.expirationMs;
  }

  private uploadsTable(): Promise<string> {
    this.table ??= TransactionScope.using(this.source, { transaction: false }, (scope) => ensureUploadsTable(this.source, scope));
    this.table.catch(() => (this.table = undefined));
    return this.table;
  }

  /**
   * Runs `task` in a transaction TypeORM knows of, on a runner of its own, so that the staged-object
   * functions given the runner join it.
   */
  private async inTransaction<T>(task: (runner: QueryRunner, scope: TransactionScope) => Promise<T>): Promise<T> {
    const { runner, scope } = await this.openTransaction();
    try {
      const result = await task(runner, scope);
      await scope.end();
      return result;
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw err;
    } finally {
      if (!runner.isReleased) await runner.release();
    }
  }

  private async openTransaction(): Promise<{ runner: QueryRunner; scope: TransactionScope }> {
    // Only this store's statements run on it, so a PATCH's writes may keep their run open between pieces.
    const runner = markPrivateRunner(this.source.createQueryRunner());
    try {
      await connectWithin(runner, this.source);
      return { runner, scope: await TransactionScope.begin(runner, { transaction: true }) };
    } catch (err) {
      if (!runner.isReleased) await runner.release().catch(() => undefined);
      throw err;
    }
  }

  /** The upload's row, locked for this transaction; refused at once while another request holds it. */
  private async lockRow(scope: TransactionScope, table: string, id: string): Promise<UploadRow> {
    const rows = await scope.query(`SELECT ${UPLOAD_COLUMNS} FROM ${table} u WHERE u."id" = $1 FOR UPDATE NOWAIT`, [id]);
    if (rows[0] === undefined) throw tusError("ERR_LO_NOT_FOUND", ERRORS.FILE_NOT_FOUND, `no upload ${id}`);
    return toUploadRow(rows[0]);
  }

  /**
   * Starts a piece at `position`: the row locked and checked, the staged object's grace renewed, a
   * descriptor there. The first piece of a PATCH checks the object fully (present, still staged, no
   * row references it); a later one follows a commit of this same request that just found it so,
   * and only renews and locks its record (see {@link beginLaterPiece}).
   */
  private async beginPiece(id: string, position: number, first: boolean): Promise<Piece> {
    const table = await this.uploadsTable();
    if (!first) return this.beginLaterPiece(table, id, position);
    const { runner, scope } = await this.openTransaction();
    try {
      const row = await this.lockRow(scope, table, id);
      if (row.offset !== position) throw offsetConflict(id, row, position);
      // Joins this transaction: the renewal commits with the piece, and the staged record stays
      // locked meanwhile, so the sweep skips it. False: the sweep removed the object of an idle upload.
      if (!(await touchStagedObject(runner, row.oid))) throw objectRemoved(id, row);
      const opened = await scope.query<{ fd: number }>(
        "SELECT fd, pg_catalog.lo_lseek64(fd, $2, 0) AS at FROM (SELECT pg_catalog.lo_open($1, $3) AS fd OFFSET 0) AS o",
        [row.oid, position, INV_WRITE],
      );
      const writer = new PipelinedWriter(scope, opened[0]!.fd, await lowriteSql(scope, { append: false }));
      return { runner, scope, row, writer, hash: this.hashAt(id, position) };
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      if (!runner.isReleased) await runner.release().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Starts a later piece of a PATCH in one round trip: one statement locks the row, renews the
   * staged record's grace (locking the record, so the sweep skips it) and opens the object at the
   * offset, in a transaction of a connection of its own that starts with that statement, so that
   * the piece's last write run can also commit it (see {@link commitPiece}).
   */
  private async beginLaterPiece(table: string, id: string, position: number): Promise<Piece> {
    const scope = await TransactionScope.begin(this.source, { transaction: true });
    try {
      // The record is renewed and the object opened only where the row stands at the offset.
      const rows = await scope.query(
        `WITH locked AS MATERIALIZED (SELECT ${UPLOAD_COLUMNS} FROM ${table} u WHERE u."id" = $1 FOR UPDATE NOWAIT),
         renewed AS (UPDATE ${recordsTable(this.source)} r SET created_at = pg_catalog.now() FROM locked l
                      WHERE r.oid = l."oid"::pg_catalog.oid AND r.staged AND l."offset" = $2 RETURNING r.oid)
         SELECT l.*, o.fd FROM locked l LEFT JOIN LATERAL (
           SELECT fd, pg_catalog.lo_lseek64(fd, $2, 0) AS at
             FROM (SELECT pg_catalog.lo_open(n.oid, $3) AS fd FROM renewed n OFFSET 0) AS x
         ) AS o ON true`,
        [id, position, INV_WRITE],
      );
      if (rows[0] === undefined) throw tusError("ERR_LO_NOT_FOUND", ERRORS.FILE_NOT_FOUND, `no upload ${id}`);
      const row = toUploadRow(rows[0]);
      if (row.offset !== position) throw offsetConflict(id, row, position);
      const fd: unknown = rows[0].fd;
      if (fd === null || fd === undefined) throw objectRemoved(id, row);
      const writer = new PipelinedWriter(scope, Number(fd), await lowriteSql(scope, { append: false }));
      return { runner: undefined, scope, row, writer, hash: this.hashAt(id, position) };
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw err;
    }
  }

  /** The running SHA-256 of an upload's bytes below `position`, when this process saw them all. */
  private hashAt(id: string, position: number): Hash | undefined {
    const known = this.hashes.get(id);
    return known?.offset === position ? known.hash.copy() : position === 0 ? createHash("sha256") : undefined;
  }

  /** Stores what the piece holds and commits it with the new offset; the last piece ends the upload's row. */
  private async commitPiece(piece: Piece, assembler: PieceAssembler, position: number): Promise<void> {
    const table = await this.uploadsTable();
    const { runner, scope, row } = piece;
    try {
      await assembler.flush();
      const done = row.length !== null && position === row.length;
      // The staged record's size follows the object; its digest is known once the last byte is.
      // One statement for the upload's row and the record: a round trip less per piece.
      const sha256 = done && piece.hash !== undefined ? piece.hash.digest("hex") : null;
      const upload = done
        ? `DELETE FROM ${table} WHERE "id" = $4`
        : `UPDATE ${table} SET "offset" = $2, "touched_at" = pg_catalog.clock_timestamp() WHERE "id" = $4`;
      const sql = `WITH upload AS (${upload} RETURNING 1)
         UPDATE ${recordsTable(this.source)} SET size = $2, sha256 = $3 WHERE oid = $1 AND staged`;
      // After the piece's last write in the same run, and the COMMIT too where the scope lets its
      // last statement end it: each piece still commits on its own, in one round trip.
      const commit = scope.commitStatement;
      const last = [{ sql, values: [String(row.oid), String(position), sha256, row.id] }, ...(commit === undefined ? [] : [{ sql: commit, values: [] }])];
      if (!(await piece.writer.flush(last))) await scope.query(sql, [row.oid, position, sha256, row.id]);
      await scope.end();
      this.hashes.delete(row.id);
      if (!done && piece.hash !== undefined) {
        this.hashes.set(row.id, { offset: position, hash: piece.hash });
        if (this.hashes.size > HASHES_KEPT) this.hashes.delete(this.hashes.keys().next().value!);
      }
      if (done) {
        if (sha256 === null) await this.recordDigest(row.oid, position);
        this.remember(this.toUpload({ ...row, offset: position, touchedAt: new Date() }));
      }
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw err;
    } finally {
      if (runner !== undefined && !runner.isReleased) await runner.release();
    }
  }

  /**
   * Reads a finished object once to record its SHA-256 in the staged record, for an upload whose
   * running hash this process does not have (some bytes came through another one, or before a
   * restart). A failure leaves the digest null, which adoption takes as unknown, never as stale.
   */
  private async recordDigest(oid: number, size: number): Promise<void> {
    try {
      const hash = createHash("sha256");
      const handle = await LargeObject.open(this.source, oid, "r");
      for await (const chunk of handle.createReadStream()) hash.update(chunk as Buffer);
      await TransactionScope.using(this.source, { transaction: false }, (scope) =>
        scope.query(`UPDATE ${recordsTable(this.source)} SET sha256 = $3 WHERE oid = $1 AND staged AND size = $2`, [
          oid,
          size,
          hash.digest("hex"),
        ]),
      );
    } catch {
      // The digest stays null: the upload itself is complete and committed.
    }
  }

  private async abortPiece(piece: Piece, reason: unknown): Promise<void> {
    await piece.writer.flush().catch(() => undefined);
    await piece.scope.end(reason).catch(() => undefined);
    if (piece.runner !== undefined && !piece.runner.isReleased) await piece.runner.release().catch(() => undefined);
  }

  private toUpload(row: UploadRow): Upload {
    return new Upload({
      id: row.id,
      size: row.length ?? undefined,
      offset: row.offset,
      metadata: row.metadata ?? undefined,
      storage: { type: LARGE_OBJECT_STORAGE_TYPE, path: String(row.oid) },
      creation_date: row.touchedAt.toISOString(),
    });
  }

  private remember(upload: Upload): void {
    this.finished.set(upload.id, { upload, at: Date.now() });
    if (this.finished.size > FINISHED_KEPT) this.finished.delete(this.finished.keys().next().value!);
  }
}

function offsetConflict(id: string, row: UploadRow, position: number): Error {
  return tusError("ERR_LO_CONFLICT", ERRORS.INVALID_OFFSET, `upload ${id} is at offset ${row.offset}, not ${position}`, row.oid);
}

/** The sweep removed the object of an idle upload. */
function objectRemoved(id: string, row: UploadRow): Error {
  return tusError("ERR_LO_NOT_FOUND", ERRORS.FILE_NO_LONGER_EXISTS, `the object of upload ${id} was removed`, row.oid);
}
