import { Client } from "pg";
import type { DataSource, EntitySubscriberInterface } from "typeorm";
import { LargeObject, WHOLE_READ_LIMIT } from "../../src";
import { countObjects, databaseUrl, objectBytes, objectExists } from "../support/database";
import { checkedOut } from "../support/pool";
import { drain, rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { checkClean: true });

test("a QueryRunner's transaction is joined: close() commits nothing, the caller's rollback leaves no object", async () => {
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  try {
    const oid = await LargeObject.create(runner, { data: "inside" });
    const lo = await LargeObject.open(runner, oid, "a");
    await lo.write(" and more");
    await lo.close();
    expect(runner.isTransactionActive).toBe(true);
    // Visible inside the transaction, not outside it.
    expect(await LargeObject.exists(runner, oid)).toBe(true);
    expect(await objectExists(ds, oid)).toBe(false);
    const again = await LargeObject.open(runner, oid, "r");
    expect((await drain(again.createReadStream())).toString()).toBe("inside and more");
    expect(runner.isTransactionActive).toBe(true);
    await runner.rollbackTransaction();
    expect(await objectExists(ds, oid)).toBe(false);
  } finally {
    await runner.release();
  }
  expect(await countObjects(ds)).toBe(0);
});

test("a QueryRunner's transaction that commits keeps the object", async () => {
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  let oid: number;
  try {
    oid = await LargeObject.create(runner);
    const lo = await LargeObject.open(runner, oid, "w");
    const stream = lo.createWriteStream();
    stream.end(Buffer.from("streamed"));
    await new Promise((resolve, reject) => stream.on("finish", resolve).on("error", reject));
    await runner.commitTransaction();
  } finally {
    await runner.release();
  }
  expect((await objectBytes(ds, oid)).toString()).toBe("streamed");
});

test("dataSource.transaction(manager => ...) is joined, and its rollback leaves no object", async () => {
  let created = 0;
  const err = await rejection(
    ds.transaction(async (manager) => {
      created = await LargeObject.create(manager, { data: Buffer.alloc(3 * 1024 * 1024, 1) });
      const lo = await LargeObject.open(manager, created, "rw");
      await lo.seek(0, "end");
      await lo.write("tail");
      await lo.close();
      expect(await LargeObject.exists(manager, created)).toBe(true);
      throw new Error("roll it back");
    }),
  );
  expect(err).toMatchObject({ message: "roll it back" });
  expect(created).toBeGreaterThan(0);
  expect(await objectExists(ds, created)).toBe(false);
});

test("dataSource.transaction(manager => ...) that succeeds commits the object with it", async () => {
  const oid = await ds.transaction(async (manager) => {
    const created = await LargeObject.create(manager, { data: "kept" });
    await LargeObject.unlink(manager, created);
    return LargeObject.create(manager, { data: "kept too" });
  });
  expect((await objectBytes(ds, oid)).toString()).toBe("kept too");
  expect(await countObjects(ds)).toBe(1);
});

test("an unlink in a rolled-back transaction leaves the object", async () => {
  const oid = await LargeObject.create(ds, { data: "survivor" });
  await rejection(
    ds.transaction(async (manager) => {
      await LargeObject.unlink(manager, oid);
      expect(await LargeObject.exists(manager, oid)).toBe(false);
      throw new Error("undo");
    }),
  );
  expect((await objectBytes(ds, oid)).toString()).toBe("survivor");
});

test("a runner without a transaction: the handle owns one on it, commits on close, and leaves the runner to the caller", async () => {
  const oid = await LargeObject.create(ds, { data: "0123" });
  const runner = ds.createQueryRunner();
  try {
    const lo = await LargeObject.open(runner, oid, "w");
    expect(runner.isTransactionActive).toBe(true);
    await lo.write("ab");
    await lo.close();
    expect(runner.isTransactionActive).toBe(false);
    expect(runner.isReleased).toBe(false);
    expect((await objectBytes(ds, oid)).toString()).toBe("ab23");
    // abort() rolls back what the handle wrote.
    const rolledBack = await LargeObject.open(runner, oid, "w");
    await rolledBack.write("XX");
    await rolledBack.abort();
    expect(runner.isTransactionActive).toBe(false);
    expect((await objectBytes(ds, oid)).toString()).toBe("ab23");
  } finally {
    await runner.release();
  }
});

test("on a runner whose transaction a handle began, work started while its commit is queued waits for the commit and succeeds", async () => {
  const oid = await LargeObject.create(ds, { data: "0123" });
  const runner = ds.createQueryRunner();
  try {
    const lo = await LargeObject.open(runner, oid, "r");
    expect(runner.isTransactionActive).toBe(true);
    const closing = lo.close();
    // Started while the runner is still in the handle's transaction, whose COMMIT is queued.
    const exists = LargeObject.exists(runner, oid);
    const size = LargeObject.open(runner, oid, "r").then(async (again) => {
      const bytes = await again.size();
      await again.close();
      return bytes;
    });
    await closing;
    expect(await exists).toBe(true);
    expect(await size).toBe(4);
    expect(runner.isTransactionActive).toBe(false);
  } finally {
    await runner.release();
  }
  await LargeObject.unlink(ds, oid);
});

test("a DataSource: create commits object and content together, and each handle releases its runner", async () => {
  const oid = await LargeObject.create(ds, { data: "fresh" });
  expect((await objectBytes(ds, oid)).toString()).toBe("fresh");
  const lo = await LargeObject.open(ds.manager, oid, "rw");
  expect(checkedOut(ds)).toBe(1);
  await lo.write("F");
  expect((await objectBytes(ds, oid)).toString()).toBe("fresh");
  await lo.close();
  expect(checkedOut(ds)).toBe(0);
  expect((await objectBytes(ds, oid)).toString()).toBe("Fresh");
});

test("a read handle of its own sees one snapshot for its whole life", async () => {
  const oid = await LargeObject.create(ds, { data: "first version" });
  const reader = await LargeObject.open(ds, oid, "r");
  const writer = await LargeObject.open(ds, oid, "w");
  await writer.write("FIRST");
  await writer.close();
  expect((await reader.read(100)).toString()).toBe("first version");
  expect((await drain(reader.createReadStream())).toString()).toBe("first version");
  expect((await objectBytes(ds, oid)).toString()).toBe("FIRST version");
});

test("a handle of its own begins its transaction at the level it needs and hands its connection back idle", async () => {
  // Over the size a read-only open reads whole without a transaction.
  const oid = await LargeObject.create(ds, { data: Buffer.alloc(WHOLE_READ_LIMIT + 1, 7) });
  const level = async (lo: LargeObject) => {
    const rows = await lo.scope.query<{ level: string; pid: number }>(
      "SELECT current_setting('transaction_isolation') AS level, pg_backend_pid() AS pid",
    );
    return rows[0]!;
  };
  const reader = await LargeObject.open(ds, oid, "r");
  const read = await level(reader);
  expect(read.level).toBe("repeatable read");
  await reader.close();
  const writer = await LargeObject.open(ds, oid, "rw");
  const written = await level(writer);
  expect(written.level).toBe("read committed");
  await writer.write("L");
  await writer.close();
  expect(checkedOut(ds)).toBe(0);
  // Seen from a connection outside the pool, so that neither of the pooled ones is the observer.
  const observer = new Client({ connectionString: databaseUrl() });
  await observer.connect();
  try {
    const { rows } = await observer.query<{ state: string }>("SELECT state FROM pg_stat_activity WHERE pid = ANY($1::int[])", [
      [...new Set([read.pid, written.pid])],
    ]);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.map((r) => r.state)).toEqual(rows.map(() => "idle"));
  } finally {
    await observer.end();
  }
  const stored = await objectBytes(ds, oid);
  expect(stored.length).toBe(WHOLE_READ_LIMIT + 1);
  expect(stored.subarray(0, 2).toString()).toBe("L\x07");
});

test("TypeORM's transaction events reach subscribers for the caller's transactions, not for those on the library's own runners", async () => {
  const events: string[] = [];
  const listener: EntitySubscriberInterface = {
    afterTransactionStart: () => void events.push("start"),
    afterTransactionCommit: () => void events.push("commit"),
    afterTransactionRollback: () => void events.push("rollback"),
  };
  ds.subscribers.push(listener);
  try {
    const oid = await LargeObject.create(ds, { data: "own runner" });
    const reader = await LargeObject.open(ds, oid, "r");
    await reader.close();
    expect(events).toEqual([]);
    await ds.transaction((manager) => LargeObject.create(manager, { data: "caller's" }));
    expect(events).toEqual(["start", "commit"]);
  } finally {
    ds.subscribers.splice(ds.subscribers.indexOf(listener), 1);
  }
});

test("in a joined transaction, a create whose source fails unlinks its half-written object and the transaction goes on", async () => {
  async function* failing(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(2 * 1024 * 1024, 1);
    throw new Error("source failed");
  }
  const kept = await ds.transaction(async (manager) => {
    const err = await rejection(LargeObject.create(manager, { data: failing() }));
    expect(err).toMatchObject({ message: "source failed" });
    return LargeObject.create(manager, { data: "kept" });
  });
  expect(await countObjects(ds)).toBe(1);
  expect((await objectBytes(ds, kept)).toString()).toBe("kept");
});
