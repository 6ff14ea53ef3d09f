import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { expectConnectionFree as connectionFree } from "../support/pool";
import { closed } from "../support/streams";
import { useOneConnection } from "../support/use-data-source";

// One connection: any leak makes the next query wait forever.
let ds: DataSource;
let admin: DataSource;
const data = randomBytes(40 * 1024 * 1024, 3);
let oid: number;

useOneConnection((pool, observer) => ((ds = pool), (admin = observer)), {
  unlink: "end",
  setUp: async () => void (oid = await LargeObject.create(admin, { data })),
});

const expectConnectionFree = (): Promise<void> => connectionFree(ds, admin, "a query after the destroy");

test("destroying a read stream mid-read frees its connection", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ highWaterMark: 64 * 1024 });
  const first = await new Promise<Buffer>((resolve) => stream.once("data", resolve));
  expect(first.equals(data.subarray(0, first.length))).toBe(true);
  const done = closed(stream);
  stream.destroy();
  expect(await done).toBeUndefined();
  expect(lo.isClosed).toBe(true);
  await expectConnectionFree();
});

test("destroying a read stream with an error emits that error and frees the connection", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ start: 5 * 1024 * 1024 });
  await new Promise((resolve) => stream.once("data", resolve));
  const done = closed(stream);
  const reason = new Error("consumer gave up");
  stream.destroy(reason);
  expect(await done).toBe(reason);
  await expectConnectionFree();
});

test("destroying a read stream before it has read anything frees the connection", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream();
  const done = closed(stream);
  stream.destroy();
  await done;
  await expectConnectionFree();
});

test("destroying a write stream mid-write commits nothing and frees the connection", async () => {
  const target = await LargeObject.create(admin, { data: "original" });
  const lo = await LargeObject.open(ds, target, "w");
  const stream = lo.createWriteStream();
  await new Promise<void>((resolve, reject) => stream.write(data.subarray(0, 3 * 1024 * 1024), (err) => (err ? reject(err) : resolve())));
  expect(stream.bytesWritten).toBeGreaterThan(0);
  stream.write(data.subarray(3 * 1024 * 1024, 6 * 1024 * 1024));
  const done = closed(stream);
  stream.destroy();
  await done;
  await expectConnectionFree();
  expect((await objectBytes(admin, target)).toString()).toBe("original");
});

test("a create whose content stream is destroyed leaves no object and frees the connection", async () => {
  const before = (await admin.query("SELECT count(*)::int AS n FROM pg_largeobject_metadata")) as { n: number }[];
  const source = new Readable({ read() {} });
  const creating = LargeObject.create(ds, { data: source });
  source.push(data.subarray(0, 2 * 1024 * 1024));
  source.push(data.subarray(0, 2 * 1024 * 1024));
  await new Promise((resolve) => setTimeout(resolve, 50));
  source.destroy(new Error("upload cut off"));
  await expect(creating).rejects.toThrow("upload cut off");
  await expectConnectionFree();
  const after = (await admin.query("SELECT count(*)::int AS n FROM pg_largeobject_metadata")) as { n: number }[];
  expect(after[0]!.n).toBe(before[0]!.n);
});
