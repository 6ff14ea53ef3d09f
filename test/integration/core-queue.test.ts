import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
const warnings: Error[] = [];
const onWarning = (warning: Error): void => void warnings.push(warning);

useDataSource((opened) => (ds = opened), {
  setUp: async () => void process.on("warning", onWarning),
  tearDown: async () => void process.off("warning", onWarning),
});

interface WatchedClient {
  query: (...args: unknown[]) => unknown;
  activeQuery: unknown;
  _queryQueue: unknown[];
}

/** Counts statements handed to the pg client while another one was still running or waiting. */
function watchOverlaps(client: unknown): { overlaps: () => number; statements: () => number } {
  const c = client as WatchedClient;
  const original = c.query;
  let overlaps = 0;
  let statements = 0;
  c.query = function (this: WatchedClient, ...args: unknown[]) {
    statements += 1;
    if (this.activeQuery != null || this._queryQueue.length > 0) overlaps += 1;
    return original.apply(this, args);
  };
  return { overlaps: () => overlaps, statements: () => statements };
}

test("concurrent calls on one handle run one at a time, in call order", async () => {
  const oid = await LargeObject.create(ds);
  const lo = await LargeObject.open(ds, oid, "rw");
  const watch = watchOverlaps(lo.scope.client);
  const labels = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, "0"));
  const written = await Promise.all(labels.map((label) => lo.write(label)));
  expect(written).toEqual(labels.map(() => 2));
  const calls: Promise<unknown>[] = [];
  for (let i = 99; i >= 0; i -= 1) {
    calls.push(lo.seek(i * 2));
    calls.push(lo.read(2).then((b) => b.toString()));
  }
  calls.push(lo.size(), lo.tell());
  const results = await Promise.all(calls);
  for (let i = 99, at = 1; i >= 0; i -= 1, at += 2) expect(results[at]).toBe(labels[i]);
  expect(results.slice(-2)).toEqual([200, 2]);
  await lo.close();
  expect(watch.statements()).toBeGreaterThan(300);
  expect(watch.overlaps()).toBe(0);
  expect((await objectBytes(ds, oid)).toString()).toBe(labels.join(""));
});

test("concurrent creates, opens and reads on one runner in a transaction are queued and all correct", async () => {
  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  const watch = watchOverlaps(await runner.connect());
  const contents = Array.from({ length: 12 }, (_, i) => randomBytes(i % 3 === 0 ? 2 * 1024 * 1024 + i : 100 * i, i + 1));
  try {
    const oids = await Promise.all(contents.map((data) => LargeObject.create(runner, { data })));
    expect(new Set(oids).size).toBe(contents.length);
    const found = await Promise.all(oids.map((oid) => LargeObject.exists(runner, oid)));
    expect(found.every(Boolean)).toBe(true);
    const read = await Promise.all(
      oids.map(async (oid) => {
        const lo = await LargeObject.open(runner, oid, "r");
        const bytes = await lo.read(10 * 1024 * 1024);
        await lo.close();
        return bytes;
      }),
    );
    read.forEach((bytes, i) => expect(bytes.equals(contents[i]!)).toBe(true));
    // Read streams on one runner take the client one COPY at a time.
    const streamed = await Promise.all(
      oids.map(async (oid) => {
        const lo = await LargeObject.open(runner, oid, "r");
        const chunks: Buffer[] = [];
        for await (const chunk of lo.createReadStream()) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      }),
    );
    streamed.forEach((bytes, i) => expect(bytes.equals(contents[i]!)).toBe(true));
    await runner.commitTransaction();
  } finally {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
    await runner.release();
  }
  expect(watch.overlaps()).toBe(0);
  expect(await countObjects(ds)).toBe(contents.length);
  expect(warnings.filter((w) => w.message.includes("already executing a query"))).toEqual([]);
});

test("regression: concurrent streamed creates on one runner without a transaction share one transaction instead of nesting savepoints", async () => {
  const runner = ds.createQueryRunner();
  const client = (await runner.connect()) as unknown as WatchedClient;
  const statements: string[] = [];
  const original = client.query;
  client.query = function (this: WatchedClient, ...args: unknown[]) {
    const text = args[0];
    statements.push(typeof text === "string" ? text : String((text as { text?: unknown }).text));
    return original.apply(this, args);
  };
  try {
    // Content that streams needs a descriptor, so a transaction (bytes in memory are one statement, without).
    const oids = await Promise.all([1, 2, 3, 4, 5].map((n) => LargeObject.create(runner, { data: Readable.from([Buffer.from("x".repeat(n))]) })));
    expect(runner.isTransactionActive).toBe(false);
    expect(statements.filter((s) => /SAVEPOINT/.test(s))).toEqual([]);
    expect(statements.filter((s) => s === "START TRANSACTION")).toHaveLength(1);
    // Every create had run before the one COMMIT.
    expect(statements.lastIndexOf("COMMIT")).toBeGreaterThan(statements.map((s) => s.includes("lo_create")).lastIndexOf(true));
    for (const [i, oid] of oids.entries()) expect((await objectBytes(ds, oid)).toString()).toBe("x".repeat(i + 1));
  } finally {
    await runner.release();
  }
});
