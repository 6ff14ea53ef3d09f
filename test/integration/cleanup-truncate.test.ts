import type { DataSource } from "typeorm";
import { countObjects } from "../support/database";
import { countRecords, expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc, CleanupOther } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

test("TRUNCATE unlinks every object of the table and removes their records", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 5, 200);
  const others = await saveWithContent(ds, CleanupOther, 2, 210);
  const before = await countObjects(ds);
  const records = await countRecords(ds);
  await ds.query("TRUNCATE cleanup_doc");
  expect(await countObjects(ds)).toBe(before - 5);
  expect(await countRecords(ds)).toBe(records - 5);
  await expectGone(ds, rows);
  await expectIntact(ds, others);
});

test("clear() (TypeORM's TRUNCATE) unlinks them too", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 3, 220);
  const others = await saveWithContent(ds, CleanupOther, 1, 230);
  const before = await countObjects(ds);
  await ds.getRepository(CleanupDoc).clear();
  expect(await countObjects(ds)).toBe(before - 3);
  await expectGone(ds, rows);
  await expectIntact(ds, others);
});

test("an object another table's large-object column also references survives TRUNCATE", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 240);
  await ds.query("INSERT INTO cleanup_other (file) VALUES ($1)", [row!.oid]);
  await ds.query("TRUNCATE cleanup_doc");
  await expectIntact(ds, [row!]);
  await ds.query("DELETE FROM cleanup_other WHERE file = $1", [row!.oid]);
  await expectGone(ds, [row!]);
});

test("a TRUNCATE that rolls back unlinks nothing", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 2, 250);
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  await runner.query("TRUNCATE cleanup_doc");
  await runner.rollbackTransaction();
  await runner.release();
  await expectIntact(ds, rows);
});
