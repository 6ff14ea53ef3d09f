import { readFile } from "node:fs/promises";
import Fastify, { type FastifyInstance } from "fastify";
import type { DataSource } from "typeorm";
import { oidOf } from "../../src";
import { httpStatusOf, receiveLargeObject, sendLargeObject } from "../../src/http";
import { objectBytes, randomBytes } from "../support/database";
import { curl, curlHeaders, eventually, sha256, useTempFiles } from "../support/http-server";
import { checkedOut, expectConnectionsBack } from "../support/pool";
import { expectNoObjects, readAndVanish, sendAndVanish } from "../support/frameworks";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let admin: DataSource;
let app: FastifyInstance;
let url: string;
let failures: unknown[] = [];

const MAX = 4 * 1024 * 1024;

async function createApp(): Promise<FastifyInstance> {
  const fastify = Fastify({ forceCloseConnections: true });
  fastify.setErrorHandler((err, _request, reply) => {
    failures.push(err);
    void reply.code(httpStatusOf(err)).send((err as { code?: string }).code ?? "?");
  });
  // The upload routes live in a scope of their own whose only parser reads nothing: the body,
  // whatever its type (JSON and text included), reaches receiveLargeObject untouched.
  await fastify.register(async (uploads) => {
    uploads.removeAllContentTypeParsers();
    uploads.addContentTypeParser("*", (_request, _payload, done) => done(null));
    uploads.post("/files", async (request, reply) => {
      const saved = await receiveLargeObject(request.raw, {
        source: ds,
        target: StoredFile,
        property: "content",
        maxBytes: MAX,
        values: ({ filename, contentType }) => ({ name: filename ?? "upload", type: contentType }),
      });
      return reply.code(201).send({ id: saved.id, oid: oidOf(saved.content) });
    });
  });
  // Outside it, Fastify's own JSON parser still answers the routes it serves; an upload route left
  // there finds its JSON body already read.
  fastify.post("/echo", async (request) => request.body);
  fastify.post("/parsed", async (request) => {
    await receiveLargeObject(request.raw, { source: ds, target: StoredFile, property: "content" });
  });
  // Fastify also routes HEAD here (exposeHeadRoutes).
  fastify.get<{ Params: { id: string } }>("/files/:id", async (request, reply) => {
    const found = await ds.getRepository(StoredFile).findOneBy({ id: Number(request.params.id) });
    if (found === null) return reply.code(404).send();
    // From here on the route writes the response itself; Fastify sends nothing more.
    reply.hijack();
    await sendLargeObject(request.raw, reply.raw, { source: ds, entity: found, property: "content", contentType: found.type, filename: found.name });
    return reply;
  });
  return fastify;
}

const files = useTempFiles("tlo-fastify-");
useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), {
  clear: true,
  setUp: async () => {
    app = await createApp();
    url = await app.listen({ port: 0, host: "127.0.0.1" });
  },
  tearDown: () => app.close(),
});
beforeEach(() => (failures = []));

test("a raw octet-stream upload, a JSON body and a form reach receiveLargeObject unread and are stored byte-exact", async () => {
  const bytes = randomBytes(MAX - 1, 80);
  const path = await files.write("video.bin", bytes);
  const raw = await curl([
    "-H", "Content-Type: application/octet-stream",
    "-H", 'Content-Disposition: attachment; filename="video.bin"',
    "--data-binary", `@${path}`, `${url}/files`,
  ]);
  const stored = JSON.parse(raw.stdout.toString()) as { id: number; oid: number };
  expect(sha256(await objectBytes(ds, stored.oid))).toBe(sha256(bytes));
  expect(await ds.getRepository(StoredFile).findOneByOrFail({ id: stored.id })).toMatchObject({ name: "video.bin", type: "application/octet-stream" });

  const json = Buffer.from(JSON.stringify({ not: "parsed", n: [1, 2, 3] }));
  const asJson = await fetch(`${url}/files`, { method: "POST", body: json, headers: { "Content-Type": "application/json" } });
  expect(asJson.status).toBe(201);
  const jsonRow = (await asJson.json()) as { oid: number };
  expect((await objectBytes(ds, jsonRow.oid)).equals(json)).toBe(true);

  // A form's Content-Length counts its delimiters too, so this file stays clear of the limit.
  const formBytes = bytes.subarray(0, MAX / 2);
  const formPath = await files.write("form.bin", formBytes);
  const form = await curl(["-F", `file=@${formPath}`, `${url}/files`]);
  expect(sha256(await objectBytes(ds, (JSON.parse(form.stdout.toString()) as { oid: number }).oid))).toBe(sha256(formBytes));
  // The other routes keep Fastify's parsers.
  const echo = await fetch(`${url}/echo`, { method: "POST", body: '{"a":1}', headers: { "Content-Type": "application/json" } });
  expect(await echo.json()).toEqual({ a: 1 });
  expect(failures).toEqual([]);
  const parsed = await fetch(`${url}/parsed`, { method: "POST", body: '{"a":1}', headers: { "Content-Type": "application/json" } });
  expect([parsed.status, await parsed.text()]).toEqual([500, "ERR_LO_INVALID_ARGUMENT"]);
});

test("an upload over maxBytes is 413 through the error handler and leaves nothing", async () => {
  const path = await files.write("big.bin", randomBytes(MAX + 1, 81));
  const { stdout } = await curl(["-H", "Expect:", "-H", "Content-Type: application/octet-stream", "-w", " %{http_code}", "--data-binary", `@${path}`, `${url}/files`]);
  expect(stdout.toString()).toBe("ERR_LO_HTTP_TOO_LARGE 413");
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  await expectNoObjects(ds);
});

test("a client that goes away mid-upload leaves no row, no object and no record", async () => {
  const head = `POST /files HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${MAX}\r\n\r\n`;
  await sendAndVanish(url, head, randomBytes(512 * 1024, 82));
  await eventually(() => failures.length === 1, 5000, "the upload's failure");
  expect(httpStatusOf(failures[0])).toBe(400);
  await expectConnectionsBack(ds, admin);
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  await expectNoObjects(ds);
});

test("downloads through the hijacked reply: whole, a range with curl -r, HEAD with curl -I, and 404 through Fastify", async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 7, 83);
  const saved = await ds.getRepository(StoredFile).save({ name: "clip.mp4", type: "video/mp4", content: bytes });
  const whole = await fetch(`${url}/files/${saved.id}`);
  expect(whole.status).toBe(200);
  expect(whole.headers.get("content-type")).toBe("video/mp4");
  expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(bytes));

  const out = files.path("range.bin");
  const ranged = await curl(["-D", "-", "-o", out, "-r", "2000000-", `${url}/files/${saved.id}`]);
  const { status, headers } = curlHeaders(ranged.stdout.toString());
  expect(status).toBe(206);
  expect(headers.get("content-range")).toBe(`bytes 2000000-${bytes.length - 1}/${bytes.length}`);
  expect(sha256(await readFile(out))).toBe(sha256(bytes.subarray(2_000_000)));

  const head = await curl(["-I", `${url}/files/${saved.id}`]);
  const headAnswer = curlHeaders(head.stdout.toString());
  expect(headAnswer.status).toBe(200);
  expect(headAnswer.headers.get("content-length")).toBe(String(bytes.length));
  expect((await fetch(`${url}/files/${saved.id + 1000}`)).status).toBe(404);
});

test("a client that goes away mid-download gives the connection back at once", async () => {
  const bytes = randomBytes(16 * 1024 * 1024, 84);
  const saved = await ds.getRepository(StoredFile).save({ name: "big.bin", content: bytes });
  await readAndVanish(url, `/files/${saved.id}`, 256 * 1024);
  await eventually(() => checkedOut(ds) === 0, 5000, "the download's connection back in the pool");
  expect(failures).toEqual([]);
});
