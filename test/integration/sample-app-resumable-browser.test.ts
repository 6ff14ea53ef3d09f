import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { DataSource } from "typeorm";
import { Document } from "../../sample-app/src/document";
import { ARTIFACTS, browserTest, hasChromium, launchChromium, type Browser } from "../support/chromium";
import { idleInTransaction, randomBytes } from "../support/database";
import { dropAll, openOrmDataSource } from "../support/orm";
import { eventually, sha256 } from "../support/sample-app";
import { startSampleProcess, throttlingProxy, type SampleProcess } from "../support/sample-process";
import { dropTusTable, leftovers, objectSha256 } from "../support/tus";

const MiB = 1024 * 1024;
const SIZE = 40 * MiB + 123;
/** The app's sessions carry this name (pg reads PGAPPNAME): the worker's database has others. */
const APP_NAME = "sample-app-resumable";

let ds: DataSource | undefined;
let app: SampleProcess | undefined;
let proxy: { url: string; close(): Promise<void> } | undefined;
let browser: Browser | undefined;
let dir = "";

beforeAll(async () => {
  if (!hasChromium) return;
  // The schema first, so that the app's synchronize finds it made.
  ds = await openOrmDataSource([Document]);
  app = await startSampleProcess({ RESUMABLE_CHUNK_BYTES: String(2 * MiB), RESUMABLE_MIN_BYTES: String(8 * MiB), PGAPPNAME: APP_NAME });
  // A slow uplink, so that the page is reloaded with the upload part-way.
  proxy = await throttlingProxy(app.url, 8 * MiB);
  browser = await launchChromium();
  dir = mkdtempSync(path.join(tmpdir(), "sample-app-resumable-"));
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  await app?.stop();
  if (ds?.isInitialized) await dropTusTable(ds);
  await dropAll(ds!);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The app's sessions other than idle ones (a request still holding its connection), described. */
async function busySessions(source: DataSource): Promise<string[]> {
  const rows: { pid: number; state: string; query: string }[] = await source.query(
    `SELECT pid, state, left(query, 120) AS query FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = $1 AND state <> 'idle'`,
    [APP_NAME],
  );
  return rows.map((r) => `${r.pid} ${r.state}: ${r.query}`);
}

/** Oids of the objects that exist now and did not before. */
async function objectsSince(source: DataSource, before: Set<number>): Promise<number[]> {
  const rows: { oid: number }[] = await source.query("SELECT oid::int8 AS oid FROM pg_largeobject_metadata ORDER BY oid");
  return rows.map((r) => Number(r.oid)).filter((o) => !before.has(o));
}

browserTest("a large upload through tus resumes after a page reload, from where the server stopped", async () => {
  const page = browser!.page;
  const objectsBefore = new Set(await objectsSince(ds!, new Set()));
  const content = randomBytes(SIZE, 61);
  // A file on disk: the browser takes its modification time into the upload's fingerprint.
  const file = path.join(dir, "big.bin");
  writeFileSync(file, content);
  const requests: { method: string; offset: string | undefined }[] = [];
  page.on("request", (request) => {
    if (new URL(request.url()).pathname.startsWith("/files")) requests.push({ method: request.method(), offset: request.headers()["upload-offset"] });
  });

  await page.goto(proxy!.url);
  await page.locator("#resumable-note").waitFor();
  await page.setInputFiles("#file-input", file);
  await page.click("#upload-button");
  await page.waitForFunction('(b => b !== null && b.value / b.max > 0.3)(document.querySelector("#uploads li progress"))', undefined, {
    timeout: 30_000,
  });
  expect(requests.filter((r) => r.method === "POST")).toHaveLength(1);
  await page.reload();

  const before = requests.length;
  await page.locator("#resumable-note").waitFor();
  await page.setInputFiles("#file-input", file);
  await page.click("#upload-button");
  const item = page.locator("#uploads li", { hasText: "big.bin" });
  await item.locator(".status", { hasText: "stored" }).waitFor({ timeout: 60_000 });
  await page.locator("#documents tbody a", { hasText: "big.bin" }).waitFor();
  await page.screenshot({ path: path.join(ARTIFACTS, "sample-app-resumable.png"), fullPage: true });

  // The second attempt created no upload: it went on from the offset the server had committed.
  const after = requests.slice(before);
  expect(after.filter((r) => r.method === "POST")).toEqual([]);
  const resumedAt = Number(after.find((r) => r.method === "PATCH")?.offset);
  expect(resumedAt).toBeGreaterThan(0);
  expect(resumedAt).toBeLessThan(SIZE);
  expect(Number(await item.getAttribute("data-resumed-at"))).toBe(resumedAt);

  const docs = await ds!.manager.find(Document);
  expect(docs).toHaveLength(1);
  expect(docs[0]).toMatchObject({ name: "big.bin", contentType: "application/octet-stream", size: SIZE, sha256: sha256(content) });
  expect(await objectSha256(ds!, docs[0]!.content as number)).toBe(sha256(content));
  // Adopted: no upload row, no staged object, no object without its document.
  expect(await leftovers(ds!)).toEqual({ uploads: 0, staged: 0 });
  // The worker's database may hold other files' objects: only those made since this test began count.
  expect(await objectsSince(ds!, objectsBefore)).toEqual([Number(docs[0]!.content)]);
  // The check sees the app: without its name on the sessions, it would pass having checked nothing.
  expect(Number((await ds!.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1`, [APP_NAME]))[0].n)).toBeGreaterThan(0);
  let busy: string[] = [];
  await eventually(async () => (busy = await busySessions(ds!)).length === 0, "every session of the app idle").catch((err: Error) => {
    throw new Error(`${err.message}; still busy: ${busy.join("; ")}`);
  });
  expect(await idleInTransaction(ds!)).toBe(0);
}, 120_000);
