import type { DataSource } from "typeorm";
import { isLargeObjectError, registerLargeObjects, sweepOrphans, type SweepProgress } from "../../src";
import { countObjects, databaseUrl, idleInTransaction, makeDataSource } from "../support/database";
import { checkedOut } from "../support/pool";
import { countRecords, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

/** Records `n` objects of `size` bytes that no row references. */
async function orphans(n: number, size: number, age = "2 days"): Promise<void> {
  await ds.query(
    `WITH created AS MATERIALIZED (SELECT lo_from_bytea(0, decode(repeat('ab', $2), 'hex')) AS oid FROM generate_series(1, $1))
     INSERT INTO typeorm_large_objects (oid, created_for, created_at) SELECT oid, 'gone.table.column', now() - $3::interval FROM created`,
    [n, size, age],
  );
}

test("a dry run reports what a sweep would do and changes nothing; the sweep then does exactly that", async () => {
  const live = await saveWithContent(ds, CleanupDoc, 3, 1000);
  await orphans(25, 10);
  const before = await countObjects(ds);
  const records = await countRecords(ds);
  const progress: SweepProgress[] = [];
  const dry = await sweepOrphans(ds, { dryRun: true, batchSize: 10, concurrency: 1, onProgress: (p) => progress.push(p) });
  expect(dry).toMatchObject({ dryRun: true, scanned: 28, orphans: 25, unlinked: 0, bytesFreed: 250, batches: 3, skipped: 0 });
  expect(progress.map((p) => p.processed)).toEqual([10, 20, 25]);
  expect(await countObjects(ds)).toBe(before);
  expect(await countRecords(ds)).toBe(records);

  const done = await sweepOrphans(ds, { batchSize: 10, concurrency: 1 });
  expect(done).toMatchObject({ dryRun: false, orphans: 25, unlinked: 25, bytesFreed: 250, batches: 3 });
  expect(done.durationMs).toBeGreaterThanOrEqual(0);
  expect(await countObjects(ds)).toBe(before - 25);
  expect(await countRecords(ds)).toBe(records - 25);
  expect((await sweepOrphans(ds)).orphans).toBe(0);
  await ds.query("DELETE FROM cleanup_doc");
  expect(live).toHaveLength(3);
});

test("the grace period holds back younger orphans", async () => {
  await orphans(3, 1, "2 hours");
  await orphans(2, 1, "2 days");
  expect((await sweepOrphans(ds)).unlinked).toBe(2);
  expect((await sweepOrphans(ds, { graceMs: 3 * 3600_000 })).unlinked).toBe(0);
  expect((await sweepOrphans(ds, { graceMs: 3600_000 })).unlinked).toBe(3);
});

test("records whose object no longer exists are removed and counted apart", async () => {
  await orphans(2, 1);
  await ds.query("SELECT lo_unlink(oid) FROM typeorm_large_objects");
  const report = await sweepOrphans(ds);
  expect(report).toMatchObject({ orphans: 2, unlinked: 0, missingRecords: 2 });
  expect(await countRecords(ds)).toBe(0);
});

test("bad options are ERR_LO_INVALID_ARGUMENT", async () => {
  for (const options of [{ batchSize: 0 }, { batchSize: 1.5 }, { batchSize: 20_000 }, { graceMs: -1 }, { graceMs: Number.NaN }, { concurrency: 0 }]) {
    const err: unknown = await sweepOrphans(ds, options).catch((e: unknown) => e);
    expect(isLargeObjectError(err, "ERR_LO_INVALID_ARGUMENT")).toBe(true);
  }
  const err: unknown = await sweepOrphans(ds, { scope: "everything" as "all" }).catch((e: unknown) => e);
  expect(isLargeObjectError(err, "ERR_LO_INVALID_ARGUMENT")).toBe(true);
});

test("each transaction unlinks at most batchSize objects", async () => {
  await orphans(30, 1);
  const unlinkedAfterEachBatch: number[] = [];
  const report = await sweepOrphans(ds, { batchSize: 7, concurrency: 1, onProgress: (p) => unlinkedAfterEachBatch.push(p.unlinked) });
  expect(report).toMatchObject({ batches: 5, unlinked: 30 });
  expect(unlinkedAfterEachBatch).toEqual([7, 14, 21, 28, 30]);
});

test("candidates are searched chunk by chunk while batches run: every orphan once, the total known at the end", async () => {
  // The first chunk holds two batches per worker (16 here); the rest come in a second search.
  await orphans(45, 3);
  const progress: SweepProgress[] = [];
  const report = await sweepOrphans(ds, { batchSize: 4, concurrency: 2, onProgress: (p) => progress.push({ ...p }) });
  expect(report).toMatchObject({ orphans: 45, unlinked: 45, bytesFreed: 135, batches: 4 + 8, skipped: 0 });
  expect(progress.slice(0, 4).every((p) => !p.discoveryDone && p.orphans === 16)).toBe(true);
  expect(progress.slice(4).every((p) => p.discoveryDone && p.orphans === 45)).toBe(true);
  expect(progress.map((p) => p.processed)).toEqual([...progress.map((p) => p.processed)].sort((a, b) => a - b));
  expect(progress[progress.length - 1]!.processed).toBe(45);
  expect(await countRecords(ds)).toBe(0);
});

test("a failing batch stops the sweep after the search under way has ended: no connection stays checked out", async () => {
  await orphans(40, 1);
  // Records of objects that do not exist, above every real oid: the search for the chunk after the
  // first (16 candidates) reads them all, so it is still running when the first batch fails.
  await ds.query(
    `INSERT INTO typeorm_large_objects (oid, created_for, created_at)
     SELECT (4000000000 - g)::oid, 'filler', now() - interval '2 days' FROM generate_series(1, 100000) AS g`,
  );
  let calls = 0;
  const err: unknown = await sweepOrphans(ds, {
    batchSize: 4,
    concurrency: 2,
    onProgress: () => {
      calls += 1;
      if (calls === 1) throw new Error("progress consumer failed");
    },
  }).catch((e: unknown) => e);
  expect((err as Error).message).toContain("progress consumer failed");
  expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(ds)).toBe(0);
  await ds.query("DELETE FROM typeorm_large_objects WHERE created_for = 'filler'");
  // The batch in flight beside the failed one ends; no worker takes another.
  const left = await countRecords(ds);
  expect(left).toBeGreaterThanOrEqual(40 - 2 * 4);
  const rest = await sweepOrphans(ds, { batchSize: 4 });
  expect(rest.unlinked).toBe(left);
  expect(await countRecords(ds)).toBe(0);
});

test("bytes freed are the objects' sizes, whether or not the sweeping role may read pg_largeobject", async () => {
  // Sizes around the 2 KiB page, an empty object, and a sparse one whose last page is far out.
  const sizes = [0, 1, 2047, 2048, 2049, 100_000];
  await ds.query(
    `INSERT INTO typeorm_large_objects (oid, created_for, created_at)
     SELECT lo_from_bytea(0, decode(repeat('ab', n), 'hex')), 'gone.table.column', now() - interval '2 days' FROM unnest($1::int[]) AS n`,
    [sizes],
  );
  const sparse = (await ds.query<{ sparse: number }[]>("SELECT lo_from_bytea(0, ''::bytea) AS sparse"))[0]!.sparse;
  await ds.query("SELECT lo_put($1, 3000000, '\\x7878'::bytea)", [sparse]);
  await ds.query("INSERT INTO typeorm_large_objects (oid, created_for, created_at) VALUES ($1, 'x', now() - interval '2 days')", [sparse]);
  const expected = sizes.reduce((a, b) => a + b, 0) + 3_000_002;

  const role = `sweep_sizer_${process.pid}`;
  await ds.query(`DROP ROLE IF EXISTS ${role}`);
  await ds.query(`CREATE ROLE ${role} LOGIN`);
  const limited = registerLargeObjects(
    makeDataSource({ url: Object.assign(new URL(databaseUrl()), { username: role }).toString(), entities: CLEANUP_ENTITIES } as Parameters<typeof makeDataSource>[0]),
  );
  try {
    await ds.query(`GRANT SELECT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
    for (const { oid } of await ds.query<{ oid: number }[]>("SELECT oid FROM typeorm_large_objects")) {
      await ds.query(`ALTER LARGE OBJECT ${Number(oid)} OWNER TO ${role}`);
    }
    const privilege = await ds.query<{ readable: boolean }[]>(
      `SELECT has_table_privilege($1, 'pg_catalog.pg_largeobject', 'SELECT') AS readable`,
      [role],
    );
    expect(privilege[0]!.readable).toBe(false);
    // The superuser sizes objects from their last page; the role opens each one.
    expect(await sweepOrphans(ds, { dryRun: true })).toMatchObject({ orphans: 7, bytesFreed: expected });
    await limited.initialize();
    expect(await sweepOrphans(limited, { dryRun: true })).toMatchObject({ orphans: 7, bytesFreed: expected });
    expect(await sweepOrphans(limited)).toMatchObject({ unlinked: 7, bytesFreed: expected });
  } finally {
    if (limited.isInitialized) await limited.destroy();
    await ds.query(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE lomowner = (SELECT oid FROM pg_roles WHERE rolname = $1)`, [role]);
    await ds.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${role}`);
    await ds.query(`DROP ROLE ${role}`);
  }
  expect(await countRecords(ds)).toBe(0);
});
