import type { DataSource } from "typeorm";
import { parse } from "content-disposition";
import { sendLargeObject, type SendLargeObjectOptions } from "../../src/http";
import { curl, curlHeaders, startServer, type TestServer } from "../support/http-server";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

let ds: DataSource;
let server: TestServer;
let file: StoredFile;
let extra: Partial<SendLargeObjectOptions<StoredFile>> = {};

useStoredFiles((opened) => (ds = opened), {
  // Every connection is back as soon as the response has been read: no time to settle.
  settleMs: 0,
  setUp: async () => {
    file = await ds.getRepository(StoredFile).save({ name: "page", content: "<script>alert(1)</script>" });
    server = await startServer(async (req, res) => {
      await sendLargeObject(req, res, { source: ds, entity: file, property: "content", ...extra });
    });
  },
  tearDown: () => server.close(),
});

async function headersFor(options: Partial<SendLargeObjectOptions<StoredFile>>): Promise<Headers> {
  extra = options;
  const response = await fetch(`${server.url}/`);
  await response.arrayBuffer();
  expect(response.status).toBe(200);
  return response.headers;
}

test.each(["text/html; charset=utf-8", "image/svg+xml", "application/xml", "application/xhtml+xml", "application/mathml+xml"])(
  "inline %s gets Content-Security-Policy: sandbox and nosniff",
  async (contentType) => {
    const headers = await headersFor({ contentType });
    expect(headers.get("content-security-policy")).toBe("sandbox");
    expect(headers.get("x-content-type-options")).toBe("nosniff");
  },
);

test("passive types inline, and any type as an attachment, get no sandbox (nosniff always)", async () => {
  for (const contentType of ["image/png", "video/mp4", "text/plain", "application/pdf"]) {
    const headers = await headersFor({ contentType });
    expect(headers.get("content-security-policy")).toBeNull();
    expect(headers.get("x-content-type-options")).toBe("nosniff");
  }
  const attachment = await headersFor({ contentType: "text/html", disposition: "attachment" });
  expect(attachment.get("content-security-policy")).toBeNull();
  expect(attachment.get("content-disposition")).toBe("attachment");
});

test.each([
  ["report.pdf"],
  ["naïve résumé.pdf"],
  ["日本語のファイル.txt"],
  ['quote " and \\ backslash.txt'],
  ["emoji 🎉 %41 percent.bin"],
  ["semi;colon, comma.txt"],
])("Content-Disposition carries %j and curl and the parser read it back", async (filename) => {
  const headers = await headersFor({ filename, disposition: "attachment" });
  const value = headers.get("content-disposition")!;
  expect(parse(value).type).toBe("attachment");
  expect(parse(value).parameters.filename).toBe(filename);
  if (/[^\x20-\x7e]/.test(filename)) expect(value).toContain("filename*=UTF-8''");
  const viaCurl = curlHeaders((await curl(["-I", `${server.url}/`])).stdout.toString("latin1"));
  expect(viaCurl.headers.get("content-disposition")).toBe(value);
});

test("no filename and inline: no Content-Disposition; the default type is application/octet-stream", async () => {
  const headers = await headersFor({});
  expect(headers.get("content-disposition")).toBeNull();
  expect(headers.get("content-type")).toBe("application/octet-stream");
  const cached = await headersFor({ cacheControl: "public, max-age=60" });
  expect(cached.get("cache-control")).toBe("public, max-age=60");
  const none = await headersFor({ cacheControl: false });
  expect(none.get("cache-control")).toBeNull();
});
