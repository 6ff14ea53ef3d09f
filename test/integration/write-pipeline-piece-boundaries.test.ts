import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

// Small pieces, so that one object is many pipelined lowrite calls with two of them in flight.
const PIECE = 4096;
let ds: DataSource;
const created: number[] = [];

useDataSource((opened) => (ds = opened), { unlink: created });

/** `data` cut into chunks of the given sizes, cycling through them. */
function chunked(data: Buffer, sizes: number[]): Readable {
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return Readable.from(chunks, { objectMode: false });
}

async function writeThroughStream(data: Buffer, chunkSizes: number[], mode: "w" | "a" = "w", before?: Buffer): Promise<Buffer> {
  const oid = await LargeObject.create(ds, before === undefined ? {} : { data: before });
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, mode);
  const stream = lo.createWriteStream({ chunkSize: PIECE });
  await pipeline(chunked(data, chunkSizes), stream);
  expect(stream.bytesWritten).toBe(data.length);
  expect(lo.isClosed).toBe(true);
  return objectBytes(ds, oid);
}

test.each([1, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE, 3 * PIECE + 1, 64 * PIECE - 1])(
  "%i bytes written through the pipelined stream arrive byte-exact",
  async (length) => {
    const data = randomBytes(length, length);
    expect((await writeThroughStream(data, [1000, 1, PIECE, 3 * PIECE + 7])).equals(data)).toBe(true);
  },
);

test("a stream with the default piece sizes (64 KiB for the first MiB, then 256 KiB) arrives byte-exact across the switch", async () => {
  const MiB = 1024 * 1024;
  const data = randomBytes(MiB + 3 * 256 * 1024 + 12_345, 13);
  const oid = await LargeObject.create(ds);
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, "w");
  const stream = lo.createWriteStream();
  const put = (chunk: Buffer): Promise<void> =>
    new Promise((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())));
  // One 64 KiB chunk is a whole first piece: it goes out at once.
  await put(data.subarray(0, 65_536));
  expect(stream.bytesWritten).toBe(65_536);
  await put(data.subarray(65_536, MiB));
  expect(stream.bytesWritten).toBe(MiB);
  // Past the first MiB pieces are 256 KiB: the next 64 KiB is held until one is full.
  await put(data.subarray(MiB, MiB + 65_536));
  expect(stream.bytesWritten).toBe(MiB);
  await pipeline(chunked(data.subarray(MiB + 65_536), [1, 100_000, 7_777, 300_000]), stream);
  expect(stream.bytesWritten).toBe(data.length);
  expect((await objectBytes(ds, oid)).equals(data)).toBe(true);
  // create() with the same content, chunked otherwise, arrives byte-exact too.
  const created2 = await LargeObject.create(ds, { data: chunked(data, [40_000, 250_000]) });
  created.push(created2);
  expect((await objectBytes(ds, created2)).equals(data)).toBe(true);
});

test("a chunk spanning many pieces goes out piece by piece, and the bytes stay in order", async () => {
  const data = randomBytes(50 * PIECE + 123, 7);
  expect((await writeThroughStream(data, [data.length])).equals(data)).toBe(true);
});

test("a producer that reuses its buffer after each callback cannot corrupt pieces still in flight", async () => {
  const data = randomBytes(40 * PIECE + 5, 11);
  const oid = await LargeObject.create(ds);
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, "w");
  const stream = lo.createWriteStream({ chunkSize: PIECE });
  const scratch = Buffer.alloc(PIECE);
  for (let at = 0; at < data.length; at += PIECE) {
    const length = data.copy(scratch, 0, at, Math.min(at + PIECE, data.length));
    await new Promise<void>((resolve, reject) => stream.write(scratch.subarray(0, length), (err) => (err ? reject(err) : resolve())));
    // Overwritten as soon as the stream says it is done with the chunk.
    scratch.fill(0xee);
  }
  await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
  expect((await objectBytes(ds, oid)).equals(data)).toBe(true);
});

test("append mode pipelines every piece to the end of the existing content", async () => {
  const before = randomBytes(PIECE + 17, 5);
  const data = randomBytes(9 * PIECE + 3, 6);
  const bytes = await writeThroughStream(data, [PIECE / 2, 3 * PIECE], "a", before);
  expect(bytes.equals(Buffer.concat([before, data]))).toBe(true);
});

test("a statement queued on the handle's runner between two writes runs between pipeline runs", async () => {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const oid = await LargeObject.create(runner);
    created.push(oid);
    const lo = await LargeObject.open(runner, oid, "w");
    const stream = lo.createWriteStream({ chunkSize: PIECE });
    const first = randomBytes(3 * PIECE, 8);
    await new Promise<void>((resolve, reject) => stream.write(first, (err) => (err ? reject(err) : resolve())));
    // The writer is idle now: it must have handed the connection back.
    expect(await lo.tell()).toBe(3 * PIECE);
    const second = randomBytes(2 * PIECE + 1, 9);
    await new Promise<void>((resolve, reject) => stream.end(second, () => resolve()).once("error", reject));
    await runner.commitTransaction();
    expect((await objectBytes(ds, oid)).equals(Buffer.concat([first, second]))).toBe(true);
  } finally {
    await runner.release();
  }
});
