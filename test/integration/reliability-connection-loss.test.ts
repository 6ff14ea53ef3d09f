import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObjectRepository, oidOf } from "../../src";
import { idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { openVictim, objectDigests, terminateBusy, victimName } from "../support/faults";
import { checkedOut } from "../support/pool";
import { closed, drain, rejection, within } from "../support/streams";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

// The ORM layer's streams and saves when the server kills their backend: ERR_LO_CONNECTION, nothing
// half-written committed, and the pool (one connection) replaces the dead one for the next call.
const MiB = 1024 * 1024;
const app = victimName("conn_loss");
let owner: DataSource;
let admin: DataSource;
let ds: DataSource;
const big = randomBytes(24 * MiB, 77);

useDataSource((opened) => (owner = opened), {
  orm: [Document],
  admin: (opened) => (admin = opened),
  setUp: async () => void (ds = await openVictim([Document], app, { poolSize: 1 })),
  tearDown: () => ds.destroy(),
});
afterEach(async () => {
  // The next operation on the one-connection pool works, and nothing is left behind.
  const files = new LargeObjectRepository(ds.manager);
  const probe = await within(5000, ds.getRepository(Document).save({ name: "probe", attachment: "after" }), "a save after the kill");
  expect((await within(5000, files.read(probe, "attachment"))).toString()).toBe("after");
  expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(admin)).toBe(0);
});

const docs = () => owner.getRepository(Document);

async function rowsAndRecords(): Promise<unknown> {
  return {
    rows: await admin.query("SELECT id, name, attachment FROM orm_document ORDER BY id"),
    records: await admin.query("SELECT oid FROM typeorm_large_objects ORDER BY oid"),
    objects: [...(await objectDigests(admin)).entries()],
  };
}

test("a repository read stream whose backend is killed mid-read fails with ERR_LO_CONNECTION", async () => {
  const doc = await docs().save({ name: "read", attachment: big });
  const stream = await new LargeObjectRepository(ds.manager).createReadStream(doc, "attachment", { highWaterMark: 64 * 1024 });
  await new Promise((resolve) => stream.once("data", resolve));
  stream.pause();
  expect(await terminateBusy(admin, app)).toBe(1);
  const done = closed(stream);
  stream.resume();
  expect(await within(10_000, done)).toMatchObject({ code: "ERR_LO_CONNECTION", oid: doc.attachment });
  expect(stream.bytesRead).toBeLessThan(big.length);
  // The object is untouched.
  expect((await drain(await new LargeObjectRepository(owner.manager).createReadStream(doc, "attachment"))).equals(big)).toBe(true);
});

test("a repository write stream whose backend is killed mid-write commits nothing", async () => {
  const doc = await docs().save({ name: "write", attachment: "before" });
  const before = await rowsAndRecords();
  const stream = await new LargeObjectRepository(ds.manager).createWriteStream(doc, "attachment");
  await new Promise<void>((resolve, reject) => stream.write(big.subarray(0, 3 * MiB), (err) => (err ? reject(err) : resolve())));
  expect(await terminateBusy(admin, app)).toBe(1);
  const done = closed(stream);
  stream.write(big.subarray(3 * MiB, 6 * MiB));
  stream.end(big.subarray(6 * MiB, 7 * MiB));
  expect(await within(10_000, done)).toMatchObject({ code: "ERR_LO_CONNECTION", oid: doc.attachment });
  expect((await objectBytes(admin, oidOf(doc.attachment))).toString()).toBe("before");
  expect(await rowsAndRecords()).toEqual(before);
});

test("a write stream into a null column killed mid-write leaves the column null and no new object", async () => {
  const doc = await docs().save({ name: "null", attachment: null });
  const before = await rowsAndRecords();
  const stream = await new LargeObjectRepository(ds.manager).createWriteStream(doc, "attachment");
  await new Promise<void>((resolve, reject) => stream.write(big.subarray(0, 2 * MiB), (err) => (err ? reject(err) : resolve())));
  expect(await terminateBusy(admin, app)).toBe(1);
  const done = closed(stream);
  stream.end(big.subarray(2 * MiB, 4 * MiB));
  expect(await within(10_000, done)).toMatchObject({ code: "ERR_LO_CONNECTION" });
  expect(await rowsAndRecords()).toEqual(before);
});

/**
 * Content that yields eight chunks of 1 MiB, killing the saving backend after the second. `killed`
 * waits for the kill's own answer: the save can fail on the dead connection before it arrives.
 */
function killingContent(): { stream: Readable; killed: () => Promise<number> } {
  let kill: Promise<number> | undefined;
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let n = 0; n < 8; n += 1) {
      if (n === 2) await (kill = terminateBusy(admin, app));
      yield big.subarray(n * MiB, (n + 1) * MiB);
    }
  }
  return { stream: Readable.from(pieces()), killed: async () => (kill === undefined ? 0 : kill) };
}

test("save() of a new entity with a stream assigned, killed mid-upload: no row, no object, no record", async () => {
  const before = await rowsAndRecords();
  const content = killingContent();
  const err = await within(10_000, rejection(ds.getRepository(Document).save({ name: "upload", attachment: content.stream })));
  expect(await content.killed()).toBe(1);
  expect(err).toMatchObject({ code: "ERR_LO_CONNECTION" });
  expect(await rowsAndRecords()).toEqual(before);
});

test("save() replacing a loaded entity's content with a stream, killed mid-upload: the old row and object stay", async () => {
  const saved = await docs().save({ name: "replace", attachment: "old content" });
  const before = await rowsAndRecords();
  const loaded = await ds.getRepository(Document).findOneByOrFail({ id: saved.id });
  const content = killingContent();
  loaded.attachment = content.stream;
  loaded.name = "renamed";
  const err = await within(10_000, rejection(ds.getRepository(Document).save(loaded)));
  expect(await content.killed()).toBe(1);
  expect(err).toMatchObject({ code: "ERR_LO_CONNECTION" });
  expect(await rowsAndRecords()).toEqual(before);
  expect((await objectBytes(admin, oidOf(saved.attachment))).toString()).toBe("old content");
});
