import type { IncomingHttpHeaders } from "node:http";
import { parse } from "content-disposition";
import { dispositionHeader, evaluatePreconditions, selectRanges, MAX_RANGES } from "../../src/http/headers";

/** Deterministic pseudo-random source, so a failing case can be replayed. */
function generator(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const PIECES = ["bytes", "=", "-", ",", " ", "0", "1", "9", "99999999999999999999", "-0", "W/", '"', "*", "abc", "\t", ";", "é", "\u0000", "GMT", "Mon, 01 Jan 2024 00:00:00 GMT", "NaN", "1e9", "--", "items"];

function hostile(random: () => number): string {
  const n = Math.floor(random() * 12);
  return Array.from({ length: n }, () => PIECES[Math.floor(random() * PIECES.length)]).join("");
}

test("hostile Range and If-* values give a status or ranges inside the body, never a throw", () => {
  const random = generator(7);
  for (let i = 0; i < 5000; i += 1) {
    const size = Math.floor(random() * 5000);
    const headers: IncomingHttpHeaders = {};
    for (const name of ["range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]) {
      if (random() < 0.5) headers[name] = hostile(random);
    }
    const validators = { etag: random() < 0.5 ? 'W/"a-b"' : '"strong"', lastModified: new Date(1_700_000_000_000) };
    expect([304, 412, "proceed"]).toContain(evaluatePreconditions(headers, validators));
    const selection = selectRanges(headers, size, validators);
    if (selection.kind === "ranges") {
      expect(selection.ranges.length).toBeGreaterThan(0);
      expect(selection.ranges.length).toBeLessThanOrEqual(MAX_RANGES);
      for (const r of selection.ranges) {
        expect(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end)).toBe(true);
        expect(0 <= r.start && r.start <= r.end && r.end < size).toBe(true);
      }
    }
  }
});

test("any file name makes a Content-Disposition value that is a legal header and parses back to it", () => {
  const random = generator(11);
  for (let i = 0; i < 2000; i += 1) {
    const name = Array.from({ length: 1 + Math.floor(random() * 20) }, () => String.fromCodePoint(32 + Math.floor(random() * 0x2fff))).join("");
    const value = dispositionHeader(random() < 0.5 ? "inline" : "attachment", name);
    expect(/^[\x20-\x7e]*$/.test(value)).toBe(true);
    expect(parse(value).parameters.filename).toBe(name);
  }
});

test("a file name with a lone surrogate makes a Content-Disposition value with U+FFFD in its place, not a URIError", () => {
  for (const [name, shown] of [
    ["a\ud800b.txt", "a\ufffdb.txt"],
    ["\udc00", "\ufffd"],
    ["ok\ud83d\ude00\ud83d.bin", "ok\ud83d\ude00\ufffd.bin"],
  ] as const) {
    const value = dispositionHeader("attachment", name);
    expect(/^[\x20-\x7e]*$/.test(value)).toBe(true);
    expect(parse(value).parameters.filename).toBe(shown);
  }
});
