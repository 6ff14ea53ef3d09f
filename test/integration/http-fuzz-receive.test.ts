import type { DataSource } from "typeorm";
import { oidOf } from "../../src";
import { countObjects, idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { countRecords } from "../support/cleanup";
import { checkedOut } from "../support/pool";
import { eventually, type TestServer } from "../support/http-server";
import { rawRequest, requestBytes, seeded } from "../support/raw-http";
import { startReceiver, useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const CASES = 300;
const UNNAMED = "(unnamed)";

let ds: DataSource;
let admin: DataSource;
let server: TestServer;
let port: number;
const serverFailures: unknown[] = [];

useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), {
  checkClean: false,
  setUp: async () => {
    server = await startReceiver(
      () => ({ source: ds, maxBytes: 64 * 1024, values: ({ filename }) => ({ name: filename ?? UNNAMED }) }),
      (saved, res) => {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ id: saved.id, oid: oidOf(saved.content) }));
      },
      (err, status) => {
        if (status >= 500) serverFailures.push(err);
      },
    );
    port = Number(new URL(server.url).port);
  },
  tearDown: async () => server?.close(),
});

function name(r: ReturnType<typeof seeded>): string {
  return r.pick([
    () => "report.pdf",
    () => "../../etc/passwd",
    () => "..",
    () => ".",
    () => "dir/..",
    () => "a\\b\\c.txt",
    () => "C:\\Users\\x\\photo.png",
    () => "日本語.txt",
    () => "😀.bin",
    () => "x".repeat(1 + r.int(6000)),
    () => "",
    () => " ",
    () => "a\u0000b",
    () => "a\r\nb",
    () => "a\u001bb\u007f",
    () => '"',
    () => "a;b=c",
    () => "\u202eexe.txt",
    () => "é",
  ])();
}

/** A Content-Disposition value built around a hostile name, or plain garbage. */
function disposition(r: ReturnType<typeof seeded>, type: string): string {
  const n = name(r);
  const param = r.pick([
    () => `filename="${n}"`,
    () => `filename=${n}`,
    () => `filename*=UTF-8''${encodeURIComponent(n)}`,
    () => `filename*=utf-8''${n}`,
    () => "filename*=ISO-8859-1''%E9t%E9.txt",
    () => "filename*=UTF-8''%ZZ%",
    () => "filename*=UTF-8''a%00b%0D%0Ac",
    () => "filename*=UTF-8''..",
    () => `filename="a"; filename*=UTF-8''${encodeURIComponent(n)}`,
    () => `filename="${n}"; filename="other"`,
    () => "filename",
    () => "filename=",
    () => `filename="unterminated`,
  ])();
  return r.pick([
    () => `${type}; ${param}`,
    () => `${type};${param};;`,
    () => param,
    () => `${type}`,
    () => ";;;",
    () => "",
    () => `${type}; ${param}`.toUpperCase(),
  ])();
}

/** What no stored name may contain: a directory part, a dot entry, or a control character. */
function unsafeName(stored: string): string | undefined {
  if (stored === UNNAMED) return undefined;
  if (stored === "" || stored === "." || stored === "..") return `the name ${JSON.stringify(stored)}`;
  if (/[/\\]/.test(stored)) return `a directory part in ${JSON.stringify(stored.slice(0, 80))}`;
  if ([...stored].some((c) => c.charCodeAt(0) < 0x20 || c === "\u007f")) return `a control character in ${JSON.stringify(stored.slice(0, 80))}`;
  return undefined;
}

function formBody(partDisposition: string, content: Buffer, boundary: string): Buffer {
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: ${partDisposition}\r\nContent-Type: application/x-fuzz\r\n\r\n`, "utf8"),
    content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

test(`${CASES} seeded hostile Content-Disposition values, raw and in forms: 200 or 400, exact bytes, safe names, nothing left over`, async () => {
  const r = seeded(6266);
  const problems: string[] = [];
  const statuses = new Map<number, number>();
  let stored = 0;
  for (let i = 0; i < CASES; i += 1) {
    const content = randomBytes(r.next() < 0.1 ? 0 : r.int(4096), 1000 + i);
    const form = r.next() < 0.4;
    let request: Buffer;
    let shown: string;
    if (form) {
      shown = disposition(r, "form-data; name=\"file\"");
      request = requestBytes("POST", "/", [["Content-Type", "multipart/form-data; boundary=fuzzboundary"]], formBody(shown, content, "fuzzboundary"));
    } else {
      shown = disposition(r, r.pick(["attachment", "inline", "form-data", "x-garbage"]));
      request = requestBytes("POST", "/", [["Content-Type", "application/x-fuzz"], ["Content-Disposition", shown]], content);
    }
    const res = await rawRequest(port, request);
    const what = `case ${i} ${form ? "form" : "raw"} ${JSON.stringify(shown).slice(0, 200)}`;
    if (res === null) {
      problems.push(`${what}: no answer`);
      continue;
    }
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status === 400) continue;
    if (res.status !== 200) {
      problems.push(`${what}: status ${res.status} ${res.body.toString().slice(0, 100)}`);
      continue;
    }
    stored += 1;
    const { id, oid } = JSON.parse(res.body.toString()) as { id: number; oid: number };
    const row = await ds.getRepository(StoredFile).findOneByOrFail({ id });
    if (!(await objectBytes(ds, oid)).equals(content)) problems.push(`${what}: other bytes stored`);
    const unsafe = unsafeName(row.name);
    if (unsafe !== undefined) problems.push(`${what}: ${unsafe}`);
  }
  expect(problems).toEqual([]);
  expect(serverFailures).toEqual([]);
  expect(statuses.get(200)).toBeGreaterThan(CASES / 2);
  // Every answer of 200 is one row with one object and its record; a 400 left nothing.
  expect(await ds.getRepository(StoredFile).count()).toBe(stored);
  expect(await countObjects(ds)).toBe(stored);
  expect(await countRecords(ds)).toBe(stored);
  await eventually(() => checkedOut(ds) === 0, 5000, "every connection back in the pool");
  expect(await idleInTransaction(admin)).toBe(0);
}, 30_000);
