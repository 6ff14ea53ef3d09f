import type { DataSource, QueryRunner } from "typeorm";
import { registerLargeObjects } from "../../src";
import { receiveLargeObject, httpStatusOf } from "../../src/http";
import { countObjects, idleInTransaction, makeDataSource, openDataSource } from "../support/database";
import { countRecords } from "../support/cleanup";
import { dropAll, openOrmDataSource } from "../support/orm";
import { checkedOut } from "../support/pool";
import { eventually, startServer, type TestServer } from "../support/http-server";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let small: DataSource;
let admin: DataSource;
let server: TestServer;
let failures: unknown[] = [];

beforeAll(async () => {
  // The tables come from a data source of its own; the one under test has a single connection.
  ds = await openOrmDataSource([StoredFile]);
  admin = await openDataSource();
  small = registerLargeObjects(makeDataSource({ entities: [StoredFile], poolSize: 1, connectTimeoutMS: 300, applicationName: "tlo-http-receive-small" }));
  await small.initialize();
  server = await startServer(async (req, res) => {
    try {
      const saved = await receiveLargeObject(req, { source: small, target: StoredFile, property: "content" });
      res.end(String(saved.id));
    } catch (err) {
      failures.push(err);
      res.statusCode = httpStatusOf(err);
      res.end((err as { code?: string }).code ?? "?");
    }
  });
});
beforeEach(() => {
  failures = [];
});
afterEach(async () => {
  await eventually(() => checkedOut(small) === 0, 5000, "every connection back in the pool");
  expect(await idleInTransaction(admin)).toBe(0);
});
afterAll(async () => {
  await server.close();
  await small.destroy();
  await admin.destroy();
  await dropAll(ds);
});

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
