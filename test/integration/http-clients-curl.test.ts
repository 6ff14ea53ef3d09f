import { readFile, stat } from "node:fs/promises";
import type { DataSource } from "typeorm";
import { sendLargeObject } from "../../src/http";
import { randomBytes } from "../support/database";
import { readByteranges } from "../support/byteranges";
import { curl, curlHeaders, eventually, sha256, startServer, useTempFiles, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const SIZE = 2 * 1024 * 1024 + 777;
const bytes = randomBytes(SIZE, 70);
const MODIFIED = new Date("2026-07-08T09:10:11Z");
let ds: DataSource;
let server: TestServer;
let url: string;
/** Every request the server answered: its Range header and status. */
let seen: { range: string | undefined; status: number }[] = [];
/** When set, the next response is cut by the server once this many body bytes have been flushed. */
let cutAfter: number | undefined;

/** Destroys the socket once `limit` bytes of the body have reached the kernel: a real cut, at a byte count that does not depend on timing. */
function cutResponseAfter(res: import("node:http").ServerResponse, limit: number): void {
  const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
  let sent = 0;
  let cut = false;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (cut) return false;
    sent += Buffer.byteLength(chunk as Buffer);
    if (sent < limit) return write(chunk, ...rest);
    cut = true;
    return write(chunk, () => res.socket?.destroy());
  }) as typeof res.write;
}

const files = useTempFiles("tlo-curl-");
useStoredFiles((opened) => (ds = opened), {
  setUp: async () => {
    const file = await ds.getRepository(StoredFile).save({ name: "data.bin", content: Buffer.from(bytes) });
    server = await startServer(async (req, res) => {
      res.on("close", () => seen.push({ range: req.headers.range, status: res.statusCode }));
      if (cutAfter !== undefined) {
        cutResponseAfter(res, cutAfter);
        cutAfter = undefined;
      }
      const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: Number(req.url!.slice(1)) });
      await sendLargeObject(req, res, { source: ds, entity: row, property: "content", contentType: "application/x-curl", etag: "v1", lastModified: MODIFIED });
    });
    url = `${server.url}/${file.id}`;
  },
  tearDown: async () => server?.close(),
});
beforeEach(() => {
  seen = [];
});

test("curl -r with several ranges gets multipart/byteranges whose parts are the bytes asked for", async () => {
  const { code, stdout } = await curl(["-D", files.path("multi.headers"), "-r", "0-99,1000000-1000999,-50", url]);
  expect(code).toBe(0);
  const { status, headers } = curlHeaders(await readFile(files.path("multi.headers"), "latin1"));
  expect(status).toBe(206);
  expect(headers.get("content-length")).toBe(String(stdout.length));
  const parts = readByteranges(stdout, headers.get("content-type")!);
  expect(parts.map((p) => [p.start, p.end, p.total, p.type])).toEqual([
    [0, 99, SIZE, "application/x-curl"],
    [1000000, 1000999, SIZE, "application/x-curl"],
    [SIZE - 50, SIZE - 1, SIZE, "application/x-curl"],
  ]);
  for (const part of parts) expect(part.data.equals(bytes.subarray(part.start, part.end + 1))).toBe(true);
  // Overlapping ranges merge into one part, which is then a plain 206.
  const merged = await curl(["-D", "-", "-o", files.path("merged.bin"), "-r", "0-10,5-20", url]);
  expect(curlHeaders(merged.stdout.toString()).headers.get("content-range")).toBe(`bytes 0-20/${SIZE}`);
  expect((await readFile(files.path("merged.bin"))).equals(bytes.subarray(0, 21))).toBe(true);
});

test("a curl download cut off mid-body resumes with -C - to an identical file, from where it stopped", async () => {
  const target = files.path("resumed.bin");
  // The server drops the connection a megabyte in: curl keeps what it had (exit 18, partial file).
  cutAfter = 1024 * 1024;
  const cut = await curl(["-o", target, url]);
  expect(cut.code).toBe(18);
  const partial = (await stat(target)).size;
  expect(partial).toBeGreaterThanOrEqual(1024 * 1024);
  expect(partial).toBeLessThan(SIZE);
  const resumed = await curl(["-C", "-", "-o", target, url]);
  expect(resumed.code).toBe(0);
  expect(sha256(await readFile(target))).toBe(sha256(bytes));
  await eventually(() => seen.length === 2, 5000, "both answers seen");
  expect(seen).toEqual([
    { range: undefined, status: 200 },
    { range: `bytes=${partial}-`, status: 206 },
  ]);
  // Resuming a file that is already whole asks past its end: 416, which curl takes as done.
  const again = await curl(["-C", "-", "-o", target, url]);
  expect(again.code).toBe(0);
  expect(sha256(await readFile(target))).toBe(sha256(bytes));
  await eventually(() => seen.length === 3, 5000, "the third answer seen");
  expect(seen[2]).toEqual({ range: `bytes=${SIZE}-`, status: 416 });
});

test("curl -z sends If-Modified-Since (304, nothing written) and -z -date If-Unmodified-Since (412)", async () => {
  const fresh = await curl(["-D", "-", "-o", files.path("fresh.bin"), "-z", MODIFIED.toUTCString(), url]);
  expect(curlHeaders(fresh.stdout.toString()).status).toBe(304);
  const older = await curl(["-o", files.path("older.bin"), "-z", new Date(MODIFIED.getTime() - 60_000).toUTCString(), url]);
  expect(older.code).toBe(0);
  expect(sha256(await readFile(files.path("older.bin")))).toBe(sha256(bytes));
  const unmodified = await curl(["-D", "-", "-o", "/dev/null", "-z", `-${new Date(MODIFIED.getTime() - 60_000).toUTCString()}`, url]);
  expect(curlHeaders(unmodified.stdout.toString()).status).toBe(412);
});

test("curl --etag-save then --etag-compare revalidates with the saved ETag: 304", async () => {
  const etagFile = files.path("etag.txt");
  const first = await curl(["--etag-save", etagFile, "-o", files.path("etag.bin"), url]);
  expect(first.code).toBe(0);
  expect((await readFile(etagFile, "utf8")).trim()).toBe('"v1"');
  const second = await curl(["--etag-compare", etagFile, "-D", "-", "-o", "/dev/null", url]);
  const { status, headers } = curlHeaders(second.stdout.toString());
  expect(status).toBe(304);
  expect(headers.get("etag")).toBe('"v1"');
  expect(headers.get("last-modified")).toBe(MODIFIED.toUTCString());
});

test("curl -I answers HEAD for a range past the end (416 with bytes */size) and a matching If-None-Match (304)", async () => {
  const beyond = curlHeaders((await curl(["-I", "-r", `${SIZE}-`, url])).stdout.toString());
  expect(beyond.status).toBe(416);
  expect(beyond.headers.get("content-range")).toBe(`bytes */${SIZE}`);
  const notModified = curlHeaders((await curl(["-I", "-H", 'If-None-Match: "v0", "v1"', url])).stdout.toString());
  expect(notModified.status).toBe(304);
  expect(notModified.headers.get("etag")).toBe('"v1"');
});
