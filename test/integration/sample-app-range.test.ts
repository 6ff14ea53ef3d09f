import { randomBytes } from "../support/database";
import { send, sha256, useSample, type SampleServer } from "../support/sample-app";

const SIZE = 3 * 1024 * 1024 + 17;
const content = randomBytes(SIZE, 21);
let sample: SampleServer | undefined;
let url = "";

useSample((started) => (sample = started), {
  setUp: async (started) => {
    const reply = await send(`${started.url}/api/documents?name=clip.bin`, { method: "POST", body: content, headers: { "Content-Type": "video/mp4" } });
    const { id } = JSON.parse(reply.body.toString()) as { id: number };
    url = `${started.url}/api/documents/${id}/content`;
  },
});

test.each([
  ["the start", "bytes=0-99", 0, 99],
  ["the middle, across a 1 MiB boundary", `bytes=${1024 * 1024 - 10}-${2 * 1024 * 1024 + 10}`, 1024 * 1024 - 10, 2 * 1024 * 1024 + 10],
  ["the end (open-ended)", `bytes=${SIZE - 1000}-`, SIZE - 1000, SIZE - 1],
  ["the end (suffix)", "bytes=-500", SIZE - 500, SIZE - 1],
  ["past the end, clamped", `bytes=${SIZE - 10}-${SIZE + 1000}`, SIZE - 10, SIZE - 1],
  ["one byte", "bytes=12345-12345", 12345, 12345],
])("a range at %s is 206 with the exact bytes and Content-Range", async (_where, range, start, end) => {
  const reply = await send(url, { headers: { Range: range } });
  expect(reply.status).toBe(206);
  expect(reply.headers["content-range"]).toBe(`bytes ${start}-${end}/${SIZE}`);
  expect(reply.headers["content-length"]).toBe(String(end - start + 1));
  expect(reply.body.equals(content.subarray(start, end + 1))).toBe(true);
});

test.each([`bytes=${SIZE}-`, `bytes=${SIZE + 5}-${SIZE + 10}`, "bytes=-0", "bytes=9-3"])("an unsatisfiable range (%s) is 416 with the size", async (range) => {
  const reply = await send(url, { headers: { Range: range } });
  expect(reply.status).toBe(416);
  expect(reply.headers["content-range"]).toBe(`bytes */${SIZE}`);
  expect(reply.body.length).toBe(0);
});

test("two ranges are 206 multipart/byteranges with each part's bytes", async () => {
  const reply = await send(url, { headers: { Range: "bytes=0-1,5-6" } });
  expect(reply.status).toBe(206);
  const type = reply.headers["content-type"] as string;
  expect(type).toMatch(/^multipart\/byteranges; boundary=/);
  const body = reply.body.toString("latin1");
  for (const [start, end] of [[0, 1], [5, 6]] as const) {
    const part = `Content-Range: bytes ${start}-${end}/${SIZE}\r\n\r\n`;
    expect(body).toContain(part + content.subarray(start, end + 1).toString("latin1"));
  }
  expect(reply.headers["content-length"]).toBe(String(reply.body.length));
});

test("a range of another unit gets the whole content", async () => {
  const reply = await send(url, { headers: { Range: "items=0-5" } });
  expect(reply.status).toBe(200);
  expect(reply.body.equals(content)).toBe(true);
});

test("HEAD gives the headers of GET and no body", async () => {
  const reply = await send(url, { method: "HEAD" });
  expect(reply.status).toBe(200);
  expect(reply.headers["content-length"]).toBe(String(SIZE));
  expect(reply.headers["accept-ranges"]).toBe("bytes");
  expect(reply.headers["content-type"]).toBe("video/mp4");
  expect(reply.headers.etag).toBe(`"${sha256(content)}"`);
  expect(reply.body.length).toBe(0);
  const ranged = await send(url, { method: "HEAD", headers: { Range: "bytes=10-19" } });
  expect(ranged.status).toBe(206);
  expect(ranged.headers["content-range"]).toBe(`bytes 10-19/${SIZE}`);
  expect(ranged.headers["content-length"]).toBe("10");
});

test("the ETag answers If-None-Match with 304 and gates If-Range", async () => {
  const etag = `"${sha256(content)}"`;
  expect((await send(url, { headers: { "If-None-Match": etag } })).status).toBe(304);
  const stale = await send(url, { headers: { Range: "bytes=0-9", "If-Range": '"something-else"' } });
  expect(stale.status).toBe(200);
  expect(stale.body.length).toBe(SIZE);
  const fresh = await send(url, { headers: { Range: "bytes=0-9", "If-Range": etag } });
  expect(fresh.status).toBe(206);
});

test("?download asks for an attachment, keeping the file name", async () => {
  const reply = await send(`${url}?download`, { method: "HEAD" });
  expect(reply.headers["content-disposition"]).toBe("attachment; filename=clip.bin");
  const inline = await send(url, { method: "HEAD" });
  expect(inline.headers["content-disposition"]).toBe("inline; filename=clip.bin");
});

test("an unknown or malformed id is 404, never a database error", async () => {
  for (const path of ["/api/documents/999999/content", "/api/documents/0/content", "/api/documents/abc", "/api/documents/99999999999"]) {
    expect((await send(`${sample!.url}${path}`)).status).toBe(404);
  }
});
