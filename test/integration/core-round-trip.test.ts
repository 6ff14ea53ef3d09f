import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { collect, drain } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened));

const SIZES = [0, 1, 2047, 2048, 2049, 1024 * 1024 - 1, 1024 * 1024 + 1];

test.each(SIZES)("%i bytes round-trip byte-exact through the write and read streams", async (size) => {
  const data = randomBytes(size, size + 1);
  const oid = await LargeObject.create(ds);
  const writer = await LargeObject.open(ds, oid, "w");
  // Uneven chunks, so the write stream has to re-chunk.
  const chunks = [data.subarray(0, 1), data.subarray(1, 1000), data.subarray(1000)].filter((c) => c.length > 0);
  await pipeline(Readable.from(chunks), writer.createWriteStream());
  expect(writer.isClosed).toBe(true);
  expect((await objectBytes(ds, oid)).equals(data)).toBe(true);
  const reader = await LargeObject.open(ds, oid, "r");
  expect((await drain(reader.createReadStream())).equals(data)).toBe(true);
});

test.each(SIZES)("%i bytes round-trip byte-exact through the handle's write() and read()", async (size) => {
  const data = randomBytes(size, size + 2);
  const oid = await LargeObject.create(ds);
  const writer = await LargeObject.open(ds, oid, "w", { chunkSize: 4096 });
  expect(await writer.write(data)).toBe(size);
  await writer.close();
  const reader = await LargeObject.open(ds, oid, "r");
  expect(await reader.size()).toBe(size);
  const whole = await reader.read(size + 10);
  expect(whole.equals(data)).toBe(true);
  expect((await reader.read()).length).toBe(0);
  await reader.close();
});

test("50 MiB round-trip byte-exact through the streams and the handle", async () => {
  const size = 50 * 1024 * 1024;
  const data = randomBytes(size, 50);
  const oid = await LargeObject.create(ds);
  const writer = await LargeObject.open(ds, oid, "w");
  const pieces: Buffer[] = [];
  for (let at = 0; at < size; at += 300_000) pieces.push(data.subarray(at, at + 300_000));
  await pipeline(Readable.from(pieces), writer.createWriteStream());
  // Read stream: crosses several COPY windows.
  const reader = await LargeObject.open(ds, oid, "r");
  const streamed = await collect(reader.createReadStream());
  expect(streamed.length).toBe(size);
  expect(streamed.equals(data)).toBe(true);
  // Handle: reads in its own chunk size.
  const handle = await LargeObject.open(ds, oid, "r");
  const parts: Buffer[] = [];
  for await (const chunk of handle) parts.push(chunk);
  await handle.close();
  expect(Buffer.concat(parts).equals(data)).toBe(true);
  // And the handle's write() of one 50 MiB buffer.
  const oid2 = await LargeObject.create(ds);
  const writer2 = await LargeObject.open(ds, oid2, "w");
  await writer2.write(data);
  await writer2.close();
  expect((await objectBytes(ds, oid2)).equals(data)).toBe(true);
});

describe("LargeObject.create with content", () => {
  const data = randomBytes(3 * 1024 * 1024 + 5, 9);

  test("from a string (UTF-8)", async () => {
    const oid = await LargeObject.create(ds, { data: "héllo wörld" });
    expect((await objectBytes(ds, oid)).toString("utf8")).toBe("héllo wörld");
  });

  test("from a small and a large Buffer, and a Uint8Array", async () => {
    const small = await LargeObject.create(ds, { data: data.subarray(0, 10) });
    expect((await objectBytes(ds, small)).equals(data.subarray(0, 10))).toBe(true);
    const large = await LargeObject.create(ds, { data });
    expect((await objectBytes(ds, large)).equals(data)).toBe(true);
    const view = await LargeObject.create(ds, { data: new Uint8Array(data.buffer, data.byteOffset + 3, 100) });
    expect((await objectBytes(ds, view)).equals(data.subarray(3, 103))).toBe(true);
  });

  test("from a Readable and an async iterable", async () => {
    const fromReadable = await LargeObject.create(ds, { data: Readable.from([data.subarray(0, 7), data.subarray(7)]) });
    expect((await objectBytes(ds, fromReadable)).equals(data)).toBe(true);
    async function* generate(): AsyncGenerator<Uint8Array | string> {
      yield "ab";
      yield data.subarray(0, 2 * 1024 * 1024);
      yield new Uint8Array([1, 2, 3]);
    }
    const fromIterable = await LargeObject.create(ds, { data: generate() });
    const expected = Buffer.concat([Buffer.from("ab"), data.subarray(0, 2 * 1024 * 1024), Buffer.from([1, 2, 3])]);
    expect((await objectBytes(ds, fromIterable)).equals(expected)).toBe(true);
  });

  test("from an empty stream, an empty string and nothing: an empty object each", async () => {
    const oids = [
      await LargeObject.create(ds, { data: Readable.from([]) }),
      await LargeObject.create(ds, { data: "" }),
      await LargeObject.create(ds, { data: Buffer.alloc(0) }),
      await LargeObject.create(ds),
    ];
    expect(new Set(oids).size).toBe(4);
    for (const oid of oids) {
      expect(await LargeObject.exists(ds, oid)).toBe(true);
      expect((await objectBytes(ds, oid)).length).toBe(0);
    }
    expect(await countObjects(ds)).toBe(4);
  });
});
