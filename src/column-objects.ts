import type { DataSource, QueryRunner } from "typeorm";
import { LargeObjectError, toLargeObjectError } from "./errors";
import { forEachPiece, singlePiece, type LargeObjectContent } from "./content";
import { DEFAULT_CHUNK_SIZE, INV_WRITE, LargeObject, pipeIntoNewObject, type LargeObjectMode, type OpenOptions } from "./large-object";
import { integerLiteral } from "./arguments";
import { LargeObjectRecord } from "./records";
import { quoteIdentifier, quoteTable } from "./sql";
import type { LargeObjectColumnInfo } from "./column";
import { findReferences } from "./triggers";
import { TransactionScope, type PgClient } from "./transaction-scope";

/** Content up to this size is created in batches (one statement for every object of a flush). */
const BATCH_PIECE_LIMIT = 256 * 1024;
/** Content bytes per batch statement. */
const BATCH_BYTES = 32 * 1024 * 1024;

/** Where an object was created, as stored in the record table: `schema.table.column`. */
export function createdFor(info: LargeObjectColumnInfo): string {
  const entity = info.entity;
  const schema = entity.schema ?? (entity.connection.options as { schema?: string }).schema ?? "";
  return `${schema ? `${schema}.` : ""}${entity.tableName}.${info.column.databaseName}`;
}

function recordsTable(dataSource: DataSource): string {
  if (!dataSource.hasMetadata(LargeObjectRecord)) {
    throw new LargeObjectError(
      "ERR_LO_NOT_REGISTERED",
      "large-object columns need registerLargeObjects(dataSource) before dataSource.initialize()",
    );
  }
  return quoteTable(dataSource.getMetadata(LargeObjectRecord));
}

/** A scope on the hook's runner: the save's transaction when there is one, autocommit otherwise. */
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

function sendBatch(scope: TransactionScope, table: string, items: Pending[]): void {
  // The CTE is materialized once (lo_from_bytea is volatile), so each object is created once and
  // recorded in the same statement: no object can exist without its record.
  // All contents travel as one binary bytea (pg sends Buffers unencoded; an array of them would
  // go hex-encoded, twice the bytes) and are cut apart on the server by offset and length.
  const sql = `WITH input AS (
      SELECT ord, substring($1::bytea FROM start FOR len) AS data, created_for
        FROM unnest($2::int4[], $3::int4[], $4::text[]) WITH ORDINALITY AS i(start, len, created_for, ord)
    ), created AS MATERIALIZED (
      SELECT ord, lo_from_bytea(0, data) AS oid, created_for FROM input
    ), recorded AS (
      INSERT INTO ${table} (oid, created_for) SELECT oid, created_for FROM created
    )
    SELECT oid FROM created ORDER BY ord`;
  const starts: number[] = [];
  let next = 1;
  for (const item of items) {
    starts.push(next);
    next += item.data.length;
  }
  scope
    .query<{ oid: number }>(sql, [
      Buffer.concat(items.map((i) => i.data)),
      starts,
      items.map((i) => i.data.length),
      items.map((i) => i.createdFor),
    ])
    .then(
      (rows) => items.forEach((item, n) => item.resolve(rows[n]!.oid)),
      (err: unknown) => items.forEach((item) => item.reject(err)),
    );
}

/**
 * Creates the object for a column from `content` (undefined creates an empty one), records it, and
 * applies the column's grants. Content is written with `lo_put`, which needs no descriptor and so no
 * transaction: this works in the autocommit hooks of `insert()` as well as inside `save()`.
 */
export async function createForColumn(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  content: LargeObjectContent | undefined,
): Promise<number> {
  const dataSource = info.entity.connection;
  const table = recordsTable(dataSource);
  const origin = createdFor(info);
  const details = { entity: info.entity.name, property: info.property };
  let oid: number | undefined;
  /** Set as soon as a streamed object exists, so a failure can remove it. */
  let opened: number | undefined;
  try {
    const small = content === undefined ? Buffer.alloc(0) : singlePiece(content, BATCH_PIECE_LIMIT);
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
        await scope.query("SELECT lo_close($1)", [target.fd]);
      }
    } else {
      // Autocommit (insert()): no descriptor survives a statement, so each piece goes with lo_put.
      let offset = 0;
      const created = await scope.query<{ oid: number }>(
        `WITH created AS MATERIALIZED (SELECT lo_create(0) AS oid)
         INSERT INTO ${table} (oid, created_for) SELECT oid, $1 FROM created RETURNING oid`,
        [origin],
      );
      oid = created[0]!.oid;
      const target = oid;
      await forEachPiece(content!, DEFAULT_CHUNK_SIZE, async (piece) => {
        await scope.query("SELECT lo_put($1, $2, $3)", [target, offset, piece]);
        offset += piece.length;
      });
    }
    await grantForColumn(scope, info, [oid]);
    return oid;
  } catch (err) {
    const made = oid ?? opened;
    if (made !== undefined && !scope.ownsTransaction) {
      // Autocommit, or the caller's transaction: remove what we made; an owned one rolls back.
      await scope
        .query(`WITH gone AS (DELETE FROM ${table} WHERE oid = $1) SELECT lo_unlink($1)`, [made])
        .catch(() => undefined);
    }
    throw toLargeObjectError(err, { ...details, ...(made === undefined ? {} : { oid: made }) });
  }
}

/**
 * For a row whose column is null: creates an empty object, records it, stores its oid in the row
 * (selected by `row`, a WHERE clause on the primary key, already locked by the caller) and opens
 * it, in one statement; then applies the column's grants. The caller ends the scope on failure.
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

/**
 * Checks that an existing object may be adopted by a column: it exists (ERR_LO_NOT_FOUND) and no
 * large-object column references it yet (ERR_LO_IN_USE). Then records it, so the sweep knows it.
 */
export async function adoptForColumn(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  oid: number,
  options: { checkOwner: boolean } = { checkOwner: true },
): Promise<void> {
  const dataSource = info.entity.connection;
  const details = { oid, entity: info.entity.name, property: info.property };
  const rows = await scope
    .query<{ found: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata WHERE oid = $1) AS found", [oid])
    .catch((err: unknown) => {
      throw toLargeObjectError(err, details);
    });
  if (!rows[0]!.found) {
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
  await scope.query(
    `INSERT INTO ${recordsTable(dataSource)} (oid, created_for) VALUES ($1, $2) ON CONFLICT (oid) DO NOTHING`,
    [oid, createdFor(info)],
  );
}
