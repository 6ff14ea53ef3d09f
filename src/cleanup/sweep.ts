import type { DataSource } from "typeorm";
import { LargeObjectError, toLargeObjectError } from "../errors";
import { qualified, quoteIdentifier } from "../sql";
import { relationExists } from "../connection/catalog";
import { dataSourceOf } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { INV_READ } from "../handle/modes";
import { locateRecords } from "./home";
import { COLUMNS_TABLE } from "./trigger-functions";

/** Objects younger than this are never swept by default: one day. */
export const DEFAULT_GRACE_MS = 24 * 60 * 60 * 1000;
/** `lo_unlink` takes one lock per object until commit, and the shared lock table is small by default. */
export const DEFAULT_SWEEP_BATCH_SIZE = 1000;
const MAX_BATCH_SIZE = 10_000;
const DEFAULT_CONCURRENCY = 2;
/** Candidates are found this many at a time (one pass over every referencing table per chunk). */
const DISCOVERY_CHUNK = 50_000;
/** Advisory-lock namespace for objects that have no record row to lock (scope "all"). */
const ADVISORY_NAMESPACE = 0x746c6f02;

/** Which objects a sweep may consider. */
export type SweepScope = "recorded" | "all";

/** Progress of a running sweep, reported after every batch. */
export interface SweepProgress {
  /** Orphans found so far (the total is known only when the last chunk has been searched). */
  orphans: number;
  /** Orphans handled so far (unlinked, or in a dry run, counted). */
  processed: number;
  unlinked: number;
  bytesFreed: number;
  batches: number;
  /** True once every candidate has been found, so `processed / orphans` is a fraction of the whole. */
  discoveryDone: boolean;
}

/** Options of {@link sweepOrphans}. */
export interface SweepOptions {
  /** Report what would be unlinked, change nothing (default false). */
  dryRun?: boolean;
  /** At most this many unlinks per transaction (default 1,000, at most 10,000). */
  batchSize?: number;
  /**
   * Objects whose record is younger than this are left alone (default one day): an object created
   * by `insert()` (autocommit) or in one transaction and referenced in a later one is unreferenced
   * for a while, and a long upload may take hours. Orphans only cost disk until the next sweep.
   */
  graceMs?: number;
  /**
   * `"recorded"` (default): only objects this library created or adopted (listed in the record
   * table). `"all"`: every large object in the database, like vacuumlo; objects without a record
   * have no known age, so the grace period cannot protect them.
   */
  scope?: SweepScope;
  /**
   * Batches run at once, each in its own transaction on its own connection (default 2). Batches
   * never share an object, and lo_unlink is bound by the server, so two keep it busy. The search
   * for the next candidates takes one connection more while they run.
   */
  concurrency?: number;
  /** Called after every batch. */
  onProgress?: (progress: SweepProgress) => void;
}

/** What a sweep found and did. */
export interface SweepReport {
  dryRun: boolean;
  scope: SweepScope;
  /** Objects considered: records (scope "recorded"), or objects and records (scope "all"). */
  scanned: number;
  /** Unreferenced objects past the grace period, and records whose object no longer exists. */
  orphans: number;
  /** Objects unlinked (0 in a dry run). */
  unlinked: number;
  /** Bytes in the unlinked objects (in a dry run: bytes that would be freed). */
  bytesFreed: number;
  /** Records removed because their object no longer existed (in a dry run: that would be). */
  missingRecords: number;
  /**
   * Orphans left in place: locked by a concurrent sweep or delete, referenced again by the time
   * their batch ran, or owned by a role this one may not unlink for.
   */
  skipped: number;
  /** Transactions used. */
  batches: number;
  durationMs: number;
}

/** @internal A column whose values count as references to large objects. */
export interface ReferenceColumn {
  schema: string;
  table: string;
  column: string;
  /** Has the library's `(column::int8)` index, so probes should use that expression. */
  int8Index: boolean;
}

/** @internal The grace period in milliseconds (default one day), or ERR_LO_INVALID_ARGUMENT. */
export function toGraceMs(value: unknown): number {
  const graceMs = value ?? DEFAULT_GRACE_MS;
  if (typeof graceMs !== "number" || !Number.isFinite(graceMs) || graceMs < 0) {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `graceMs must be a finite number >= 0, got ${String(graceMs)}`);
  }
  return graceMs;
}

function validate(options: SweepOptions): Required<Omit<SweepOptions, "onProgress">> {
  const batchSize = options.batchSize ?? DEFAULT_SWEEP_BATCH_SIZE;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `batchSize must be an integer from 1 to ${MAX_BATCH_SIZE}, got ${String(batchSize)}`);
  }
  const graceMs = toGraceMs(options.graceMs);
  const scope = options.scope ?? "recorded";
  if (scope !== "recorded" && scope !== "all") {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `scope must be "recorded" or "all", got ${String(scope)}`);
  }
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1 || concurrency > 16) {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `concurrency must be an integer from 1 to 16, got ${String(concurrency)}`);
  }
  return { dryRun: options.dryRun === true, batchSize, graceMs, scope, concurrency };
}

/**
 * Every column of type oid or lo (or a domain over either) in every user table and materialized
 * view, whether an entity declares it or not: an object any of them references is live.
 * @internal
 */
export async function referenceColumns(scope: TransactionScope, records: string, home: string): Promise<ReferenceColumn[]> {
  const columnsTable = qualified(home, COLUMNS_TABLE);
  const indexed = (await relationExists(scope, columnsTable))
    ? `EXISTS (SELECT 1 FROM ${columnsTable} l
         WHERE l."schema" = n.nspname AND l."table" = c.relname AND l."column" = a.attname AND l."index" IS NOT NULL)`
    : "false";
  return scope.query<ReferenceColumn>(
    `WITH RECURSIVE oid_types AS (
       SELECT 'pg_catalog.oid'::pg_catalog.regtype::oid AS oid
       UNION
       SELECT d.oid FROM pg_catalog.pg_type d JOIN oid_types o ON d.typbasetype = o.oid WHERE d.typtype = 'd'
     )
     SELECT n.nspname AS schema, c.relname AS table, a.attname AS column, ${indexed} AS "int8Index"
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE a.atttypid IN (SELECT oid FROM oid_types) AND a.attnum > 0 AND NOT a.attisdropped
        AND c.relkind IN ('r', 'm')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
        AND c.oid IS DISTINCT FROM pg_catalog.to_regclass($1)
      ORDER BY 1, 2, 3`,
    [records],
  );
}

/**
 * `NOT EXISTS` conditions saying that `expr` (an oid) is referenced by none of the columns. With
 * `probe`, each column with the library's index is asked once per object through that index,
 * where a planner with statistics would otherwise hash the whole referencing table in every batch;
 * `OFFSET 0` keeps the subquery from becoming such a join. Columns without the index keep the
 * planner's choice: a probe there would scan the table once per object.
 * @internal
 */
export function unreferenced(columns: ReferenceColumn[], expr: string, options: { probe?: boolean } = {}): string {
  const probe = options.probe === true;
  if (columns.length === 0) return "true";
  return columns
    .map((c) => {
      const table = qualified(c.schema, c.table);
      const column = quoteIdentifier(c.column);
      const test = c.int8Index ? `${column}::pg_catalog.int8 = (${expr})::pg_catalog.int8` : `${column} = ${expr}`;
      return `NOT EXISTS (SELECT 1 FROM ${table} WHERE ${test}${probe && c.int8Index ? " OFFSET 0" : ""})`;
    })
    .join("\n AND ");
}

const GRACE = "pg_catalog.now() - $2::double precision * interval '1 millisecond'";

function candidatesSql(scope: SweepScope, records: string, columns: ReferenceColumn[]): string {
  if (scope === "recorded") {
    return `SELECT r.oid FROM ${records} r
      WHERE r.oid > $1::oid AND r.created_at <= ${GRACE} AND ${unreferenced(columns, "r.oid")}
      ORDER BY r.oid LIMIT $3`;
  }
  return `SELECT x.oid FROM (
        SELECT m.oid, r.created_at FROM pg_catalog.pg_largeobject_metadata m LEFT JOIN ${records} r ON r.oid = m.oid
        UNION ALL
        SELECT r.oid, r.created_at FROM ${records} r
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)
      ) x
      WHERE x.oid > $1::oid AND (x.created_at IS NULL OR x.created_at <= ${GRACE}) AND ${unreferenced(columns, "x.oid")}
      ORDER BY x.oid LIMIT $3`;
}

/**
 * The size of object `expr`, as `lo_lseek64(.., 0, SEEK_END)` gives it. Where the role may read
 * pg_largeobject, its last page answers directly (opening a descriptor per object slows a sweep
 * noticeably); pages are LOBLKSIZE = block_size / 4 bytes.
 * @internal
 */
export function sizeSql(expr: string, options: { pagesReadable: boolean }): string {
  if (!options.pagesReadable) return `pg_catalog.lo_lseek64(pg_catalog.lo_open(${expr}, ${INV_READ}), 0, 2)`;
  return `COALESCE((SELECT p.pageno::pg_catalog.int8 * (pg_catalog.current_setting('block_size')::pg_catalog.int8 / 4)
                    + pg_catalog.octet_length(p.data)
               FROM pg_catalog.pg_largeobject p WHERE p.loid = ${expr} ORDER BY p.pageno DESC LIMIT 1), 0)`;
}

/** @internal Whether this role may read pg_largeobject itself (superusers, or a role granted it). */
export async function mayReadPages(scope: TransactionScope): Promise<boolean> {
  const rows = await scope.query<{ readable: boolean }>(
    "SELECT pg_catalog.has_table_privilege('pg_catalog.pg_largeobject', 'SELECT') AS readable",
  );
  return rows[0]!.readable;
}

/**
 * One batch: lock the candidates that nothing references (record rows FOR UPDATE SKIP LOCKED, so a
 * concurrent sweep or a delete trigger holding one makes us skip it), measure, then unlink and drop
 * the records. The statement's snapshot is newer than the search that found the candidates, so an
 * object referenced since then is left alone. It answers with one row of counts, not a row per
 * object, which spares the client parsing a row per object. Exported for the tests of its plan
 * and of its checks.
 * @internal
 */
export function batchSql(
  scope: SweepScope,
  records: string,
  columns: ReferenceColumn[],
  options: { dryRun: boolean; pagesReadable: boolean },
): string {
  const { dryRun } = options;
  // The row id comes along so that the records can be deleted by it: a row locked by this statement
  // cannot move, and a TID scan is much cheaper than a probe of the key per row.
  const lockedRecorded = `SELECT r.oid, r.ctid AS row_id FROM ${records} r
      WHERE r.oid = ANY ($1::oid[]) AND r.created_at <= ${GRACE}
        AND ${unreferenced(columns, "r.oid", { probe: true })} FOR UPDATE SKIP LOCKED`;
  // Objects without a record have no row to lock: a transaction-scoped advisory lock stands in.
  const locked =
    scope === "recorded"
      ? `locked AS (${lockedRecorded})`
      : `locked_recorded AS (${lockedRecorded}),
    locked_free AS (
      SELECT u.oid, NULL::pg_catalog.tid AS row_id FROM (
        SELECT c.oid FROM pg_catalog.unnest($1::oid[]) AS c(oid)
         WHERE NOT EXISTS (SELECT 1 FROM ${records} r WHERE r.oid = c.oid)
           AND ${unreferenced(columns, "c.oid", { probe: true })} OFFSET 0
      ) u WHERE pg_catalog.pg_try_advisory_xact_lock(${ADVISORY_NAMESPACE}::int8 * 4294967296 + u.oid::int8)
    ),
    locked AS (SELECT oid, row_id FROM locked_recorded UNION ALL SELECT oid, row_id FROM locked_free)`;
  // One statement is one transaction: its locks, deletes and unlinks commit together or not at all.
  // Losing its commit in a crash only brings its orphans (and records) back for the next sweep, so
  // it need not wait for the WAL flush (set_config with is_local lasts this transaction only).
  return `WITH ${locked},
    relaxed AS MATERIALIZED (SELECT pg_catalog.set_config('synchronous_commit', 'off', true)),
    judged AS MATERIALIZED (
      SELECT l.oid, l.row_id, m.lomowner IS NOT NULL AS present,
             m.lomowner IS NOT NULL AND (pg_catalog.pg_has_role(m.lomowner, 'USAGE')
               OR pg_catalog.current_setting('lo_compat_privileges')::boolean) AS mine
        FROM locked l CROSS JOIN relaxed
        LEFT JOIN pg_catalog.pg_largeobject_metadata m ON m.oid = l.oid
    ),
    sized AS MATERIALIZED (
      SELECT j.oid, j.row_id, j.present, j.mine,
             CASE WHEN j.mine THEN ${sizeSql("j.oid", options)} END AS bytes
        FROM judged j
    )${
      dryRun
        ? ""
        : `,
    gone AS (DELETE FROM ${records} r WHERE r.ctid = ANY (ARRAY(
      SELECT s.row_id FROM sized s WHERE s.row_id IS NOT NULL AND (s.mine OR NOT s.present)))),
    unlinked AS MATERIALIZED (SELECT pg_catalog.lo_unlink(s.oid) FROM sized s WHERE s.mine)`
    }
    SELECT pg_catalog.count(*) FILTER (WHERE NOT s.present)::int4 AS missing,
           pg_catalog.count(*) FILTER (WHERE s.mine)::int4 AS mine,
           ${dryRun ? "0" : "(SELECT pg_catalog.count(*) FROM unlinked)::int4"} AS unlinked,
           COALESCE(pg_catalog.sum(s.bytes), 0)::text AS bytes
      FROM sized s`;
}


/**
 * Unlinks large objects that no row references any more: by default only objects this library
 * created (listed in its record table) and only when older than the grace period. An object any
 * `oid`/`lo` column of any table references is never an orphan, declared by an entity or not. At
 * most `batchSize` objects are unlinked per transaction; safe to run while rows are written and
 * deleted, and twice at once.
 *
 * @example
 * const report = await sweepOrphans(dataSource, { dryRun: true });
 * console.log(`${report.orphans} orphans, ${report.bytesFreed} bytes`);
 */
export async function sweepOrphans(dataSource: DataSource, options: SweepOptions = {}): Promise<SweepReport> {
  const started = performance.now();
  const { dryRun, batchSize, graceMs, scope, concurrency } = validate(options);
  dataSourceOf(dataSource);
  const report: SweepReport = {
    dryRun,
    scope,
    scanned: 0,
    orphans: 0,
    unlinked: 0,
    bytesFreed: 0,
    missingRecords: 0,
    skipped: 0,
    batches: 0,
    durationMs: 0,
  };
  let bytes = 0n;
  let processed = 0;
  try {
    const { records, home, pagesReadable } = await TransactionScope.using(dataSource, { transaction: false }, async (setup) => {
      const located = await locateRecords(dataSource, setup);
      return { ...located, pagesReadable: await mayReadPages(setup) };
    });
    // The count reads every record: it runs beside the first search, and both end before any
    // batch changes the records.
    const counting = TransactionScope.using(dataSource, { transaction: false }, (tx) =>
      tx.query<{ n: string }>(
        scope === "recorded"
          ? `SELECT count(*) AS n FROM ${records}`
          : `SELECT (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)
                  + (SELECT count(*) FROM ${records} r WHERE NOT EXISTS (
                       SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)) AS n`,
      ),
    );

    // Candidates come from one read of the catalog and every referencing table per chunk; each
    // batch checks its own candidates again in the statement that locks them. The first chunk is
    // small so that the batches start at once; each later chunk is searched while the batches of
    // the one before run. A chunk comes back as one text of decimal oids, which go back to the
    // server as array literals: parsing them as rows took much of the client's CPU. A later chunk
    // is searched while batches keep the server busy, so it may not use parallel workers, which
    // would only take time from the batches. The search changes nothing and is rolled back.
    const discover = (after: string, limit: number, options: { besideBatches: boolean }) =>
      TransactionScope.using(
        dataSource,
        { transaction: true, rollback: true },
        async (tx) => {
          if (options.besideBatches) await tx.query("SET LOCAL max_parallel_workers_per_gather = 0");
          const columns = await referenceColumns(tx, records, home);
          const found = await tx.query<{ oids: string | null; last: string | null }>(
            `SELECT pg_catalog.string_agg(c.oid::text, ',') AS oids, pg_catalog.max(c.oid)::text AS last
               FROM (${candidatesSql(scope, records, columns)}) c`,
            [after, graceMs, limit],
          );
          const { oids, last } = found[0]!;
          return { oids: oids === null ? [] : oids.split(","), last: last ?? after, columns, limit };
        },
      );
    let pending = discover("0", Math.min(DISCOVERY_CHUNK, 2 * batchSize * concurrency), { besideBatches: false });
    const [counted, first] = await Promise.allSettled([counting, pending]);
    if (counted.status === "rejected") throw counted.reason;
    if (first.status === "rejected") throw first.reason;
    report.scanned = Number(counted.value[0]!.n);
    let discoveryDone = false;
    while (!discoveryDone) {
      const { oids: candidates, last, columns, limit } = await pending;
      discoveryDone = candidates.length < limit;
      if (!discoveryDone) {
        pending = discover(last, DISCOVERY_CHUNK, { besideBatches: true });
        // Awaited at the top of the next round; a failure of the batches must not leave it unhandled.
        pending.catch(() => undefined);
      }
      report.orphans += candidates.length;
      const batches: { literal: string; size: number }[] = [];
      for (let start = 0; start < candidates.length; start += batchSize) {
        const oids = candidates.slice(start, start + batchSize);
        batches.push({ literal: `{${oids.join(",")}}`, size: oids.length });
      }
      let next = 0;
      const sql = batchSql(scope, records, columns, { dryRun, pagesReadable });
      const worker = async (): Promise<void> => {
        while (next < batches.length) {
          const batch = batches[next++]!;
          const done = await runBatch(dataSource, sql, batch.literal, graceMs);
          report.batches += 1;
          report.missingRecords += done.missing;
          report.unlinked += done.unlinked;
          bytes += BigInt(done.bytes);
          report.skipped += batch.size - done.missing - done.mine;
          processed += batch.size;
          report.bytesFreed = Number(bytes);
          options.onProgress?.({
            orphans: report.orphans,
            processed,
            unlinked: report.unlinked,
            bytesFreed: report.bytesFreed,
            batches: report.batches,
            discoveryDone,
          });
        }
      };
      // The first failure stops the others from taking new batches; the ones in flight finish.
      const workers = Array.from({ length: Math.min(concurrency, batches.length) }, () =>
        worker().catch((err: unknown) => {
          next = batches.length;
          throw err;
        }),
      );
      const results = await Promise.allSettled(workers);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed !== undefined) {
        // The next chunk's search holds a connection until it ends: let it end before reporting.
        if (!discoveryDone) await pending.catch(() => undefined);
        throw failed.reason;
      }
    }
  } catch (err) {
    throw toLargeObjectError(err);
  }
  report.bytesFreed = Number(bytes);
  report.durationMs = Math.round(performance.now() - started);
  return report;
}

/** What one batch did: records without an object, objects it may unlink, objects unlinked, their bytes. */
interface BatchCounts {
  missing: number;
  mine: number;
  unlinked: number;
  bytes: string;
}

async function runBatch(dataSource: DataSource, sql: string, batch: string, graceMs: number): Promise<BatchCounts> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      // The columns are those of the chunk's search (a few seconds old at most): a table created
      // since could only reference one of these objects if someone stored an orphan's oid in it.
      // A batch is a single statement, so it runs in a transaction of its own without BEGIN and
      // COMMIT (a dry run changes nothing; its row locks end with the statement).
      const rows = await TransactionScope.using(dataSource, { transaction: false }, (scope) => scope.query<BatchCounts>(sql, [batch, graceMs]));
      return rows[0]!;
    } catch (err) {
      // An object without a record (scope "all") may be unlinked by someone else between our
      // look at the catalog and lo_unlink: the next attempt no longer sees it.
      const vanished = (err as { code?: unknown }).code === "42704";
      if (!vanished || attempt >= 3) throw err;
    }
  }
}
