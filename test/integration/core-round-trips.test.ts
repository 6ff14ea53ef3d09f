import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Entity, PrimaryGeneratedColumn, type DataSource } from "typeorm";
import { LargeObject, LargeObjectColumn, LargeObjectRepository, WHOLE_READ_LIMIT, isLargeObjectError, type LargeObjectValue } from "../../src";
import { clientQueries, countObjects, idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { drain } from "../support/streams";
import { CompositeKeyed, Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
@Entity({ name: "round_trip_uuid_keyed" })
class UuidKeyed {
  @PrimaryGeneratedColumn("uuid") id!: string;
  @LargeObjectColumn() content!: LargeObjectValue;
}

useDataSource((opened) => (ds = opened), { orm: [Document, CompositeKeyed, UuidKeyed], poolSize: 3 });

/** The text of every query the pg clients were given while `work` ran: one round trip each. */
async function roundTrips(work: () => Promise<unknown>): Promise<string[]> {
  return (await clientQueries(work)).map(({ text, query }) => text ?? String((query as object | undefined)?.constructor.name));
}

/** The statement that measures an object and reads it whole when it is small, outside any transaction. */
const MEASURING = /^COPY \(WITH s AS \([\s\S]*lo_lseek64\(lo_open\(s\.oid[\s\S]*lo_get[\s\S]*TO STDOUT \(FORMAT binary\)$/;

async function expectNothingLeft(): Promise<void> {
  expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(ds)).toBe(0);
}

test("a read stream from a data source over 1 MiB is the measuring statement, the start with the open, the COPY with the commit", async () => {
  const data = randomBytes(WHOLE_READ_LIMIT + 1, 1);
  const oid = await LargeObject.create(ds, { data });
  let read: Buffer = Buffer.alloc(0);
  const sent = await roundTrips(async () => {
    const lo = await LargeObject.open(ds, oid, "r");
    read = await drain(lo.createReadStream());
  });
  expect(read.equals(data)).toBe(true);
  expect(sent).toHaveLength(3);
  expect(sent[0]).toMatch(MEASURING);
  expect(sent[1]).toMatch(/^START TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT [\s\S]*lo_open/);
  expect(sent[2]).toMatch(/^COPY [\s\S]* TO STDOUT \(FORMAT binary\); COMMIT$/);
  await expectNothingLeft();
});

test("a read-only open from a data source of at most 1 MiB is one statement and holds no connection", async () => {
  for (const size of [0, 1, 300_000, WHOLE_READ_LIMIT]) {
    const data = randomBytes(size, 5);
    const oid = await LargeObject.create(ds, { data });
    let lo: LargeObject | undefined;
    const sent = await roundTrips(async () => {
      lo = await LargeObject.open(ds, oid, "r");
    });
    expect(sent).toEqual([expect.stringMatching(MEASURING)]);
    // Nothing is checked out between the open and the reads: the bytes are the handle's own.
    await expectNothingLeft();
    const later = await roundTrips(async () => {
      expect(await lo!.size()).toBe(size);
      expect((await drain(lo!.createReadStream({ autoClose: false }))).equals(data)).toBe(true);
      expect((await drain(lo!.createReadStream({ start: 1, end: 10, autoClose: false }))).equals(data.subarray(1, 11))).toBe(true);
      expect(await lo!.seek(Math.floor(size / 2))).toBe(Math.floor(size / 2));
      expect((await lo!.read(7)).equals(data.subarray(Math.floor(size / 2), Math.floor(size / 2) + 7))).toBe(true);
      expect(await lo!.tell()).toBe(Math.min(size, Math.floor(size / 2) + 7));
      if (size > 0) expect(await lo!.seek(-1, "end")).toBe(size - 1);
      expect(await lo!.seek(size + 5)).toBe(size + 5);
      expect((await lo!.read(4)).length).toBe(0);
    }).catch(async (err: unknown) => {
      await lo!.close();
      throw err;
    });
    expect(later).toEqual([]);
    await lo!.seek(1);
    const beforeStart = await lo!.seek(-2, "cur").catch((e: unknown) => e);
    expect(isLargeObjectError(beforeStart, "ERR_LO_INVALID_ARGUMENT")).toBe(true);
    await lo!.close();
    const closed = await lo!.read(1).catch((e: unknown) => e);
    expect(isLargeObjectError(closed, "ERR_LO_CLOSED")).toBe(true);
  }
  await expectNothingLeft();
});

test("a small object read whole is one snapshot: a write committed after the open is not seen", async () => {
  const data = randomBytes(10_000, 6);
  const oid = await LargeObject.create(ds, { data });
  const lo = await LargeObject.open(ds, oid, "r");
  await ds.query("SELECT lo_put($1, 0, $2)", [oid, Buffer.alloc(100, 9)]);
  expect((await drain(lo.createReadStream())).equals(data)).toBe(true);
  expect(lo.isClosed).toBe(true);
  expect((await objectBytes(ds, oid)).subarray(0, 100).equals(Buffer.alloc(100, 9))).toBe(true);
  await expectNothingLeft();
});

test("a read-only open on the caller's runner or transaction opens a descriptor as before", async () => {
  const data = randomBytes(2000, 7);
  const oid = await LargeObject.create(ds, { data });
  await ds.transaction(async (manager) => {
    const sent = await roundTrips(async () => {
      const lo = await LargeObject.open(manager, oid, "r");
      expect((await drain(lo.createReadStream({ autoClose: false }))).equals(data)).toBe(true);
      await lo.close();
    });
    expect(sent.some((s) => s.includes("lo_open"))).toBe(true);
    expect(sent.filter((s) => MEASURING.test(s))).toEqual([]);
  });
  await expectNothingLeft();
});

test("a repository read of at most 1 MiB finds the row and reads its object in one statement", async () => {
  const data = randomBytes(70_000, 2);
  const doc = await ds.getRepository(Document).save({ name: "one round trip", attachment: data });
  const files = new LargeObjectRepository(ds.manager);
  let read: Buffer = Buffer.alloc(0);
  const sent = await roundTrips(async () => {
    read = await drain(await files.createReadStream(doc, "attachment", { start: 5 }));
  });
  expect(read.equals(data.subarray(5))).toBe(true);
  expect(sent).toEqual([expect.stringMatching(MEASURING)]);
  expect(sent[0]).toContain(`FROM "orm_document" WHERE "id" = ${doc.id})`);
  expect((await files.read(doc, "attachment")).equals(data)).toBe(true);
  expect(await files.size(doc, "attachment")).toBe(data.length);

  // A null column and a missing row are the same typed errors as on a descriptor.
  const nullColumn = await files.createReadStream(doc, "thumbnail").catch((e: unknown) => e);
  expect(isLargeObjectError(nullColumn, "ERR_LO_NULL")).toBe(true);
  const missing = await files.createReadStream({ ...doc, id: doc.id + 1_000_000 }, "attachment").catch((e: unknown) => e);
  expect(isLargeObjectError(missing, "ERR_LO_NOT_FOUND")).toBe(true);
  await expectNothingLeft();
});

test("a repository read over 1 MiB, or of a row whose key is not an integer or uuid, opens a descriptor", async () => {
  const files = new LargeObjectRepository(ds.manager);
  const big = randomBytes(WHOLE_READ_LIMIT + 1, 3);
  const doc = await ds.getRepository(Document).save({ name: "three round trips", attachment: big });
  const sent = await roundTrips(async () => {
    expect((await drain(await files.createReadStream(doc, "attachment"))).equals(big)).toBe(true);
  });
  expect(sent).toHaveLength(3);
  expect(sent[0]).toMatch(MEASURING);
  expect(sent[1]).toMatch(/^START TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT [\s\S]*lo_open[\s\S]*FROM "orm_document"/);

  // A text key goes as a parameter, never spliced into the statement, whatever it holds.
  const keyed = await ds.getRepository(CompositeKeyed).save({ tenant: "o'brien\\'); DROP TABLE orm_document; --", key: 7, payload: Buffer.from("kept") });
  const textKey = await roundTrips(async () => {
    expect((await drain(await files.createReadStream(keyed, "payload"))).toString()).toBe("kept");
  });
  expect(textKey).toHaveLength(2);
  expect(textKey.join("\n")).not.toContain("brien");
  expect(await ds.getRepository(Document).count()).toBeGreaterThan(0);

  // A uuid key is checked to be one, then read in one statement.
  const tagged = await ds.getRepository(UuidKeyed).save({ content: Buffer.from("by uuid") });
  const byUuid = await roundTrips(async () => {
    expect((await drain(await files.createReadStream(tagged, "content"))).toString()).toBe("by uuid");
  });
  expect(byUuid).toEqual([expect.stringContaining(`"id" = '${tagged.id}'::uuid`)]);
  const notUuid = await files.createReadStream({ ...tagged, id: "not-a-uuid'" }, "content").catch((e: unknown) => e);
  expect(isLargeObjectError(notUuid)).toBe(true);
  await expectNothingLeft();
});

test("a stream destroyed after its last window began leaves nothing open, and one without autoClose keeps its transaction", async () => {
  const data = randomBytes(3 * 1024 * 1024, 3);
  const oid = await LargeObject.create(ds, { data });
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ highWaterMark: 1024 });
  const closed = new Promise((resolve) => stream.on("close", resolve));
  stream.once("data", () => stream.destroy());
  await closed;
  expect(lo.isClosed).toBe(true);
  await expectNothingLeft();

  // Without autoClose the handle stays open after the stream: its transaction must still be there.
  const kept = await LargeObject.open(ds, oid, "r");
  expect((await drain(kept.createReadStream({ autoClose: false }))).equals(data)).toBe(true);
  expect((await kept.read(5)).equals(data.subarray(0, 5))).toBe(true);
  await kept.close();
  await expectNothingLeft();
});

test("a handle write stream in the caller's transaction closes its descriptor with the last piece", async () => {
  const data = randomBytes(200_000, 4);
  let oid = 0;
  const sent = await roundTrips(() =>
    ds.transaction(async (manager) => {
      oid = await LargeObject.create(manager.queryRunner!);
      const lo = await LargeObject.open(manager.queryRunner!, oid, "w");
      await pipeline(Readable.from([data]), lo.createWriteStream());
      // The transaction goes on after the stream: its descriptor must be gone, the object written.
      expect((await manager.query("SELECT length(lo_get($1)) AS n", [oid]))[0].n).toBe(data.length);
    }),
  );
  expect(sent.filter((s) => s.includes("lo_close"))).toHaveLength(0);
  expect((await objectBytes(ds, oid)).equals(data)).toBe(true);
  await expectNothingLeft();
});

test("a failed open in the first round trip rolls back and releases its connection", async () => {
  const err = await LargeObject.open(ds, 4_000_000_000, "r").catch((e: unknown) => e);
  expect(isLargeObjectError(err, "ERR_LO_NOT_FOUND")).toBe(true);
  await expectNothingLeft();
});

test("creates issued together in one transaction share a statement, each object with its own bytes", async () => {
  const before = await countObjects(ds);
  const contents = Array.from({ length: 50 }, (_, i) => randomBytes(100 + i, 10 + i));
  let oids: number[] = [];
  const sent = await roundTrips(() =>
    ds.transaction(async (manager) => {
      oids = await Promise.all(contents.map((data) => LargeObject.create(manager.queryRunner!, { data })));
    }),
  );
  // The transaction's start and commit, and the creates in a few statements rather than fifty.
  expect(sent.filter((s) => s.includes("lo_from_bytea")).length).toBeLessThanOrEqual(3);
  expect(new Set(oids).size).toBe(50);
  for (const [i, oid] of oids.entries()) expect((await objectBytes(ds, oid)).equals(contents[i]!)).toBe(true);
  expect(await countObjects(ds)).toBe(before + 50);

  // A failure of the transaction removes every object of the batch.
  await ds
    .transaction(async (manager) => {
      await Promise.all(contents.map((data) => LargeObject.create(manager.queryRunner!, { data })));
      throw new Error("rolled back");
    })
    .catch(() => undefined);
  expect(await countObjects(ds)).toBe(before + 50);
  await expectNothingLeft();
});

test("a repository write stream on a column with content is two round trips: the commit goes with the last piece", async () => {
  const doc = await ds.getRepository(Document).save({ name: "write", attachment: "old content" });
  const files = new LargeObjectRepository(ds.manager);
  const sent = await roundTrips(async () => {
    await pipeline(Readable.from([Buffer.from("new content")]), await files.createWriteStream(doc, "attachment"));
  });
  const row = await ds.getRepository(Document).findOneByOrFail({ id: doc.id });
  expect((await objectBytes(ds, row.attachment as number)).toString()).toBe("new content");
  // START with the locking open, then the pieces with COMMIT (and at most the connection's lz4 probe).
  expect(sent.filter((s) => !s.includes("pg_settings"))).toHaveLength(2);
  await expectNothingLeft();
});

test("LargeObject.create from a data source with bytes in memory is one statement and no transaction", async () => {
  for (const size of [1024, 64 * 1024, 1024 * 1024]) {
    const data = randomBytes(size, 20);
    let oid = 0;
    const sent = await roundTrips(async () => {
      oid = await LargeObject.create(ds, { data });
    });
    // At most the connection's lz4 question besides: it is asked once per connection.
    expect(sent.filter((s) => !s.includes("pg_settings"))).toEqual([expect.stringMatching(/^SELECT lo_from_bytea\(0, \$1\) AS oid\b/)]);
    expect((await objectBytes(ds, oid)).equals(data)).toBe(true);
  }
  const sent = await roundTrips(() => LargeObject.create(ds));
  expect(sent).toEqual(["SELECT lo_create(0) AS oid"]);
  await expectNothingLeft();
});

test("LargeObject.create on a runner without a transaction leaves it without one, and the pool's connections idle", async () => {
  const runner = ds.createQueryRunner();
  try {
    const data = randomBytes(4096, 21);
    const sent = await roundTrips(async () => {
      expect((await objectBytes(ds, await LargeObject.create(runner, { data }))).equals(data)).toBe(true);
    });
    expect(sent.filter((s) => /START|BEGIN|COMMIT/.test(s))).toEqual([]);
    expect(runner.isTransactionActive).toBe(false);
  } finally {
    await runner.release();
  }
  await expectNothingLeft();
});

/** An async iterable that hands out one buffer again and again, filled anew for each chunk. */
function reusingSource(content: Buffer, chunkSize: number): AsyncIterable<Buffer> {
  return {
    async *[Symbol.asyncIterator]() {
      const buffer = Buffer.alloc(chunkSize);
      for (let start = 0; start < content.length; start += chunkSize) {
        const length = content.copy(buffer, 0, start, start + chunkSize);
        yield buffer.subarray(0, length);
        buffer.fill(0);
      }
    },
  };
}

test("save() of a stream that ends within 64 KiB creates its object in the batch, one round trip fewer than through a descriptor", async () => {
  const docs = ds.getRepository(Document);
  for (const [size, chunk] of [
    [1024, 1024],
    [64 * 1024, 16 * 1024],
  ] as const) {
    const data = randomBytes(size, 30);
    let id = 0;
    const sent = await roundTrips(async () => {
      id = (await docs.save({ name: `short ${size}`, attachment: Readable.from([data.subarray(0, chunk), data.subarray(chunk)]) })).id;
    });
    const mine = sent.filter((s) => !s.includes("pg_settings"));
    // The save's start, the batch that creates and records the object, the row's insert, the commit.
    expect(mine).toHaveLength(4);
    expect(mine.filter((s) => /lo_open|LowriteRun/.test(s))).toEqual([]);
    expect(mine[1]).toMatch(/lo_from_bytea/);
    const row = await docs.findOneByOrFail({ id });
    expect((await objectBytes(ds, row.attachment as number)).equals(data)).toBe(true);
  }
  await expectNothingLeft();
});

test("a stream one byte over 64 KiB, or whose source reuses its buffer, is stored whole", async () => {
  const docs = ds.getRepository(Document);
  for (const [size, source] of [
    [64 * 1024 + 1, (data: Buffer) => Readable.from([data.subarray(0, 1000), data.subarray(1000)])],
    [40 * 1024, (data: Buffer) => reusingSource(data, 4096)],
    [300 * 1024, (data: Buffer) => reusingSource(data, 10_000)],
  ] as const) {
    const data = randomBytes(size, 31);
    const sent = await roundTrips(async () => {
      const { id } = await docs.save({ name: `stored ${size}`, attachment: source(data) });
      const row = await docs.findOneByOrFail({ id });
      expect((await objectBytes(ds, row.attachment as number)).equals(data)).toBe(true);
    });
    expect(sent.some((s) => s.includes("lo_open"))).toBe(size > 64 * 1024);
  }
  await expectNothingLeft();
});

test("a stream that fails within its first 64 KiB or after them fails the save and leaves nothing", async () => {
  const docs = ds.getRepository(Document);
  const before = await countObjects(ds);
  const rows = await docs.count();
  for (const good of [1000, 64 * 1024, 200 * 1024]) {
    const source = (async function* () {
      yield randomBytes(good, 32);
      throw new Error(`source failed after ${good}`);
    })();
    const err = await docs.save({ name: "fails", attachment: source }).catch((e: unknown) => e);
    expect(isLargeObjectError(err)).toBe(true);
    expect((err as Error).message).toContain(`source failed after ${good}`);
  }
  expect(await countObjects(ds)).toBe(before);
  expect(await docs.count()).toBe(rows);
  await expectNothingLeft();
});
