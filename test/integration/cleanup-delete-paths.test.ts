import type { DataSource } from "typeorm";
import { countObjects } from "../support/database";
import { countRecords, expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupChild, CleanupDoc, CleanupParent } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

const docs = () => ds.getRepository(CleanupDoc);

test("delete() by id unlinks that row's object and no other", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 3, 10);
  const before = await countObjects(ds);
  await docs().delete(rows[0]!.id);
  expect(await countObjects(ds)).toBe(before - 1);
  await expectGone(ds, [rows[0]!]);
  await expectIntact(ds, rows.slice(1));
});

test("a query-builder delete unlinks the objects of every deleted row", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 4, 20, { name: "qb" });
  const keep = await saveWithContent(ds, CleanupDoc, 1, 30, { name: "keep" });
  const before = await countObjects(ds);
  await docs().createQueryBuilder().delete().where("name = :name", { name: "qb" }).execute();
  expect(await countObjects(ds)).toBe(before - 4);
  await expectGone(ds, rows);
  await expectIntact(ds, keep);
});

test("a raw SQL DELETE unlinks and removes the records", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 2, 40, { name: "raw" });
  const before = await countObjects(ds);
  const records = await countRecords(ds);
  await ds.query(`DELETE FROM cleanup_doc WHERE name = 'raw'`);
  expect(await countObjects(ds)).toBe(before - 2);
  expect(await countRecords(ds)).toBe(records - 2);
  await expectGone(ds, rows);
});

test("remove(entity) unlinks in the same transaction, once", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 50);
  const before = await countObjects(ds);
  await docs().remove(await docs().findOneByOrFail({ id: row!.id }));
  expect(await countObjects(ds)).toBe(before - 1);
  await expectGone(ds, [row!]);
});

test("children deleted by ON DELETE CASCADE lose their objects", async () => {
  const parent = await ds.getRepository(CleanupParent).save({});
  const children = await saveWithContent(ds, CleanupChild, 3, 60, { parent });
  const otherParent = await ds.getRepository(CleanupParent).save({});
  const others = await saveWithContent(ds, CleanupChild, 1, 70, { parent: otherParent });
  const before = await countObjects(ds);
  await ds.getRepository(CleanupParent).delete(parent.id);
  expect(await ds.getRepository(CleanupChild).countBy({ parent: { id: parent.id } })).toBe(0);
  expect(await countObjects(ds)).toBe(before - 3);
  await expectGone(ds, children);
  await expectIntact(ds, others);
});

test("a delete inside a transaction that rolls back unlinks nothing", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 2, 80);
  const before = await countObjects(ds);
  await expect(
    ds.transaction(async (m) => {
      await m.getRepository(CleanupDoc).delete(rows.map((r) => r.id));
      throw new Error("roll back");
    }),
  ).rejects.toThrow("roll back");
  expect(await countObjects(ds)).toBe(before);
  await expectIntact(ds, rows);
});

test("deleting a row whose object was already unlinked by hand succeeds and drops the record", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 90);
  await ds.query("SELECT lo_unlink($1)", [row!.oid]);
  const records = await countRecords(ds);
  await docs().delete(row!.id);
  expect(await countRecords(ds)).toBe(records - 1);
});

test("deleting rows whose column is null touches no object", async () => {
  const keep = await saveWithContent(ds, CleanupDoc, 1, 95);
  await docs().save([{ name: "null", file: null }, { name: "null", file: null }]);
  const before = await countObjects(ds);
  await docs().delete({ name: "null" });
  expect(await countObjects(ds)).toBe(before);
  await expectIntact(ds, keep);
});
