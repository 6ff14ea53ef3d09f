import { readFile } from "node:fs/promises";
import type { DataSource } from "typeorm";
import { sendLargeObject, MAX_RANGES } from "../../src/http";
import { randomBytes } from "../support/database";
import { curl, curlHeaders, sha256, startServer, useTempFiles, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const SIZE = 3 * 1024 * 1024 + 12345;
const bytes = randomBytes(SIZE, 20);
let ds: DataSource;
let server: TestServer;
let file: StoredFile;

const files = useTempFiles("tlo-http-");
useStoredFiles((opened) => (ds = opened), {
  // Every connection is back as soon as the response has been read: no time to settle.
  settleMs: 0,
  setUp: async () => {
    file = await ds.getRepository(StoredFile).save({ name: "data.bin", content: Buffer.from(bytes) });
    server = await startServer(async (req, res) => {
      const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: Number(req.url!.slice(1)) });
      await sendLargeObject(req, res, { source: ds, entity: row, property: "content", contentType: "application/x-test" });
    });
  },
  tearDown: () => server.close(),
});

/** The parts of a multipart/byteranges body: each part's Content-Range and bytes. */
function parseByteranges(body: Buffer, contentType: string): { range: string; type: string; data: Buffer }[] {
  const boundary = /boundary=([^;]+)/.exec(contentType)![1]!;
  const parts: { range: string; type: string; data: Buffer }[] = [];
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  while (at !== -1) {
    const headStart = at + delimiter.length;
    if (body.subarray(headStart, headStart + 2).toString() === "--") break;
    const headEnd = body.indexOf("\r\n\r\n", headStart);
    const head = body.subarray(headStart, headEnd).toString("latin1");
    const range = /Content-Range: (.*)/.exec(head)![1]!.trim();
    const type = /Content-Type: (.*)/.exec(head)![1]!.trim();
    const [, from, to] = /bytes (\d+)-(\d+)\//.exec(range)!.map(Number) as [number, number, number];
    const data = body.subarray(headEnd + 4, headEnd + 4 + (to - from + 1));
    parts.push({ range, type, data });
    at = body.indexOf(delimiter, headEnd + 4 + data.length);
  }
  return parts;
}

test("a whole GET through fetch and curl is byte-exact, with Content-Length and Accept-Ranges", async () => {
  const response = await fetch(`${server.url}/${file.id}`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-length")).toBe(String(SIZE));
  expect(response.headers.get("accept-ranges")).toBe("bytes");
  expect(response.headers.get("content-type")).toBe("application/x-test");
  expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(bytes));
  const viaCurl = await curl([`${server.url}/${file.id}`]);
  expect(viaCurl.code).toBe(0);
  expect(sha256(viaCurl.stdout)).toBe(sha256(bytes));
});

test("curl -r gets one range as 206 with Content-Range", async () => {
  const { code, stdout } = await curl(["-r", "1000-2000000", `${server.url}/${file.id}`]);
  expect(code).toBe(0);
  expect(sha256(stdout)).toBe(sha256(bytes.subarray(1000, 2000001)));
  const head = await curl(["-D", "-", "-o", "/dev/null", "-r", "1000-2000000", `${server.url}/${file.id}`]);
  const { status, headers } = curlHeaders(head.stdout.toString());
  expect(status).toBe(206);
  expect(headers.get("content-range")).toBe(`bytes 1000-2000000/${SIZE}`);
  expect(headers.get("content-length")).toBe(String(2000000 - 1000 + 1));
});

test("suffix ranges, including one longer than the object, and open-ended ranges", async () => {
  const last = await fetch(`${server.url}/${file.id}`, { headers: { Range: "bytes=-500" } });
  expect(last.status).toBe(206);
  expect(sha256(Buffer.from(await last.arrayBuffer()))).toBe(sha256(bytes.subarray(SIZE - 500)));
  const longer = await fetch(`${server.url}/${file.id}`, { headers: { Range: `bytes=-${SIZE * 2}` } });
  expect(longer.status).toBe(206);
  expect(longer.headers.get("content-range")).toBe(`bytes 0-${SIZE - 1}/${SIZE}`);
  expect(sha256(Buffer.from(await longer.arrayBuffer()))).toBe(sha256(bytes));
  const tail = await fetch(`${server.url}/${file.id}`, { headers: { Range: `bytes=${SIZE - 10}-` } });
  expect(Buffer.from(await tail.arrayBuffer()).equals(bytes.subarray(SIZE - 10))).toBe(true);
});

test("several ranges give multipart/byteranges whose parts hold the right bytes; overlaps are merged", async () => {
  const response = await fetch(`${server.url}/${file.id}`, { headers: { Range: "bytes=0-99, 5000-5999, 50-150, -100" } });
  expect(response.status).toBe(206);
  const type = response.headers.get("content-type")!;
  expect(type).toMatch(/^multipart\/byteranges; boundary=/);
  const body = Buffer.from(await response.arrayBuffer());
  expect(response.headers.get("content-length")).toBe(String(body.length));
  const parts = parseByteranges(body, type);
  expect(parts.map((p) => p.range)).toEqual([`bytes 0-150/${SIZE}`, `bytes 5000-5999/${SIZE}`, `bytes ${SIZE - 100}-${SIZE - 1}/${SIZE}`]);
  expect(parts.every((p) => p.type === "application/x-test")).toBe(true);
  expect(parts[0]!.data.equals(bytes.subarray(0, 151))).toBe(true);
  expect(parts[1]!.data.equals(bytes.subarray(5000, 6000))).toBe(true);
  expect(parts[2]!.data.equals(bytes.subarray(SIZE - 100))).toBe(true);
});

test(`more than ${MAX_RANGES} distinct ranges are answered with the whole body`, async () => {
  const specs = Array.from({ length: MAX_RANGES + 1 }, (_, i) => `${i * 1000}-${i * 1000 + 10}`).join(",");
  const response = await fetch(`${server.url}/${file.id}`, { headers: { Range: `bytes=${specs}` } });
  expect(response.status).toBe(200);
  expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(bytes));
  // Many overlapping ranges merge into one, which is served.
  const same = Array.from({ length: 100 }, () => "0-9").join(",");
  const merged = await fetch(`${server.url}/${file.id}`, { headers: { Range: `bytes=${same}` } });
  expect(merged.status).toBe(206);
  expect(Buffer.from(await merged.arrayBuffer()).equals(bytes.subarray(0, 10))).toBe(true);
});

test("an unsatisfiable range gets 416 with bytes */size; a malformed one or another unit gets the whole body", async () => {
  const beyond = await fetch(`${server.url}/${file.id}`, { headers: { Range: `bytes=${SIZE}-` } });
  expect(beyond.status).toBe(416);
  expect(beyond.headers.get("content-range")).toBe(`bytes */${SIZE}`);
  await beyond.arrayBuffer();
  for (const range of ["bytes=abc", "items=0-1", "bytes=5-1x"]) {
    const whole = await fetch(`${server.url}/${file.id}`, { headers: { Range: range } });
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-length")).toBe(String(SIZE));
    await whole.arrayBuffer();
  }
});

test("curl -C - resumes a partial download to the exact bytes", async () => {
  const target = await files.write("partial.bin", bytes.subarray(0, 1234567));
  const { code } = await curl(["-C", "-", "-o", target, `${server.url}/${file.id}`]);
  expect(code).toBe(0);
  expect(sha256(await readFile(target))).toBe(sha256(bytes));
});
