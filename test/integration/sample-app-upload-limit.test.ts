import { request } from "node:http";
import { randomBytes } from "../support/database";
import {
  expectNothingLeft,
  multipartBody,
  nextUploadEvent,
  responseOf,
  send,
  useSample,
  writeBytes,
  type SampleServer,
} from "../support/sample-app";

const LIMIT = 5 * 1024 * 1024;
let sample: SampleServer | undefined;

useSample((started) => (sample = started), { maxUploadBytes: LIMIT });

test("a body declared larger than the limit is refused with 413 before anything is stored", async () => {
  let started = false;
  const onUpload = (event: { phase: string }): void => void (event.phase === "started" && (started = true));
  sample!.app.events.on("upload", onUpload);
  const reply = await send(`${sample!.url}/api/documents?name=big`, {
    method: "POST",
    headers: { "Content-Length": LIMIT + 1 },
    body: randomBytes(LIMIT + 1, 1),
  });
  sample!.app.events.off("upload", onUpload);
  expect(reply.status).toBe(413);
  expect(started).toBe(false);
  await expectNothingLeft(sample!);
});

test("a chunked body that goes over the limit is cut at the limit with 413 and leaves nothing", async () => {
  const req = request(`${sample!.url}/api/documents?name=big`, { method: "POST", agent: false });
  const response = responseOf(req);
  const failed = nextUploadEvent(sample!.app, "failed");
  const writing = writeBytes(req, 2 * LIMIT).then(() => req.end(), () => undefined);
  const event = await failed;
  expect(event.error).toMatchObject({ code: "ERR_LO_HTTP_TOO_LARGE", status: 413 });
  const res = await response;
  expect(res?.statusCode).toBe(413);
  res?.resume();
  await writing;
  await expectNothingLeft(sample!);
});

test("a multipart file over the limit is refused with 413 and leaves nothing", async () => {
  const form = multipartBody("file", "big.bin", "application/octet-stream", randomBytes(LIMIT + 1000, 2));
  const failed = nextUploadEvent(sample!.app, "failed");
  const reply = await send(`${sample!.url}/api/documents`, { method: "POST", headers: { "Content-Type": form.contentType }, body: form.body });
  expect(reply.status).toBe(413);
  expect(await failed).toMatchObject({ status: 413, error: { code: "ERR_LO_HTTP_TOO_LARGE" } });
  await expectNothingLeft(sample!);
});

test("an upload of exactly the limit is stored", async () => {
  const reply = await send(`${sample!.url}/api/documents?name=fits`, { method: "POST", body: randomBytes(LIMIT, 3) });
  expect(reply.status).toBe(201);
  expect((JSON.parse(reply.body.toString()) as { size: number }).size).toBe(LIMIT);
  await send(`${sample!.url}${reply.headers.location as string}`, { method: "DELETE" });
  await expectNothingLeft(sample!);
});
