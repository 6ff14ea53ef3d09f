import { randomBytes } from "node:crypto";
import { DataSource } from "typeorm";
import { LargeObject, LargeObjectRepository, configureReplicaReads, isLargeObjectError } from "../../src";
import { collect } from "../support/streams";
import type { ScratchServer } from "../support/scratch-server";
import { caughtUp, portOf, queryOn, statementsByPort, useReplicatedServers } from "../support/replication";
import { CleanupDoc } from "./fixtures/cleanup";

// A real primary and a hot standby made from it with pg_basebackup, each on a free port.
const servers = useReplicatedServers([CleanupDoc]);
let primary: ScratchServer;
let standby: ScratchServer;
let ds: DataSource;
beforeAll(() => ({ primary, standby, ds } = servers));

afterEach(async () => {
  await queryOn(standby, "SELECT pg_wal_replay_resume()");
  configureReplicaReads(ds, { readFrom: "read-your-writes", maxReplayWaitMs: 500 });
});

async function readAll(oid: number, options: Parameters<typeof LargeObject.open>[3] = {}): Promise<{ port: number; bytes: Buffer }> {
  const lo = await LargeObject.open(ds, oid, "r", options);
  const port = portOf(lo);
  return { port, bytes: await collect(lo.createReadStream()) };
}

test("a read right after a write runs on the standby and sees the write", async () => {
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const oid = await LargeObject.create(ds, { data });
  const { port, bytes } = await readAll(oid);
  expect(port).toBe(standby.port);
  expect(bytes.equals(data)).toBe(true);
  const doc = await ds.getRepository(CleanupDoc).save({ name: "fresh", file: Buffer.from("saved through the ORM") });
  const files = new LargeObjectRepository(ds.manager);
  expect((await files.read(doc, "file")).toString()).toBe("saved through the ORM");
  await files.write(doc, "file", "rewritten");
  expect((await files.read(doc, "file")).toString()).toBe("rewritten");
  expect(await files.size(doc, "file")).toBe("rewritten".length);
  expect((await collect(await files.createReadStream(doc, "file", { start: 2 }))).toString()).toBe("written");
});

test("while the standby does not replay, read-your-writes waits its bound and reads on the primary; replica reads what the standby has", async () => {
  const oid = await LargeObject.create(ds, { data: "old content" });
  await caughtUp(primary, standby);
  await queryOn(standby, "SELECT pg_wal_replay_pause()");
  configureReplicaReads(ds, { maxReplayWaitMs: 300 });

  const lo = await LargeObject.open(ds, oid, "w");
  await lo.write("new");
  await lo.close();

  const started = Date.now();
  const fresh = await readAll(oid);
  expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  expect(fresh).toEqual({ port: primary.port, bytes: Buffer.from("new content") });
  expect(await readAll(oid, { readFrom: "replica" })).toEqual({ port: standby.port, bytes: Buffer.from("old content") });
  expect(await readAll(oid, { readFrom: "primary" })).toEqual({ port: primary.port, bytes: Buffer.from("new content") });

  await queryOn(standby, "SELECT pg_wal_replay_resume()");
  expect(await readAll(oid)).toEqual({ port: standby.port, bytes: Buffer.from("new content") });
});

test("what a lagging standby does not have yet is read on the primary, never ERR_LO_NOT_FOUND", async () => {
  await caughtUp(primary, standby);
  await queryOn(standby, "SELECT pg_wal_replay_pause()");
  const oid = await LargeObject.create(ds, { data: "made while the standby is paused" });
  const doc = await ds.getRepository(CleanupDoc).save({ name: "paused", file: Buffer.from("row made while paused") });
  for (const readFrom of ["replica", "read-your-writes"] as const) {
    const { port, bytes } = await readAll(oid, { readFrom, chunkSize: 4096 });
    expect(port).toBe(primary.port);
    expect(bytes.toString()).toBe("made while the standby is paused");
    const files = new LargeObjectRepository(ds.manager, { readFrom });
    expect((await files.read(doc, "file")).toString()).toBe("row made while paused");
  }
  // An object the primary has not either is still not found.
  const missing = await LargeObject.open(ds, 4_000_000_000, "r").catch((err: unknown) => err);
  expect(isLargeObjectError(missing, "ERR_LO_NOT_FOUND")).toBe(true);
});

test("a write in the caller's transaction is waited for once that transaction has committed", async () => {
  const oid = await LargeObject.create(ds, { data: "before" });
  await caughtUp(primary, standby);
  await queryOn(standby, "SELECT pg_wal_replay_pause()");
  configureReplicaReads(ds, { maxReplayWaitMs: 100 });
  await ds.transaction(async (manager) => {
    const lo = await LargeObject.open(manager, oid, "w");
    await lo.write("AFTER!");
    await lo.close();
  });
  expect(await readAll(oid)).toEqual({ port: primary.port, bytes: Buffer.from("AFTER!") });
  await queryOn(standby, "SELECT pg_wal_replay_resume()");
  expect(await readAll(oid)).toEqual({ port: standby.port, bytes: Buffer.from("AFTER!") });
});

test("a read costs the same statements on a standby as on a single server; the commit before it costs none more", async () => {
  const data = randomBytes(100_000);
  const oid = await LargeObject.create(ds, { data });
  await readAll(oid); // the standby is seen to have replayed the commit
  const onStandby = await statementsByPort(() => readAll(oid));
  expect(onStandby.every((s) => s.port === standby.port)).toBe(true);

  const single = await new DataSource({ type: "postgres", url: primary.url() }).initialize();
  try {
    const lo = await LargeObject.open(single, oid, "r");
    const alone = await statementsByPort(() => collect(lo.createReadStream()));
    // The single server's handle was opened before the counting: the statement that measured the
    // object and read it whole (it is under 1 MiB) is not in `alone`.
    expect(onStandby.map((s) => s.text)).toEqual([
      expect.stringMatching(/^COPY \(WITH s AS \([\s\S]*lo_lseek64\(lo_open\(s\.oid[\s\S]*lo_get/),
      ...alone.map((s) => s.text),
    ]);
    // Content past one statement's size, which needs a transaction on a single server too; the
    // question whether the server has lz4 is asked once per connection, so it is left out.
    const streamed = randomBytes(1024 * 1024 + 1);
    const writes = (list: { text: string }[]): string[] => list.map((s) => s.text).filter((t) => !t.includes("pg_settings"));
    const create = writes(await statementsByPort(() => LargeObject.create(ds, { data: streamed })));
    const createAlone = writes(await statementsByPort(() => LargeObject.create(single, { data: streamed })));
    // The commit asks for its WAL position in the same round trip, after a ";".
    expect(create.map((t) => t.split(";")[0])).toEqual(createAlone.map((t) => t.split(";")[0]));
    expect(create.map((t) => t.replace(/^COMMIT;.*/s, "COMMIT"))).toEqual(createAlone);
    expect(create.at(-1)).toContain("pg_current_wal_insert_lsn");
    // Content of one statement, which a single server runs alone, still commits to learn the position.
    const small = writes(await statementsByPort(() => LargeObject.create(ds, { data })));
    expect(small.at(-1)).toContain("pg_current_wal_insert_lsn");
    // The first read after a write asks the standby where its replay is: one statement more.
    const afterWrite = await statementsByPort(() => readAll(oid));
    const checks = afterWrite.filter((s) => s.text.includes("pg_last_wal_replay_lsn"));
    expect(checks.length).toBeGreaterThanOrEqual(1);
    expect(afterWrite.length - checks.length).toBe(onStandby.length);
    expect(afterWrite.slice(checks.length).map((s) => s.text)).toEqual(onStandby.map((s) => s.text));
  } finally {
    await single.destroy();
  }
});

test("a bad readFrom is refused with ERR_LO_INVALID_ARGUMENT", async () => {
  const oid = await LargeObject.create(ds, { data: "x" });
  const bad = await LargeObject.open(ds, oid, "r", { readFrom: "standby" as never }).catch((err: unknown) => err);
  expect(isLargeObjectError(bad, "ERR_LO_INVALID_ARGUMENT")).toBe(true);
  expect(() => configureReplicaReads(ds, { maxReplayWaitMs: -1 })).toThrow(/maxReplayWaitMs/);
});
