import type { DataSource, QueryRunner } from "typeorm";
import { LargeObject, LargeObjectRepository, oidOf } from "../../src";
import { idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { openVictim, victimName } from "../support/faults";
import { checkedOut } from "../support/pool";
import { closed, drain, within } from "../support/streams";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

// A server-side timeout in the middle of a stream surfaces as ERR_LO_TIMEOUT, and the stream's
// transaction is rolled back: the object keeps its old bytes.
const MiB = 1024 * 1024;
const original = randomBytes(6 * MiB, 12);
const replacement = randomBytes(6 * MiB, 13);
let owner: DataSource;
let admin: DataSource;

useDataSource((opened) => (owner = opened), { orm: [Document], admin: (opened) => (admin = opened) });
afterEach(async () => {
  expect(await idleInTransaction(admin)).toBe(0);
});

/** Another transaction that has written the object's page at 4 MiB and not committed yet. */
async function holdPageAt4MiB(oid: number): Promise<QueryRunner> {
  const holder = admin.createQueryRunner();
  await holder.startTransaction();
  const lo = await LargeObject.open(holder, oid, "w");
  await lo.seek(4 * MiB);
  await lo.write("held");
  return holder;
}

describe.each([
  ["lock_timeout", { lock_timeout: 300 }, "55P03"],
  ["statement_timeout", { statement_timeout: 300 }, "57014"],
])("%s", (name, extra, sqlState) => {
  const app = victimName(`timeout_${name}`);
  let ds: DataSource;
  beforeAll(async () => {
    ds = await openVictim([Document], app, { poolSize: 1, extra });
  });
  afterAll(async () => {
    await ds.destroy();
  });

  test(`a write stream that waits on another writer's page past ${name} fails with ERR_LO_TIMEOUT and rolls back`, async () => {
    const doc = await owner.getRepository(Document).save({ name, attachment: original });
    const oid = oidOf(doc.attachment);
    const holder = await holdPageAt4MiB(oid);
    try {
      const lo = await new LargeObjectRepository(ds.manager).openStream(doc, "attachment", { mode: "w" });
      const stream = lo.createWriteStream();
      const done = closed(stream);
      stream.end(replacement);
      const err = await within(10_000, done, "the timed-out stream");
      expect(err).toMatchObject({ code: "ERR_LO_TIMEOUT", oid });
      expect((err as Error).cause).toMatchObject({ code: sqlState });
      // It failed in the middle: the pages before 4 MiB had gone through.
      expect(stream.bytesWritten).toBeGreaterThanOrEqual(4 * MiB);
      expect(lo.isClosed).toBe(true);
    } finally {
      await holder.rollbackTransaction();
      await holder.release();
    }
    expect((await objectBytes(admin, oid)).equals(original)).toBe(true);
    expect(checkedOut(ds)).toBe(0);
    expect(await within(2000, ds.query("SELECT 1 AS one"))).toEqual([{ one: 1 }]);
  });

  test(`write() waiting past ${name} on the row another transaction has locked fails with ERR_LO_TIMEOUT and changes nothing`, async () => {
    const doc = await owner.getRepository(Document).save({ name: `${name}-write`, attachment: original });
    const oid = oidOf(doc.attachment);
    const holder = admin.createQueryRunner();
    await holder.startTransaction();
    // Holding the row lock: write() locks the row before it touches the object.
    await holder.query("SELECT 1 FROM orm_document WHERE id = $1 FOR UPDATE", [doc.id]);
    try {
      const err = await within(10_000, new LargeObjectRepository(ds.manager).write(doc, "attachment", replacement).catch((e: unknown) => e));
      expect(err).toMatchObject({ code: "ERR_LO_TIMEOUT" });
    } finally {
      await holder.rollbackTransaction();
      await holder.release();
    }
    expect((await objectBytes(admin, oid)).equals(original)).toBe(true);
    expect(checkedOut(ds)).toBe(0);
  });
});

test("statement_timeout on a read stream whose consumer stalls: ERR_LO_TIMEOUT once it resumes, connection freed", async () => {
  const app = victimName("timeout_read");
  const ds = await openVictim([Document], app, { poolSize: 1, extra: { statement_timeout: 300 } });
  try {
    const big = randomBytes(40 * MiB, 14);
    const doc = await owner.getRepository(Document).save({ name: "slow reader", attachment: big });
    const stream = await new LargeObjectRepository(ds.manager).createReadStream(doc, "attachment", { highWaterMark: 64 * 1024 });
    await new Promise((resolve) => stream.once("data", resolve));
    stream.pause();
    // The COPY statement stays open while the consumer sleeps; the server cancels it when it can.
    await new Promise((resolve) => setTimeout(resolve, 600));
    const done = closed(stream);
    stream.resume();
    const err = await within(10_000, done);
    expect(err).toMatchObject({ code: "ERR_LO_TIMEOUT", oid: doc.attachment });
    expect((err as Error).cause).toMatchObject({ code: "57014" });
    expect(checkedOut(ds)).toBe(0);
    // The object is intact, and a consumer that keeps up finishes within the timeout.
    expect((await drain(await new LargeObjectRepository(ds.manager).createReadStream(doc, "attachment", { end: 8 * MiB - 1 }))).equals(big.subarray(0, 8 * MiB))).toBe(true);
  } finally {
    await ds.destroy();
  }
});
