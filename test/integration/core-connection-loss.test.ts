import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { expectConnectionFree } from "../support/pool";
import { closed, rejection } from "../support/streams";
import { useOneConnection } from "../support/use-data-source";

const MiB = 1024 * 1024;
// One connection: the pool must replace the killed one for the next query to run.
let ds: DataSource;
let admin: DataSource;
const data = randomBytes(40 * MiB, 31);
let oid: number;

useOneConnection((pool, observer) => ((ds = pool), (admin = observer)), {
  unlink: "end",
  setUp: async () => void (oid = await LargeObject.create(admin, { data })),
});
afterEach(() => expectConnectionFree(ds, admin, "a query after the connection died"));

async function terminate(handle: LargeObject): Promise<void> {
  const pid = (handle.scope.client as unknown as { processID: number }).processID;
  expect(await admin.query("SELECT pg_terminate_backend($1) AS killed", [pid])).toEqual([{ killed: true }]);
}

test("ERR_LO_CONNECTION: the backend of a read stream is terminated mid-read", async () => {
  const lo = await LargeObject.open(ds, oid, "r");
  const stream = lo.createReadStream({ highWaterMark: 64 * 1024 });
  await new Promise((resolve) => stream.once("data", resolve));
  stream.pause();
  await terminate(lo);
  const done = closed(stream);
  stream.resume();
  const err = await done;
  expect(err).toMatchObject({ code: "ERR_LO_CONNECTION", oid });
  expect(stream.bytesRead).toBeLessThan(data.length);
  expect(lo.isClosed).toBe(true);
});

test("ERR_LO_CONNECTION: the backend of a write stream is terminated mid-write, and nothing is committed", async () => {
  const target = await LargeObject.create(admin, { data: "before" });
  const lo = await LargeObject.open(ds, target, "w");
  const stream = lo.createWriteStream();
  await new Promise<void>((resolve, reject) => stream.write(data.subarray(0, 2 * MiB), (err) => (err ? reject(err) : resolve())));
  await terminate(lo);
  const done = closed(stream);
  stream.write(data.subarray(2 * MiB, 4 * MiB));
  stream.end(data.subarray(4 * MiB, 5 * MiB));
  expect(await done).toMatchObject({ code: "ERR_LO_CONNECTION", oid: target });
  expect((await objectBytes(admin, target)).toString()).toBe("before");
});

test("ERR_LO_CONNECTION: a handle whose backend is gone fails its next call, and close() says nothing was committed", async () => {
  const target = await LargeObject.create(admin, { data: "before" });
  const lo = await LargeObject.open(ds, target, "rw");
  await lo.write("AFTER!");
  await terminate(lo);
  expect(await rejection(lo.read(10))).toMatchObject({ code: "ERR_LO_CONNECTION", oid: target });
  expect(await rejection(lo.close())).toMatchObject({ code: "ERR_LO_CONNECTION" });
  expect((await objectBytes(admin, target)).toString()).toBe("before");
});

test("ERR_LO_CONNECTION: LargeObject.create whose backend dies mid-content leaves no object", async () => {
  const before = (await admin.query("SELECT count(*)::int AS n FROM pg_largeobject_metadata")) as { n: number }[];
  let killed = false;
  async function* content(): AsyncGenerator<Buffer> {
    yield data.subarray(0, 2 * MiB);
    yield data.subarray(2 * MiB, 4 * MiB);
    const pids = (await admin.query(
      // The create's session is inside its transaction: idle, or still storing a pipelined write.
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
    )) as { pid: number }[];
    for (const { pid } of pids) await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    killed = pids.length > 0;
    yield data.subarray(4 * MiB, 6 * MiB);
  }
  expect(await rejection(LargeObject.create(ds, { data: content() }))).toMatchObject({ code: "ERR_LO_CONNECTION" });
  expect(killed).toBe(true);
  const after = (await admin.query("SELECT count(*)::int AS n FROM pg_largeobject_metadata")) as { n: number }[];
  expect(after[0]!.n).toBe(before[0]!.n);
});
