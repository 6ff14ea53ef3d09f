import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { rejection, sink } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
const data = randomBytes(6 * 1024 * 1024, 11);

useDataSource((opened) => (ds = opened), { poolSize: 2, checkClean: true });

async function* failingSource(after: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < after; at += 512 * 1024) yield data.subarray(at, at + 512 * 1024);
  throw new Error("source failed");
}

test("a source that errors mid-stream rolls the write stream's owned transaction back", async () => {
  const oid = await LargeObject.create(ds, { data: "before" });
  const lo = await LargeObject.open(ds, oid, "w");
  const stream = lo.createWriteStream();
  const err = await rejection(pipeline(failingSource(3 * 1024 * 1024), stream));
  expect(err).toMatchObject({ message: "source failed" });
  expect(stream.bytesWritten).toBeGreaterThanOrEqual(2 * 1024 * 1024);
  expect(lo.isClosed).toBe(true);
  await lo.abort(); // waits for the rollback the destroy started
  expect((await objectBytes(ds, oid)).toString()).toBe("before");
});

test("a source that errors mid-stream rolls back a transaction the handle started on the caller's runner", async () => {
  const oid = await LargeObject.create(ds, { data: "before" });
  const runner = ds.createQueryRunner();
  try {
    const lo = await LargeObject.open(runner, oid, "a");
    expect(runner.isTransactionActive).toBe(true);
    await rejection(pipeline(failingSource(2 * 1024 * 1024), lo.createWriteStream()));
    // pipeline() rejects as soon as the source fails, before the destination has finished its
    // destroy; abort() (idempotent) waits for the rollback before the runner is used again.
    await lo.abort();
    expect(runner.isTransactionActive).toBe(false);
    expect(runner.isReleased).toBe(false);
    expect(await runner.query("SELECT 2 AS two")).toEqual([{ two: 2 }]);
  } finally {
    await runner.release();
  }
  expect((await objectBytes(ds, oid)).toString()).toBe("before");
});

test("LargeObject.create from a source that errors leaves no object", async () => {
  const before = await countObjects(ds);
  const err = await rejection(LargeObject.create(ds, { data: failingSource(3 * 1024 * 1024) }));
  expect(err).toMatchObject({ message: "source failed" });
  expect(await countObjects(ds)).toBe(before);
});

test("LargeObject.create from content that is not bytes fails with ERR_LO_INVALID_VALUE and leaves no object", async () => {
  const before = await countObjects(ds);
  async function* notBytes(): AsyncGenerator<unknown> {
    yield data.subarray(0, 2 * 1024 * 1024);
    yield { an: "object" };
  }
  const err = await rejection(LargeObject.create(ds, { data: notBytes() as AsyncIterable<Uint8Array> }));
  expect(err).toMatchObject({ code: "ERR_LO_INVALID_VALUE" });
  expect(await countObjects(ds)).toBe(before);
});

test("an AbortSignal aborts a write stream: AbortError, nothing committed", async () => {
  const oid = await LargeObject.create(ds, { data: "before" });
  const lo = await LargeObject.open(ds, oid, "w");
  const controller = new AbortController();
  const stream = lo.createWriteStream({ signal: controller.signal });
  const source = new Readable({ read() {} });
  source.push(data.subarray(0, 3 * 1024 * 1024));
  const piping = pipeline(source, stream);
  await new Promise((resolve) => setTimeout(resolve, 30));
  controller.abort();
  expect(await rejection(piping)).toMatchObject({ name: "AbortError" });
  expect(lo.isClosed).toBe(true);
  expect((await objectBytes(ds, oid)).toString()).toBe("before");
});

test("an AbortSignal given to pipeline() aborts a write stream the same way", async () => {
  const oid = await LargeObject.create(ds, { data: "before" });
  const lo = await LargeObject.open(ds, oid, "w");
  const controller = new AbortController();
  const source = new Readable({ read() {} });
  source.push(data.subarray(0, 2 * 1024 * 1024));
  const piping = pipeline(source, lo.createWriteStream(), { signal: controller.signal });
  setTimeout(() => controller.abort(), 30);
  expect(await rejection(piping)).toMatchObject({ name: "AbortError" });
  expect((await objectBytes(ds, oid)).toString()).toBe("before");
});

test("an AbortSignal aborts a read stream mid-read and frees its connection", async () => {
  const oid = await LargeObject.create(ds, { data: randomBytes(40 * 1024 * 1024, 12) });
  const lo = await LargeObject.open(ds, oid, "r");
  const controller = new AbortController();
  const stream = lo.createReadStream({ signal: controller.signal, highWaterMark: 64 * 1024 });
  let received = 0;
  const slow = sink();
  stream.on("data", (chunk: Buffer) => {
    received += chunk.length;
    if (received > 1024 * 1024) controller.abort();
  });
  expect(await rejection(pipeline(stream, slow.stream))).toMatchObject({ name: "AbortError" });
  expect(received).toBeLessThan(40 * 1024 * 1024);
  expect(lo.isClosed).toBe(true);
});

test("an already-aborted signal fails the stream at once and closes the handle", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ signal: AbortSignal.abort() });
  expect(await rejection(pipeline(stream, sink().stream))).toMatchObject({ name: "AbortError" });
  await new Promise((resolve) => setImmediate(resolve));
  expect(lo.isClosed).toBe(true);
});

test("pipeline() carries a whole object from a read stream into a write stream", async () => {
  const from = await LargeObject.create(ds, { data });
  const to = await LargeObject.create(ds);
  await pipeline((await LargeObject.open(ds, from, "r")).createReadStream(), (await LargeObject.open(ds, to, "w")).createWriteStream());
  expect((await objectBytes(ds, to)).equals(data)).toBe(true);
});
