import type { DataSource } from "typeorm";
import { sendLargeObject } from "../../src/http";
import { randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { readByteranges } from "../support/byteranges";
import { eventually, revalidate, startServer, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const SIZE = 300_000;
const bytes = randomBytes(SIZE, 80);
const MODIFIED = new Date("2026-09-10T11:12:13Z");
let ds: DataSource;
let server: TestServer;
let url: string;

useStoredFiles((opened) => (ds = opened), {
  setUp: async () => {
    const file = await ds.getRepository(StoredFile).save({ name: "f.bin", content: Buffer.from(bytes) });
    server = await startServer(async (req, res) => {
      const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: Number(req.url!.slice(1)) });
      await sendLargeObject(req, res, { source: ds, entity: row, property: "content", contentType: "application/x-fetch", etag: "v1", lastModified: MODIFIED });
    });
    url = `${server.url}/${file.id}`;
  },
  tearDown: async () => server?.close(),
});

test("a fresh validator beats Range: If-None-Match (weak comparison, or *) and If-Modified-Since give 304, not 206", async () => {
  for (const headers of [
    { Range: "bytes=0-9", "If-None-Match": '"v1"' } as Record<string, string>,
    { Range: "bytes=0-9", "If-None-Match": 'W/"v1"' },
    { Range: "bytes=0-9,100-199", "If-None-Match": "*" },
    { Range: "bytes=0-9", "If-Modified-Since": MODIFIED.toUTCString() },
  ]) {
    const response = await fetch(url, { headers: revalidate(headers) });
    expect([JSON.stringify(headers), response.status]).toEqual([JSON.stringify(headers), 304]);
    expect(response.headers.get("content-range")).toBeNull();
    expect((await response.arrayBuffer()).byteLength).toBe(0);
  }
  // If-None-Match decides alone when present: a stale one is not rescued by a fresh date.
  const stale = await fetch(url, { headers: revalidate({ Range: "bytes=0-9", "If-None-Match": '"v0"', "If-Modified-Since": MODIFIED.toUTCString() }) });
  expect(stale.status).toBe(206);
  expect(Buffer.from(await stale.arrayBuffer()).equals(bytes.subarray(0, 10))).toBe(true);
});

test("If-Range that matches keeps several ranges (multipart); one that does not gives the whole body with no Content-Range", async () => {
  const matching = await fetch(url, { headers: { Range: "bytes=0-9,-10", "If-Range": '"v1"' } });
  expect(matching.status).toBe(206);
  const parts = readByteranges(Buffer.from(await matching.arrayBuffer()), matching.headers.get("content-type")!);
  expect(parts.map((p) => [p.start, p.end])).toEqual([
    [0, 9],
    [SIZE - 10, SIZE - 1],
  ]);
  expect(parts.every((p) => p.data.equals(bytes.subarray(p.start, p.end + 1)))).toBe(true);
  for (const ifRange of ['"v0"', 'W/"v1"', new Date(MODIFIED.getTime() - 1000).toUTCString(), "not a validator"]) {
    const whole = await fetch(url, { headers: { Range: "bytes=0-9,-10", "If-Range": ifRange } });
    expect([ifRange, whole.status]).toEqual([ifRange, 200]);
    expect(whole.headers.get("content-range")).toBeNull();
    expect(whole.headers.get("content-length")).toBe(String(SIZE));
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
  }
});

test("a range read through fetch's body stream and cancelled after its first chunk gives the connection back", async () => {
  const response = await fetch(url, { headers: { Range: "bytes=1000-" } });
  expect(response.status).toBe(206);
  const reader = response.body!.getReader();
  const first = await reader.read();
  expect(Buffer.from(first.value!).equals(bytes.subarray(1000, 1000 + first.value!.length))).toBe(true);
  await reader.cancel();
  await eventually(() => checkedOut(ds) === 0, 5000, "the read's connection back in the pool");
  // The next request on the same client is whole.
  const next = await fetch(url, { headers: { Range: "bytes=-5" } });
  expect(Buffer.from(await next.arrayBuffer()).equals(bytes.subarray(SIZE - 5))).toBe(true);
});

test("HEAD with a Range through fetch: 206 headers of the range, no body", async () => {
  const response = await fetch(url, { method: "HEAD", headers: { Range: "bytes=100-199" } });
  expect(response.status).toBe(206);
  expect(response.headers.get("content-range")).toBe(`bytes 100-199/${SIZE}`);
  expect(response.headers.get("content-length")).toBe("100");
  expect((await response.arrayBuffer()).byteLength).toBe(0);
});
