import type { DataSource, ObjectLiteral } from "typeorm";
import { LargeObjectRepository, oidOf } from "../../src";
import { receiveLargeObject, sendLargeObject } from "../../src/http";
import { objectBytes, randomBytes } from "../support/database";
import { expectNothingLost } from "../support/cleanup";
import { curl, curlHeaders, revalidate, sha256, startServer, type TestServer } from "../support/http-server";
import { useDataSource } from "../support/use-data-source";
import { TrackedFile } from "./fixtures/tracked";

const bytes = randomBytes(300_000, 31);
let ds: DataSource;
let server: TestServer;
let file: TrackedFile;
/** Every statement each request's sendLargeObject sent, by request path and query. */
const sent = new Map<string, string[]>();
/** An entity the next request serves instead of the row it loads (one loaded earlier). */
let served: ObjectLiteral | undefined;

useDataSource((opened) => (ds = opened), {
  orm: [TrackedFile],
  poolSize: 4,
  checkClean: true,
  setUp: async () => {
    file = await ds.getRepository(TrackedFile).save({ name: "t.bin", content: Buffer.from(bytes), preview: Buffer.from(bytes.subarray(0, 1000)) });
    server = await startServer(async (req, res) => {
      const url = new URL(req.url!, "http://x");
      if (req.method === "POST") {
        const row = await receiveLargeObject(req, { source: ds, target: TrackedFile, property: "content" });
        res.end(String(row.id));
        return;
      }
      const entity = served ?? (await ds.getRepository(TrackedFile).findOneByOrFail({ id: Number(url.pathname.slice(1)) }));
      served = undefined;
      // The object is served on a runner of its own, so that every statement it costs is seen.
      const runner = ds.createQueryRunner();
      const client = (await runner.connect()) as { query: (...args: unknown[]) => unknown };
      const statements: string[] = [];
      sent.set(`${req.method} ${req.url}`, statements);
      const query = client.query;
      client.query = (...args: unknown[]) => {
        statements.push(String(typeof args[0] === "string" ? args[0] : (args[0] as { text?: string })?.text));
        return query.apply(client, args);
      };
      try {
        const etag = url.searchParams.get("etag") ?? undefined;
        await sendLargeObject(req, res, {
          source: runner,
          entity,
          property: (url.searchParams.get("property") ?? "content") as "content",
          ...(etag === undefined ? {} : { etag }),
        });
      } finally {
        client.query = query;
        await runner.release();
      }
    });
  },
  tearDown: () => server.close(),
});
// Nothing lost: no row pointing at a missing object, no object without its record.
afterEach(() => expectNothingLost(ds, "track_file", "content"));

const opened = (key: string): boolean => (sent.get(key) ?? []).some((sql) => sql.includes("lo_open"));

test("a tracked sha256 is the strong ETag; If-None-Match with it gives 304 without touching the database", async () => {
  const tag = `"${sha256(bytes)}"`;
  const first = await fetch(`${server.url}/${file.id}`);
  expect(first.status).toBe(200);
  expect(first.headers.get("etag")).toBe(tag);
  expect(first.headers.get("content-length")).toBe(String(bytes.length));
  expect(sha256(Buffer.from(await first.arrayBuffer()))).toBe(sha256(bytes));
  expect(opened(`GET /${file.id}`)).toBe(true);

  const again = await fetch(`${server.url}/${file.id}?n=2`, { headers: revalidate({ "If-None-Match": `"other", ${tag}` }) });
  expect(again.status).toBe(304);
  expect(again.headers.get("etag")).toBe(tag);
  expect(sent.get(`GET /${file.id}?n=2`)).toEqual([]);

  const { stdout } = await curl(["-D", "-", "-o", "/dev/null", "-H", `If-None-Match: ${tag}`, `${server.url}/${file.id}?n=3`]);
  expect(curlHeaders(stdout.toString()).status).toBe(304);
  expect(sent.get(`GET /${file.id}?n=3`)).toEqual([]);
});

test("If-Range compares strongly: the tracked tag keeps the range, its weak form or another tag gives the whole body", async () => {
  const tag = `"${sha256(bytes)}"`;
  const ranged = await fetch(`${server.url}/${file.id}`, { headers: { Range: "bytes=100-199", "If-Range": tag } });
  expect(ranged.status).toBe(206);
  expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);
  for (const ifRange of [`W/${tag}`, '"something else"']) {
    const whole = await fetch(`${server.url}/${file.id}`, { headers: { Range: "bytes=100-199", "If-Range": ifRange } });
    expect(whole.status).toBe(200);
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(bytes));
  }
  // curl resuming a download it holds the tag of: the rest arrives as 206.
  const resumed = await curl(["-D", "-", "-o", "/dev/null", "-r", "299990-", "-H", `If-Range: ${tag}`, `${server.url}/${file.id}`]);
  const { status, headers } = curlHeaders(resumed.stdout.toString());
  expect(status).toBe(206);
  expect(headers.get("content-range")).toBe(`bytes 299990-299999/${bytes.length}`);
});

test("curl -I: with a tracked size HEAD answers every header and opens no object", async () => {
  const { code, stdout } = await curl(["-I", `${server.url}/${file.id}?head=1`]);
  expect(code).toBe(0);
  const { status, headers } = curlHeaders(stdout.toString());
  expect(status).toBe(200);
  expect(headers.get("content-length")).toBe(String(bytes.length));
  expect(headers.get("etag")).toBe(`"${sha256(bytes)}"`);
  expect(headers.get("accept-ranges")).toBe("bytes");
  expect(sent.get(`HEAD /${file.id}?head=1`)).toEqual([]);

  const ranged = curlHeaders((await curl(["-I", "-r", "5-9", `${server.url}/${file.id}?head=2`])).stdout.toString());
  expect(ranged.status).toBe(206);
  expect(ranged.headers.get("content-length")).toBe("5");
  expect(sent.get(`HEAD /${file.id}?head=2`)).toEqual([]);

  // A size tracked alone still spares HEAD the object; without a digest (or lastModified) no ETag goes.
  const preview = curlHeaders((await curl(["-I", `${server.url}/${file.id}?property=preview`])).stdout.toString());
  expect(preview.headers.get("content-length")).toBe("1000");
  expect(preview.headers.has("etag")).toBe(false);
  expect(sent.get(`HEAD /${file.id}?property=preview`)).toEqual([]);
});

test("without known values (a write forgot them) HEAD opens the object and no ETag goes out", async () => {
  const row = await ds.getRepository(TrackedFile).save({ name: "forgotten", content: Buffer.from("0123456789") });
  const handle = await new LargeObjectRepository(ds.manager).openStream(row, "content", { mode: "rw" });
  await handle.write("ab");
  await handle.close();
  const head = curlHeaders((await curl(["-I", `${server.url}/${row.id}`])).stdout.toString());
  expect(head.status).toBe(200);
  expect(head.headers.get("content-length")).toBe("10");
  expect(head.headers.has("etag")).toBe(false);
  expect(opened(`HEAD /${row.id}`)).toBe(true);
  const get = await fetch(`${server.url}/${row.id}`);
  expect(get.headers.get("etag")).toBeNull();
  expect(Buffer.from(await get.arrayBuffer()).toString()).toBe("ab23456789");
});

test("a caller's etag wins over the tracked digest", async () => {
  const response = await fetch(`${server.url}/${file.id}?etag=v7`, { headers: revalidate({ "If-None-Match": `"${sha256(bytes)}"` }) });
  expect(response.status).toBe(200);
  expect(response.headers.get("etag")).toBe('"v7"');
  await response.arrayBuffer();
});

test("an entity loaded before its object changed size is answered with the object's own size and not its old digest", async () => {
  const row = await ds.getRepository(TrackedFile).save({ name: "stale", content: Buffer.from("the old content") });
  const stale = await ds.getRepository(TrackedFile).findOneByOrFail({ id: row.id });
  await new LargeObjectRepository(ds.manager).write(row, "content", "new");
  served = stale;
  const response = await fetch(`${server.url}/${row.id}`);
  expect(response.headers.get("content-length")).toBe("3");
  expect(response.headers.get("etag")).toBeNull();
  expect(Buffer.from(await response.arrayBuffer()).toString()).toBe("new");
});

test("receiveLargeObject stores the upload's size and sha256 with its row", async () => {
  const upload = randomBytes(150_000, 32);
  const response = await fetch(`${server.url}/`, { method: "POST", body: upload, headers: { "Content-Type": "application/octet-stream" } });
  expect(response.status).toBe(200);
  const id = Number(await response.text());
  const row = await ds.getRepository(TrackedFile).findOneByOrFail({ id });
  expect((await objectBytes(ds, oidOf(row.content))).equals(upload)).toBe(true);
  expect({ size: row.contentSize, sha256: row.contentSha256 }).toEqual({ size: String(upload.length), sha256: sha256(upload) });
  const served = await fetch(`${server.url}/${id}`, { method: "HEAD" });
  expect(served.headers.get("etag")).toBe(`"${sha256(upload)}"`);
});
