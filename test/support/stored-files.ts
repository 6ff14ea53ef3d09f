import type { ServerResponse } from "node:http";
import type { DataSource } from "typeorm";
import { httpStatusOf, receiveLargeObject, type ReceiveLargeObjectOptions } from "../../src/http";
import { StoredFile } from "../integration/fixtures/http-files";
import { countObjects } from "./database";
import { countRecords } from "./cleanup";
import { clearAll } from "./frameworks";
import { startServer, type TestServer } from "./http-server";
import { useDataSource, type UseDataSourceOptions } from "./use-data-source";

/**
 * Gives an HTTP test file its data source over StoredFile and a plain one beside it that observes
 * the first from outside its pool (both handed to `assign`). After each test, unless `checkClean`
 * is false, every connection is back in the pool (within `settleMs`, 5 s unless told otherwise:
 * the server in the test's process may still be finishing a response) and the observer sees no
 * session idle in a transaction. With `clear`, the rows, records and objects are then removed, so
 * the next test starts empty.
 */
export function useStoredFiles(
  assign: (ds: DataSource, admin: DataSource) => void,
  options: Omit<UseDataSourceOptions, "orm" | "admin" | "schemas" | "triggers"> & { clear?: boolean } = {},
): void {
  const { clear = false, checkClean = true, settleMs = 5000, ...rest } = options;
  let ds: DataSource;
  useDataSource((opened) => (ds = opened), { ...rest, checkClean, settleMs, orm: [StoredFile], admin: (admin) => assign(ds, admin) });
  if (clear) afterEach(() => clearAll(ds, ["http_file"]));
}

/**
 * Starts a server that stores each request's body in a new StoredFile's `content`, with the other
 * options `options` gives at that moment, and lets `answer` reply. An upload that fails is answered
 * with its HTTP status and error code, and handed to `failed` (with that status) first.
 */
export function startReceiver(
  options: () => Omit<ReceiveLargeObjectOptions<StoredFile>, "target" | "property">,
  answer: (saved: StoredFile, res: ServerResponse) => void,
  failed: (err: unknown, status: number) => void,
): Promise<TestServer> {
  return startServer(async (req, res) => {
    try {
      answer(await receiveLargeObject(req, { ...options(), target: StoredFile, property: "content" }), res);
    } catch (err) {
      res.statusCode = httpStatusOf(err);
      failed(err, res.statusCode);
      res.end((err as { code?: string }).code ?? "?");
    }
  });
}

/** A refused upload left no row, no object and no record. */
export async function expectNothingStored(ds: DataSource): Promise<void> {
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  expect(await countObjects(ds)).toBe(0);
  expect(await countRecords(ds)).toBe(0);
}
