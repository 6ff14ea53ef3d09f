import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { oidOf } from "../../src";
import { isLargeObjectHttpError, type ReceiveLargeObjectOptions } from "../../src/http";
import { objectBytes, randomBytes } from "../support/database";
import { countRecords } from "../support/cleanup";
import { checkedOut } from "../support/pool";
import { curl, eventually, sha256, useTempFiles, type TestServer } from "../support/http-server";
import { expectNothingStored, startReceiver, useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let server: TestServer;
let extra: Partial<ReceiveLargeObjectOptions<StoredFile>> = {};
let failures: unknown[] = [];

const files = useTempFiles("tlo-up-");
useStoredFiles((opened) => (ds = opened), {
  clear: true,
  setUp: async () => {
    server = await startReceiver(
      () => ({
        source: ds,
        maxBytes: 8 * 1024 * 1024,
        values: ({ filename, contentType }) => ({ name: filename ?? "unnamed", type: contentType }),
        ...extra,
      }),
      (saved, res) => {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ id: saved.id, oid: oidOf(saved.content), name: saved.name, type: saved.type }));
      },
      (err) => failures.push(err),
    );
  },
  tearDown: () => server.close(),
});
beforeEach(() => {
  extra = {};
  failures = [];
});

test("a raw body through fetch is stored byte-exact with its type and the Content-Disposition filename", async () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 7, 30);
  const response = await fetch(`${server.url}/`, {
    method: "PUT",
    body: bytes,
    headers: { "Content-Type": "image/png", "Content-Disposition": "attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC.png" },
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { oid: number; name: string; type: string };
  expect(body.name).toBe("日本.png");
  expect(body.type).toBe("image/png");
  expect(sha256(await objectBytes(ds, body.oid))).toBe(sha256(bytes));
  expect(await countRecords(ds)).toBe(1);
});

test("curl --data-binary streams a chunked upload; the caller's filename wins", async () => {
  extra = { filename: "given.bin" };
  const bytes = randomBytes(1024 * 1024, 31);
  const path = await files.write("up.bin", bytes);
  const sent = await curl(["-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/octet-stream", "--data-binary", `@${path}`, `${server.url}/`]);
  expect(sent.code).toBe(0);
  const body = JSON.parse(sent.stdout.toString()) as { oid: number; name: string };
  expect(body.name).toBe("given.bin");
  expect(sha256(await objectBytes(ds, body.oid))).toBe(sha256(bytes));
});

test("over maxBytes: 413, whether Content-Length says so up front or a chunked body runs over; nothing is left", async () => {
  const declared = await fetch(`${server.url}/`, { method: "POST", body: randomBytes(9 * 1024 * 1024, 32) });
  expect(declared.status).toBe(413);
  await declared.arrayBuffer();
  const chunks = Array.from({ length: 40 }, (_, i) => randomBytes(256 * 1024, 40 + i));
  const streamed = await fetch(`${server.url}/`, { method: "POST", body: Readable.from(chunks) as unknown as ReadableStream, duplex: "half" } as RequestInit);
  expect(streamed.status).toBe(413);
  await streamed.arrayBuffer();
  expect(failures.every((f) => isLargeObjectHttpError(f) && f.code === "ERR_LO_HTTP_TOO_LARGE" && f.status === 413)).toBe(true);
  await expectNothingStored(ds);
});

test("a content coding, a urlencoded form or another multipart type is 415; an unreadable Content-Disposition names no file", async () => {
  for (const headers of [
    { "Content-Encoding": "gzip" } as Record<string, string>,
    { "Content-Type": "application/x-www-form-urlencoded" },
    { "Content-Type": "multipart/mixed; boundary=x" },
  ]) {
    const response = await fetch(`${server.url}/`, { method: "POST", body: "abc", headers });
    expect(response.status).toBe(415);
    await response.arrayBuffer();
  }
  extra = { accept: ["image/*"] };
  const refused = await fetch(`${server.url}/`, { method: "POST", body: "abc", headers: { "Content-Type": "text/plain" } });
  expect(refused.status).toBe(415);
  await refused.arrayBuffer();
  extra = {};
  await expectNothingStored(ds);
  // The Content-Disposition parser is lenient: a header it cannot read names no file, and a path is cut to its last part.
  const bad = await fetch(`${server.url}/`, { method: "POST", body: "abc", headers: { "Content-Disposition": 'attachment; filename="unterminated' } });
  expect(((await bad.json()) as { name: string }).name).toBe("unnamed");
  const path = await fetch(`${server.url}/`, { method: "POST", body: "abc", headers: { "Content-Disposition": 'attachment; filename="../../etc/passwd"' } });
  expect(((await path.json()) as { name: string }).name).toBe("passwd");
});

test("a client that goes away mid-upload leaves no row, object or record, and no crash", async () => {
  const controller = new AbortController();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      await new Promise((r) => setTimeout(r, 10));
      c.enqueue(randomBytes(64 * 1024, 50 + sent));
      sent += 1;
    },
  });
  const upload = fetch(`${server.url}/`, { method: "POST", body, duplex: "half", signal: controller.signal } as RequestInit);
  upload.catch(() => undefined);
  await eventually(() => sent >= 10, 5000, "the upload under way");
  await eventually(() => checkedOut(ds) === 1, 5000, "the upload's transaction open");
  controller.abort();
  await expect(upload).rejects.toThrow();
  await eventually(() => failures.length === 1, 5000, "the refusal");
  expect(isLargeObjectHttpError(failures[0]) && failures[0].code).toBe("ERR_LO_HTTP_ABORTED");
  await expectNothingStored(ds);
});

test("a filename with a percent-encoded NUL or CR LF is stored without them (no 500); '.' and '..' name no file", async () => {
  const names: string[] = [];
  for (const disposition of ["attachment; filename*=UTF-8''a%00b%0D%0Ac.txt", "attachment; filename*=UTF-8''..", 'attachment; filename="."']) {
    const response = await fetch(`${server.url}/`, { method: "POST", body: "abc", headers: { "Content-Disposition": disposition } });
    expect(response.status).toBe(200);
    names.push(((await response.json()) as { name: string }).name);
  }
  // A form's part names its file the same way (busboy decodes filename* too).
  const form = Buffer.from(
    '--b\r\nContent-Disposition: form-data; name="f"; filename*=UTF-8\'\'x%00y.bin\r\n\r\nabc\r\n--b--\r\n',
  );
  const response = await fetch(`${server.url}/`, { method: "POST", body: form, headers: { "Content-Type": "multipart/form-data; boundary=b" } });
  expect(response.status).toBe(200);
  names.push(((await response.json()) as { name: string }).name);
  expect(names).toEqual(["abc.txt", "unnamed", "unnamed", "xy.bin"]);
  expect(await ds.getRepository(StoredFile).count()).toBe(4);
});
