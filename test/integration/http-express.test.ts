import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import express, { type NextFunction, type Request, type Response } from "express";
import multer, { MulterError } from "multer";
import type { DataSource } from "typeorm";
import { LargeObjectError, discardStagedObject, oidOf, sweepOrphans } from "../../src";
import { httpStatusOf, largeObjectStorage, sendLargeObject, isLargeObjectFile } from "../../src/http";
import { countObjects, objectBytes, objectExists, randomBytes } from "../support/database";
import { countRecords } from "../support/cleanup";
import { curl, curlHeaders, eventually, listen, sha256, useTempFiles, type TestServer } from "../support/http-server";
import { expectNoObjects, formBody, sendAndVanish } from "../support/frameworks";
import { expectConnectionsBack } from "../support/pool";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let admin: DataSource;
let server: TestServer;
let url: string;
let failures: unknown[] = [];

const MAX = 1024 * 1024;

function createApp(): express.Express {
  const app = express();
  const upload = multer({ storage: largeObjectStorage({ source: ds, maxBytes: MAX, label: "express upload" }) });
  // multer's own limit, beside the engine's: busboy cuts the file and multer removes what was stored.
  const limited = multer({ storage: largeObjectStorage({ source: ds }), limits: { fileSize: 64 * 1024 } });
  const files = () => ds.getRepository(StoredFile);

  app.post("/documents", upload.single("file"), async (req, res) => {
    const file = req.file;
    if (!isLargeObjectFile(file)) return void res.status(400).end();
    const saved = await files().save({ name: file.originalname, type: file.mimetype, content: file.oid });
    res.status(201).json({ id: saved.id, oid: file.oid, size: file.size, sha256: file.sha256 });
  });
  app.post("/pairs", upload.array("files", 2), (req, res) => {
    res.json((Array.isArray(req.files) ? req.files : []).filter(isLargeObjectFile).map((f) => f.oid));
  });
  app.post("/limited", limited.array("files", 2), (req, res) => {
    res.json((Array.isArray(req.files) ? req.files : []).filter(isLargeObjectFile).map((f) => f.oid));
  });
  app.get("/documents/:id", async (req, res) => {
    const found = await files().findOneBy({ id: Number(req.params.id) });
    if (found === null) return void res.status(404).end();
    await sendLargeObject(req, res, { source: ds, entity: found, property: "content", contentType: found.type, filename: found.name });
  });
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    failures.push(err);
    const status = err instanceof MulterError ? (err.code === "LIMIT_FILE_SIZE" ? 413 : 400) : httpStatusOf(err);
    res.status(status).send((err as { code?: string }).code ?? "?");
  });
  return app;
}

const files = useTempFiles("tlo-express-");
useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), {
  clear: true,
  setUp: async () => {
    server = await listen(createServer(createApp()));
    url = server.url;
  },
  tearDown: () => server.close(),
});
beforeEach(() => (failures = []));

test("curl -F streams a file into a staged object that save() adopts, and curl -r reads a range back", async () => {
  const bytes = randomBytes(MAX - 5, 70);
  const path = await files.write("report.pdf", bytes);
  const { code, stdout } = await curl(["-F", "title=quarterly", "-F", `file=@${path};type=application/pdf`, `${url}/documents`]);
  expect(code).toBe(0);
  const body = JSON.parse(stdout.toString()) as { id: number; oid: number; size: number; sha256: string };
  expect(body).toMatchObject({ size: bytes.length, sha256: sha256(bytes) });
  expect(sha256(await objectBytes(ds, body.oid))).toBe(sha256(bytes));
  const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: body.id });
  expect(oidOf(row.content)).toBe(body.oid);
  expect(row).toMatchObject({ name: "report.pdf", type: "application/pdf" });
  // Adopted: the row owns it, so it is no longer staged and cannot be discarded.
  expect(await discardStagedObject(ds, body.oid)).toBe(false);
  expect(await objectExists(ds, body.oid)).toBe(true);

  const ranged = await curl(["-D", "-", "-o", files.path("part.bin"), "-r", "1000-204999", `${url}/documents/${body.id}`]);
  const { status, headers } = curlHeaders(ranged.stdout.toString());
  expect(status).toBe(206);
  expect(headers.get("content-range")).toBe(`bytes 1000-204999/${bytes.length}`);
  expect(headers.get("content-disposition")).toBe("inline; filename=report.pdf");
  const whole = await fetch(`${url}/documents/${body.id}`);
  expect(whole.headers.get("content-length")).toBe(String(bytes.length));
  expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(bytes));
  expect(sha256(await readFile(files.path("part.bin")))).toBe(sha256(bytes.subarray(1000, 205000)));
  expect(failures).toEqual([]);
});

test("files the handler never adopts stay staged with their bytes, and the sweep removes them after the grace period", async () => {
  const a = randomBytes(300 * 1024, 79);
  const b = randomBytes(1, 80);
  const paths = [await files.write("a.bin", a), await files.write("b.bin", b)];
  const { stdout } = await curl([...paths.flatMap((p) => ["-F", `files=@${p}`]), `${url}/pairs`]);
  const oids = JSON.parse(stdout.toString()) as number[];
  expect(oids).toHaveLength(2);
  expect(sha256(await objectBytes(ds, oids[0]!))).toBe(sha256(a));
  expect((await objectBytes(ds, oids[1]!)).equals(b)).toBe(true);
  const records = await ds.query("SELECT staged, created_for, size::int AS size FROM typeorm_large_objects WHERE oid = ANY($1) ORDER BY size DESC", [oids]);
  expect(records).toEqual([
    { staged: true, created_for: "express upload", size: a.length },
    { staged: true, created_for: "express upload", size: 1 },
  ]);
  expect((await sweepOrphans(ds)).unlinked).toBe(0);
  expect((await sweepOrphans(ds, { graceMs: 0 })).unlinked).toBe(2);
  await expectNoObjects(ds);
});

test("two files whose second is over maxBytes are 413, and the first one's object is removed at once", async () => {
  const first = await files.write("small.bin", randomBytes(100 * 1024, 71));
  const second = await files.write("big.bin", randomBytes(MAX + 1, 72));
  const { stdout } = await curl(["-H", "Expect:", "-F", `files=@${first}`, "-F", `files=@${second}`, `${url}/pairs`]);
  expect(stdout.toString()).toBe("ERR_LO_HTTP_TOO_LARGE");
  expect(failures.map(httpStatusOf)).toEqual([413]);
  await expectNoObjects(ds);
});

test("a file over multer's own limits.fileSize is 413 (LIMIT_FILE_SIZE), and the file before it is removed", async () => {
  const first = await files.write("a.bin", randomBytes(1000, 73));
  const second = await files.write("b.bin", randomBytes(64 * 1024 + 1, 74));
  const { stdout } = await curl(["-H", "Expect:", "-F", `files=@${first}`, "-F", `files=@${second}`, `${url}/limited`]);
  expect(stdout.toString()).toBe("LIMIT_FILE_SIZE");
  await expectNoObjects(ds);
});

test("three files where multer allows two are 400 (LIMIT_UNEXPECTED_FILE) with nothing left", async () => {
  const paths = await Promise.all([0, 1, 2].map((n) => files.write(`f${n}.bin`, randomBytes(20_000, 75 + n))));
  const { stdout } = await curl([...paths.flatMap((p) => ["-F", `files=@${p}`]), `${url}/pairs`]);
  expect(stdout.toString()).toBe("LIMIT_UNEXPECTED_FILE");
  await expectNoObjects(ds);
});

test("a client that goes away mid-file leaves no object and no record, and the server keeps serving", async () => {
  const { body, contentType } = formBody([{ name: "file", filename: "cut.bin", body: randomBytes(MAX - 10, 78) }]);
  const partial = body.subarray(0, 300 * 1024);
  const head = `POST /documents HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`;
  await sendAndVanish(url, head, partial);
  await eventually(() => failures.length === 1, 5000, "the upload's failure");
  await expectConnectionsBack(ds, admin);
  await eventually(async () => (await countObjects(ds)) === 0 && (await countRecords(ds)) === 0, 5000, "nothing left");
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  const small = await files.write("after.txt", Buffer.from("still here"));
  const after = await curl(["-F", `file=@${small}`, `${url}/documents`]);
  expect(JSON.parse(after.stdout.toString())).toMatchObject({ size: 10 });
});

test("largeObjectStorage refuses a maxBytes that is not a non-negative integer", () => {
  for (const maxBytes of [-1, 1.5, Number.NaN]) {
    expect(() => largeObjectStorage({ source: ds, maxBytes })).toThrow(LargeObjectError);
    expect(() => largeObjectStorage({ source: ds, maxBytes })).toThrow(/maxBytes must be a non-negative integer/);
  }
});
