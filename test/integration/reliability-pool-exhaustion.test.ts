import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObjectRepository, oidOf, registerLargeObjects } from "../../src";
import { idleInTransaction, makeDataSource, objectBytes, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { drain, rejection, within } from "../support/streams";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

const KiB = 1024;
let ds: DataSource;
let admin: DataSource;

useDataSource((opened) => (ds = opened), { orm: [Document], poolSize: 5, admin: (opened) => (admin = opened) });
afterEach(async () => {
  expect(await idleInTransaction(admin)).toBe(0);
});

const digest = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

test("50 concurrent streams (25 reads, 25 writes) on a pool of 5 all complete byte-exact", async () => {
  const docs = ds.getRepository(Document);
  const originals = Array.from({ length: 25 }, (_, i) => randomBytes(200 * KiB + i * 7919, 100 + i));
  const readable = await docs.save(originals.map((attachment, i) => ({ name: `read-${i}`, attachment })));
  const writable = await docs.save(Array.from({ length: 25 }, (_, i) => ({ name: `write-${i}`, attachment: "old" })));
  const replacements = writable.map((_, i) => randomBytes(300 * KiB + i * 4099, 500 + i));
  const files = new LargeObjectRepository(ds.manager);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, checkedOut(ds))), 2);
  try {
    const reads = readable.map(async (doc, i) => {
      const bytes = await drain(await files.createReadStream(doc, "attachment"));
      expect(digest(bytes)).toBe(digest(originals[i]!));
    });
    const writes = writable.map(async (doc, i) => {
      const data = replacements[i]!;
      // Small chunks, so every stream takes several round trips and really overlaps the others.
      const chunks = Array.from({ length: Math.ceil(data.length / (64 * KiB)) }, (_, n) => data.subarray(n * 64 * KiB, (n + 1) * 64 * KiB));
      await pipeline(Readable.from(chunks), await files.createWriteStream(doc, "attachment", { chunkSize: 64 * KiB }));
    });
    await within(60_000, Promise.all([...reads, ...writes]), "50 streams on a pool of 5");
  } finally {
    clearInterval(sampler);
  }
  expect(peak).toBeLessThanOrEqual(5);
  for (const [i, doc] of writable.entries()) {
    expect(digest(await objectBytes(admin, oidOf(doc.attachment)))).toBe(digest(replacements[i]!));
  }
  expect(checkedOut(ds)).toBe(0);
});

describe("the deadlock trap: a stream on the data source's manager inside a transaction holding the last connection", () => {
  let small: DataSource;
  beforeAll(async () => {
    // One connection, and an acquire timeout short enough for a test (the default is 10 s).
    small = registerLargeObjects(makeDataSource({ entities: [Document], poolSize: 1, connectTimeoutMS: 300 }));
    await small.initialize();
  });
  afterAll(async () => {
    await small.destroy();
  });

  test("fails fast with ERR_LO_POOL_EXHAUSTED naming the rule, and the pool still works afterwards", async () => {
    const doc = await small.getRepository(Document).save({ name: "trap", attachment: "inside" });
    const started = Date.now();
    const err = await within(
      5000,
      rejection(
        small.transaction(async (manager) => {
          await manager.getRepository(Document).update(doc.id, { name: "trap-renamed" });
          // Wrong: the repository is built on the data source's manager, not on `manager`.
          return new LargeObjectRepository(small.manager).read(doc, "attachment");
        }),
      ),
      "the trapped read",
    );
    expect(err).toMatchObject({ code: "ERR_LO_POOL_EXHAUSTED" });
    expect((err as Error).message).toContain("build the repository");
    expect((err as Error).message).toContain("transaction's manager");
    expect(Date.now() - started).toBeLessThan(3000);
    // The transaction was rolled back by its own failure, and the connection went back to the pool.
    expect(await within(2000, small.query("SELECT name FROM orm_document WHERE id = $1", [doc.id]))).toEqual([{ name: "trap" }]);
    expect(checkedOut(small)).toBe(0);
  });

  test("the same for read and write streams, size() and write(); each time the connection comes back to the pool", async () => {
    const doc = await small.getRepository(Document).save({ name: "trap2", attachment: "x" });
    const attempts: ((files: LargeObjectRepository) => Promise<unknown>)[] = [
      (files) => files.createReadStream(doc, "attachment"),
      (files) => files.createWriteStream(doc, "attachment"),
      (files) => files.size(doc, "attachment"),
      (files) => files.write(doc, "attachment", "y"),
    ];
    for (const attempt of attempts) {
      const err = await within(
        5000,
        rejection(small.transaction(() => attempt(new LargeObjectRepository(small.manager)))),
      );
      expect(err).toMatchObject({ code: "ERR_LO_POOL_EXHAUSTED" });
      await within(2000, small.query("SELECT 1"));
      expect(checkedOut(small)).toBe(0);
    }
    expect((await objectBytes(admin, oidOf(doc.attachment))).toString()).toBe("x");
  });

  test("the rule followed: the repository on the transaction's manager works with the one connection", async () => {
    const doc = await small.getRepository(Document).save({ name: "right", attachment: "before" });
    await within(
      5000,
      small.transaction(async (manager) => {
        const files = new LargeObjectRepository(manager);
        await pipeline(Readable.from(["after"]), await files.createWriteStream(doc, "attachment"));
        expect((await drain(await files.createReadStream(doc, "attachment"))).toString()).toBe("after");
      }),
    );
    expect((await objectBytes(admin, oidOf(doc.attachment))).toString()).toBe("after");
    expect(checkedOut(small)).toBe(0);
  });

  test("a pool that is merely busy is waited for: work queued behind a short holder completes", async () => {
    const doc = await small.getRepository(Document).save({ name: "busy", attachment: "waited" });
    const holder = small.createQueryRunner();
    await holder.connect();
    const reading = new LargeObjectRepository(small.manager).read(doc, "attachment");
    await new Promise((resolve) => setTimeout(resolve, 100));
    await holder.release();
    expect((await within(2000, reading)).toString()).toBe("waited");
    expect(checkedOut(small)).toBe(0);
  });
});
