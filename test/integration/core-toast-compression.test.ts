import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { In, type DataSource, type QueryRunner } from "typeorm";
import { LargeObject, TOAST_COMPRESSION_SETTING } from "../../src";
import { objectBytes } from "../support/database";
import { statementsOf } from "../support/orm";
import { useDataSource } from "../support/use-data-source";
import { Document } from "./fixtures/documents";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [Document] });

/**
 * The method the library's writes should store pages with on this server: lz4 where it was built
 * with lz4, else its pglz. Each run proves the branch its server has; CI runs the suite on a server
 * of each kind.
 */
let expected: "lz4" | "pglz";
beforeAll(async () => {
  expected = (await serverOffersLz4()) ? "lz4" : "pglz";
});

/** Text the server compresses well: every 2 KiB page of it is stored compressed. */
const COMPRESSIBLE = Buffer.from("a large object of plain text, said again and again. ".repeat(6000));

/** The compression methods of the object's stored pages (pg_largeobject is the superuser's to read). */
async function pageCompression(oid: number): Promise<string[]> {
  const rows = await ds.query<{ method: string | null }[]>(
    "SELECT DISTINCT pg_column_compression(data) AS method FROM pg_largeobject WHERE loid = $1 AND pageno < $2",
    [oid, Math.floor(COMPRESSIBLE.length / 2048)],
  );
  return rows.map((r) => r.method ?? "none").sort();
}

async function serverOffersLz4(): Promise<boolean> {
  const rows = await ds.query<{ lz4: boolean }[]>(
    "SELECT 'lz4' = ANY (enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'",
  );
  return rows[0]!.lz4;
}

async function inTransaction<T>(work: (runner: QueryRunner) => Promise<T>): Promise<T> {
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  try {
    const result = await work(runner);
    await runner.commitTransaction();
    return result;
  } finally {
    await runner.release();
  }
}

test("the server's list of page compressions says truly whether it can store lz4 pages", async () => {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const setting = runner.query("SET LOCAL default_toast_compression = 'lz4'");
    await (expected === "lz4" ? expect(setting).resolves.toBeDefined() : expect(setting).rejects.toThrow(/lz4/));
  } finally {
    await runner.rollbackTransaction();
    await runner.release();
  }
});

test("a write stream stores its pages compressed with lz4 where the server has it (else pglz), and the bytes read back unchanged", async () => {
  const oid = await inTransaction(async (runner) => {
    const created = await LargeObject.create(runner);
    const lo = await LargeObject.open(runner, created, "w");
    await pipeline(Readable.from([COMPRESSIBLE]), lo.createWriteStream({ autoClose: false }));
    await lo.close();
    return created;
  });
  expect(await pageCompression(oid)).toEqual([expected]);
  expect((await objectBytes(ds, oid)).equals(COMPRESSIBLE)).toBe(true);
});

test("LargeObject.create from a stream and write() choose the same method", async () => {
  const created = await LargeObject.create(ds, { data: Readable.from([COMPRESSIBLE]) });
  expect(await pageCompression(created)).toEqual([expected]);
  expect((await objectBytes(ds, created)).equals(COMPRESSIBLE)).toBe(true);
  const written = await LargeObject.create(ds);
  const lo = await LargeObject.open(ds, written, "w");
  await lo.write(COMPRESSIBLE);
  await lo.close();
  expect(await pageCompression(written)).toEqual([expected]);
  expect((await objectBytes(ds, written)).equals(COMPRESSIBLE)).toBe(true);
});

test(`${TOAST_COMPRESSION_SETTING} = pglz keeps the server's pglz`, async () => {
  const oid = await inTransaction(async (runner) => {
    await runner.query(`SET LOCAL ${TOAST_COMPRESSION_SETTING} = 'pglz'`);
    return LargeObject.create(runner, { data: Readable.from([COMPRESSIBLE]) });
  });
  expect(await pageCompression(oid)).toEqual(["pglz"]);
});

test("the choice lasts until the caller's transaction ends, not beyond it", async () => {
  const runner = ds.createQueryRunner();
  try {
    const before = (await runner.query("SHOW default_toast_compression"))[0].default_toast_compression;
    await runner.startTransaction();
    await LargeObject.create(runner, { data: Readable.from([COMPRESSIBLE]) });
    expect((await runner.query("SHOW default_toast_compression"))[0].default_toast_compression).toBe(expected);
    await runner.commitTransaction();
    expect((await runner.query("SHOW default_toast_compression"))[0].default_toast_compression).toBe(before);
    expect(before).toBe("pglz");
  } finally {
    await runner.release();
  }
});

test("whether the server has lz4 is asked once per connection, not once per write", async () => {
  const statements = await statementsOf(ds, async (manager) => {
    for (let i = 0; i < 3; i++) await LargeObject.create(manager, { data: Readable.from([COMPRESSIBLE]) });
  });
  expect(statements.filter((s) => s.includes("pg_settings")).length).toBeLessThanOrEqual(1);
});

test("LargeObject.create from bytes in memory chooses the method in its one statement, and leaves the session's alone", async () => {
  const fromDataSource = await LargeObject.create(ds, { data: COMPRESSIBLE });
  expect(await pageCompression(fromDataSource)).toEqual([expected]);
  const runner = ds.createQueryRunner();
  try {
    const oid = await LargeObject.create(runner, { data: COMPRESSIBLE });
    expect(await pageCompression(oid)).toEqual([expected]);
    expect((await objectBytes(ds, oid)).equals(COMPRESSIBLE)).toBe(true);
    expect((await runner.query("SHOW default_toast_compression"))[0].default_toast_compression).toBe("pglz");
  } finally {
    await runner.release();
  }
});

test("creates batched in a transaction of yours, save() of small content or a short stream, and insert() choose the same method", async () => {
  // Whole pages only: a short last page is stored uncompressed.
  const small = COMPRESSIBLE.subarray(0, 98 * 2048);
  const short = COMPRESSIBLE.subarray(0, 30 * 2048);
  const batched = await inTransaction(async (runner) => {
    const [one] = await Promise.all([LargeObject.create(runner, { data: small }), LargeObject.create(runner, { data: short })]);
    const alone = await LargeObject.create(runner, { data: short });
    return [one!, alone];
  });
  const docs = ds.getRepository(Document);
  const saved = await docs.save({ name: "in memory", attachment: small });
  const streamed = await docs.save({ name: "short stream", attachment: Readable.from([short.subarray(0, 1000), short.subarray(1000)]) });
  const inserted = await docs.insert({ name: "inserted", attachment: short });
  const rows = await docs.findBy({ id: In([saved.id, streamed.id, inserted.identifiers[0]!.id as number]) });
  const oids = [...batched, ...rows.map((row) => row.attachment as number)];
  expect(oids).toHaveLength(5);
  for (const oid of oids) expect(await pageCompression(oid)).toEqual([expected]);
  expect((await objectBytes(ds, rows.find((r) => r.id === streamed.id)!.attachment as number)).equals(short)).toBe(true);
});
