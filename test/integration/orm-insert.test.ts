import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObject, isLargeObjectError, oidOf } from "../../src";
import { countObjects, objectBytes, objectExists, randomBytes } from "../support/database";
import { statementsOf } from "../support/orm";
import { Document, Folder, FolderFile } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [Document, Folder, FolderFile] });

async function recorded(oid: number): Promise<boolean> {
  const rows: unknown[] = await ds.query("SELECT 1 FROM typeorm_large_objects WHERE oid = $1", [oid]);
  return rows.length === 1;
}

const contents: [string, () => unknown, Buffer][] = [
  ["a Buffer", () => Buffer.from("buffer content"), Buffer.from("buffer content")],
  ["a Uint8Array", () => new Uint8Array([1, 2, 3, 250]), Buffer.from([1, 2, 3, 250])],
  ["a string (UTF-8)", () => "héllo wörld", Buffer.from("héllo wörld", "utf8")],
  ["a Readable", () => Readable.from([Buffer.from("ab"), Buffer.from("cd")]), Buffer.from("abcd")],
  [
    "an async iterable",
    () =>
      (async function* () {
        yield Buffer.from("x");
        yield "yz";
      })(),
    Buffer.from("xyz"),
  ],
  ["a 3 MiB Readable", () => Readable.from([randomBytes(3 * 1024 * 1024 + 5, 7)]), randomBytes(3 * 1024 * 1024 + 5, 7)],
];

describe.each(contents)("save() with %s in the property", (_label, make, expected) => {
  test("creates an object with that content, records it and stores its oid", async () => {
    const doc = await ds.getRepository(Document).save({ name: "x", attachment: make() as Buffer });
    expect(typeof doc.attachment).toBe("number");
    const row = await ds.getRepository(Document).findOneByOrFail({ id: doc.id });
    expect(row.attachment).toBe(doc.attachment);
    expect((await objectBytes(ds, row.attachment as number)).equals(expected)).toBe(true);
    expect(await recorded(row.attachment as number)).toBe(true);
  });
});

test("undefined creates an empty object; createOnInsert: false leaves the column null", async () => {
  const doc = await ds.getRepository(Document).save(ds.getRepository(Document).create({ name: "empty" }));
  const row = await ds.getRepository(Document).findOneByOrFail({ id: doc.id });
  expect(typeof row.attachment).toBe("number");
  expect((await objectBytes(ds, row.attachment as number)).length).toBe(0);
  expect(row.thumbnail).toBeNull();
});

test("null stays null and creates nothing", async () => {
  const before = await countObjects(ds);
  const doc = await ds.getRepository(Document).save({ name: "none", attachment: null });
  const row = await ds.getRepository(Document).findOneByOrFail({ id: doc.id });
  expect(row.attachment).toBeNull();
  expect(await countObjects(ds)).toBe(before);
});

test("a number adopts that existing object", async () => {
  const oid = await LargeObject.create(ds, { data: "adopted" });
  const doc = await ds.getRepository(Document).save({ name: "adopt", attachment: oid });
  expect(doc.attachment).toBe(oid);
  expect(await recorded(oid)).toBe(true);
  expect((await objectBytes(ds, oid)).toString()).toBe("adopted");
});

test("adopting an oid that does not exist is refused with ERR_LO_NOT_FOUND and saves nothing", async () => {
  const rowsBefore = await ds.getRepository(Document).count();
  const missing = 4_000_000_000;
  await expect(ds.getRepository(Document).save({ name: "ghost", attachment: missing })).rejects.toMatchObject({
    code: "ERR_LO_NOT_FOUND",
  });
  expect(await ds.getRepository(Document).count()).toBe(rowsBefore);
});

test("adopting an object another row references is refused with ERR_LO_IN_USE", async () => {
  const first = await ds.getRepository(Document).save({ name: "owner", attachment: "mine" });
  const err = await ds
    .getRepository(Document)
    .save({ name: "thief", attachment: first.attachment })
    .catch((e: unknown) => e);
  expect(isLargeObjectError(err, "ERR_LO_IN_USE")).toBe(true);
  expect((await objectBytes(ds, oidOf(first.attachment))).toString()).toBe("mine");
});

test("content of the wrong kind is refused with ERR_LO_INVALID_VALUE", async () => {
  const before = await countObjects(ds);
  await expect(ds.getRepository(Document).save({ name: "bad", attachment: { not: "content" } as never })).rejects.toMatchObject({
    code: "ERR_LO_INVALID_VALUE",
  });
  expect(await countObjects(ds)).toBe(before);
});

test("insert() and query-builder insert create objects from content", async () => {
  const result = await ds.getRepository(Document).insert({ name: "ins", attachment: Buffer.from("via insert") });
  const id = result.identifiers[0]!.id as number;
  const row = await ds.getRepository(Document).findOneByOrFail({ id });
  expect((await objectBytes(ds, row.attachment as number)).toString()).toBe("via insert");

  const qb = await ds
    .createQueryBuilder()
    .insert()
    .into(Document)
    .values({ name: "qb", attachment: "via qb" })
    .returning("id")
    .execute();
  const qbRow = await ds.getRepository(Document).findOneByOrFail({ id: qb.identifiers[0]!.id as number });
  expect((await objectBytes(ds, qbRow.attachment as number)).toString()).toBe("via qb");
});

test("a cascade save of a parent whose children each carry content creates one object per child, without concurrent queries", async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.message);
  process.on("warning", onWarning);
  try {
    const folder = await ds.getRepository(Folder).save({
      name: "f",
      files: Array.from({ length: 25 }, (_, n) => ({ content: n % 2 ? `child ${n}` : Readable.from([`streamed ${n}`]) })),
    } as Partial<Folder>);
    const files = await ds.getRepository(FolderFile).find({ where: { folder: { id: folder.id } }, order: { id: "ASC" } });
    expect(files).toHaveLength(25);
    const texts = await Promise.all(files.map(async (f) => (await objectBytes(ds, f.content as number)).toString()));
    expect(new Set(texts).size).toBe(25);
    expect(texts.sort()).toEqual(Array.from({ length: 25 }, (_, n) => (n % 2 ? `child ${n}` : `streamed ${n}`)).sort());
  } finally {
    process.off("warning", onWarning);
  }
  expect(warnings.filter((w) => w.includes("already executing"))).toEqual([]);
});

test("a save([...]) of many small entities creates them in one statement and all bytes are right", async () => {
  const docs = Array.from({ length: 300 }, (_, n) => ({ name: `n${n}`, attachment: randomBytes(1024, n + 1) }));
  let saved: Document[] = [];
  const statements = await statementsOf(ds, async (manager) => {
    saved = await manager.getRepository(Document).save(docs);
  });
  expect(statements.filter((s) => s.includes("lo_from_bytea"))).toHaveLength(1);
  for (const [n, doc] of saved.entries()) {
    expect((await objectBytes(ds, doc.attachment as number)).equals(randomBytes(1024, n + 1))).toBe(true);
  }
  expect(await objectExists(ds, saved[0]!.attachment as number)).toBe(true);
});
