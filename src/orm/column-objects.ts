import type { DataSource, QueryRunner } from "typeorm";
import { LargeObjectError, notRegistered, toLargeObjectError, type LargeObjectErrorDetails } from "../errors";
import { quoteIdentifier, quoteTable, schemaOf } from "../sql";
import { integerLiteral } from "../validation";
import { largeObjectExists } from "../connection/catalog";
import type { PgClient } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { compressionStep, stepsItem } from "../handle/compression";
import { readAhead, singlePiece, type LargeObjectContent } from "../handle/content";
import { digesting, type ContentDigest } from "../handle/digest";
import { LargeObject, type OpenOptions } from "../handle/large-object";
import { INV_READ, INV_WRITE, type LargeObjectMode } from "../handle/modes";
import { FIRST_PIECES, pipeIntoNewObject, putPieces } from "../handle/writes";
import type { LargeObjectColumnInfo } from "./column";
import { LargeObjectRecord } from "./records";
import { findReferences } from "./references";

/** Content up to this size is created in batches (one statement for every object of a flush). */
const BATCH_PIECE_LIMIT = 256 * 1024;
/** Content bytes per batch statement. */
const BATCH_BYTES = 32 * 1024 * 1024;
/**
 * Bytes of streamed content read before it is decided how to write it: a stream that ends within
 * them is created in a batch like bytes in memory. As much as the first piece of a streamed write,
 * which would hold them anyway.
 */
const READ_AHEAD_LIMIT = FIRST_PIECES.size;

/** Where an object was created, as stored in the record table: `schema.table.column`. */
function createdFor(info: LargeObjectColumnInfo): string {
  const entity = info.entity;
  const schema = schemaOf(entity.connection, entity) ?? "";
  return `${schema ? `${schema}.` : ""}${entity.tableName}.${info.column.databaseName}`;
}

/** @internal The record table's quoted name, or ERR_LO_NOT_REGISTERED. */
export function recordsTable(dataSource: DataSource): string {
  if (!dataSource.hasMetadata(LargeObjectRecord)) {
    throw notRegistered("large-object columns need the record table");
  }
  return quoteTable(dataSource.getMetadata(LargeObjectRecord));
}

/** @internal A scope on the hook's runner: the save's transaction when there is one, autocommit otherwise. */
export function runnerScope(runner: QueryRunner): Promise<TransactionScope> {
  return TransactionScope.begin(runner, { transaction: false });
}

interface Pending {
  data: Buffer;
  createdFor: string;
  resolve: (oid: number) => void;
  reject: (err: unknown) => void;
}

const batches = new WeakMap<PgClient, { table: string; items: Pending[] }[]>();

/**
 * Creates a small object as part of a batch: every request made on one client before the next turn
 * of the event loop goes out as one statement (TypeORM calls the hooks of one flush together).
 */
function createBatched(scope: TransactionScope, table: string, data: Buffer, origin: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let queued = batches.get(scope.client);
    if (queued === undefined) {
      batches.set(scope.client, (queued = []));
      setImmediate(() => flushBatches(scope));
    }
    let batch = queued.find((b) => b.table === table);
    if (batch === undefined) queued.push((batch = { table, items: [] }));
    batch.items.push({ data, createdFor: origin, resolve, reject });
  });
}

function flushBatches(scope: TransactionScope): void {
  const queued = batches.get(scope.client) ?? [];
  batches.delete(scope.client);
  for (const { table, items: all } of queued) {
    for (const items of byBytes(all, BATCH_BYTES)) sendBatch(scope, table, items);
  }
}

/** Splits a batch so that no statement carries more than `limit` bytes of content. */
function byBytes(items: Pending[], limit: number): Pending[][] {
  const groups: Pending[][] = [];
  let bytes = Infinity;
  for (const item of items) {
    if (bytes + item.data.length > limit) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1]!.push(item);
    bytes += item.data.length;
  }
  return groups;
}

/**
 * The statement of a batch. The CTE is materialized once (lo_from_bytea is volatile), so each
 * object is created once and recorded in the same statement: no object can exist without its
 * record. All contents travel as one binary bytea (pg sends Buffers unencoded; an array of them
 * would go hex-encoded, twice the bytes) and are cut apart on the server by offset and length.
 * `step` (the pages' compression) runs before the first object is made.
 */
function batchSql(table: string, step: string | undefined): string {
  const before = stepsItem([step]);
  return `WITH input AS (
      SELECT ord, substring($1::bytea FROM start FOR len) AS data, created_for
        FROM unnest($2::int4[], $3::int4[], $4::text[]) WITH ORDINALITY AS i(start, len, created_for, ord)
    ), created AS MATERIALIZED (
      SELECT ord, lo_from_bytea(0, data) AS oid, created_for FROM input${before === undefined ? "" : `, ${before}`}
    ), recorded AS (
      INSERT INTO ${table} (oid, created_for) SELECT oid, created_for FROM created
    )
    SELECT oid FROM created ORDER BY ord`;
}

function sendBatch(scope: TransactionScope, table: string, items: Pending[]): void {
  const starts: number[] = [];
  let next = 1;
  for (const item of items) {
    starts.push(next);
    next += item.data.length;
  }
  compressionStep(scope)
    .then((step) =>
      scope.query<{ oid: number }>(batchSql(table, step), [
        Buffer.concat(items.map((i) => i.data)),
        starts,
        items.map((i) => i.data.length),
        items.map((i) => i.createdFor),
      ]),
    )
    .then(
      (rows) => items.forEach((item, n) => item.resolve(rows[n]!.oid)),
      (err: unknown) => items.forEach((item) => item.reject(err)),
    );
}

/**
 * Creates the object for a column from `content` (undefined creates an empty one), records it, and
 * applies the column's grants. With `digest`, the content's size and SHA-256 are taken on the way.
 * @internal
 */
export async function createForColumn(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  content: LargeObjectContent | undefined,
  digest?: ContentDigest,
): Promise<number> {
  const details = { entity: info.entity.name, property: info.property };
  const data = digest === undefined || content === undefined ? content : digesting(content, digest);
  const oid = await createRecorded(scope, info.entity.connection, createdFor(info), data, details);
  try {
    await grantForColumn(scope, info, [oid]);
  } catch (err) {
    await removeMade(scope, info.entity.connection, oid);
    throw toLargeObjectError(err, { ...details, oid });
  }
  return oid;
}

/** Removes an object made in a scope that does not roll back by itself (autocommit, or the caller's transaction). */
async function removeMade(scope: TransactionScope, dataSource: DataSource, oid: number): Promise<void> {
  if (scope.ownsTransaction) return;
  await scope
    .query(`WITH gone AS (DELETE FROM ${recordsTable(dataSource)} WHERE oid = $1) SELECT lo_unlink($1)`, [oid])
    .catch(() => undefined);
}

/**
 * Creates an object from `content`, recorded as made for `origin`. Content in memory up to 256 KiB,
 * and streamed content that ends within 64 KiB, goes in a batch statement. Other content is written
 * with `lo_put` outside a transaction, which needs no descriptor: this works in the autocommit
 * hooks of `insert()` as well as inside `save()`.
 * @internal
 */
export async function createRecorded(
  scope: TransactionScope,
  dataSource: DataSource,
  origin: string,
  content: LargeObjectContent | undefined,
  details: LargeObjectErrorDetails = {},
): Promise<number> {
  const table = recordsTable(dataSource);
  let oid: number | undefined;
  /** Set as soon as a streamed object exists, so a failure can remove it. */
  let opened: number | undefined;
  try {
    let small = content === undefined ? Buffer.alloc(0) : singlePiece(content, BATCH_PIECE_LIMIT);
    if (small === undefined) {
      // A short stream goes in the batch: no descriptor, and one round trip fewer.
      const ahead = await readAhead(content!, READ_AHEAD_LIMIT);
      if ("whole" in ahead) small = ahead.whole;
      else content = ahead.rest;
    }
    if (small !== undefined) {
      oid = await createBatched(scope, table, small, origin);
    } else if (scope.inTransaction) {
      // Inside the row's transaction a descriptor outlives each statement: write through it with a
      // second lowrite in flight, as the write streams do.
      const target = await pipeIntoNewObject(scope, content!, async () => {
        const rows = await scope.query<{ oid: number; fd: number }>(
          `WITH created AS MATERIALIZED (SELECT lo_create(0) AS oid)
           INSERT INTO ${table} (oid, created_for) SELECT oid, $1 FROM created RETURNING oid, lo_open(oid, $2) AS fd`,
          [origin, INV_WRITE],
        );
        opened = rows[0]!.oid;
        return rows[0]!;
      });
      if (target === undefined) oid = await createBatched(scope, table, Buffer.alloc(0), origin);
      else {
        oid = target.oid;
        if (!target.closed) await scope.query("SELECT lo_close($1)", [target.fd]);
      }
    } else {
      // Autocommit (insert()): no descriptor survives a statement, so each piece goes with lo_put.
      const created = await scope.query<{ oid: number }>(
        `WITH created AS MATERIALIZED (SELECT lo_create(0) AS oid)
         INSERT INTO ${table} (oid, created_for) SELECT oid, $1 FROM created RETURNING oid`,
        [origin],
      );
      oid = created[0]!.oid;
      await putPieces(scope, oid, content!);
    }
    return oid;
  } catch (err) {
    const made = oid ?? opened;
    if (made !== undefined) await removeMade(scope, dataSource, made);
    throw toLargeObjectError(err, { ...details, ...(made === undefined ? {} : { oid: made }) });
  }
}

/**
 * For a row whose column is null: creates an empty object, records it, stores its oid in the row
 * (selected by `row`, a WHERE clause on the primary key, already locked by the caller) and opens
 * it, in one statement; then applies the column's grants. The caller ends the scope on failure.
 * @internal
 */
export async function openNewInRow(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  row: { sql: string; values: unknown[] },
  mode: LargeObjectMode,
  options: OpenOptions,
): Promise<LargeObject> {
  const table = quoteTable(info.entity);
  const column = quoteIdentifier(info.column.databaseName);
  const handle = await LargeObject.openSelected(
    scope,
    {
      with: `created AS MATERIALIZED (SELECT lo_create(0) AS oid),
        recorded AS (INSERT INTO ${recordsTable(info.entity.connection)} (oid, created_for)
                     SELECT oid, $${row.values.length + 1} FROM created),
        stored AS (UPDATE ${table} SET ${column} = (SELECT oid FROM created) WHERE ${row.sql})`,
      sql: "SELECT oid FROM created",
      values: [...row.values, createdFor(info)],
    },
    mode,
    options,
  );
  await grantForColumn(scope, info, [handle!.oid]);
  return handle!;
}

/** Applies a column's `grant` option to new objects. GRANT takes no parameters: the oid is a validated integer. */
async function grantForColumn(scope: TransactionScope, info: LargeObjectColumnInfo, oids: number[]): Promise<void> {
  const grant = info.options.grant;
  if (grant === undefined) return;
  const statements: string[] = [];
  for (const oid of oids) {
    const target = `LARGE OBJECT ${integerLiteral(oid)}`;
    if (grant.read?.length) statements.push(`GRANT SELECT ON ${target} TO ${grant.read.map(quoteIdentifier).join(", ")}`);
    if (grant.write?.length) statements.push(`GRANT SELECT, UPDATE ON ${target} TO ${grant.write.map(quoteIdentifier).join(", ")}`);
  }
  for (const statement of statements) await scope.query(statement);
}

/** @internal What is known of an adopted object's content, for a column's tracked properties. */
export interface KnownContent {
  size: number | null;
  sha256: string | null;
}

/**
 * Checks that an existing object may be adopted by a column: it exists (ERR_LO_NOT_FOUND) and no
 * large-object column references it yet (ERR_LO_IN_USE). Then records it, so the sweep knows it;
 * a staged object's record becomes the column's. With `measure`, answers the object's size and,
 * when a staged object's record still vouches for them, its SHA-256.
 * @internal
 */
export async function adoptForColumn(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  oid: number,
  options: { checkOwner: boolean; measure?: boolean } = { checkOwner: true },
): Promise<KnownContent | undefined> {
  const table = recordsTable(info.entity.connection);
  const details = { oid, entity: info.entity.name, property: info.property };
  try {
    // The record is locked first: a second adoption of the same object waits here, and its
    // reference check then sees the first one's row; the sweep skips a locked record.
    const recorded = await scope.query<{ staged: boolean; size: string | null; sha256: string | null }>(
      `SELECT staged, size::text AS size, sha256 FROM ${table} WHERE oid = $1 FOR UPDATE`,
      [oid],
    );
    if (!(await largeObjectExists(scope, oid))) {
      throw new LargeObjectError("ERR_LO_NOT_FOUND", `large object ${oid} does not exist`, details);
    }
    const owners = options.checkOwner ? await findReferences(scope.runner, oid) : [];
    if (owners.length > 0) {
      throw new LargeObjectError(
        "ERR_LO_IN_USE",
        `large object ${oid} is already referenced by ${owners.map((o) => `${o.table}.${o.column}`).join(", ")}; each object has one owner`,
        details,
      );
    }
    // A staged record becomes the column's; what it knew of the content moves to the row.
    await scope.query(
      `INSERT INTO ${table} AS r (oid, created_for) VALUES ($1, $2)
       ON CONFLICT (oid) DO UPDATE SET created_for = EXCLUDED.created_for, staged = false, size = NULL, sha256 = NULL
       WHERE r.staged`,
      [oid, createdFor(info)],
    );
    if (options.measure !== true) return undefined;
    const size = await objectSize(scope, oid);
    const staged = recorded[0];
    // A digest counts only while the record's size still matches the object's.
    const vouched = staged?.staged === true && staged.size !== null && Number(staged.size) === size;
    return { size, sha256: vouched ? staged.sha256 : null };
  } catch (err) {
    throw toLargeObjectError(err, details);
  }
}

/** @internal The size of an object, read through a descriptor opened and closed in one statement (valid in autocommit too). */
export async function objectSize(scope: TransactionScope, oid: number): Promise<number> {
  const rows = await scope.query<{ size: string }>(
    `SELECT pg_catalog.lo_lseek64(fd, 0, 2)::text AS size, pg_catalog.lo_close(fd) AS closed
       FROM (SELECT pg_catalog.lo_open($1, ${INV_READ}) AS fd OFFSET 0) AS opened`,
    [oid],
  );
  return Number(rows[0]!.size);
}
