import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObjectRepository } from "../../src";
import type { Document } from "./document";
import { parseRange } from "./range";

/** A Content-Disposition value that survives any file name (RFC 6266 with RFC 8187 encoding). */
function disposition(kind: "inline" | "attachment", name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

/**
 * Answers GET or HEAD for a document's bytes: ETag (the SHA-256), conditional requests, and one
 * byte range (206, or 416 when it lies past the end). The bytes stream from the large object in a
 * read-only transaction of their own; a client that goes away destroys the stream, which ends that
 * transaction and gives its connection back to the pool.
 */
export async function sendContent(dataSource: DataSource, req: IncomingMessage, res: ServerResponse, doc: Document, url: URL): Promise<void> {
  const etag = `"${doc.sha256}"`;
  const size = doc.size;
  res.setHeader("ETag", etag);
  res.setHeader("Last-Modified", doc.createdAt.toUTCString());
  res.setHeader("Accept-Ranges", "bytes");
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Content-Type", doc.contentType);
  res.setHeader("Content-Disposition", disposition(url.searchParams.has("download") ? "attachment" : "inline", doc.name));
  // Uploaded HTML or SVG opened from here must not run scripts in the app's origin.
  res.setHeader("Content-Security-Policy", "sandbox");
  res.setHeader("X-Content-Type-Options", "nosniff");

  const ifNoneMatch = req.headers["if-none-match"];
  if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((tag) => tag.trim() === etag || tag.trim() === "*")) {
    res.statusCode = 304;
    res.end();
    return;
  }
  const ifRange = req.headers["if-range"];
  const range = ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, size) : undefined;
  if (range === "unsatisfiable") {
    res.statusCode = 416;
    res.setHeader("Content-Range", `bytes */${size}`);
    res.end();
    return;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  res.statusCode = range === undefined ? 200 : 206;
  if (range !== undefined) res.setHeader("Content-Range", `bytes ${start}-${end}/${size}`);
  res.setHeader("Content-Length", end - start + 1);
  if (req.method === "HEAD" || size === 0) {
    res.end();
    return;
  }
  const files = new LargeObjectRepository(dataSource.manager);
  const stream = await files.createReadStream(doc, "content", { start, end });
  // pipeline() destroys the read stream when the response closes early.
  await pipeline(stream, res);
}
