import type { DataSource, EntityManager, ObjectLiteral } from "typeorm";
import { LargeObjectError, toLargeObjectError } from "./errors";
import { toChunkSize } from "./arguments";
import type { LargeObjectContent } from "./content";
import { findLargeObjectColumn, type LargeObjectColumnInfo } from "./column";
import { openNewInRow } from "./column-objects";
import { LargeObject, pipePieces, toMode, type LargeObjectMode, type OpenOptions } from "./large-object";
import type { LargeObjectReadStream, ReadStreamOptions } from "./read-stream";
import type { LargeObjectWriteStream, WriteStreamOptions } from "./write-stream";
import { quoteIdentifier, quoteTable } from "./sql";
import { TransactionScope, dataSourceOf } from "./transaction-scope";

/** Options of a {@link LargeObjectRepository}. */
export interface LargeObjectRepositoryOptions {
  /** The largest object `read()` returns as one Buffer (default 64 MiB); beyond it, use a stream. */
  maxReadBytes?: number;
}

/** Options of {@link LargeObjectRepository.openStream}. */
export interface OpenStreamOptions {
  mode?: LargeObjectMode;
  chunkSize?: number;
}

/** Options of {@link LargeObjectRepository.createWriteStream}. */
export interface EntityWriteStreamOptions extends Omit<WriteStreamOptions, "autoClose"> {
  /** Append to the current content instead of replacing it (default false). */
  append?: boolean;
}

/** Options of {@link LargeObjectRepository.createReadStream}. */
export type EntityReadStreamOptions = Omit<ReadStreamOptions, "autoClose">;

const DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024;

/**
 * Streams the large objects of entities. Built on a transactional manager (inside
 * `dataSource.transaction(...)`), everything runs in that transaction; built on a data source or its
 * manager, each call or stream owns a transaction of its own and releases its connection at the end.
 *
 * @example
 * const files = new LargeObjectRepository(dataSource.manager);
 * await pipeline(await files.createReadStream(doc, "attachment"), res);
 */
export class LargeObjectRepository {
  private readonly maxReadBytes: number;

  constructor(
    private readonly manager: EntityManager | DataSource,
    options: LargeObjectRepositoryOptions = {},
  ) {
    dataSourceOf(manager);
    this.maxReadBytes =
      options.maxReadBytes === undefined ? DEFAULT_MAX_READ_BYTES : toChunkSize(options.maxReadBytes, "maxReadBytes");
  }

  /**
   * Opens the object of `entity[property]` as a {@link LargeObject} handle. Opening for writing on
   * a null column creates the object and stores its oid in the row, in the same transaction.
   *
   * @example
   * const lo = await files.openStream(doc, "attachment", { mode: "rw" });
   */
  async openStream<T extends ObjectLiteral>(entity: T, property: keyof T & string, options: OpenStreamOptions = {}): Promise<LargeObject> {
    // Checked before the row is locked: an unknown mode would reach lo_open as NULL and yield a NULL descriptor.
    return this.openEntity(entity, property, toMode(options.mode ?? "r"), options, false);
  }

  /**
   * Finds the row (locking it for writing), then opens its object; with `empty`, a write
   * descriptor's object is truncated in the statement that opens it. A null column is given a new
   * object, created, recorded, stored in the row and opened in one statement.
   */
  private async openEntity<T extends ObjectLiteral>(
    entity: T,
    property: keyof T & string,
    mode: LargeObjectMode,
    options: OpenOptions,
    empty: boolean,
  ): Promise<LargeObject> {
    const info = findLargeObjectColumn(dataSourceOf(this.manager), entity, property);
    const where = primaryKeyOf(info, entity);
    if (options.chunkSize !== undefined) toChunkSize(options.chunkSize, "chunkSize");
    const details = { entity: info.entity.name, property };
    const scope = await TransactionScope.begin(this.manager, { transaction: true, readOnly: mode === "r" });
    try {
      const table = quoteTable(info.entity);
      const column = quoteIdentifier(info.column.databaseName);
      const rows = await scope.query<{ oid: number | null }>(
        `SELECT ${column} AS oid FROM ${table} WHERE ${where.sql}${mode === "r" ? "" : " FOR UPDATE"}`,
        where.values,
      );
      if (rows.length === 0) {
        throw new LargeObjectError("ERR_LO_NOT_FOUND", `no ${info.entity.name} row has this primary key`, details);
      }
      const oid = rows[0]!.oid;
      if (oid === null) {
        if (mode === "r") {
          throw new LargeObjectError("ERR_LO_NULL", `${info.entity.name}.${property} is null: there is no object to read`, details);
        }
        const created = await openNewInRow(scope, info, where, mode, options);
        (entity as ObjectLiteral)[property] = created.oid;
        return created;
      }
      return await LargeObject.openOnScope(scope, oid, mode, options, empty);
    } catch (err) {
      await scope.end(err).catch(() => undefined);
      throw toLargeObjectError(err, details);
    }
  }

  /**
   * A Readable of the object's bytes from `start` to `end` (inclusive); it closes its handle, and
   * an owned transaction and connection, when it ends or is destroyed.
   *
   * @example
   * const stream = await files.createReadStream(doc, "attachment", { start: 100, end: 199 });
   */
  async createReadStream<T extends ObjectLiteral>(
    entity: T,
    property: keyof T & string,
    options: EntityReadStreamOptions = {},
  ): Promise<LargeObjectReadStream> {
    const handle = await this.openStream(entity, property, { mode: "r" });
    return withHandle(handle, () => handle.createReadStream({ ...options, autoClose: true }), false);
  }

  /**
   * A Writable that replaces the object's content (or appends, with `append: true`). Finishing
   * commits an owned transaction; an error or destroy rolls it back, leaving the old content.
   *
   * @example
   * await pipeline(req, await files.createWriteStream(doc, "attachment"));
   */
  async createWriteStream<T extends ObjectLiteral>(
    entity: T,
    property: keyof T & string,
    options: EntityWriteStreamOptions = {},
  ): Promise<LargeObjectWriteStream> {
    const { append = false, ...streamOptions } = options;
    const handle = await this.openEntity(entity, property, append ? "a" : "w", {}, !append);
    return withHandle(handle, () => handle.createWriteStream({ ...streamOptions, autoClose: true }), false);
  }

  /**
   * The object's size in bytes.
   *
   * @example
   * res.setHeader("Content-Length", await files.size(doc, "attachment"));
   */
  async size<T extends ObjectLiteral>(entity: T, property: keyof T & string): Promise<number> {
    const handle = await this.openStream(entity, property, { mode: "r" });
    return withHandle(handle, () => handle.size(), true);
  }

  /**
   * The whole object as a Buffer; refused with ERR_LO_TOO_LARGE above `maxReadBytes`.
   *
   * @example
   * const bytes = await files.read(doc, "thumbnail");
   */
  async read<T extends ObjectLiteral>(entity: T, property: keyof T & string): Promise<Buffer> {
    const handle = await this.openStream(entity, property, { mode: "r" });
    return withHandle(
      handle,
      async () => {
        const size = await handle.size();
        if (size > this.maxReadBytes) {
          throw new LargeObjectError(
            "ERR_LO_TOO_LARGE",
            `${size} bytes is above maxReadBytes (${this.maxReadBytes}): use createReadStream() for large objects`,
            { oid: handle.oid, property },
          );
        }
        return handle.read(size);
      },
      true,
    );
  }

  /**
   * Replaces the object's content with `content` (Buffer, string, Readable or async iterable) and
   * returns the bytes written; all or nothing.
   *
   * @example
   * await files.write(doc, "attachment", fs.createReadStream("new.pdf"));
   */
  async write<T extends ObjectLiteral>(entity: T, property: keyof T & string, content: LargeObjectContent): Promise<number> {
    const handle = await this.openEntity(entity, property, "w", {}, true);
    return withHandle(handle, () => pipePieces(content, () => handle.pipelinedWriter()), true);
  }
}

/**
 * Runs `task` on a fresh handle; aborts the handle when the task fails, and closes it after a
 * successful one when `close` is set (streams close their handle themselves).
 */
async function withHandle<R>(handle: LargeObject, task: () => R | Promise<R>, close: boolean): Promise<R> {
  try {
    const result = await task();
    if (close) await handle.close();
    return result;
  } catch (err) {
    await handle.abort(err);
    throw toLargeObjectError(err, { oid: handle.oid });
  }
}

/** The WHERE clause selecting the entity's row by its primary key, or ERR_LO_NO_PRIMARY_KEY. */
function primaryKeyOf(info: LargeObjectColumnInfo, entity: ObjectLiteral): { sql: string; values: unknown[] } {
  const columns = info.entity.primaryColumns;
  const values: unknown[] = [];
  const terms = columns.map((column) => {
    const value: unknown = column.getEntityValue(entity);
    if (value === undefined || value === null) {
      throw new LargeObjectError(
        "ERR_LO_NO_PRIMARY_KEY",
        `${info.entity.name}.${column.propertyPath} is missing: save the entity (or load it) before streaming its large object`,
        { entity: info.entity.name, property: info.property },
      );
    }
    values.push(value);
    return `${quoteIdentifier(column.databaseName)} = $${values.length}`;
  });
  if (terms.length === 0) {
    throw new LargeObjectError("ERR_LO_NO_PRIMARY_KEY", `${info.entity.name} has no primary key`, {
      entity: info.entity.name,
      property: info.property,
    });
  }
  return { sql: terms.join(" AND "), values };
}
