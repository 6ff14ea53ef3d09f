import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { checkClean: true });

test("`await using` closes the handle and commits at the end of the block", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  let handle: LargeObject | undefined;
  {
    await using lo = await LargeObject.open(ds, oid, "a");
    handle = lo;
    await lo.write("def");
    expect(lo.isClosed).toBe(false);
  }
  expect(handle.isClosed).toBe(true);
  expect((await objectBytes(ds, oid)).toString()).toBe("abcdef");
});

test("`await using` also closes the handle when the block throws", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  let handle: LargeObject | undefined;
  const attempt = async (): Promise<void> => {
    await using lo = await LargeObject.open(ds, oid, "r");
    handle = lo;
    await lo.read(1);
    throw new Error("inside the block");
  };
  await expect(attempt()).rejects.toThrow("inside the block");
  expect(handle?.isClosed).toBe(true);
});

test("Symbol.asyncDispose is close(): idempotent after an explicit close", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  const lo = await LargeObject.open(ds, oid, "w");
  await lo.write("X");
  await lo.close();
  await lo[Symbol.asyncDispose]();
  expect((await objectBytes(ds, oid)).toString()).toBe("Xbc");
});

test("`for await` iterates from the current position in chunkSize pieces, and breaking out leaves the handle open", async () => {
  const data = randomBytes(10_000, 5);
  const oid = await LargeObject.create(ds, { data });
  const lo = await LargeObject.open(ds, oid, "r", { chunkSize: 4096 });
  await lo.seek(100);
  const sizes: number[] = [];
  const parts: Buffer[] = [];
  for await (const chunk of lo) {
    sizes.push(chunk.length);
    parts.push(chunk);
  }
  expect(sizes).toEqual([4096, 4096, 10_000 - 100 - 8192]);
  expect(Buffer.concat(parts).equals(data.subarray(100))).toBe(true);
  await lo.seek(0);
  for await (const chunk of lo) {
    expect(chunk.equals(data.subarray(0, 4096))).toBe(true);
    break;
  }
  expect(lo.isClosed).toBe(false);
  expect((await lo.read(4)).equals(data.subarray(4096, 4100))).toBe(true);
  await lo.close();
});

test("`for await` over an empty object yields nothing", async () => {
  const oid = await LargeObject.create(ds);
  await using lo = await LargeObject.open(ds, oid, "r");
  const chunks: Buffer[] = [];
  for await (const chunk of lo) chunks.push(chunk);
  expect(chunks).toEqual([]);
});
