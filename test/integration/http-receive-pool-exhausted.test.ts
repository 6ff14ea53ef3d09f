import type { DataSource, QueryRunner } from "typeorm";
import { registerLargeObjects } from "../../src";
import { httpStatusOf } from "../../src/http";
import { countObjects, makeDataSource } from "../support/database";
import { countRecords } from "../support/cleanup";
import { checkedOut, expectConnectionsBack } from "../support/pool";
import type { TestServer } from "../support/http-server";
import { startReceiver, useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let small: DataSource;
let admin: DataSource;
let server: TestServer;
let failures: unknown[] = [];

useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), {
  checkClean: false,
  setUp: async () => {
    // The tables come from a data source of its own; the one under test has a single connection.
    small = registerLargeObjects(makeDataSource({ entities: [StoredFile], poolSize: 1, connectTimeoutMS: 300, applicationName: "tlo-http-receive-small" }));
    await small.initialize();
    server = await startReceiver(
      () => ({ source: small }),
      (saved, res) => res.end(String(saved.id)),
      (err) => failures.push(err),
    );
  },
  tearDown: async () => {
    await server.close();
    await small.destroy();
  },
});
beforeEach(() => {
  failures = [];
});
afterEach(() => expectConnectionsBack(small, admin));

test("an upload while every pooled connection is checked out is 503 (ERR_LO_POOL_EXHAUSTED) and leaves nothing", async () => {
  // Earlier files on this worker's database may have left objects of their own: count from here.
  const objectsBefore = await countObjects(ds);
  const recordsBefore = await countRecords(ds);
  let holder: QueryRunner | undefined = small.createQueryRunner();
  await holder.connect();
  try {
    expect(checkedOut(small)).toBe(1);
    const response = await fetch(`${server.url}/`, { method: "POST", body: "while the pool is full" });
    expect(await response.text()).toBe("ERR_LO_POOL_EXHAUSTED");
    expect(response.status).toBe(503);
    expect(failures.map(httpStatusOf)).toEqual([503]);
  } finally {
    await holder.release();
    holder = undefined;
  }
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  expect(await countObjects(ds)).toBe(objectsBefore);
  expect(await countRecords(ds)).toBe(recordsBefore);
  // The pool works again once the connection is back.
  const after = await fetch(`${server.url}/`, { method: "POST", body: "after" });
  expect(after.status).toBe(200);
  const id = Number(await after.text());
  expect((await ds.getRepository(StoredFile).findOneByOrFail({ id })).id).toBe(id);
  expect(await countObjects(ds)).toBe(objectsBefore + 1);
});
