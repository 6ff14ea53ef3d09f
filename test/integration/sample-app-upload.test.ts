import { countObjects, objectBytes, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { Document } from "../../sample-app/src/document";
import { countDocuments, eventually, multipartBody, send, sha256, useSample, type SampleServer } from "../support/sample-app";

const SIZE = 50 * 1024 * 1024;
let sample: SampleServer | undefined;

useSample((started) => (sample = started));

async function expectStored(id: number, content: Buffer, name: string, contentType: string): Promise<void> {
  const ds = sample!.dataSource;
  const row = await ds.manager.findOneByOrFail(Document, { id });
  expect(row).toMatchObject({ name, contentType, size: content.length, sha256: sha256(content) });
  expect(typeof row.content).toBe("number");
  expect((await objectBytes(ds, row.content as number)).equals(content)).toBe(true);

  const download = await send(`${sample!.url}/api/documents/${id}/content`);
  expect(download.status).toBe(200);
  expect(download.headers["content-length"]).toBe(String(content.length));
  expect(download.headers["content-type"]).toBe(contentType);
  expect(download.headers.etag).toBe(`"${sha256(content)}"`);
  expect(download.body.equals(content)).toBe(true);
}

test("a 50 MiB raw body is stored with its size and SHA-256 and downloads byte for byte", async () => {
  const content = randomBytes(SIZE, 11);
  const reply = await send(`${sample!.url}/api/documents?name=${encodeURIComponent("raw é.bin")}`, {
    method: "POST",
    headers: { "Content-Type": "application/x-test", "Content-Length": content.length },
    body: content,
  });
  expect(reply.status).toBe(201);
  const json = JSON.parse(reply.body.toString()) as { id: number; size: number; sha256: string; url: string };
  expect(json).toMatchObject({ size: SIZE, sha256: sha256(content), url: `/api/documents/${json.id}/content` });
  expect(JSON.stringify(json)).not.toContain("content\":");
  expect(reply.headers.location).toBe(`/api/documents/${json.id}`);
  await expectStored(json.id, content, "raw é.bin", "application/x-test");
  // The server releases the read stream's connection just after the last byte is sent.
  await eventually(() => checkedOut(sample!.dataSource) === 0, "every connection back in the pool");
});

test("a 50 MiB browser form (multipart) is stored with its size and SHA-256 and downloads byte for byte", async () => {
  const content = randomBytes(SIZE, 12);
  const form = multipartBody("file", "form.bin", "application/octet-stream", content);
  const reply = await send(`${sample!.url}/api/documents`, {
    method: "POST",
    headers: { "Content-Type": form.contentType, "Content-Length": form.body.length },
    body: form.body,
  });
  expect(reply.status).toBe(201);
  const json = JSON.parse(reply.body.toString()) as { id: number; size: number; sha256: string };
  expect(json).toMatchObject({ size: SIZE, sha256: sha256(content) });
  await expectStored(json.id, content, "form.bin", "application/octet-stream");
});

test("a chunked upload of no bytes makes an empty document", async () => {
  const reply = await send(`${sample!.url}/api/documents?name=empty.txt`, { method: "POST", headers: { "Content-Type": "text/plain" }, body: Buffer.alloc(0) });
  expect(reply.status).toBe(201);
  const json = JSON.parse(reply.body.toString()) as { id: number };
  await expectStored(json.id, Buffer.alloc(0), "empty.txt", "text/plain");
});

test("the list shows every document, newest first, without oids", async () => {
  const reply = await send(`${sample!.url}/api/documents`);
  expect(reply.status).toBe(200);
  const list = JSON.parse(reply.body.toString()) as { id: number; name: string }[];
  expect(list.map((d) => d.name)).toEqual(["empty.txt", "form.bin", "raw é.bin"]);
  expect(list.every((d) => !("content" in d))).toBe(true);
  expect(await countDocuments(sample!.dataSource)).toBe(3);
  expect(await countObjects(sample!.dataSource)).toBe(3);
});
