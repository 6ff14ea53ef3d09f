import type { DataSource } from "typeorm";
import { toLargeObjectError } from "../errors";
import { dataSourceOf } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { qualified, quoteIdentifier } from "../sql";
import { relationExists } from "../connection/catalog";
import { resolveHome } from "./home";
import { mayReadPages, referenceColumns, sizeSql, toGraceMs, type ReferenceColumn } from "./sweep";
import { installationProblems } from "./trigger-sync";

/**
 * Objects measured through descriptors per statement: each descriptor stays open until its
 * statement ends, and opening one costs more the more are open, so small chunks are cheaper.
 */
const SIZE_CHUNK = 1_000;

/** A column whose rows name objects that do not exist (a restore without its large objects, say). */
export interface DanglingReference {
  /** The table's quoted, qualified name. */
  table: string;
  column: string;
  /** Rows whose value names no large object. */
  rows: number;
}

/** The state of a database's large objects, as {@link largeObjectStatus} finds it. */
export interface LargeObjectStatus {
  /** Large objects in the database. */
  objects: number;
  /** Their total size, over the objects this role may read. */
  totalBytes: number;
  /** Objects whose size this role may not read (not counted in totalBytes). */
  unreadable: number;
  /** Objects listed in the record table (created or adopted through a large-object column). */
  recorded: number;
  /** Objects with no record: created by other code. The default sweep never touches them. */
  withoutRecord: number;
  /** Records whose object no longer exists (the sweep removes them). */
  missingObjects: number;
  /** Recorded objects no oid/lo column references, older than the grace period: the default sweep unlinks them. */
  orphans: number;
  /** Recorded, unreferenced, but younger than the grace period (perhaps still being attached). */
  youngUnreferenced: number;
  /** Objects without a record that nothing references: only a sweep with scope "all" would unlink them. */
  unreferencedWithoutRecord: number;
  /**
   * Per oid/lo column, the rows whose value names no large object (only columns that have some):
   * their bytes are lost, and no sweep can bring them back. Restore the objects, or clear the values.
   */
  danglingReferences: DanglingReference[];
  /**
   * What keeps the unlink triggers from working as installed (missing record table, functions,
   * column table, or columns without triggers), each a line saying what to run. Empty when whole.
   */
  problems: string[];
  /** The grace period the counts used. */
  graceMs: number;
}

/**
 * Counts the database's large objects: how many, how big, how many this library recorded, how
 * many a sweep would unlink, which rows name objects that do not exist, and what is missing from
 * the installation. Reads only, and answers on a database however partially restored.
 *
 * @example
 * const status = await largeObjectStatus(dataSource);
 * if (status.orphans > 0) console.log(`${status.orphans} orphans: run the sweep`);
 */
export async function largeObjectStatus(dataSource: DataSource, options: { graceMs?: number } = {}): Promise<LargeObjectStatus> {
  dataSourceOf(dataSource);
  const graceMs = toGraceMs(options.graceMs);
  return TransactionScope.using(dataSource, { transaction: false }, async (scope) => {
    const { home, records } = await resolveHome(dataSource, scope);
    const problems = await installationProblems(scope, dataSource, home, records);
    const columns = await referenceColumns(scope, records, home);
    const danglingReferences = await dangling(scope, columns);
    // Without the record table every object counts as unrecorded, as the sweep would see it.
    const recordsTable = (await relationExists(scope, records))
      ? records
      : "(SELECT NULL::pg_catalog.oid AS oid, NULL::timestamptz AS created_at WHERE false)";
    const counts = await scope.query<Record<string, string>>(countsSql(recordsTable, columns), [graceMs]);
    const c = counts[0]!;
    const { totalBytes, unreadable } = (await mayReadPages(scope)) ? await sizesFromPages(scope) : await sizesThroughDescriptors(scope);
    const objects = Number(c.objects);
    const recorded = Number(c.recorded);
    return {
      objects,
      totalBytes,
      unreadable,
      recorded,
      withoutRecord: objects - recorded,
      missingObjects: Number(c.missing),
      orphans: Number(c.orphans),
      youngUnreferenced: Number(c.young),
      unreferencedWithoutRecord: Number(c.unrecorded_orphans),
      danglingReferences,
      problems,
      graceMs,
    };
  }).catch((err: unknown) => {
    throw toLargeObjectError(err);
  });
}

/** Every non-null value of the columns, as `oid`, once per row. */
function referencesSql(columns: ReferenceColumn[], tagged: boolean): string {
  if (columns.length === 0) return `SELECT ${tagged ? "0 AS i, " : ""}NULL::pg_catalog.oid AS oid WHERE false`;
  return columns
    .map((c, i) => {
      const column = quoteIdentifier(c.column);
      return `SELECT ${tagged ? `${i} AS i, ` : ""}t.${column}::pg_catalog.oid AS oid FROM ${qualified(c.schema, c.table)} t WHERE t.${column} IS NOT NULL`;
    })
    .join("\n UNION ALL ");
}

/**
 * All counts in one pass: objects full-joined with records, left-joined with the set of referenced
 * oids. Joins, where a NOT EXISTS per record and column would cost a probe (or a hash built
 * again) per count; every count is exact.
 */
function countsSql(records: string, columns: ReferenceColumn[]): string {
  const grace = "pg_catalog.now() - $1::double precision * interval '1 millisecond'";
  return `WITH everything AS (
       SELECT m.oid AS object, r.oid AS record, r.created_at
         FROM pg_catalog.pg_largeobject_metadata m FULL JOIN ${records} r ON r.oid = m.oid
     ),
     referenced AS (SELECT DISTINCT x.oid FROM (${referencesSql(columns, false)}) x)
     SELECT pg_catalog.count(e.object) AS objects,
            pg_catalog.count(*) FILTER (WHERE e.object IS NOT NULL AND e.record IS NOT NULL) AS recorded,
            pg_catalog.count(*) FILTER (WHERE e.object IS NULL) AS missing,
            pg_catalog.count(*) FILTER (WHERE e.object IS NOT NULL AND e.record IS NOT NULL AND x.oid IS NULL AND e.created_at <= ${grace}) AS orphans,
            pg_catalog.count(*) FILTER (WHERE e.object IS NOT NULL AND e.record IS NOT NULL AND x.oid IS NULL AND e.created_at > ${grace}) AS young,
            pg_catalog.count(*) FILTER (WHERE e.object IS NOT NULL AND e.record IS NULL AND x.oid IS NULL) AS unrecorded_orphans
       FROM everything e LEFT JOIN referenced x ON x.oid = e.object`;
}

/** Rows naming no object, per column, in one anti-join of all the columns' values with the catalog. */
async function dangling(scope: TransactionScope, columns: ReferenceColumn[]): Promise<DanglingReference[]> {
  if (columns.length === 0) return [];
  const rows = await scope.query<{ i: number; n: string }>(
    `SELECT x.i, pg_catalog.count(*) AS n FROM (${referencesSql(columns, true)}) x
      WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = x.oid)
      GROUP BY x.i ORDER BY x.i`,
  );
  return rows.map((row) => {
    const c = columns[row.i]!;
    return { table: qualified(c.schema, c.table), column: c.column, rows: Number(row.n) };
  });
}

interface Sizes {
  totalBytes: number;
  unreadable: number;
}

/** Each object's size from its last page, in one statement: no descriptor, and every object is measured. */
async function sizesFromPages(scope: TransactionScope): Promise<Sizes> {
  const rows = await scope.query<{ bytes: string }>(
    `SELECT COALESCE(pg_catalog.sum(${sizeSql("m.oid", { pagesReadable: true })}), 0)::text AS bytes
       FROM pg_catalog.pg_largeobject_metadata m`,
  );
  return { totalBytes: Number(rows[0]!.bytes), unreadable: 0 };
}

/** Each object's size through a descriptor, where pg_largeobject is out of reach: only what this role may read. */
async function sizesThroughDescriptors(scope: TransactionScope): Promise<Sizes> {
  let totalBytes = 0n;
  let unreadable = 0;
  // lo_open checks SELECT privilege: measure only what this role may read, count the rest.
  const readable = `(pg_catalog.pg_has_role(m.lomowner, 'USAGE')
      OR pg_catalog.current_setting('lo_compat_privileges')::boolean
      OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(m.lomacl) a
                  WHERE a.privilege_type = 'SELECT' AND (a.grantee = 0 OR pg_catalog.pg_has_role(a.grantee, 'USAGE'))))`;
  for (let after = 0; ; ) {
    const rows = await scope.query<{ last: number | null; bytes: string | null; unreadable: string; n: string }>(
      `WITH chunk AS (SELECT m.oid, ${readable} AS readable FROM pg_catalog.pg_largeobject_metadata m
                       WHERE m.oid > $1::oid ORDER BY m.oid LIMIT ${SIZE_CHUNK})
       SELECT max(oid) AS last, count(*) AS n, count(*) FILTER (WHERE NOT readable) AS unreadable,
              sum(CASE WHEN readable THEN ${sizeSql("oid", { pagesReadable: false })} END)::text AS bytes
         FROM chunk`,
      [after],
    );
    const row = rows[0]!;
    totalBytes += BigInt(row.bytes ?? "0");
    unreadable += Number(row.unreadable);
    if (row.last === null || Number(row.n) < SIZE_CHUNK) break;
    after = row.last;
  }
  return { totalBytes: Number(totalBytes), unreadable };
}
