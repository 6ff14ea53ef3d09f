import type { DataSource, EntityManager } from "typeorm";
import { oidOf } from "../../src";
import { receiveLargeObject, httpStatusOf } from "../../src/http";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { countRecords } from "../support/cleanup";
import { sha256, startServer, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let server: TestServer;

useStoredFiles((opened) => (ds = opened), {
  clear: true,
  setUp: async () => {
    server = await startServer(async (req, res) => {
      const how = req.url!.slice(1);
      const receive = (source: EntityManager | ReturnType<DataSource["createQueryRunner"]>) =>
        receiveLargeObject(req, { source, target: StoredFile, property: "content", maxBytes: 1024 * 1024, values: { name: "upload" } });
      try {
        if (how === "runner") {
          const runner = ds.createQueryRunner();
          try {
            await runner.startTransaction();
            const saved = await receive(runner);
            await runner.commitTransaction();
            res.end(String(oidOf(saved.content)));
          } finally {
            if (runner.isTransactionActive) await runner.rollbackTransaction();
            await runner.release();
          }
          return;
        }
        await ds.transaction(async (m) => {
          let status = 200;
          try {
            await receive(m);
          } catch (err) {
            // A refusal leaves the caller's transaction usable: the next statement and the commit work.
            status = httpStatusOf(err);
          }
          await m.getRepository(StoredFile).save({ name: `marker-${how}`, content: null });
          if (how === "rollback") throw new Error("rolled back by the application");
          res.statusCode = status;
        });
        res.end();
      } catch (err) {
        res.statusCode = 500;
        res.end((err as Error).message);
      }
    });
  },
  tearDown: () => server.close(),
});

const names = async (): Promise<string[]> => (await ds.getRepository(StoredFile).find({ order: { name: "ASC" } })).map((f) => f.name);

test("on a transactional manager the upload joins the transaction: committed with it", async () => {
  const bytes = randomBytes(300 * 1024, 70);
  const response = await fetch(`${server.url}/commit`, { method: "POST", body: bytes });
  expect(response.status).toBe(200);
  expect(await names()).toEqual(["marker-commit", "upload"]);
  const upload = await ds.getRepository(StoredFile).findOneByOrFail({ name: "upload" });
  expect(sha256(await objectBytes(ds, oidOf(upload.content)))).toBe(sha256(bytes));
});

test("and rolled back with it: no row, object or record", async () => {
  const response = await fetch(`${server.url}/rollback`, { method: "POST", body: randomBytes(300 * 1024, 71) });
  expect(response.status).toBe(500);
  await response.arrayBuffer();
  expect(await names()).toEqual([]);
  expect(await countObjects(ds)).toBe(0);
  expect(await countRecords(ds)).toBe(0);
});

test("a refused upload inside the caller's transaction leaves nothing of itself and the transaction usable", async () => {
  const chunks = Array.from({ length: 8 }, (_, i) => randomBytes(256 * 1024, 80 + i));
  const response = await fetch(`${server.url}/refused`, {
    method: "POST",
    body: new Blob(chunks).stream(),
    duplex: "half",
  } as RequestInit);
  expect(response.status).toBe(413);
  expect(await names()).toEqual(["marker-refused"]);
  expect(await countObjects(ds)).toBe(0);
  expect(await countRecords(ds)).toBe(0);
});

test("on a query runner in a transaction the upload commits with the runner's transaction", async () => {
  const bytes = randomBytes(100 * 1024, 72);
  const response = await fetch(`${server.url}/runner`, { method: "POST", body: bytes });
  expect(response.status).toBe(200);
  expect(sha256(await objectBytes(ds, Number(await response.text())))).toBe(sha256(bytes));
});
