import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

const docs = () => ds.getRepository(CleanupDoc);

test("update() setting null unlinks the old object", async () => {
  const [row, keep] = await saveWithContent(ds, CleanupDoc, 2, 100);
  const before = await countObjects(ds);
  await docs().update(row!.id, { file: null });
  expect(await countObjects(ds)).toBe(before - 1);
  await expectGone(ds, [row!]);
  await expectIntact(ds, [keep!]);
});

test("update() setting another object's oid unlinks the old one and keeps the new one", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 110);
  const replacement = randomBytes(300, 111);
  const other = await LargeObject.create(ds, { data: replacement });
  const before = await countObjects(ds);
  await docs().update(row!.id, { file: other });
  expect(await countObjects(ds)).toBe(before - 1);
  await expectGone(ds, [row!]);
  expect((await objectBytes(ds, other)).equals(replacement)).toBe(true);
});

test("update() with new content replaces the object", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 120);
  const before = await countObjects(ds);
  await docs().update(row!.id, { file: Buffer.from("replaced") });
  expect(await countObjects(ds)).toBe(before);
  await expectGone(ds, [row!]);
  const after = await docs().findOneByOrFail({ id: row!.id });
  expect((await objectBytes(ds, after.file as number)).toString()).toBe("replaced");
});

test("a query-builder update setting null unlinks every old object", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 3, 130, { name: "qbu" });
  const before = await countObjects(ds);
  await docs().createQueryBuilder().update().set({ file: null }).where("name = :n", { n: "qbu" }).execute();
  expect(await countObjects(ds)).toBe(before - 3);
  await expectGone(ds, rows);
});

test("raw SQL UPDATE to NULL and to another oid unlinks the replaced objects", async () => {
  const [a, b, c] = await saveWithContent(ds, CleanupDoc, 3, 140);
  const before = await countObjects(ds);
  await ds.query("UPDATE cleanup_doc SET file = NULL WHERE id = $1", [a!.id]);
  await ds.query("UPDATE cleanup_doc SET file = $1 WHERE id = $2", [c!.oid, b!.id]);
  await ds.query("UPDATE cleanup_doc SET file = NULL WHERE id = $1", [c!.id]);
  // b now holds c's object: c's row let go of it, but b still references it.
  expect(await countObjects(ds)).toBe(before - 2);
  await expectGone(ds, [a!, b!]);
  await expectIntact(ds, [c!]);
});

test("an update of other columns, or a swap of two rows' objects in one statement, unlinks nothing", async () => {
  const [a, b] = await saveWithContent(ds, CleanupDoc, 2, 150);
  const before = await countObjects(ds);
  await docs().update(a!.id, { name: "renamed" });
  await ds.query(
    `UPDATE cleanup_doc d SET file = s.file FROM (VALUES ($1::int, $3::oid), ($2::int, $4::oid)) AS s(id, file) WHERE d.id = s.id`,
    [a!.id, b!.id, b!.oid, a!.oid],
  );
  expect(await countObjects(ds)).toBe(before);
  await expectIntact(ds, [a!, b!]);
  expect((await docs().findOneByOrFail({ id: a!.id })).file).toBe(b!.oid);
});

test("INSERT ... ON CONFLICT DO UPDATE and MERGE that replace or delete a row unlink its old object", async () => {
  const [upserted, merged, mergeDeleted, keep] = await saveWithContent(ds, CleanupDoc, 4, 190);
  const [a, b] = [await LargeObject.create(ds, { data: "a" }), await LargeObject.create(ds, { data: "b" })];
  await ds.query("INSERT INTO cleanup_doc (id, file) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET file = EXCLUDED.file", [upserted!.id, a]);
  await ds.query(
    `MERGE INTO cleanup_doc t USING (VALUES ($1::int, $2::oid), ($3::int, NULL::oid)) v(id, file) ON t.id = v.id
       WHEN MATCHED AND v.file IS NOT NULL THEN UPDATE SET file = v.file
       WHEN MATCHED THEN DELETE`,
    [merged!.id, b, mergeDeleted!.id],
  );
  await expectGone(ds, [upserted!, merged!, mergeDeleted!]);
  await expectIntact(ds, [keep!]);
  expect((await objectBytes(ds, a)).toString()).toBe("a");
  expect((await objectBytes(ds, b)).toString()).toBe("b");
});
