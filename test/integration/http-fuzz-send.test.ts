import type { DataSource } from "typeorm";
import { sendLargeObject, MAX_RANGES } from "../../src/http";
import { idleInTransaction, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { eventually, startServer, type TestServer } from "../support/http-server";
import { rawRequest, requestBytes, seeded, type RawResponse } from "../support/raw-http";
import { readByteranges, type BytePart } from "../support/byteranges";
import { useStoredFiles } from "../support/stored-files";
import { StoredFile } from "./fixtures/http-files";

const SIZE = 50_000;
const content = randomBytes(SIZE, 60);
const MODIFIED = new Date("2026-05-06T07:08:09Z");
const STRONG = '"fuzz-strong-tag"';
const CASES = 400;

let ds: DataSource;
let admin: DataSource;
let server: TestServer;
let port: number;
let id: number;
let weak: string;
const failures: unknown[] = [];

useStoredFiles((opened, observer) => ((ds = opened), (admin = observer)), {
  checkClean: false,
  setUp: async () => {
    id = (await ds.getRepository(StoredFile).save({ name: "fuzz.bin", content: Buffer.from(content) })).id;
    server = await startServer(async (req, res) => {
      const url = new URL(req.url!, "http://x");
      const row = await ds.getRepository(StoredFile).findOneByOrFail({ id: Number(url.pathname.slice(1)) });
      await sendLargeObject(req, res, {
        source: ds,
        entity: row,
        property: "content",
        contentType: "application/x-fuzz",
        lastModified: MODIFIED,
        onError: (err) => failures.push(err),
        ...(url.searchParams.has("strong") ? { etag: STRONG } : {}),
      });
    });
    port = Number(new URL(server.url).port);
    weak = (await fetch(`${server.url}/${id}`, { method: "HEAD" })).headers.get("etag")!;
  },
  tearDown: async () => server?.close(),
});

/** Values a hostile client might put where a number goes. */
function number(r: ReturnType<typeof seeded>): string {
  return r.pick([
    () => String(r.int(SIZE)),
    () => String(SIZE - 1 - r.int(3)),
    () => String(SIZE + r.int(3)),
    () => "0",
    () => `-${r.int(100)}`,
    () => String(2 ** 31),
    () => String(2 ** 32 + r.int(10)),
    () => String(2 ** 53 + 1),
    () => "9".repeat(1 + r.int(400)),
    () => "1e3",
    () => "0x10",
    () => ` ${r.int(SIZE)} `,
    () => "٣٤",
    () => "１２",
    () => "",
    () => "NaN",
    () => "Infinity",
    () => `${r.int(100)}.5`,
  ])();
}

function rangeSpec(r: ReturnType<typeof seeded>): string {
  return r.pick([
    () => `${number(r)}-${number(r)}`,
    () => `${r.int(SIZE)}-${r.int(SIZE)}`,
    () => `-${number(r)}`,
    () => `${number(r)}-`,
    () => "-",
    () => "",
    () => `${r.int(SIZE)}--${r.int(SIZE)}`,
  ])();
}

/** A well-formed spec that selects bytes of the body (or runs past its end). */
function plainSpec(r: ReturnType<typeof seeded>): string {
  const start = r.int(SIZE);
  return r.pick([
    () => `${start}-${start + r.int(SIZE)}`,
    () => `${start}-`,
    () => `-${1 + r.int(SIZE * 2)}`,
  ])();
}

function rangeHeader(r: ReturnType<typeof seeded>): string {
  if (r.next() < 0.45) return `bytes=${Array.from({ length: r.pick([1, 1, 1, 2, 3, 5]) }, () => plainSpec(r)).join(r.pick([",", ", "]))}`;
  const unit = r.pick(["bytes=", "bytes=", "bytes=", "Bytes=", "bytes =", "items=", "", "=", "bytes=bytes="]);
  const count = r.pick([1, 1, 2, 3, MAX_RANGES, MAX_RANGES + 1, 100, 1500]);
  const specs = Array.from({ length: count }, () => rangeSpec(r));
  return unit + specs.join(r.pick([",", ", ", ",,", " , "]));
}

function date(r: ReturnType<typeof seeded>): string {
  const shift = r.pick([-86400_000, -1000, 0, 0, 500, 1000, 86400_000]);
  return r.pick([
    () => new Date(MODIFIED.getTime() + shift).toUTCString(),
    () => new Date(MODIFIED.getTime() + shift).toISOString(),
    () => "Thu, 01 Jan 1970 00:00:00 GMT",
    () => "Fri, 31 Dec 275760 23:59:59 GMT",
    () => String(r.int(2 ** 31)),
    () => "-1",
    () => "yesterday",
    () => "Sun, 06 Nov 1994 08:49:37 GMT\u00e9",
  ])();
}

function tag(r: ReturnType<typeof seeded>): string {
  return r.pick([
    () => weak,
    () => STRONG,
    () => `W/${STRONG}`,
    () => weak.slice(2),
    () => "*",
    () => '"other"',
    () => "unquoted",
    () => '"',
    () => `"${"x".repeat(r.int(3000))}"`,
    () => `${STRONG}, ${weak}`,
    () => Array.from({ length: 200 }, () => '"a"').join(","),
    () => "W/",
    () => '"日本"',
  ])();
}

/** Garbage that fits anywhere: control characters, CR/LF, unicode, emptiness, length. */
function garbage(r: ReturnType<typeof seeded>): string {
  return r.pick([
    () => "",
    () => " ",
    () => "\t",
    () => "bytes=0-1\r\nX-Injected: yes",
    () => "a\rb",
    () => "a\nb",
    () => "a\u0000b",
    () => "\u007f",
    () => "😀".repeat(1 + r.int(100)),
    () => "é\u00ff\u0080",
    () => "%00%0d%0a",
    () => Array.from({ length: 1 + r.int(200) }, () => String.fromCharCode(0x20 + r.int(0x5f))).join(""),
    () => "x".repeat(2000 + r.int(6000)),
  ])();
}

const NAMES = ["Range", "If-None-Match", "If-Modified-Since", "If-Range", "If-Match", "If-Unmodified-Since"] as const;

function value(r: ReturnType<typeof seeded>, name: (typeof NAMES)[number]): string {
  if (r.next() < 0.2) return garbage(r);
  if (name === "Range") return rangeHeader(r);
  if (name === "If-Modified-Since" || name === "If-Unmodified-Since") return date(r);
  if (name === "If-Range") return r.next() < 0.5 ? date(r) : tag(r);
  return tag(r);
}

/** Characters Node's HTTP parser refuses in a header value: the request is then 400 before any handler runs. */
const refused = (value: string): boolean => [...value].some((c) => (c.charCodeAt(0) < 0x20 && c !== "\t") || c === "\u007f");

/** A multipart/byteranges body's parts, each checked to be of this body and of the right type. */
function byteranges(body: Buffer, contentType: string): BytePart[] {
  const parts = readByteranges(body, contentType);
  if (parts.some((p) => p.total !== SIZE || p.type !== "application/x-fuzz")) throw new Error("a part of another size or type");
  return parts;
}

/** The header lines the server reads: a value with CR LF and a header line after it is two headers. */
function asParsed(sent: [string, string][]): [string, string][] {
  return sent.flatMap(([name, value]) => {
    const [first, ...rest] = value.split("\r\n");
    return [[name, first!] as [string, string], ...rest.map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()] as [string, string])];
  });
}

/** What a request with only one plain, satisfiable range must get, worked out here without the server's parser. */
function expectedRange(sent: [string, string][]): { start: number; end: number } | undefined {
  if (sent.length !== 1 || sent[0]![0] !== "Range") return undefined;
  const value = sent[0]![1];
  const closed = /^bytes=(\d{1,6})-(\d{1,6})$/.exec(value);
  if (closed !== null) {
    const [start, end] = [Number(closed[1]), Number(closed[2])];
    return start <= end && start < SIZE ? { start, end: Math.min(end, SIZE - 1) } : undefined;
  }
  const open = /^bytes=(\d{1,6})-$/.exec(value);
  if (open !== null && Number(open[1]) < SIZE) return { start: Number(open[1]), end: SIZE - 1 };
  const suffix = /^bytes=-(\d{1,20})$/.exec(value);
  if (suffix !== null && Number(suffix[1]) > 0) return { start: Math.max(0, SIZE - Number(suffix[1])), end: SIZE - 1 };
  return undefined;
}

/** Checks one answer against the request and the stored bytes; returns what went wrong, if anything. */
function check(method: string, written: [string, string][], res: RawResponse | null): string | undefined {
  if (res === null) return "the server closed without an answer";
  const sent = asParsed(written);
  const has = (name: string): boolean => sent.some(([n]) => n === name);
  const bad = sent.some(([, v]) => refused(v));
  if (bad) return res.status === 400 ? undefined : `a value Node refuses got ${res.status}`;
  const expected = expectedRange(sent);
  if (expected !== undefined && res.headers.get("content-range") !== `bytes ${expected.start}-${expected.end}/${SIZE}`) {
    return `one plain range ${expected.start}-${expected.end} got ${res.status} ${res.headers.get("content-range")}`;
  }
  const body = method === "HEAD" ? undefined : res.body;
  const length = Number(res.headers.get("content-length"));
  if (body !== undefined && res.status !== 304 && length !== body.length) return `Content-Length ${length} but ${body.length} bytes`;
  switch (res.status) {
    case 200:
      if (length !== SIZE) return `200 with Content-Length ${length}`;
      if (body !== undefined && !body.equals(content)) return "200 with other bytes";
      return undefined;
    case 206: {
      if (!has("Range")) return "206 without a Range";
      const type = res.headers.get("content-type") ?? "";
      if (type === "application/x-fuzz") {
        const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
        if (match === null) return `206 with Content-Range ${res.headers.get("content-range")}`;
        const [start, end, total] = [Number(match[1]), Number(match[2]), Number(match[3])];
        if (total !== SIZE || start > end || end >= SIZE) return `206 with range ${start}-${end}/${total}`;
        if (length !== end - start + 1) return "206 whose length is not its range's";
        if (body !== undefined && !body.equals(content.subarray(start, end + 1))) return "206 with other bytes";
        return undefined;
      }
      if (body === undefined) return /^multipart\/byteranges; boundary=/.test(type) ? undefined : `206 of type ${type}`;
      const parts = byteranges(body, type);
      if (parts.length < 2 || parts.length > MAX_RANGES) return `${parts.length} parts`;
      for (const [i, part] of parts.entries()) {
        if (!part.data.equals(content.subarray(part.start, part.end + 1))) return `part ${i} with other bytes`;
        const later = parts.slice(i + 1);
        if (later.some((p) => p.start <= part.end + 1 && part.start <= p.end + 1)) return "overlapping or adjacent parts not merged";
      }
      return undefined;
    }
    case 304:
      if (!has("If-None-Match") && !has("If-Modified-Since")) return "304 without If-None-Match or If-Modified-Since";
      return res.body.length === 0 && res.headers.has("etag") ? undefined : "304 with a body or without ETag";
    case 412:
      return has("If-Match") || has("If-Unmodified-Since") ? undefined : "412 without If-Match or If-Unmodified-Since";
    case 416:
      if (!has("Range")) return "416 without a Range";
      return res.headers.get("content-range") === `bytes */${SIZE}` ? undefined : `416 with ${res.headers.get("content-range")}`;
    default:
      return `status ${res.status}`;
  }
}

test(`${CASES} seeded hostile Range and If-* requests over a socket: an allowed status, exact bytes, no crash`, async () => {
  const r = seeded(20261202);
  const problems: string[] = [];
  const statuses = new Map<number, number>();
  let plain = 0;
  let multipart = 0;
  for (let i = 0; i < CASES; i += 1) {
    const method = r.next() < 0.85 ? "GET" : "HEAD";
    const headers: [string, string][] = [];
    for (const name of NAMES) if (r.next() < (name === "Range" ? 0.8 : name.startsWith("If-Un") || name === "If-Match" ? 0.1 : 0.25)) headers.push([name, value(r, name)]);
    // Node answers 431 to a head past 16 KiB; the values stay below that.
    while (headers.reduce((n, [, v]) => n + Buffer.byteLength(v), 0) > 12_000) headers.pop();
    const path = `/${id}${r.next() < 0.5 ? "?strong" : ""}`;
    const res = await rawRequest(port, requestBytes(method, path, headers));
    if (res !== null) statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res?.headers.get("content-type")?.startsWith("multipart/byteranges")) multipart += 1;
    const problem = check(method, headers, res);
    if (expectedRange(asParsed(headers)) !== undefined) plain += 1;
    if (problem !== undefined) problems.push(`case ${i} ${method} ${path} ${JSON.stringify(headers).slice(0, 300)}: ${problem}`);
  }
  expect(problems).toEqual([]);
  expect(plain).toBeGreaterThan(0);
  expect(multipart).toBeGreaterThan(0);
  expect(failures).toEqual([]);
  // The generator reaches every answer it is meant to provoke.
  expect([...statuses.keys()].sort()).toEqual([200, 206, 304, 400, 412, 416]);
  await eventually(() => checkedOut(ds) === 0, 5000, "every connection back in the pool");
  expect(await idleInTransaction(admin)).toBe(0);
  // And the server still serves.
  const after = await fetch(`${server.url}/${id}`);
  expect(Buffer.from(await after.arrayBuffer()).equals(content)).toBe(true);
}, 30_000);
