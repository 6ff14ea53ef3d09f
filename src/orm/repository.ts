import type { ObjectLiteral } from "typeorm";
import { LargeObjectError, toLargeObjectError } from "../errors";
import { toChunkSize } from "../validation";
import { quoteIdentifier, quoteTable } from "../sql";
import { dataSourceOf, type LargeObjectSource } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { toReadFrom, type ReadFrom } from "../connection/replica-routing";
import type { LargeObjectContent } from "../handle/content";
import { ContentDigest, digesting } from "../handle/digest";
import { LargeObject, type ScopeOpenOptions } from "../handle/large-object";
import { toMode, type LargeObjectMode } from "../handle/modes";
import type { LargeObjectReadStream, ReadStreamOptions } from "../handle/read-stream";
import { LargeObjectWriteStream, type WritableHandle, type WriteStreamOptions } from "../handle/write-stream";
import { pipePieces } from "../handle/writes";
import { findLargeObjectColumn, type LargeObjectColumnInfo } from "./column";
import { openNewInRow } from "./column-objects";
import { assignTracked, forgetTerms, storeTracked, UNKNOWN } from "./tracking";

/** Options of a {@link LargeObjectRepository}. */
export interface LargeObjectRepositoryOptions {
  /** The largest object `read()` returns as one Buffer (default 64 MiB); beyond it, use a stream. */
  maxReadBytes?: number;
  /** Where this repository's reads run on a data source with read replicas (default: the data source's, see `configureReplicaReads`). */
  readFrom?: ReadFrom;
}

/** Options of the reads of a {@link LargeObjectRepository}. */
export interface EntityReadOptions {
  /** Where the read runs on a data source with read replicas (default: the repository's, then the data source's). */
  readFrom?: ReadFrom;
}

/** Options of {@link LargeObjectRepository.openStream}. */
export interface OpenStreamOptions extends EntityReadOptions {
  mode?: LargeObjectMode;
  chunkSize?: number;
}

/** Options of {@link LargeObjectRepository.createWriteStream}. */
export interface EntityWriteStreamOptions extends Omit<WriteStreamOptions, "autoClose"> {
  /** Append to the current content instead of replacing it (default false). */
  append?: boolean;
}

/** Options of {@link LargeObjectRepository.createReadStream}. */
export type EntityReadStreamOptions = Omit<ReadStreamOptions, "autoClose"> & EntityReadOptions;

const DEFAULT_MAX_READ_BYTES = 64 * 1024 * 1024;

/**
 * Streams the large objects of entities. Built on a transactional manager (inside
 * `dataSource.transaction(...)`) or a query runner, everything runs on it (in its transaction, if
 * it has one); built on a data source or its manager, each call or stream owns a transaction of its
 * own and releases its connection at the end.
 *
 * @example
 * const files = new LargeObjectRepository(dataSource.manager);
 * await pipeline(await files.createReadStream(doc, "attachment"), res);
 */
export class LargeObjectRepository {
  private readonly maxReadBytes: number;
  private readonly readFrom: ReadFrom | undefined;

  constructor(
    private readonly manager: LargeObjectSource,
    options: LargeObjectRepositoryOptions = {},
  ) {
    dataSourceOf(manager);
    this.maxReadBytes =
      options.maxReadBytes === undefined ? DEFAULT_MAX_READ_BYTES : toChunkSize(options.maxReadBytes, "maxReadBytes");
    this.readFrom = options.readFrom === undefined ? undefined : toReadFrom(options.readFrom);
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
    return this.openEntity(entity, property, toMode(options.mode ?? "r"), options);
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
    options: ScopeOpenOptions,
  ): Promise<LargeObject> {
    return (await this.openTracked(entity, property, mode, options)).handle;
  }

  /** {@link openEntity}, with the column and the row's WHERE clause, for writes that store tracked values at their end. */
  private async openTracked<T extends ObjectLiteral>(
    entity: T,
    property: keyof T & string,
    mode: LargeObjectMode,
    options: ScopeOpenOptions,
  ): Promise<{ handle: LargeObject; info: LargeObjectColumnInfo; where: { sql: string; values: unknown[] } }> {
    const info = findLargeObjectColumn(dataSourceOf(this.manager), entity, property);
    const where = primaryKeyOf(info, entity);
    if (options.chunkSize !== undefined) toChunkSize(options.chunkSize, "chunkSize");
    const details = { entity: info.entity.name, property };
    if (mode === "r") {
      const readFrom = options.readFrom === undefined ? this.readFrom : toReadFrom(options.readFrom);
      const literal = literalPrimaryKeyOf(info, entity);
      const handle = await TransactionScope.reading(this.manager, readFrom, (scope) => openRow(scope, info, where, mode, options, details, undefined, literal));
      return { handle, info, where };
    }
    const scope = await TransactionScope.begin(this.manager, { transaction: true });
    const handle = await openRow(scope, info, where, mode, options, details, (oid) => {
      (entity as ObjectLiteral)[property] = oid;
    });
    // The row's tracked values were forgotten as it was locked; the entity forgets them too.
    assignTracked(info, entity, UNKNOWN);
    return { handle, info, where };
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
    const { readFrom, ...streamOptions } = options;
    const handle = await this.openStream(entity, property, { mode: "r", readFrom });
    return withHandle(handle, () => handle.createReadStream({ ...streamOptions, autoClose: true }), { close: false });
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
    const { handle, info, where } = await this.openTracked(entity, property, append ? "a" : "w", { empty: !append });
    if (forgetTerms(info) === undefined) {
      return withHandle(handle, () => handle.createWriteStream({ ...streamOptions, autoClose: true }), { close: false });
    }
    // A replacement is hashed as its pieces go out; an append cannot be, so it keeps only the size.
    const digest = append ? undefined : new ContentDigest();
    const tracking: WritableHandle = {
      oid: handle.oid,
      pipelinedWriter: async () => {
        const writer = await handle.pipelinedWriter();
        if (digest === undefined) return writer;
        const write = writer.write.bind(writer);
        writer.write = (piece: Buffer): Promise<void> => {
          digest.update(piece);
          return write(piece);
        };
        return writer;
      },
      // The tracked values are stored before the commit, so the last piece carries no commit.
      finishWrites: async (writer) => {
        await writer?.flush();
      },
      close: async () => {
        try {
          const content = digest === undefined ? { size: await handle.size(), sha256: null } : { size: digest.size, sha256: digest.hex() };
          await storeTracked(handle.scope, info, where, entity, content);
        } catch (err) {
          await handle.abort(err);
          throw toLargeObjectError(err, { oid: handle.oid, entity: info.entity.name, property });
        }
        await handle.close();
      },
      abort: (reason) => handle.abort(reason),
    };
    return withHandle(handle, () => new LargeObjectWriteStream(tracking, { ...streamOptions, autoClose: true }), { close: false });
  }

  /**
   * The object's size in bytes.
   *
   * @example
   * res.setHeader("Content-Length", await files.size(doc, "attachment"));
   */
  async size<T extends ObjectLiteral>(entity: T, property: keyof T & string, options: EntityReadOptions = {}): Promise<number> {
    const handle = await this.openStream(entity, property, { mode: "r", readFrom: options.readFrom });
    return withHandle(handle, () => handle.size(), { close: true });
  }

  /**
   * The whole object as a Buffer; refused with ERR_LO_TOO_LARGE above `maxReadBytes`.
   *
   * @example
   * const bytes = await files.read(doc, "thumbnail");
   */
  async read<T extends ObjectLiteral>(entity: T, property: keyof T & string, options: EntityReadOptions = {}): Promise<Buffer> {
    const handle = await this.openStream(entity, property, { mode: "r", readFrom: options.readFrom });
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
      { close: true },
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
    const { handle, info, where } = await this.openTracked(entity, property, "w", { empty: true });
    if (forgetTerms(info) === undefined) {
      return withHandle(handle, () => pipePieces(content, () => handle.pipelinedWriter()), { close: true });
    }
    const digest = new ContentDigest();
    return withHandle(
      handle,
      async () => {
        const written = await pipePieces(digesting(content, digest), () => handle.pipelinedWriter());
        await storeTracked(handle.scope, info, where, entity, { size: digest.size, sha256: digest.hex() });
        return written;
      },
      { close: true },
    );
  }
}

/**
 * Finds the row in `scope` (locking it for writing) and opens its object, in one statement; ends
 * the scope when that fails. A null column opened for writing gets a new object, created, recorded, stored in the
 * row and opened in one statement.
 */
async function openRow(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  where: { sql: string; values: unknown[] },
  mode: LargeObjectMode,
  options: ScopeOpenOptions,
  details: { entity: string; property: string },
  created?: (oid: number) => void,
  literalWhere?: string,
): Promise<LargeObject> {
  const { entity, property } = details;
  try {
    const table = quoteTable(info.entity);
    const column = quoteIdentifier(info.column.databaseName);
    if (mode === "r" && literalWhere !== undefined) {
      // A small object is read whole by the statement that finds the row (see openWholeIfSmall).
      const whole = await LargeObject.openWholeIfSmall(scope, `SELECT ${column} AS oid FROM ${table} WHERE ${literalWhere}`, options);
      if (whole === undefined) throw new LargeObjectError("ERR_LO_NOT_FOUND", `no ${entity} row has this primary key`, details);
      if (whole === null) throw new LargeObjectError("ERR_LO_NULL", `${entity}.${property} is null: there is no object to read`, details);
      if (whole) return whole;
    }
    // The row is found (and locked, for writing) and its object opened in one statement. A write
    // may change the content in any way, so the row's tracked values are forgotten in that statement
    // (an UPDATE locks as FOR UPDATE does) and set again by a write that knows them.
    const forget = mode === "r" ? undefined : forgetTerms(info);
    const selection =
      forget === undefined
        ? { sql: `SELECT ${column} AS oid FROM ${table} WHERE ${where.sql}${mode === "r" ? "" : " FOR UPDATE"}`, values: where.values }
        : {
            with: `forgotten AS (UPDATE ${table} SET ${forget} WHERE ${where.sql} RETURNING ${column} AS oid)`,
            sql: "SELECT oid FROM forgotten",
            values: where.values,
          };
    const handle = await LargeObject.openSelected(scope, selection, mode, options);
    if (handle === undefined) {
      throw new LargeObjectError("ERR_LO_NOT_FOUND", `no ${entity} row has this primary key`, details);
    }
    if (handle === null) {
      if (mode === "r") {
        throw new LargeObjectError("ERR_LO_NULL", `${entity}.${property} is null: there is no object to read`, details);
      }
      const fresh = await openNewInRow(scope, info, where, mode, { chunkSize: options.chunkSize });
      created?.(fresh.oid);
      return fresh;
    }
    return handle;
  } catch (err) {
    await scope.end(err).catch(() => undefined);
    throw toLargeObjectError(err, { ...details, ...namedObject(err) });
  }
}

/**
 * The oid that the server's error names ("large object N does not exist"), since the statement
 * that found it failed before it could answer it.
 */
function namedObject(err: unknown): { oid?: number } {
  const message = err instanceof Error ? err.message : "";
  const named = /large object (\d+)/.exec(message);
  return named === null ? {} : { oid: Number(named[1]) };
}

/**
 * Runs `task` on a fresh handle; aborts the handle when the task fails, and closes it after a
 * successful one when `close` is set (streams close their handle themselves).
 */
async function withHandle<R>(handle: LargeObject, task: () => R | Promise<R>, options: { close: boolean }): Promise<R> {
  try {
    const result = await task();
    if (options.close) await handle.close();
    return result;
  } catch (err) {
    await handle.abort(err);
    throw toLargeObjectError(err, { oid: handle.oid });
  }
}

const INTEGER_TYPES = new Set(["int", "int2", "int4", "int8", "integer", "smallint", "bigint"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Up to 18 digits: within int8 whatever they are. */
const INTEGER_TEXT = /^-?[0-9]{1,18}$/;

/**
 * The row's WHERE clause with its values spliced in as literals, for a statement that takes no
 * parameters (COPY): only for keys of integer and uuid columns whose values are checked to be
 * exactly that. Undefined for any other key, which then goes as a parameter in a statement of its own.
 */
function literalPrimaryKeyOf(info: LargeObjectColumnInfo, entity: ObjectLiteral): string | undefined {
  const driver = info.entity.connection.driver;
  const terms: string[] = [];
  for (const column of info.entity.primaryColumns) {
    const type = String(driver.normalizeType(column)).toLowerCase();
    const value: unknown = column.getEntityValue(entity);
    let literal: string | undefined;
    if (INTEGER_TYPES.has(type)) {
      if (typeof value === "number" && Number.isSafeInteger(value)) literal = String(value);
      else if ((typeof value === "bigint" || typeof value === "string") && INTEGER_TEXT.test(String(value))) literal = `${String(value)}::int8`;
    } else if (type === "uuid" && typeof value === "string" && UUID.test(value)) {
      literal = `'${value}'::uuid`;
    }
    if (literal === undefined) return undefined;
    terms.push(`${quoteIdentifier(column.databaseName)} = ${literal}`);
  }
  return terms.length === 0 ? undefined : terms.join(" AND ");
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
