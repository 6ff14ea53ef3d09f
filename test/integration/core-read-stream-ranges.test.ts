import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { randomBytes } from "../support/database";
import { drain } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
let oid: number;
const data = randomBytes(40 * 1024 * 1024 + 123, 7);
const size = data.length;

useDataSource((opened) => (ds = opened), {
  unlink: "end",
  setUp: async (opened) => void (oid = await LargeObject.create(opened, { data })),
});

async function range(options: { start?: number | bigint; end?: number | bigint; highWaterMark?: number }): Promise<Buffer> {
  const lo = await LargeObject.open(ds, oid, "r");
  return drain(lo.createReadStream(options));
}

test.each([
  ["the whole object", {}, 0, size],
  ["the first byte", { start: 0, end: 0 }, 0, 1],
  ["the last byte", { start: size - 1 }, size - 1, size],
  ["an inclusive end", { start: 10, end: 19 }, 10, 20],
  ["a range across a 256 KiB COPY row boundary", { start: 256 * 1024 - 3, end: 256 * 1024 + 2 }, 256 * 1024 - 3, 256 * 1024 + 3],
  ["a range across a 16 MiB window boundary", { start: 16 * 1024 * 1024 - 5, end: 32 * 1024 * 1024 + 4 }, 16 * 1024 * 1024 - 5, 32 * 1024 * 1024 + 5],
  ["an end beyond the size, clamped", { start: size - 10, end: size * 2 }, size - 10, size],
  ["an end exactly at the last byte", { end: size - 1 }, 0, size],
  ["bigint bounds", { start: 5n, end: 9n }, 5, 10],
])("%s", async (_name, options, from, to) => {
  const bytes = await range(options);
  expect(bytes.length).toBe(to - from);
  expect(bytes.equals(data.subarray(from, to))).toBe(true);
});

test("start == size, and start beyond the size, give an empty stream", async () => {
  expect((await range({ start: size })).length).toBe(0);
  expect((await range({ start: size + 1000, end: size + 2000 })).length).toBe(0);
});

test("a stream reports the bytes it read and its resolved range end", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ start: 100, end: 199 });
  const bytes = await drain(stream);
  expect(bytes.length).toBe(100);
  expect(stream.bytesRead).toBe(100);
  expect(stream.rangeEnd).toBe(200);
  expect(lo.isClosed).toBe(true);
});

test("start > end, and negative or fractional bounds, throw ERR_LO_INVALID_ARGUMENT and leave the handle usable", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  for (const options of [{ start: 10, end: 9 }, { start: -1 }, { end: -1 }, { start: 1.5 }, { end: NaN }, { highWaterMark: 0 }]) {
    expect(() => lo.createReadStream(options)).toThrow(expect.objectContaining({ code: "ERR_LO_INVALID_ARGUMENT", oid }));
  }
  expect((await drain(lo.createReadStream({ start: 0, end: 3 }))).equals(data.subarray(0, 4))).toBe(true);
});

test("the range is independent of the handle's position, and autoClose: false keeps the handle open", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  await lo.seek(1000);
  const first = await drain(lo.createReadStream({ start: 0, end: 9, autoClose: false }));
  expect(first.equals(data.subarray(0, 10))).toBe(true);
  expect(lo.isClosed).toBe(false);
  expect(await lo.tell()).toBe(1000);
  expect((await lo.read(5)).equals(data.subarray(1000, 1005))).toBe(true);
  await lo.close();
});
