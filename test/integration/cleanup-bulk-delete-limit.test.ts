import type { DataSource } from "typeorm";
import { sweepOrphans } from "../../src";
import { countObjects } from "../support/database";
import { CLEANUP_ENTITIES } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

async function insertRows(n: number): Promise<void> {
  await ds.query(
    `WITH created AS MATERIALIZED (SELECT lo_from_bytea(0, '\\x01') AS oid FROM generate_series(1, $1)),
          recorded AS (INSERT INTO typeorm_large_objects (oid, created_for) SELECT oid, 'public.cleanup_doc.file' FROM created)
     INSERT INTO cleanup_doc (file) SELECT oid FROM created`,
    [n],
  );
}

test("past the per-transaction unlink limit a bulk delete still succeeds and leaves the rest to the sweep, due at once", async () => {
  await insertRows(250);
  const before = await countObjects(ds);
  await ds.transaction(async (m) => {
    await m.query("SET LOCAL typeorm_large_object.unlink_limit = 100");
    await m.query("DELETE FROM cleanup_doc");
  });
  expect(await countObjects(ds)).toBe(before - 100);
  // The default grace period does not hold them back: they are known to be unreferenced.
  const report = await sweepOrphans(ds);
  expect(report.unlinked).toBe(150);
  expect(await countObjects(ds)).toBe(before - 250);
});

test("with the default limit a TRUNCATE of 2,500 objects unlinks 2,000 and defers 500 to the sweep", async () => {
  await insertRows(2500);
  const before = await countObjects(ds);
  await ds.query("TRUNCATE cleanup_doc");
  expect(await countObjects(ds)).toBe(before - 2000);
  expect((await sweepOrphans(ds)).unlinked).toBe(500);
  expect(await countObjects(ds)).toBe(before - 2500);
});
