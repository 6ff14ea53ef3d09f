import { setTimeout as sleep } from "node:timers/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

const MiB = 1024 * 1024;
let ds: DataSource;
let oid: number;
const data = randomBytes(40 * MiB, 21);

useDataSource((opened) => (ds = opened), {
  unlink: "end",
  setUp: async (opened) => void (oid = await LargeObject.create(opened, { data })),
});

test("a read stream nobody reads stops pulling from the server near its highWaterMark", async () => {
  const highWaterMark = 256 * 1024;
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ highWaterMark });
  stream.pause();
  stream.read(0); // start the flow without consuming anything
  await sleep(400);
  // Without backpressure the whole 40 MiB would have arrived by now.
  expect(stream.bytesRead).toBeGreaterThan(0);
  expect(stream.bytesRead).toBeLessThanOrEqual(highWaterMark + MiB);
  expect(stream.readableLength).toBeLessThanOrEqual(highWaterMark + MiB);
  stream.destroy();
  await new Promise((resolve) => stream.on("close", resolve));
});

test("a slow consumer never has much more than highWaterMark buffered, and gets every byte", async () => {
  const highWaterMark = 128 * 1024;
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ start: 10 * MiB, end: 26 * MiB + 99, highWaterMark });
  let received = 0;
  let maxBuffered = 0;
  let maxAhead = 0;
  const chunks: Buffer[] = [];
  let step = 0;
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    received += (chunk as Buffer).length;
    maxBuffered = Math.max(maxBuffered, stream.readableLength);
    maxAhead = Math.max(maxAhead, stream.bytesRead - received);
    step += 1;
    if (step % 16 === 0) await sleep(1);
  }
  expect(Buffer.concat(chunks).equals(data.subarray(10 * MiB, 26 * MiB + 100))).toBe(true);
  expect(maxBuffered).toBeLessThanOrEqual(highWaterMark + MiB);
  expect(maxAhead).toBeLessThanOrEqual(highWaterMark + MiB);
});

test("a write stream asks its producer to wait once highWaterMark bytes are pending", async () => {
  const target = await LargeObject.create(ds);
  const lo = await LargeObject.open(ds, target, "w");
  const stream = lo.createWriteStream({ highWaterMark: MiB });
  let maxPending = 0;
  let waits = 0;
  for (let at = 0; at < 12 * MiB; at += 256 * 1024) {
    const ok = stream.write(data.subarray(at, at + 256 * 1024));
    maxPending = Math.max(maxPending, stream.writableLength);
    if (!ok) {
      waits += 1;
      await new Promise((resolve) => stream.once("drain", resolve));
    }
  }
  stream.end();
  await new Promise((resolve, reject) => stream.on("finish", resolve).on("error", reject));
  expect(waits).toBeGreaterThan(0);
  expect(maxPending).toBeLessThanOrEqual(MiB + 256 * 1024);
  expect((await objectBytes(ds, target)).equals(data.subarray(0, 12 * MiB))).toBe(true);
});
