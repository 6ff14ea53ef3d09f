import { connect } from "node:net";
import type { DataSource } from "typeorm";
import { oidOf } from "../../src";
import { httpStatusOf } from "../../src/http";
import { objectBytes, randomBytes } from "../support/database";
import { curl, eventually, sha256, useTempFiles, type TestServer } from "../support/http-server";
import { expectNothingStored, startReceiver, useStoredFiles } from "../support/stored-files";

let ds: DataSource;
let server: TestServer;
let failures: unknown[] = [];

const files = useTempFiles("tlo-form-");
useStoredFiles((opened) => (ds = opened), {
  clear: true,
  setUp: async () => {
    server = await startReceiver(
      () => ({
        source: ds,
        maxBytes: 4 * 1024 * 1024,
        values: async ({ filename, contentType }) => ({ name: filename ?? "unnamed", type: contentType }),
      }),
      (saved, res) => res.end(JSON.stringify({ oid: oidOf(saved.content), name: saved.name, type: saved.type })),
      (err) => failures.push(err),
    );
  },
  tearDown: () => server.close(),
});
beforeEach(() => (failures = []));

/** Sends raw bytes as an HTTP request on a socket and returns the status line (or "" when cut). */
function rawRequest(head: string, body: Buffer, end: "finish" | "cut"): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(server.url).port), "127.0.0.1");
    let answer = "";
    socket.on("data", (d: Buffer) => {
      answer += d.toString("latin1");
      if (answer.includes("\r\n")) socket.destroy();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(answer.split("\r\n")[0] ?? ""));
    socket.write(head);
    socket.write(body);
    // A finished request keeps the socket open for the answer (a half-close would end it early).
    if (end === "cut") setTimeout(() => socket.destroy(), 100);
  });
}

test("curl -F with one file (and fields) is stored byte-exact with the part's name and type", async () => {
  const bytes = randomBytes(2 * 1024 * 1024 + 3, 60);
  const path = await files.write("photo.jpg", bytes);
  const { code, stdout } = await curl(["-F", "title=hello", "-F", `file=@${path};type=image/jpeg;filename=Ünïcode.jpg`, `${server.url}/`]);
  expect(code).toBe(0);
  const body = JSON.parse(stdout.toString()) as { oid: number; name: string; type: string };
  expect(body.type).toBe("image/jpeg");
  expect(body.name).toBe("Ünïcode.jpg");
  expect(sha256(await objectBytes(ds, body.oid))).toBe(sha256(bytes));
});

test("two small files are 400 (ERR_LO_HTTP_TOO_MANY_FILES), nothing is left and the process lives", async () => {
  const a = await files.write("a.txt", Buffer.from("first"));
  const b = await files.write("b.txt", Buffer.from("second"));
  const { stdout } = await curl(["-F", `one=@${a}`, "-F", `two=@${b}`, `${server.url}/`]);
  expect(stdout.toString()).toBe("ERR_LO_HTTP_TOO_MANY_FILES");
  expect(failures.map(httpStatusOf)).toEqual([400]);
  await expectNothingStored(ds);
});

test("a form with fields and no file is 400 (ERR_LO_HTTP_NO_FILE)", async () => {
  const { stdout } = await curl(["-F", "title=only", `${server.url}/`]);
  expect(stdout.toString()).toBe("ERR_LO_HTTP_NO_FILE");
  await expectNothingStored(ds);
});

test("a form whose file is exactly maxBytes is stored: its delimiters and other fields do not count", async () => {
  const bytes = randomBytes(4 * 1024 * 1024, 63);
  const path = await files.write("exact.bin", bytes);
  const { stdout } = await curl(["-H", "Expect:", "-F", `title=${"t".repeat(1000)}`, "-F", `file=@${path}`, `${server.url}/`]);
  const saved = JSON.parse(stdout.toString()) as { oid: number; name: string };
  expect(saved.name).toBe("exact.bin");
  expect((await objectBytes(ds, saved.oid)).equals(bytes)).toBe(true);
});

test("a form over maxBytes is 413", async () => {
  const path = await files.write("big.bin", randomBytes(5 * 1024 * 1024, 61));
  const { stdout } = await curl(["-H", "Expect:", "-F", `file=@${path}`, `${server.url}/`]);
  expect(stdout.toString()).toBe("ERR_LO_HTTP_TOO_LARGE");
  await expectNothingStored(ds);
});

test("a form without a boundary, and one that ends inside its file, are 400 (ERR_LO_HTTP_MALFORMED)", async () => {
  const noBoundary = await fetch(`${server.url}/`, { method: "POST", body: "x", headers: { "Content-Type": "multipart/form-data" } });
  expect(noBoundary.status).toBe(400);
  expect(await noBoundary.text()).toBe("ERR_LO_HTTP_MALFORMED");
  const body = Buffer.concat([
    Buffer.from('--XYZ\r\nContent-Disposition: form-data; name="f"; filename="t.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'),
    randomBytes(300 * 1024, 62),
  ]);
  // The body is complete by Content-Length, but the form's closing delimiter never comes.
  const status = await rawRequest(
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: ${body.length}\r\n\r\n`,
    body,
    "finish",
  );
  expect(status).toBe("HTTP/1.1 400 Bad Request");
  expect(failures.map((f) => (f as { code?: string }).code)).toEqual(["ERR_LO_HTTP_MALFORMED", "ERR_LO_HTTP_MALFORMED"]);
  await expectNothingStored(ds);
});

test("a client that goes away inside the file part leaves nothing behind", async () => {
  const body = Buffer.concat([
    Buffer.from('--XYZ\r\nContent-Disposition: form-data; name="f"; filename="t.bin"\r\n\r\n'),
    randomBytes(512 * 1024, 63),
  ]);
  await rawRequest(
    `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: ${body.length * 4}\r\n\r\n`,
    body,
    "cut",
  );
  await eventually(() => failures.length === 1, 5000, "the refusal");
  expect(httpStatusOf(failures[0])).toBe(400);
  await expectNothingStored(ds);
});
