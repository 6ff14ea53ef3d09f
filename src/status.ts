import type { DataSource } from "typeorm";
import { toLargeObjectError } from "./errors";
import { INV_READ } from "./large-object";
import { referenceColumns, toGraceMs, unreferenced } from "./sweep";
import { TransactionScope, dataSourceOf } from "./transaction-scope";
import { locateRecords } from "./triggers";

/** Objects are measured this many per statement, so descriptors never pile up in one transaction. */
const SIZE_CHUNK = 10_000;

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
  /** The grace period the counts used. */
  graceMs: number;
}

/**
 * Counts the database's large objects: how many, how big, how many this library recorded, and how
 * many a sweep would unlink. Reads only.
 *
 * @example
 * const status = await largeObjectStatus(dataSource);
 * if (status.orphans > 0) console.log(`${status.orphans} orphans: run the sweep`);
 */
export async function largeObjectStatus(dataSource: DataSource, options: { graceMs?: number } = {}): Promise<LargeObjectStatus> {
  dataSourceOf(dataSource);
  const graceMs = toGraceMs(options.graceMs);
  return TransactionScope.using(dataSource, { transaction: false }, async (scope) => {
    const { home, records } = await locateRecords(dataSource, scope);
    const columns = await referenceColumns(scope, records, home);
    const counts = await scope.query<Record<string, string>>(
      `SELECT
         (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata) AS objects,
         (SELECT count(*) FROM ${records} r WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)) AS recorded,
         (SELECT count(*) FROM ${records} r WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)) AS missing,
         (SELECT count(*) FROM ${records} r
           WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)
             AND r.created_at <= pg_catalog.now() - $1::double precision * interval '1 millisecond'
             AND ${unreferenced(columns, "r.oid")}) AS orphans,
         (SELECT count(*) FROM ${records} r
           WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)
             AND r.created_at > pg_catalog.now() - $1::double precision * interval '1 millisecond'
             AND ${unreferenced(columns, "r.oid")}) AS young,
         (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata m
           WHERE NOT EXISTS (SELECT 1 FROM ${records} r WHERE r.oid = m.oid)
             AND ${unreferenced(columns, "m.oid")}) AS unrecorded_orphans`,
      [graceMs],
    );
    const c = counts[0]!;
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
                sum(CASE WHEN readable THEN pg_catalog.lo_lseek64(pg_catalog.lo_open(oid, ${INV_READ}), 0, 2) END)::text AS bytes
           FROM chunk`,
        [after],
      );
      const row = rows[0]!;
      totalBytes += BigInt(row.bytes ?? "0");
      unreadable += Number(row.unreadable);
      if (row.last === null || Number(row.n) < SIZE_CHUNK) break;
      after = row.last;
    }
    const objects = Number(c.objects);
    const recorded = Number(c.recorded);
    return {
      objects,
      totalBytes: Number(totalBytes),
      unreadable,
      recorded,
      withoutRecord: objects - recorded,
      missingObjects: Number(c.missing),
      orphans: Number(c.orphans),
      youngUnreferenced: Number(c.young),
      unreferencedWithoutRecord: Number(c.unrecorded_orphans),
      graceMs,
    };
  }).catch((err: unknown) => {
    throw toLargeObjectError(err);
  });
}
