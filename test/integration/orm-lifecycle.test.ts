import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObject, oidOf } from "../../src";
import { countObjects, objectBytes, objectExists } from "../support/database";
import { statementsOf } from "../support/orm";
import { Document, Folder, FolderFile } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [Document, Folder, FolderFile] });

const docs = () => ds.getRepository(Document);

describe("update", () => {
  test("new content on a loaded entity replaces the object and unlinks the old one", async () => {
    const saved = await docs().save({ name: "u1", attachment: "v1" });
    const loaded = await docs().findOneByOrFail({ id: saved.id });
    const oldOid = oidOf(loaded.attachment);
    loaded.attachment = Readable.from(["v2"]);
    await docs().save(loaded);
    const row = await docs().findOneByOrFail({ id: saved.id });
    expect(row.attachment).not.toBe(oldOid);
    expect((await objectBytes(ds, oidOf(row.attachment))).toString()).toBe("v2");
    expect(await objectExists(ds, oldOid)).toBe(false);
  });

  test("a partial save with new content replaces it too", async () => {
    const saved = await docs().save({ name: "u2", attachment: "v1" });
    const oldOid = oidOf(saved.attachment);
    await docs().save({ id: saved.id, attachment: Buffer.from("partial") });
    const row = await docs().findOneByOrFail({ id: saved.id });
    expect((await objectBytes(ds, oidOf(row.attachment))).toString()).toBe("partial");
    expect(await objectExists(ds, oldOid)).toBe(false);
  });

  test("setting null unlinks the object", async () => {
    const saved = await docs().save({ name: "u3", attachment: "gone soon" });
    const oldOid = oidOf(saved.attachment);
    await docs().save({ id: saved.id, attachment: null });
    expect((await docs().findOneByOrFail({ id: saved.id })).attachment).toBeNull();
    expect(await objectExists(ds, oldOid)).toBe(false);
  });

  test("setting another (free) oid adopts it and unlinks the old one", async () => {
    const saved = await docs().save({ name: "u4", attachment: "old" });
    const oldOid = oidOf(saved.attachment);
    const other = await LargeObject.create(ds, { data: "other" });
    await docs().save({ id: saved.id, attachment: other });
    expect((await docs().findOneByOrFail({ id: saved.id })).attachment).toBe(other);
    expect(await objectExists(ds, oldOid)).toBe(false);
    expect((await objectBytes(ds, other)).toString()).toBe("other");
  });

  test("an unchanged entity causes no large-object work at all", async () => {
    const saved = await docs().save({ name: "u5", attachment: "same" });
    const loaded = await docs().findOneByOrFail({ id: saved.id });
    const objects = await countObjects(ds);
    const statements = await statementsOf(ds, async (manager) => {
      await manager.getRepository(Document).save(loaded);
      loaded.name = "renamed";
      await manager.getRepository(Document).save(loaded);
    });
    expect(statements.filter((s) => /\blo_|typeorm_large_objects/.test(s))).toEqual([]);
    expect(await countObjects(ds)).toBe(objects);
    expect((await docs().findOneByOrFail({ id: saved.id })).attachment).toBe(saved.attachment);
  });
});

describe("remove", () => {
  test("remove() unlinks the object in the same transaction", async () => {
    const saved = await docs().save({ name: "r1", attachment: "bye" });
    const oid = oidOf(saved.attachment);
    await docs().remove(await docs().findOneByOrFail({ id: saved.id }));
    expect(await objectExists(ds, oid)).toBe(false);
  });

  test("cascade remove and orphaned children (orphanedRowAction: delete) unlink their objects", async () => {
    const folder = await ds.getRepository(Folder).save({ name: "f", files: [{ content: "a" }, { content: "b" }, { content: "c" }] } as Partial<Folder>);
    const loaded = await ds.getRepository(Folder).findOneOrFail({ where: { id: folder.id }, relations: { files: true } });
    const oids = loaded.files.map((f) => oidOf(f.content));
    const dropped = loaded.files.pop()!;
    await ds.getRepository(Folder).save(loaded);
    expect(await objectExists(ds, oidOf(dropped.content))).toBe(false);
    expect(await objectExists(ds, oids[0]!)).toBe(true);
    await ds.getRepository(Folder).remove(loaded);
    for (const oid of oids) expect(await objectExists(ds, oid)).toBe(false);
  });

  test("soft remove keeps the object; a later hard delete removes it", async () => {
    const saved = await docs().save({ name: "s1", attachment: "soft" });
    const oid = oidOf(saved.attachment);
    await docs().softRemove(await docs().findOneByOrFail({ id: saved.id }));
    expect(await objectExists(ds, oid)).toBe(true);
    const trashed = await docs().findOneOrFail({ where: { id: saved.id }, withDeleted: true });
    await docs().remove(trashed);
    expect(await objectExists(ds, oid)).toBe(false);
  });
});

describe("rollback", () => {
  test("a save that fails creates nothing and unlinks nothing", async () => {
    const kept = await docs().save({ name: "keep", attachment: "kept" });
    const before = await countObjects(ds);
    await expect(
      ds.transaction(async (manager) => {
        await manager.getRepository(Document).save({ name: "new", attachment: Readable.from(["new"]) });
        await manager.getRepository(Document).save({ id: kept.id, attachment: "replacement" });
        await manager.getRepository(Document).remove(await manager.getRepository(Document).findOneByOrFail({ id: kept.id }));
        throw new Error("abort the transaction");
      }),
    ).rejects.toThrow("abort the transaction");
    expect(await countObjects(ds)).toBe(before);
    expect((await objectBytes(ds, oidOf(kept.attachment))).toString()).toBe("kept");
  });

  test("a save() rejected by the database (NOT NULL violation) leaves no object", async () => {
    const before = await countObjects(ds);
    await expect(docs().save({ name: null as never, attachment: Readable.from(["x"]) })).rejects.toThrow();
    expect(await countObjects(ds)).toBe(before);
  });
});

describe("paths without entity data do not throw and never double-unlink", () => {
  test("delete(), query-builder delete and update, update(), clear()", async () => {
    const a = await docs().save({ name: "p1", attachment: "a" });
    const b = await docs().save({ name: "p2", attachment: "b" });
    const c = await docs().save({ name: "p3", attachment: "c" });
    await docs().delete({ id: a.id });
    await ds.createQueryBuilder().delete().from(Document).where("id = :id", { id: b.id }).execute();
    await docs().update({ id: c.id }, { attachment: null });
    await ds.createQueryBuilder().update(Document).set({ name: "renamed" }).where("id = :id", { id: c.id }).execute();
    for (const oid of [a, b, c].map((d) => oidOf(d.attachment))) expect(await objectExists(ds, oid)).toBe(false);
    await docs().save({ name: "p4", attachment: "d" });
    await docs().clear();
    expect(await docs().count()).toBe(0);
  });
});
