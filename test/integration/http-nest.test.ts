import { readFile } from "node:fs/promises";
import type { DataSource } from "typeorm";
import { discardStagedObject, oidOf } from "../../src";
import { countObjects, databaseUrl, idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { curl, curlHeaders, eventually, sha256, useTempFiles } from "../support/http-server";
import { startScript, type ScriptProcess } from "../support/sample-process";
import { clearAll, expectNoObjects, formBody, readAndVanish, sendAndVanish } from "../support/frameworks";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const MAX = 4 * 1024 * 1024;

let ds: DataSource;
let admin: DataSource;
let app: ScriptProcess | undefined;
/** The app with Nest's default body parser, and the one created with `bodyParser: false`. */
let parsing: string;
let raw: string;

interface State {
  checkedOut: number;
  failures: string[];
}

async function state(): Promise<State> {
  return (await (await fetch(`${parsing}/state`)).json()) as State;
}

/** The codes the app's exception filter answered since the last look. */
let seenFailures = 0;
async function newFailures(): Promise<string[]> {
  const { failures } = await state();
  const fresh = failures.slice(seenFailures);
  seenFailures = failures.length;
  return fresh;
}

const files = useTempFiles("tlo-nest-");
useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), { checkClean: false, tearDown: async () => app?.stop() });
beforeAll(async () => {
  app = await startScript("test/integration/fixtures/nest-app.mts", {
    args: [databaseUrl()],
    env: { ...process.env, NEST_MAX_BYTES: String(MAX) },
    ready: /ready (\S+) (\S+)\n/,
    what: "the Nest app",
    timeoutMs: 40_000,
    echo: Boolean(process.env.NEST_DEBUG),
  });
  [parsing, raw] = [app.ready[1]!, app.ready[2]!];
}, 60_000);
afterEach(async () => {
  await eventually(async () => (await state()).checkedOut === 0, 5000, "every connection of the app back in its pool");
  expect(await idleInTransaction(admin)).toBe(0);
  await clearAll(ds, ["http_file"]);
});

test("FileInterceptor with largeObjectStorage stages the file, save() adopts it, sendLargeObject serves ranges", async () => {
  const bytes = randomBytes(MAX - 100, 90);
  const file = await files.write("scan.png", bytes);
  const { stdout } = await curl(["-F", "note=hello", "-F", `file=@${file};type=image/png`, `${parsing}/documents`]);
  const body = JSON.parse(stdout.toString()) as { id: number; oid: number; size: number; sha256: string };
  expect(body).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
  expect(sha256(await objectBytes(ds, body.oid))).toBe(sha256(bytes));
  expect(oidOf((await ds.getRepository(StoredFile).findOneByOrFail({ id: body.id })).content)).toBe(body.oid);
  expect(await discardStagedObject(ds, body.oid)).toBe(false);

  const out = files.path("range.bin");
  const ranged = await curl(["-D", "-", "-o", out, "-r", "-5000", `${parsing}/documents/${body.id}`]);
  const { status, headers } = curlHeaders(ranged.stdout.toString());
  expect(status).toBe(206);
  expect(headers.get("content-range")).toBe(`bytes ${bytes.length - 5000}-${bytes.length - 1}/${bytes.length}`);
  expect(headers.get("content-type")).toBe("image/png");
  expect(sha256(await readFile(out))).toBe(sha256(bytes.subarray(bytes.length - 5000)));
  const whole = await fetch(`${parsing}/documents/${body.id}`);
  expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(bytes));
  expect((await fetch(`${parsing}/documents/${body.id + 1000}`)).status).toBe(404);
  expect(await newFailures()).toEqual(["NotFoundException"]);
});

test("a file over maxBytes is 413 through the exception filter; a form without one is 400; nothing is left", async () => {
  const file = await files.write("big.bin", randomBytes(MAX + 1, 91));
  const big = await curl(["-H", "Expect:", "-w", " %{http_code}", "-F", `file=@${file}`, `${parsing}/documents`]);
  expect(big.stdout.toString()).toBe('{"statusCode":413,"code":"ERR_LO_HTTP_TOO_LARGE"} 413');
  const none = await fetch(`${parsing}/documents`, { method: "POST", body: new FormData() });
  expect(none.status).toBe(400);
  expect(await newFailures()).toEqual(["ERR_LO_HTTP_TOO_LARGE", "BadRequestException"]);
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  await expectNoObjects(ds);
});

test("a client that goes away mid-file leaves no object and no record", async () => {
  const { body, contentType } = formBody([{ name: "file", filename: "cut.bin", body: randomBytes(MAX - 1000, 92) }]);
  await sendAndVanish(parsing, `POST /documents HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`, body.subarray(0, 256 * 1024));
  await eventually(async () => (await state()).checkedOut === 0, 5000, "the upload's connection back");
  // multer reports the closed request itself ("Request closed") without waiting for the engine.
  expect(await newFailures()).toEqual(["Error"]);
  await eventually(async () => (await countObjects(ds)) === 0, 5000, "no object");
  await expectNoObjects(ds);
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
});

test("StreamableFile over a read stream sends the bytes; an aborted client gives its connection back; a null column is 404", async () => {
  const bytes = randomBytes(12 * 1024 * 1024, 93);
  const saved = await ds.getRepository(StoredFile).save({ name: "movie.bin", content: bytes });
  const res = await fetch(`${parsing}/documents/${saved.id}/stream`);
  expect(res.headers.get("content-type")).toBe("application/octet-stream");
  expect(sha256(Buffer.from(await res.arrayBuffer()))).toBe(sha256(bytes));

  await readAndVanish(parsing, `/documents/${saved.id}/stream`, 128 * 1024);
  await eventually(async () => (await state()).checkedOut === 0, 3000, "the stream's connection back in the pool");

  const empty = await ds.getRepository(StoredFile).save({ name: "nothing", content: null });
  const missing = await fetch(`${parsing}/documents/${empty.id}/stream`);
  expect([missing.status, await missing.json()]).toEqual([404, { statusCode: 404, code: "ERR_LO_NULL" }]);
  expect(await newFailures()).toEqual(["ERR_LO_NULL"]);
});

test("raw uploads: Nest's JSON parser eats the body (500, nothing stored); with bodyParser: false it is stored byte-exact", async () => {
  const json = Buffer.from(JSON.stringify({ kind: "export", rows: [1, 2, 3] }));
  const eaten = await fetch(`${parsing}/documents/raw`, { method: "POST", body: json, headers: { "Content-Type": "application/json" } });
  expect([eaten.status, await eaten.json()]).toEqual([500, { statusCode: 500, code: "ERR_LO_INVALID_ARGUMENT" }]);
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  await expectNoObjects(ds);

  const kept = await fetch(`${raw}/documents/raw`, { method: "POST", body: json, headers: { "Content-Type": "application/json" } });
  expect(kept.status).toBe(201);
  const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: ((await kept.json()) as { id: number }).id });
  expect((await objectBytes(ds, oidOf(row.content)!)).equals(json)).toBe(true);
  expect(row.type).toBe("application/json");

  // Any other type passes Nest's parser untouched, on either app.
  const bytes = randomBytes(MAX, 94);
  const file = await files.write("blob.bin", bytes);
  const octets = await curl(["-H", "Content-Type: application/octet-stream", "--data-binary", `@${file}`, `${parsing}/documents/raw`]);
  const octetRow = await ds.getRepository(StoredFile).findOneByOrFail({ id: (JSON.parse(octets.stdout.toString()) as { id: number }).id });
  expect(sha256(await objectBytes(ds, oidOf(octetRow.content)!))).toBe(sha256(bytes));

  // The app without Nest's parser still parses JSON for its other routes.
  const echo = await fetch(`${raw}/echo`, { method: "POST", body: '{"a":1}', headers: { "Content-Type": "application/json" } });
  expect(await echo.json()).toEqual({ body: { a: 1 } });
  expect(await newFailures()).toEqual(["ERR_LO_INVALID_ARGUMENT"]);
});
