import type { DataSource } from "typeorm";
import { LargeObjectRepository, oidOf } from "../../src";
import { sendLargeObject } from "../../src/http";
import { randomBytes } from "../support/database";
import { curl, curlHeaders, revalidate, sha256, startServer, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const SIZE = 200_000;
const bytes = randomBytes(SIZE, 21);
const MODIFIED = new Date("2026-03-04T05:06:07Z");
let ds: DataSource;
let server: TestServer;
let file: StoredFile;

useStoredFiles((opened) => (ds = opened), {
  // Every connection is back as soon as the response has been read: no time to settle.
  settleMs: 0,
  setUp: async () => {
    file = await ds.getRepository(StoredFile).save({ name: "c.bin", content: Buffer.from(bytes) });
    server = await startServer(async (req, res) => {
      const url = new URL(req.url!, "http://x");
      const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: Number(url.pathname.slice(1)) });
      const etag = url.searchParams.get("etag") ?? undefined;
      await sendLargeObject(req, res, {
        source: ds,
        entity: row,
        property: "content",
        ...(url.searchParams.has("undated") ? {} : { lastModified: MODIFIED }),
        ...(etag === undefined ? {} : { etag }),
      });
    });
  },
  tearDown: () => server.close(),
});

test("the derived ETag is weak; If-None-Match with it gives 304 without a body, and a changed object a new tag", async () => {
  const first = await fetch(`${server.url}/${file.id}`);
  const etag = first.headers.get("etag")!;
  expect(etag).toMatch(/^W\/"/);
  expect(first.headers.get("last-modified")).toBe(MODIFIED.toUTCString());
  expect(first.headers.get("cache-control")).toBe("private, no-cache");
  await first.arrayBuffer();
  const again = await fetch(`${server.url}/${file.id}`, { headers: revalidate({ "If-None-Match": etag }) });
  expect(again.status).toBe(304);
  expect(again.headers.get("etag")).toBe(etag);
  expect((await again.arrayBuffer()).byteLength).toBe(0);
  const other = await ds.getRepository(StoredFile).save({ name: "d.bin", content: Buffer.from(bytes.subarray(1)) });
  const changed = await fetch(`${server.url}/${other.id}`, { headers: revalidate({ "If-None-Match": etag }) });
  expect(changed.status).toBe(200);
  expect(changed.headers.get("etag")).not.toBe(etag);
  await changed.arrayBuffer();
});

test("without a tracked digest, an ETag or lastModified no ETag goes out: a rewrite in place of the same size is never revalidated as current", async () => {
  const own = await ds.getRepository(StoredFile).save({ name: "e.bin", content: Buffer.from(bytes) });
  const url = `${server.url}/${own.id}?undated`;
  const first = await fetch(url);
  expect(first.headers.get("etag")).toBeNull();
  expect(first.headers.get("last-modified")).toBeNull();
  await first.arrayBuffer();
  // A tag of the oid and size alone, which the rewrite below keeps, must not pass for current.
  const oidAndSize = `W/"${oidOf(own.content).toString(36)}-${SIZE.toString(36)}"`;
  const sameSize = randomBytes(SIZE, 22);
  await new LargeObjectRepository(ds.manager).write(own, "content", sameSize);
  for (const ifNoneMatch of [oidAndSize, 'W/"anything"']) {
    const again = await fetch(url, { headers: revalidate({ "If-None-Match": ifNoneMatch }) });
    expect(again.status).toBe(200);
    expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(sha256(sameSize));
  }
  const ranged = await fetch(url, { headers: { Range: "bytes=0-9", "If-Range": 'W/"anything"' } });
  expect(ranged.status).toBe(200);
  await ranged.arrayBuffer();
  const unmatched = await fetch(url, { headers: { "If-Match": '"v1"' } });
  expect(unmatched.status).toBe(412);
});

test("If-Modified-Since gives 304 at or after Last-Modified and 200 before; an invalid date is ignored", async () => {
  const at = await fetch(`${server.url}/${file.id}`, { headers: revalidate({ "If-Modified-Since": MODIFIED.toUTCString() }) });
  expect(at.status).toBe(304);
  const before = await fetch(`${server.url}/${file.id}`, {
    headers: revalidate({ "If-Modified-Since": new Date(MODIFIED.getTime() - 1000).toUTCString() }),
  });
  expect(before.status).toBe(200);
  expect(sha256(Buffer.from(await before.arrayBuffer()))).toBe(sha256(bytes));
  const invalid = await fetch(`${server.url}/${file.id}`, { headers: revalidate({ "If-Modified-Since": "yesterday-ish" }) });
  expect(invalid.status).toBe(200);
  await invalid.arrayBuffer();
});

test("a caller's strong ETag answers If-None-Match, and If-Range with it keeps the range", async () => {
  const url = `${server.url}/${file.id}?etag=v1`;
  const fresh = await fetch(url, { headers: revalidate({ "If-None-Match": '"v0", "v1"' }) });
  expect(fresh.status).toBe(304);
  expect(fresh.headers.get("etag")).toBe('"v1"');
  const ranged = await fetch(url, { headers: { Range: "bytes=10-19", "If-Range": '"v1"' } });
  expect(ranged.status).toBe(206);
  expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20))).toBe(true);
});

test("If-Range that does not match (another tag, a weak tag, another date) gives the whole body", async () => {
  const weak = (await fetch(`${server.url}/${file.id}`, { method: "HEAD" })).headers.get("etag")!;
  for (const [query, ifRange] of [
    ["?etag=v1", '"v2"'],
    ["", weak],
    ["", new Date(MODIFIED.getTime() + 1000).toUTCString()],
  ] as const) {
    const response = await fetch(`${server.url}/${file.id}${query}`, { headers: { Range: "bytes=0-9", "If-Range": ifRange } });
    expect(response.status).toBe(200);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(bytes));
  }
  const sameDate = await fetch(`${server.url}/${file.id}`, { headers: { Range: "bytes=0-9", "If-Range": MODIFIED.toUTCString() } });
  expect(sameDate.status).toBe(206);
  await sameDate.arrayBuffer();
});

test("If-Match that fails and If-Unmodified-Since before the change give 412", async () => {
  const failing = await fetch(`${server.url}/${file.id}?etag=v1`, { headers: { "If-Match": '"v2"' } });
  expect(failing.status).toBe(412);
  const star = await fetch(`${server.url}/${file.id}?etag=v1`, { headers: { "If-Match": "*" } });
  expect(star.status).toBe(200);
  await star.arrayBuffer();
  const unmodified = await fetch(`${server.url}/${file.id}`, {
    headers: { "If-Unmodified-Since": new Date(MODIFIED.getTime() - 5000).toUTCString() },
  });
  expect(unmodified.status).toBe(412);
});

test("Cache-Control: no-cache in the request (a reload) is answered in full; curl's plain If-None-Match gets 304", async () => {
  const etag = (await fetch(`${server.url}/${file.id}`, { method: "HEAD" })).headers.get("etag")!;
  const reload = await fetch(`${server.url}/${file.id}`, { headers: { "If-None-Match": etag, "Cache-Control": "no-cache" } });
  expect(reload.status).toBe(200);
  await reload.arrayBuffer();
  const { stdout } = await curl(["-D", "-", "-o", "/dev/null", "-H", `If-None-Match: ${etag}`, `${server.url}/${file.id}`]);
  expect(curlHeaders(stdout.toString()).status).toBe(304);
});

test("curl -I: HEAD has every header of the GET and no body", async () => {
  const { code, stdout } = await curl(["-I", `${server.url}/${file.id}`]);
  expect(code).toBe(0);
  const { status, headers } = curlHeaders(stdout.toString());
  expect(status).toBe(200);
  expect(headers.get("content-length")).toBe(String(SIZE));
  expect(headers.get("accept-ranges")).toBe("bytes");
  expect(headers.get("etag")).toMatch(/^W\//);
  const ranged = curlHeaders((await curl(["-I", "-r", "5-9", `${server.url}/${file.id}`])).stdout.toString());
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get("content-range")).toBe(`bytes 5-9/${SIZE}`);
  expect(ranged.headers.get("content-length")).toBe("5");
});
