import type { DataSource } from "typeorm";
import { sweepOrphans } from "../../src";
import { countObjects } from "../support/database";
import { countRecords, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true, poolSize: 12 });

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
