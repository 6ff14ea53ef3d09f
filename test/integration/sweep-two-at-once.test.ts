import type { DataSource } from "typeorm";
import { sweepOrphans } from "../../src/sweep";
import { countObjects } from "../support/database";
import { openOrmDataSource } from "../support/orm";
import { countRecords, dropCleanup, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";

let ds: DataSource;
beforeAll(async () => {
  ds = await openOrmDataSource(CLEANUP_ENTITIES, { poolSize: 12 });
});
afterAll(async () => {
  await dropCleanup(ds);
});

test("two sweeps at once unlink every orphan exactly once between them, without errors, while rows are deleted", async () => {
  const live = await saveWithContent(ds, CleanupDoc, 10, 1100);
  await ds.query(
    `WITH created AS MATERIALIZED (SELECT lo_from_bytea(0, '\\x00') AS oid FROM generate_series(1, 3000))
     INSERT INTO typeorm_large_objects (oid, created_for, created_at) SELECT oid, 'x', now() - interval '2 days' FROM created`,
  );
  const deletable = await saveWithContent(ds, CleanupDoc, 20, 1200, { name: "delete me" });
  const before = await countObjects(ds);
  const [a, b] = await Promise.all([
    sweepOrphans(ds, { batchSize: 100 }),
    sweepOrphans(ds, { batchSize: 100 }),
    (async () => {
      for (const row of deletable) await ds.getRepository(CleanupDoc).delete(row.id);
    })(),
  ]);
  expect(a!.unlinked + b!.unlinked).toBe(3000);
  expect(a!.unlinked + a!.skipped + (b!.unlinked + b!.skipped)).toBe(a!.orphans + b!.orphans);
  expect(await countObjects(ds)).toBe(before - 3000 - 20);
  expect(await countRecords(ds)).toBe(10);
  await expectIntact(ds, live);
});
