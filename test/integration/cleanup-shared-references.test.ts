import type { DataSource } from "typeorm";
import { LargeObject, isLargeObjectError, findReferences } from "../../src";
import { countObjects } from "../support/database";
import { expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc, CleanupOther } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

test("an object two rows share through raw SQL is unlinked only when the last reference goes", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 400);
  await ds.query("INSERT INTO cleanup_doc (name, file) VALUES ('copy', $1)", [row!.oid]);
  await ds.query("INSERT INTO cleanup_other (file) VALUES ($1)", [row!.oid]);
  await ds.query("DELETE FROM cleanup_doc WHERE id = $1", [row!.id]);
  await expectIntact(ds, [row!]);
  await ds.query("UPDATE cleanup_doc SET file = NULL WHERE name = 'copy'");
  await expectIntact(ds, [row!]);
  await ds.query("DELETE FROM cleanup_other WHERE file = $1", [row!.oid]);
  await expectGone(ds, [row!]);
});

test("deleting both rows that share an object in one statement unlinks it once", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 410, { name: "pair" });
  await ds.query("INSERT INTO cleanup_doc (name, file) VALUES ('pair', $1)", [row!.oid]);
  const before = await countObjects(ds);
  await ds.query("DELETE FROM cleanup_doc WHERE name = 'pair'");
  expect(await countObjects(ds)).toBe(before - 1);
  await expectGone(ds, [row!]);
});

test("findReferences lists the large-object columns that reference an object", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 420);
  expect(await findReferences(ds, row!.oid)).toEqual([
    { entity: "CleanupDoc", property: "file", table: "public.cleanup_doc", column: "file" },
  ]);
  await ds.query("INSERT INTO cleanup_other (file) VALUES ($1)", [row!.oid]);
  const docColumn = ds.getMetadata(CleanupDoc).findColumnWithPropertyName("file")!;
  expect(await findReferences(ds, row!.oid, { except: { entity: ds.getMetadata(CleanupDoc), column: docColumn } })).toEqual([
    { entity: "CleanupOther", property: "file", table: "public.cleanup_other", column: "file" },
  ]);
  const free = await LargeObject.create(ds);
  expect(await findReferences(ds, free)).toEqual([]);
  await ds.query("DELETE FROM cleanup_other");
  await ds.query("DELETE FROM cleanup_doc");
  await LargeObject.unlink(ds, free);
});

test("saving a row that adopts an object another row owns is refused with ERR_LO_IN_USE", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 430);
  const err: unknown = await ds
    .getRepository(CleanupOther)
    .save({ file: row!.oid })
    .catch((e: unknown) => e);
  expect(isLargeObjectError(err, "ERR_LO_IN_USE")).toBe(true);
  await expectIntact(ds, [row!]);
  await ds.query("DELETE FROM cleanup_doc");
  await expectGone(ds, [row!]);
});
