import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { within } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

const MiB = 1024 * 1024;
const WINDOW = 16 * MiB;
let ds: DataSource;
const data = randomBytes(2 * WINDOW + 7, 41); // three windows
let from: number;

useDataSource((opened) => (ds = opened), {
  checkClean: true,
  unlink: "end",
  setUp: async (opened) => void (from = await LargeObject.create(opened, { data })),
});

// A paused COPY holds the connection: a write stream fed by the read stream, on the same
// connection, used to wait behind it forever.
test("regression: piping one object into another inside one transaction does not deadlock", async () => {
  const to = await within(
    20_000,
    ds.transaction(async (manager) => {
      const target = await LargeObject.create(manager);
      const reader = await LargeObject.open(manager, from, "r");
      const writer = await LargeObject.open(manager, target, "w");
      await pipeline(reader.createReadStream({ highWaterMark: 256 * 1024 }), writer.createWriteStream());
      return target;
    }),
    "the copy inside one transaction",
  );
  expect((await objectBytes(ds, to)).equals(data)).toBe(true);
});

test("while other work waits for the connection, the read stream buffers at most one window beyond highWaterMark", async () => {
  const highWaterMark = 64 * 1024;
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  try {
    const target = await LargeObject.create(runner);
    const reader = await LargeObject.open(runner, from, "r");
    const writer = await LargeObject.open(runner, target, "w");
    const stream = reader.createReadStream({ highWaterMark });
    let maxBuffered = 0;
    const slowSink = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        maxBuffered = Math.max(maxBuffered, stream.readableLength);
        // Each chunk costs a statement on the same connection as the COPY.
        writer.write(chunk).then(() => callback(), callback);
      },
    });
    await within(20_000, pipeline(stream, slowSink), "the contended copy");
    await writer.close();
    expect(maxBuffered).toBeGreaterThan(highWaterMark);
    expect(maxBuffered).toBeLessThanOrEqual(highWaterMark + WINDOW + MiB);
    await runner.commitTransaction();
    expect((await objectBytes(ds, target)).equals(data)).toBe(true);
  } finally {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
    await runner.release();
  }
});
