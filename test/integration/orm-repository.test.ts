import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObjectRepository, isLargeObjectError, oidOf } from "../../src";
import { countObjects, idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { statementsOf } from "../support/orm";
import { checkedOut } from "../support/pool";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [Document], poolSize: 3 });

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks);
}

test("createReadStream streams the whole object and byte ranges (inclusive end)", async () => {
  const data = randomBytes(2 * 1024 * 1024 + 3, 3);
  const doc = await ds.getRepository(Document).save({ name: "r", attachment: data });
  const files = new LargeObjectRepository(ds.manager);
  expect((await collect(await files.createReadStream(doc, "attachment"))).equals(data)).toBe(true);
  expect((await collect(await files.createReadStream(doc, "attachment", { start: 10, end: 19 }))).equals(data.subarray(10, 20))).toBe(
    true,
  );
  expect((await collect(await files.createReadStream(doc, "attachment", { start: data.length - 1 }))).equals(data.subarray(-1))).toBe(
    true,
  );
  expect(await files.size(doc, "attachment")).toBe(data.length);
  expect(await idleInTransaction(ds)).toBe(0);
});

test("createWriteStream replaces the content by default and appends with append: true", async () => {
  const doc = await ds.getRepository(Document).save({ name: "w", attachment: "a much longer original content" });
  const files = new LargeObjectRepository(ds.manager);
  await pipeline(Readable.from(["new"]), await files.createWriteStream(doc, "attachment"));
  expect((await files.read(doc, "attachment")).toString()).toBe("new");
  await pipeline(Readable.from([" and more"]), await files.createWriteStream(doc, "attachment", { append: true }));
  expect((await files.read(doc, "attachment")).toString()).toBe("new and more");
});

test("write() replaces the content and returns the bytes written", async () => {
  const doc = await ds.getRepository(Document).save({ name: "w2", attachment: "old" });
  const files = new LargeObjectRepository(ds.manager);
  expect(await files.write(doc, "attachment", Readable.from([Buffer.from("12345")]))).toBe(5);
  expect((await objectBytes(ds, oidOf(doc.attachment))).toString()).toBe("12345");
});

test("writing to a null column creates the object and stores its oid in the row, in the same transaction", async () => {
  const doc = await ds.getRepository(Document).save({ name: "null", attachment: null });
  const files = new LargeObjectRepository(ds.manager);
  await pipeline(Readable.from(["created on write"]), await files.createWriteStream(doc, "attachment"));
  const row = await ds.getRepository(Document).findOneByOrFail({ id: doc.id });
  expect(typeof row.attachment).toBe("number");
  expect(row.attachment).toBe(doc.attachment);
  expect((await objectBytes(ds, oidOf(row.attachment))).toString()).toBe("created on write");

  const rolledBack = await ds.getRepository(Document).save({ name: "null2", attachment: null });
  const before = await countObjects(ds);
  const stream = await files.createWriteStream(rolledBack, "attachment");
  const closed = new Promise((resolve) => stream.on("close", resolve));
  stream.on("error", () => undefined);
  stream.destroy(new Error("client went away"));
  await closed;
  expect((await ds.getRepository(Document).findOneByOrFail({ id: rolledBack.id })).attachment).toBeNull();
  expect(await countObjects(ds)).toBe(before);
});

test("a write stream costs one statement before its pieces on a column with content, two on a null column", async () => {
  const empty = await ds.getRepository(Document).save({ name: "two statements, null", attachment: null });
  const full = await ds.getRepository(Document).save({ name: "one statement, content", attachment: "a longer old content" });
  for (const doc of [empty, full]) {
    const statements = await statementsOf(ds, async (manager) => {
      await pipeline(Readable.from(["fresh"]), await new LargeObjectRepository(manager).createWriteStream(doc, "attachment"));
    });
    // Between the transaction's start and the pieces: one statement that locks the row and opens
    // (and empties) its object; for a null column, a second one that creates, records, stores and
    // opens a new object. The pieces go as one query object without SQL text, recorded as
    // "undefined". A connection's first write also asks whether the server has lz4 (see
    // core-toast-compression).
    const probes = statements.filter((s) => s.includes("pg_settings"));
    expect(probes.length).toBeLessThanOrEqual(1);
    const sql = statements.filter((s) => s !== "undefined" && !probes.includes(s) && !/^(START TRANSACTION|BEGIN|COMMIT)/.test(s));
    expect(sql).toHaveLength(doc === empty ? 2 : 1);
    expect(sql[0]).toMatch(/FOR UPDATE\) AS s/);
    expect(sql[0]).toMatch(/lo_open[\s\S]*lo_truncate64|lo_truncate64[\s\S]*lo_open/);
    if (doc === empty) expect(sql[1]).toMatch(/lo_create[\s\S]*INSERT INTO[\s\S]*UPDATE[\s\S]*lo_open/);
    const row = await ds.getRepository(Document).findOneByOrFail({ id: doc.id });
    expect((await objectBytes(ds, oidOf(row.attachment))).toString()).toBe("fresh");
  }
});

test("a destroyed write stream keeps the old content", async () => {
  const doc = await ds.getRepository(Document).save({ name: "keep", attachment: "original" });
  const files = new LargeObjectRepository(ds.manager);
  const stream = await files.createWriteStream(doc, "attachment");
  stream.write(Buffer.alloc(3 * 1024 * 1024, 1));
  stream.destroy();
  await new Promise((resolve) => stream.on("close", resolve));
  expect((await objectBytes(ds, oidOf(doc.attachment))).toString()).toBe("original");
  expect(await idleInTransaction(ds)).toBe(0);
});

test("inside dataSource.transaction the repository joins it: a rollback undoes the writes", async () => {
  const doc = await ds.getRepository(Document).save({ name: "tx", attachment: "before" });
  await expect(
    ds.transaction(async (manager) => {
      const files = new LargeObjectRepository(manager);
      await files.write(doc, "attachment", "inside");
      expect((await files.read(doc, "attachment")).toString()).toBe("inside");
      await pipeline(Readable.from([" streamed"]), await files.createWriteStream(doc, "attachment", { append: true }));
      expect((await files.read(doc, "attachment")).toString()).toBe("inside streamed");
      throw new Error("roll back");
    }),
  ).rejects.toThrow("roll back");
  expect((await objectBytes(ds, oidOf(doc.attachment))).toString()).toBe("before");

  await ds.transaction(async (manager) => {
    await new LargeObjectRepository(manager).write(doc, "attachment", "committed");
  });
  expect((await objectBytes(ds, oidOf(doc.attachment))).toString()).toBe("committed");
});

test("openStream gives the core handle bound to the entity's object", async () => {
  const doc = await ds.getRepository(Document).save({ name: "h", attachment: "0123456789" });
  const files = new LargeObjectRepository(ds.manager);
  const lo = await files.openStream(doc, "attachment", { mode: "rw" });
  expect(lo.oid).toBe(doc.attachment);
  await lo.seek(5);
  await lo.write("X");
  await lo.close();
  expect((await objectBytes(ds, oidOf(doc.attachment))).toString()).toBe("01234X6789");
});

test("errors: not a large-object column, unknown entity, null column, missing primary key, too large for read()", async () => {
  const files = new LargeObjectRepository(ds.manager, { maxReadBytes: 1024 });
  const doc = await ds.getRepository(Document).save({ name: "e", attachment: randomBytes(2048) });
  const codeOf = async (p: Promise<unknown>): Promise<string | undefined> =>
    p.then(
      () => undefined,
      (e: unknown) => (isLargeObjectError(e) ? e.code : String(e)),
    );

  expect(await codeOf(files.read(doc, "name" as never))).toBe("ERR_LO_NOT_DECORATED");
  class NotAnEntity {
    attachment = 1;
  }
  expect(await codeOf(files.read(new NotAnEntity(), "attachment"))).toBe("ERR_LO_NOT_DECORATED");
  const empty = await ds.getRepository(Document).save({ name: "n", attachment: null });
  expect(await codeOf(files.read(empty, "attachment"))).toBe("ERR_LO_NULL");
  expect(await codeOf(files.createReadStream(empty, "attachment"))).toBe("ERR_LO_NULL");
  expect(await codeOf(files.read(ds.getRepository(Document).create({ name: "unsaved" }), "attachment"))).toBe("ERR_LO_NO_PRIMARY_KEY");
  expect(await codeOf(files.read(doc, "attachment"))).toBe("ERR_LO_TOO_LARGE");
  expect(await codeOf(files.read(Object.assign(new Document(), { id: 987654 }), "attachment"))).toBe("ERR_LO_NOT_FOUND");
  expect(await idleInTransaction(ds)).toBe(0);
});

test("a row whose object is gone: ERR_LO_NOT_FOUND naming the oid, and nothing left open, in a transaction of its own or the caller's", async () => {
  const doc = await ds.getRepository(Document).save({ name: "gone", attachment: "bytes" });
  const oid = oidOf(doc.attachment);
  // Unlinked behind the row's back (lo_unlink bypasses the triggers), so the row still names it.
  await ds.query("SELECT lo_unlink($1)", [oid]);
  const files = new LargeObjectRepository(ds.manager);
  const failure = async (p: Promise<unknown>): Promise<unknown> => p.then(() => undefined, (e: unknown) => e);

  for (const attempt of [files.createReadStream(doc, "attachment"), files.read(doc, "attachment")]) {
    const err = await failure(attempt);
    expect(isLargeObjectError(err, "ERR_LO_NOT_FOUND")).toBe(true);
    expect(err).toMatchObject({ oid, entity: "Document", property: "attachment" });
  }
  expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(ds)).toBe(0);

  // In the caller's transaction the failure aborts it; the error is the same.
  const inside = await failure(ds.transaction((manager) => new LargeObjectRepository(manager).createReadStream(doc, "attachment")));
  expect(isLargeObjectError(inside, "ERR_LO_NOT_FOUND")).toBe(true);
  expect(inside).toMatchObject({ oid, entity: "Document", property: "attachment" });
  expect(checkedOut(ds)).toBe(0);
  await ds.getRepository(Document).delete(doc.id);
});
