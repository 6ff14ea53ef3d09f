import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createHash } from "node:crypto";
import type { DataSource } from "typeorm";
import {
  LargeObject,
  LargeObjectRepository,
  isLargeObjectError,
  oidOf,
  stageLargeObject,
  trackedContentOf,
} from "../../src";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { countRecords, expectNothingLost } from "../support/cleanup";
import { useDataSource } from "../support/use-data-source";
import { TrackedFile } from "./fixtures/tracked";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [TrackedFile], poolSize: 3, checkClean: true });

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The row as stored. */
async function stored(id: number): Promise<TrackedFile> {
  return ds.getRepository(TrackedFile).findOneByOrFail({ id });
}

/** The row's tracked columns hold the true size and digest of its object. */
async function expectTracked(id: number): Promise<Buffer> {
  const row = await stored(id);
  const bytes = await objectBytes(ds, oidOf(row.content));
  expect({ size: row.contentSize, sha256: row.contentSha256 }).toEqual({ size: String(bytes.length), sha256: sha256(bytes) });
  return bytes;
}

afterEach(() => expectNothingLost(ds, "track_file", "content"));

function pieces(bytes: Buffer, size: number): Readable {
  const list: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) list.push(bytes.subarray(i, i + size));
  return Readable.from(list);
}

test("save() with a Buffer, a string, a small stream and a large stream stores the true size and sha256", async () => {
  const repository = ds.getRepository(TrackedFile);
  const large = randomBytes(700 * 1024 + 11, 5);
  const cases: [string, TrackedFile["content"], Buffer][] = [
    ["buffer", Buffer.from("hello"), Buffer.from("hello")],
    ["string", "grüße", Buffer.from("grüße")],
    ["small stream", Readable.from([Buffer.from("ab"), "cd"]), Buffer.from("abcd")],
    ["large stream", pieces(large, 64 * 1024 + 3), large],
    ["large buffer", Buffer.from(large), large],
  ];
  for (const [name, content, bytes] of cases) {
    const saved = await repository.save({ name, content });
    expect({ size: saved.contentSize, sha256: saved.contentSha256 }).toEqual({ size: String(bytes.length), sha256: sha256(bytes) });
    expect((await expectTracked(saved.id)).equals(bytes)).toBe(true);
  }
});

test("insert() and a query-builder insert (autocommit) store them with the row", async () => {
  const large = randomBytes(300 * 1024, 6);
  const result = await ds.getRepository(TrackedFile).insert({ name: "insert", content: Buffer.from(large) });
  expect((await expectTracked(result.identifiers[0]!.id as number)).equals(large)).toBe(true);
  const built = await ds.createQueryBuilder().insert().into(TrackedFile).values({ name: "qb", content: "via the builder" }).execute();
  expect((await expectTracked(built.identifiers[0]!.id as number)).toString()).toBe("via the builder");
});

test("an insert without content makes an empty object: size 0 and the digest of no bytes", async () => {
  const saved = await ds.getRepository(TrackedFile).save({ name: "empty" });
  const row = await stored(saved.id);
  expect(row.contentSize).toBe("0");
  expect(row.contentSha256).toBe(EMPTY_SHA256);
  await expectTracked(saved.id);
});

test("replacing the content on update keeps them true; setting the column to null nulls them", async () => {
  const repository = ds.getRepository(TrackedFile);
  const saved = await repository.save({ name: "update", content: "first" });
  const loaded = await stored(saved.id);
  loaded.content = Readable.from(["second, ", "longer"]);
  await repository.save(loaded);
  expect((await expectTracked(saved.id)).toString()).toBe("second, longer");
  await repository.save({ id: saved.id, content: Buffer.from("partial save") });
  expect((await expectTracked(saved.id)).toString()).toBe("partial save");
  const again = await stored(saved.id);
  again.content = null;
  await repository.save(again);
  expect(await stored(saved.id)).toMatchObject({ content: null, contentSize: null, contentSha256: null });

  const other = await repository.save({ name: "update()", content: "to be dropped" });
  await repository.update({ id: other.id }, { content: Buffer.from("set by update()") });
  expect((await expectTracked(other.id)).toString()).toBe("set by update()");
  const staged = await stageLargeObject(ds, { content: "adopted by update()" });
  await repository.update({ id: other.id }, { content: staged.oid });
  expect((await expectTracked(other.id)).toString()).toBe("adopted by update()");
  await repository.update({ id: other.id }, { content: null });
  expect(await stored(other.id)).toMatchObject({ content: null, contentSize: null, contentSha256: null });
});

test("the repository's write() and replacing write stream store them; a destroyed stream leaves the old ones", async () => {
  const saved = await ds.getRepository(TrackedFile).save({ name: "repo", content: "old" });
  const files = new LargeObjectRepository(ds.manager);
  const large = randomBytes(2 * 1024 * 1024 + 5, 7);
  expect(await files.write(saved, "content", Buffer.from(large))).toBe(large.length);
  expect((await expectTracked(saved.id)).equals(large)).toBe(true);
  expect(trackedContentOf(saved, "content")).toEqual({ size: large.length, sha256: sha256(large) });

  await pipeline(pieces(large.subarray(3), 100_000), await files.createWriteStream(saved, "content"));
  expect((await expectTracked(saved.id)).equals(large.subarray(3))).toBe(true);
  expect(trackedContentOf(saved, "content")).toEqual({ size: large.length - 3, sha256: sha256(large.subarray(3)) });

  const before = await stored(saved.id);
  const stream = await files.createWriteStream(saved, "content");
  stream.on("error", () => undefined);
  const closed = new Promise((resolve) => stream.on("close", resolve));
  stream.write(Buffer.from("half of something"));
  stream.destroy(new Error("the client went away"));
  await closed;
  expect(await stored(saved.id)).toEqual(before);
  await expectTracked(saved.id);
});

test("a write stream on a null column creates the object with its size and digest", async () => {
  const saved = await ds.getRepository(TrackedFile).save({ name: "null", content: null });
  const files = new LargeObjectRepository(ds.manager);
  await pipeline(Readable.from(["made ", "on write"]), await files.createWriteStream(saved, "content"));
  expect((await expectTracked(saved.id)).toString()).toBe("made on write");
});

test("an append keeps the true size and forgets the digest", async () => {
  const saved = await ds.getRepository(TrackedFile).save({ name: "append", content: "start" });
  const files = new LargeObjectRepository(ds.manager);
  await pipeline(Readable.from([" and more"]), await files.createWriteStream(saved, "content", { append: true }));
  const row = await stored(saved.id);
  expect((await objectBytes(ds, oidOf(row.content))).toString()).toBe("start and more");
  expect(row.contentSize).toBe(String("start and more".length));
  expect(row.contentSha256).toBeNull();
  expect(trackedContentOf(saved, "content")).toEqual({ size: 14, sha256: null });
});

test("a handle opened for writing through the repository, or a raw one, forgets both", async () => {
  const repository = ds.getRepository(TrackedFile);
  const files = new LargeObjectRepository(ds.manager);
  const saved = await repository.save({ name: "handle", content: "0123456789" });
  const handle = await files.openStream(saved, "content", { mode: "rw" });
  await handle.seek(2);
  await handle.write("XY");
  await handle.truncate(8);
  await handle.close();
  expect(await stored(saved.id)).toMatchObject({ contentSize: null, contentSha256: null });
  expect(trackedContentOf(saved, "content")).toEqual({ size: null, sha256: null });
  expect((await objectBytes(ds, oidOf(saved.content))).toString()).toBe("01XY4567");

  // A write that knows the content sets them again.
  await files.write(saved, "content", "known again");
  await expectTracked(saved.id);

  const raw = await LargeObject.open(ds, oidOf(saved.content), "w");
  await raw.write("KNOWN");
  await raw.close();
  expect(await stored(saved.id)).toMatchObject({ contentSize: null, contentSha256: null });
  // A raw read does not.
  await files.write(saved, "content", "again");
  const read = await LargeObject.open(ds, oidOf(saved.content), "r");
  await read.close();
  await expectTracked(saved.id);
});

test("adopting a staged object copies its size and digest; a staged object written since, or a plain one, only its size", async () => {
  const repository = ds.getRepository(TrackedFile);
  const bytes = randomBytes(400_000, 8);
  const staged = await stageLargeObject(ds, { content: pieces(bytes, 50_000) });
  const adopted = await repository.save({ name: "adopted", content: staged.oid });
  expect({ size: adopted.contentSize, sha256: adopted.contentSha256 }).toEqual({ size: String(bytes.length), sha256: sha256(bytes) });
  await expectTracked(adopted.id);

  const changed = await stageLargeObject(ds, { content: "staged" });
  const raw = await LargeObject.open(ds, changed.oid, "a");
  await raw.write(" and changed");
  await raw.close();
  const second = await repository.save({ name: "changed", content: changed.oid });
  expect(await stored(second.id)).toMatchObject({ contentSize: String("staged and changed".length), contentSha256: null });

  const plain = await LargeObject.create(ds, { data: "made elsewhere" });
  await ds.query("INSERT INTO typeorm_large_objects (oid, created_for) VALUES ($1, 'elsewhere')", [plain]);
  const third = await repository.save({ name: "plain", content: plain });
  expect(await stored(third.id)).toMatchObject({ contentSize: "14", contentSha256: null });
});

test("a LargeObjectRepository on a QueryRunner writes on it, in its transaction when it has one", async () => {
  const saved = await ds.getRepository(TrackedFile).save({ name: "runner", content: "before" });
  const runner = ds.createQueryRunner();
  try {
    const files = new LargeObjectRepository(runner);
    await files.write(saved, "content", "through the runner");
    expect((await files.read(saved, "content")).toString()).toBe("through the runner");
    await expectTracked(saved.id);

    await runner.startTransaction();
    await files.write(saved, "content", "rolled back");
    await pipeline(Readable.from(["rolled back too"]), await files.createWriteStream(saved, "content"));
    expect((await files.read(saved, "content")).toString()).toBe("rolled back too");
    await runner.rollbackTransaction();
  } finally {
    await runner.release();
  }
  expect((await expectTracked(saved.id)).toString()).toBe("through the runner");
});

test("a size tracked through a transformer, and trackedContentOf() on loaded, saved and untracked columns", async () => {
  const repository = ds.getRepository(TrackedFile);
  const saved = await repository.save({ name: "preview", content: "main", preview: Buffer.from("tiny") });
  expect(saved.previewSize).toBe(4);
  const loaded = await stored(saved.id);
  expect(loaded.previewSize).toBe(4);
  expect(trackedContentOf(loaded, "preview")).toEqual({ size: 4, sha256: null });
  expect(trackedContentOf(loaded, "content")).toEqual({ size: 4, sha256: sha256(Buffer.from("main")) });
  let caught: unknown;
  try {
    trackedContentOf(loaded, "name");
  } catch (err) {
    caught = err;
  }
  expect(isLargeObjectError(caught, "ERR_LO_NOT_DECORATED")).toBe(true);
  expect(await countObjects(ds)).toBe(await countRecords(ds));
});
