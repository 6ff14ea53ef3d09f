import { request } from "node:http";
import { randomBytes } from "../support/database";
import {
  expectNothingLeft,
  multipartBody,
  nextUploadEvent,
  send,
  useSample,
  writeBytes,
  type SampleServer,
} from "../support/sample-app";

const MiB = 1024 * 1024;
let sample: SampleServer | undefined;

useSample((started) => (sample = started));

test("a raw upload cut off midway leaves no row and no object", async () => {
  const req = request(`${sample!.url}/api/documents?name=cut.bin`, { method: "POST", headers: { "Content-Length": 50 * MiB }, agent: false });
  req.on("error", () => undefined);
  const started = nextUploadEvent(sample!.app, "started");
  const failed = nextUploadEvent(sample!.app, "failed");
  await writeBytes(req, 2 * MiB);
  await started;
  // The row exists (uncommitted) and bytes are going into its object when the client goes away.
  await writeBytes(req, 6 * MiB, 2);
  req.destroy();
  const event = await failed;
  expect(event.status).toBe(400);
  expect(event.error).toMatchObject({ code: "ERR_LO_HTTP_ABORTED" });
  await expectNothingLeft(sample!);
});

test("a multipart upload cut off midway leaves no row and no object", async () => {
  const form = multipartBody("file", "cut.bin", "application/octet-stream", randomBytes(8 * MiB, 3));
  const req = request(`${sample!.url}/api/documents`, {
    method: "POST",
    headers: { "Content-Type": form.contentType, "Content-Length": form.body.length + 40 * MiB },
    agent: false,
  });
  req.on("error", () => undefined);
  const started = nextUploadEvent(sample!.app, "started");
  const failed = nextUploadEvent(sample!.app, "failed");
  req.write(form.body.subarray(0, 2 * MiB));
  await started;
  req.write(form.body.subarray(2 * MiB, 7 * MiB));
  await new Promise((resolve) => setTimeout(resolve, 200));
  req.destroy();
  const event = await failed;
  expect(event.status).toBe(400);
  expect(event.error).toMatchObject({ code: "ERR_LO_HTTP_ABORTED" });
  await expectNothingLeft(sample!);
});

test("a form cut after the file's last byte, before its closing boundary, leaves nothing", async () => {
  const content = randomBytes(3 * MiB, 4);
  const form = multipartBody("file", "almost.bin", "application/octet-stream", content);
  const boundary = form.contentType.split("boundary=")[1]!;
  const withoutEnd = form.body.subarray(0, form.body.length - `\r\n--${boundary}--\r\n`.length);
  const failed = nextUploadEvent(sample!.app, "failed");
  const reply = await send(`${sample!.url}/api/documents`, {
    method: "POST",
    headers: { "Content-Type": form.contentType, "Content-Length": withoutEnd.length },
    body: withoutEnd,
  });
  expect(reply.status).toBe(400);
  expect(await failed).toMatchObject({ status: 400, error: { code: "ERR_LO_HTTP_MALFORMED" } });
  await expectNothingLeft(sample!);
});

test("a form with a second file is refused and leaves nothing of the first", async () => {
  const first = multipartBody("file", "one.bin", "application/octet-stream", randomBytes(MiB, 5));
  const boundary = first.contentType.split("boundary=")[1]!;
  const second = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="two.bin"\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--${boundary}--\r\n`,
  );
  const body = Buffer.concat([first.body.subarray(0, first.body.length - `--${boundary}--\r\n`.length), second]);
  const reply = await send(`${sample!.url}/api/documents`, { method: "POST", headers: { "Content-Type": first.contentType }, body });
  expect(reply.status).toBe(400);
  expect(JSON.parse(reply.body.toString())).toEqual({ error: "the form has more than one file" });
  await expectNothingLeft(sample!);
});

test("a form with no file is refused", async () => {
  const boundary = "----nofile";
  const body = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${boundary}--\r\n`);
  const reply = await send(`${sample!.url}/api/documents`, { method: "POST", headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` }, body });
  expect(reply.status).toBe(400);
  await expectNothingLeft(sample!);
});
