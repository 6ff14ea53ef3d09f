import type { DataSource } from "typeorm";
import { sweepOrphans } from "../../src";
import { countObjects } from "../support/database";
import { countRecords, expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc, CleanupOther } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

test("DROP TABLE fires no trigger; the sweep then unlinks the table's objects and keeps everyone else's", async () => {
  const dropped = await saveWithContent(ds, CleanupDoc, 5, 600);
  const kept = await saveWithContent(ds, CleanupOther, 3, 610);
  const before = await countObjects(ds);
  await ds.query("DROP TABLE cleanup_doc");
  expect(await countObjects(ds)).toBe(before);
  const records = await countRecords(ds);
  const report = await sweepOrphans(ds, { graceMs: 0 });
  expect(report).toMatchObject({ orphans: 5, unlinked: 5, missingRecords: 0, skipped: 0, dryRun: false, scope: "recorded" });
  expect(report.bytesFreed).toBe(dropped.reduce((n, r) => n + r.bytes.length, 0));
  expect(await countObjects(ds)).toBe(before - 5);
  expect(await countRecords(ds)).toBe(records - 5);
  await expectGone(ds, dropped);
  await expectIntact(ds, kept);
  await ds.synchronize();
});
