import type { DataSource, QueryRunner } from "typeorm";
import { WHOLE_READ_LIMIT, registerLargeObjects } from "../../src";
import { sendLargeObject, httpStatusOf } from "../../src/http";
import { clientQueries, makeDataSource, randomBytes } from "../support/database";
import { checkedOut, expectConnectionsBack } from "../support/pool";
import { curl, eventually, sha256, startServer, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const BIG = 24 * 1024 * 1024;
const big = randomBytes(BIG, 22);
let ds: DataSource;
let small: DataSource;
let admin: DataSource;
let server: TestServer;
let errors: unknown[] = [];
let source: () => DataSource = () => ds;

useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), {
  checkClean: false,
  poolSize: 4,
  setUp: async () => {
    // One connection, and an acquire timeout short enough for a test.
    small = registerLargeObjects(makeDataSource({ entities: [StoredFile], poolSize: 1, connectTimeoutMS: 300, applicationName: "tlo-http-small" }));
    await small.initialize();
    server = await startServer(async (req, res) => {
      const id = Number(req.url!.slice(1));
      const entity = Object.assign(new StoredFile(), { id });
      await sendLargeObject(req, res, { source: source(), entity, property: "content", onError: (err) => errors.push(err) });
    });
  },
  tearDown: async () => {
    await server.close();
    await small.destroy();
  },
});
beforeEach(() => {
  errors = [];
  source = () => ds;
});
afterEach(() => expectConnectionsBack([ds, small], admin));

test("a missing row and a null column are 404, and not reported as failures", async () => {
  const missing = await fetch(`${server.url}/987654`);
  expect(missing.status).toBe(404);
  expect(await missing.text()).toBe("Not Found\n");
  const empty = await ds.getRepository(StoredFile).save({ name: "null", content: null });
  const nothing = await fetch(`${server.url}/${empty.id}`);
  expect(nothing.status).toBe(404);
  await nothing.arrayBuffer();
  expect(errors).toEqual([]);
});

test("methods other than GET and HEAD get 405 with Allow", async () => {
  const response = await fetch(`${server.url}/1`, { method: "POST", body: "x" });
  expect(response.status).toBe(405);
  expect(response.headers.get("allow")).toBe("GET, HEAD");
  await response.arrayBuffer();
});

test("an exhausted pool is 503 (ERR_LO_POOL_EXHAUSTED), told to onError, and the pool works afterwards", async () => {
  const doc = await small.getRepository(StoredFile).save({ name: "busy", content: "busy" });
  source = () => small;
  let holder: QueryRunner | undefined = small.createQueryRunner();
  await holder.connect();
  try {
    const response = await fetch(`${server.url}/${doc.id}`);
    expect(response.status).toBe(503);
    await response.arrayBuffer();
    expect(errors.map(httpStatusOf)).toEqual([503]);
    expect((errors[0] as { code?: string }).code).toBe("ERR_LO_POOL_EXHAUSTED");
  } finally {
    await holder.release();
    holder = undefined;
  }
  const after = await fetch(`${server.url}/${doc.id}`);
  expect(after.status).toBe(200);
  expect(await after.text()).toBe("busy");
});

test("a failure after the headers cuts the response (curl: partial transfer), never a wrong body", async () => {
  const doc = await small.getRepository(StoredFile).save({ name: "cut", content: Buffer.from(big) });
  source = () => small;
  const download = curl(["--limit-rate", "2M", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", `${server.url}/${doc.id}`]);
  await eventually(async () => {
    const rows: unknown[] = await admin.query(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = 'tlo-http-small' AND query LIKE 'COPY%' AND state = 'active'",
    );
    return rows.length > 0;
  }, 10_000, "the download's COPY running");
  await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tlo-http-small'");
  const { code, stdout } = await download;
  expect(code).toBe(18); // CURLE_PARTIAL_FILE: fewer bytes than Content-Length
  const [status, received] = stdout.toString().split(" ").map(Number) as [number, number];
  expect(status).toBe(200);
  expect(received).toBeLessThan(BIG);
  await eventually(() => errors.length === 1, 5000, "onError told of the cut");
});

test("a client that goes away mid-download gives its connection back at once", async () => {
  const doc = await ds.getRepository(StoredFile).save({ name: "left", content: Buffer.from(big) });
  const controller = new AbortController();
  const response = await fetch(`${server.url}/${doc.id}`, { signal: controller.signal });
  const reader = response.body!.getReader();
  const first = await reader.read();
  expect(first.value!.length).toBeGreaterThan(0);
  expect(checkedOut(ds)).toBe(1);
  const left = Date.now();
  controller.abort();
  await eventually(() => checkedOut(ds) === 0, 2000, "the connection released");
  expect(Date.now() - left).toBeLessThan(2000);
  expect(errors).toEqual([]);
  // The same object still serves in full.
  const again = await fetch(`${server.url}/${doc.id}`);
  expect(sha256(Buffer.from(await again.arrayBuffer()))).toBe(sha256(big));
});

test("a download of at most 1 MiB is one statement: no transaction, and no connection while the client reads", async () => {
  const content = randomBytes(WHOLE_READ_LIMIT, 23);
  const doc = await small.getRepository(StoredFile).save({ name: "small", content });
  source = () => small;
  let first: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const received: Uint8Array[] = [];
  const sent = await clientQueries(async () => {
    const response = await fetch(`${server.url}/${doc.id}`);
    expect(response.status).toBe(200);
    first = response.body!.getReader();
    received.push((await first.read()).value!);
  });
  expect(sent.map((q) => q.text)).toEqual([expect.stringMatching(/^COPY \(WITH s AS \(SELECT "content" AS oid FROM "http_file" WHERE "id" = \d+\)/)]);
  // With the first response unread, the pool's one connection serves another download.
  expect(checkedOut(small)).toBe(0);
  const beside = await fetch(`${server.url}/${doc.id}`, { headers: { range: "bytes=10-19" } });
  expect(beside.status).toBe(206);
  expect(Buffer.from(await beside.arrayBuffer()).equals(content.subarray(10, 20))).toBe(true);
  for (let chunk = await first!.read(); !chunk.done; chunk = await first!.read()) received.push(chunk.value);
  expect(Buffer.concat(received).equals(content)).toBe(true);
  expect(errors).toEqual([]);
});
