import type { IncomingHttpHeaders } from "node:http";
import { randomBytes } from "node:crypto";
import fresh from "fresh";
import parseRange from "range-parser";
import { create as formatDisposition } from "content-disposition";
import { LargeObjectError } from "../index";

/** More ranges than this, once overlapping and adjacent ones are merged, get the whole body. */
export const MAX_RANGES = 16;

/** What a response describes: its validators and its type. */
export interface Validators {
  /** None when nothing identifies this content against other content of the same object. */
  etag?: string | undefined;
  lastModified?: Date;
}

/** One byte range, both ends inclusive. */
export interface ByteRange {
  start: number;
  end: number;
}

/** What the request's preconditions decide: go on, or answer 304 or 412 at once. */
export type Precondition = "proceed" | 304 | 412;

/** What the Range header selects: the whole body, some ranges (206), or none that exist (416). */
export type Selection = { kind: "whole" } | { kind: "ranges"; ranges: ByteRange[] } | { kind: "unsatisfiable" };

/** A header's value as one string (Node gives arrays for repeated headers). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) return value.join(", ");
  return typeof value === "string" ? value : undefined;
}

const ENTITY_TAG = /^(W\/)?"[\x21\x23-\x7e\x80-\xff]*"$/;
const OPAQUE_TAG = /^[\x21\x23-\x7e\x80-\xff]*$/;

/** The caller's ETag as an entity-tag: quoted when given bare, refused when it cannot be one. */
export function toEntityTag(etag: string): string {
  if (ENTITY_TAG.test(etag)) return etag;
  if (OPAQUE_TAG.test(etag)) return `"${etag}"`;
  throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `etag ${JSON.stringify(etag)} is not a valid entity-tag`);
}

/**
 * A weak ETag from the oid, the size and the caller's modification time; none without that time.
 * The oid and size alone would survive a rewrite in place that keeps the size, and a revalidating
 * client would then be told its old copy is current. Weak, so If-Range never matches it.
 */
export function derivedEntityTag(oid: number, size: number, lastModified: Date | undefined): string | undefined {
  if (lastModified === undefined) return undefined;
  return `W/"${[oid, size, Math.floor(lastModified.getTime() / 1000)].map((n) => n.toString(36)).join("-")}"`;
}

/** The Last-Modified value (whole seconds, as HTTP dates have). */
export function httpDate(date: Date): string {
  return date.toUTCString();
}

function tagList(value: string): string[] {
  return value
    .split(",")
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
}

function strongMatch(a: string, b: string | undefined): boolean {
  return b !== undefined && !a.startsWith("W/") && !b.startsWith("W/") && a === b;
}

function seconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/** A date header in whole seconds, or undefined when it does not parse (the header is then ignored). */
function dateHeader(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const time = Date.parse(value);
  return Number.isFinite(time) ? Math.floor(time / 1000) : undefined;
}

/**
 * Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since in RFC 9110's
 * order for a GET or HEAD.
 */
export function evaluatePreconditions(headers: IncomingHttpHeaders, validators: Validators): Precondition {
  const ifMatch = headerValue(headers, "if-match");
  if (ifMatch !== undefined) {
    const tags = tagList(ifMatch);
    if (!tags.includes("*") && !tags.some((t) => strongMatch(t, validators.etag))) return 412;
  } else {
    const since = dateHeader(headerValue(headers, "if-unmodified-since"));
    if (since !== undefined && validators.lastModified !== undefined && seconds(validators.lastModified) > since) return 412;
  }
  const conditional = headers["if-none-match"] !== undefined || headers["if-modified-since"] !== undefined;
  if (!conditional) return "proceed";
  const response: Record<string, string> = {};
  if (validators.etag !== undefined) response.etag = validators.etag;
  if (validators.lastModified !== undefined) response["last-modified"] = httpDate(validators.lastModified);
  return fresh(headers, response) ? 304 : "proceed";
}

/** Whether If-Range (when present) still names this representation, so the Range applies. */
function ifRangeHolds(headers: IncomingHttpHeaders, validators: Validators): boolean {
  const ifRange = headerValue(headers, "if-range");
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith("W/")) return strongMatch(value, validators.etag);
  const date = dateHeader(value);
  return date !== undefined && validators.lastModified !== undefined && seconds(validators.lastModified) === date;
}

/**
 * range-parser drops a suffix range longer than the body, which RFC 9110 says selects all of it:
 * such a spec is rewritten as `0-` before parsing.
 */
function clampSuffixes(header: string, size: number): string {
  const eq = header.indexOf("=");
  if (eq === -1) return header;
  const specs = header.slice(eq + 1).split(",").map((spec) => {
    const match = /^\s*-\s*(\d+)\s*$/.exec(spec);
    return match !== null && Number(match[1]) > size ? "0-" : spec;
  });
  return `${header.slice(0, eq)}=${specs.join(",")}`;
}

/** What the Range header (with If-Range) selects of a body of `size` bytes. */
export function selectRanges(headers: IncomingHttpHeaders, size: number, validators: Validators): Selection {
  const header = headerValue(headers, "range");
  // An empty body has no range to send: it is answered whole.
  if (header === undefined || size === 0 || !ifRangeHolds(headers, validators)) return { kind: "whole" };
  const parsed = parseRange(size, clampSuffixes(header, size), { combine: true });
  if (parsed === -2) return { kind: "whole" };
  if (parsed === -1) return { kind: "unsatisfiable" };
  if (parsed.type.trim().toLowerCase() !== "bytes" || parsed.length > MAX_RANGES) return { kind: "whole" };
  return { kind: "ranges", ranges: parsed.map((r) => ({ start: r.start, end: r.end })) };
}

/** The value of a Content-Range header for one range. */
export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

/** A multipart/byteranges body laid out: the head of each part, the closing delimiter and the total length. */
export interface MultipartLayout {
  contentType: string;
  parts: { head: Buffer; range: ByteRange }[];
  tail: Buffer;
  length: number;
}

/** Lays out the parts of a multipart/byteranges body. */
export function multipartLayout(ranges: ByteRange[], size: number, contentType: string): MultipartLayout {
  const boundary = randomBytes(12).toString("hex");
  let length = 0;
  const parts = ranges.map((range, i) => {
    const head = Buffer.from(
      `${i === 0 ? "" : "\r\n"}--${boundary}\r\nContent-Type: ${contentType}\r\nContent-Range: ${contentRange(range, size)}\r\n\r\n`,
      "latin1",
    );
    length += head.length + (range.end - range.start + 1);
    return { head, range };
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, "latin1");
  length += tail.length;
  return { contentType: `multipart/byteranges; boundary=${boundary}`, parts, tail, length };
}

/** Media types a browser may run script in when shown inline, in the origin that served them. */
const ACTIVE_TYPES = new Set([
  "text/html",
  "application/xhtml+xml",
  "image/svg+xml",
  "text/xml",
  "application/xml",
  "text/xsl",
  "application/xslt+xml",
  "application/rss+xml",
  "application/atom+xml",
  "multipart/x-mixed-replace",
]);

/** The media type without parameters, lower-cased. */
export function essence(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/** Whether inline content of this type could run script in the app's origin. */
export function isActiveContent(contentType: string): boolean {
  const type = essence(contentType);
  return ACTIVE_TYPES.has(type) || type.endsWith("+xml") || type === "" || !type.includes("/");
}

/** The Content-Disposition value (RFC 6266, with an RFC 8187 `filename*` where the name needs it). */
export function dispositionHeader(disposition: "inline" | "attachment", filename: string | undefined): string {
  // A lone surrogate (JSON can carry one) cannot be percent-encoded: it becomes U+FFFD instead of a URIError.
  const wellFormed = filename?.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
  return formatDisposition(wellFormed, { type: disposition });
}
