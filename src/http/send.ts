import { STATUS_CODES, type IncomingMessage, type ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import type { ObjectLiteral } from "typeorm";
import { LargeObjectRepository, trackedContentOf, type LargeObject, type LargeObjectSource, type TrackedContent } from "../index";
import { httpStatusOf } from "./errors";
import {
  contentRange,
  derivedEntityTag,
  dispositionHeader,
  evaluatePreconditions,
  httpDate,
  isActiveContent,
  multipartLayout,
  selectRanges,
  toEntityTag,
  type ByteRange,
  type Validators,
} from "./headers";
import { managerOf } from "./source";

/** Options of {@link sendLargeObject}. */
export interface SendLargeObjectOptions<T extends ObjectLiteral> {
  /** Where to read: a DataSource, an EntityManager (its transaction, if any) or a QueryRunner. */
  source: LargeObjectSource;
  /** The row whose object is served: a loaded entity, or what `save()` returned. */
  entity: T;
  /** The `@LargeObjectColumn()` property. */
  property: keyof T & string;
  /** Content-Type (default `application/octet-stream`). */
  contentType?: string;
  /** A file name for Content-Disposition; any Unicode name works. */
  filename?: string;
  /** `"inline"` (default) or `"attachment"` (the browser saves the file). */
  disposition?: "inline" | "attachment";
  /** Cache-Control (default `private, no-cache`: stored by the browser alone, revalidated every time); false sends none. */
  cacheControl?: string | false;
  /**
   * A strong ETag for the content (bare or quoted). Without it, a column that tracks its SHA-256
   * gives the strong ETag `"<sha256 hex>"`; any other a weak one derived from the oid, the size and
   * `lastModified`, and none without `lastModified` (a rewrite in place may keep oid and size).
   */
  etag?: string;
  /** When the content last changed: sent as Last-Modified and used by If-Modified-Since and If-Range. */
  lastModified?: Date;
  /**
   * Told of failures that were the server's (answered with a 5xx status, or a response cut after
   * its headers went out), for logging. A client that goes away is not a failure.
   */
  onError?: (error: unknown) => void;
}


/** Ends the response with a bodiless status, or with a short plain-text reason. */
function answer(res: ServerResponse, status: number, headers: Record<string, string | number> = {}, text?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = text === undefined ? undefined : Buffer.from(`${text}\n`);
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (status !== 304) res.setHeader("Content-Length", body?.length ?? 0);
  if (body !== undefined) res.setHeader("Content-Type", "text/plain; charset=utf-8");
  res.end(body);
}

/** The headers every answer about the representation carries (200, 206, 304). */
function validatorHeaders<T extends ObjectLiteral>(options: SendLargeObjectOptions<T>, validators: Validators): Record<string, string> {
  const headers: Record<string, string> = {};
  if (validators.etag !== undefined) headers.ETag = validators.etag;
  if (validators.lastModified !== undefined) headers["Last-Modified"] = httpDate(validators.lastModified);
  const cacheControl = options.cacheControl ?? "private, no-cache";
  if (cacheControl !== false) headers["Cache-Control"] = cacheControl;
  return headers;
}

/** Whether the response can no longer reach the client. */
function gone(res: ServerResponse): boolean {
  return res.destroyed || res.writableEnded;
}

/**
 * Answers a GET or HEAD with one entity's large object: ranges (one, or several as
 * multipart/byteranges), conditional requests, Content-Disposition and the headers that keep
 * active content from running in the app's origin. Failures are answered by status (see
 * HTTP_STATUS_OF_CODE); once the headers are out, a failure cuts the response instead. Resolves
 * when the response is complete or cut; the object's connection is back in the pool by then.
 *
 * @example
 * http.createServer(async (req, res) => {
 *   const doc = await dataSource.getRepository(Document).findOneByOrFail({ id: 1 });
 *   await sendLargeObject(req, res, { source: dataSource, entity: doc, property: "file", contentType: doc.type });
 * });
 */
export async function sendLargeObject<T extends ObjectLiteral>(
  req: IncomingMessage,
  res: ServerResponse,
  options: SendLargeObjectOptions<T>,
): Promise<void> {
  const method = req.method ?? "GET";
  if (method !== "GET" && method !== "HEAD") {
    answer(res, 405, { Allow: "GET, HEAD" }, STATUS_CODES[405]);
    return;
  }
  let handle: LargeObject | undefined;
  try {
    const lastModified = options.lastModified;
    const tracked = trackedOf(options.entity, options.property);
    const strong =
      options.etag === undefined ? (tracked.sha256 === null ? undefined : `"${tracked.sha256}"`) : toEntityTag(options.etag);
    if (strong !== undefined) {
      // Known validators decide a conditional request without a round trip to the database.
      const validators: Validators = { etag: strong, ...(lastModified === undefined ? {} : { lastModified }) };
      const decided = evaluatePreconditions(req.headers, validators);
      if (decided !== "proceed") {
        answer(res, decided, decided === 304 ? validatorHeaders(options, validators) : {});
        return;
      }
    }
    let size: number;
    let etag: string | undefined;
    const held: unknown = options.entity[options.property];
    if (method === "HEAD" && tracked.size !== null && typeof held === "number") {
      // A tracked size answers HEAD without opening the object: no transaction, no connection.
      size = tracked.size;
      etag = strong ?? derivedEntityTag(held, size, lastModified);
    } else {
      const repository = new LargeObjectRepository(managerOf(options.source));
      handle = await repository.openStream(options.entity, options.property, { mode: "r" });
      size = await handle.size();
      // An entity loaded before its object changed carries the old digest: the object decides.
      const current = options.etag !== undefined || tracked.size === null || tracked.size === size;
      etag = (current ? strong : undefined) ?? derivedEntityTag(handle.oid, size, lastModified);
    }
    const validators: Validators = { etag, ...(lastModified === undefined ? {} : { lastModified }) };
    const decided = evaluatePreconditions(req.headers, validators);
    const selection = decided === "proceed" ? selectRanges(req.headers, size, validators) : undefined;
    if (handle !== undefined && (gone(res) || decided !== "proceed" || selection?.kind === "unsatisfiable" || method === "HEAD")) {
      // Nothing of the object is read: its transaction ends before the answer goes out.
      const opened = handle;
      handle = undefined;
      await opened.close();
    }
    if (gone(res)) return;
    if (decided !== "proceed") {
      answer(res, decided, decided === 304 ? validatorHeaders(options, validators) : {});
      return;
    }
    if (selection!.kind === "unsatisfiable") {
      answer(res, 416, { "Content-Range": `bytes */${size}`, "Accept-Ranges": "bytes" });
      return;
    }
    const contentType = options.contentType ?? "application/octet-stream";
    const headers: Record<string, string | number> = { "Accept-Ranges": "bytes", ...validatorHeaders(options, validators) };
    const disposition = options.disposition ?? "inline";
    if (options.filename !== undefined || disposition === "attachment") {
      headers["Content-Disposition"] = dispositionHeader(disposition, options.filename);
    }
    headers["X-Content-Type-Options"] = "nosniff";
    if (disposition === "inline" && isActiveContent(contentType)) headers["Content-Security-Policy"] = "sandbox";
    let pieces: { head?: Buffer; range: ByteRange }[] = [];
    let tail: Buffer | undefined;
    if (selection!.kind === "ranges") {
      const ranges = (selection as { ranges: ByteRange[] }).ranges;
      res.statusCode = 206;
      if (ranges.length === 1) {
        const range = ranges[0]!;
        headers["Content-Type"] = contentType;
        headers["Content-Range"] = contentRange(range, size);
        headers["Content-Length"] = range.end - range.start + 1;
        pieces = [{ range }];
      } else {
        const layout = multipartLayout(ranges, size, contentType);
        headers["Content-Type"] = layout.contentType;
        headers["Content-Length"] = layout.length;
        pieces = layout.parts;
        tail = layout.tail;
      }
    } else {
      res.statusCode = 200;
      headers["Content-Type"] = contentType;
      headers["Content-Length"] = size;
      if (size > 0) pieces = [{ range: { start: 0, end: size - 1 } }];
    }
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    if (method === "HEAD") {
      res.end();
      return;
    }
    const reading = handle!;
    const behind: { last?: Buffer } = {};
    for (const piece of pieces) {
      if (piece.head !== undefined) forward(res, behind, piece.head);
      await pump(reading.createReadStream({ start: piece.range.start, end: piece.range.end, autoClose: false }), res, behind);
    }
    if (tail !== undefined) forward(res, behind, tail);
    // The read transaction commits before the client has the whole body, so it finds the connection back in the pool.
    handle = undefined;
    await reading.close();
    await finish(res, behind.last);
  } catch (err) {
    const opened = handle;
    handle = undefined;
    if (opened !== undefined) await opened.abort(err).catch(() => undefined);
    if (res.headersSent || gone(res)) {
      // A client that left is no failure; anything else cuts the response where it stands.
      const clientLeft = res.destroyed && (req.socket?.destroyed ?? true) && !res.writableFinished && isPrematureClose(err);
      res.destroy();
      if (!clientLeft) options.onError?.(err);
      return;
    }
    const status = httpStatusOf(err);
    if (status >= 500) options.onError?.(err);
    answer(res, status, {}, STATUS_CODES[status] ?? STATUS_CODES[500]);
  }
}

/** Writes the chunk held back and holds `chunk` in its place; answers whether the response takes more. */
function forward(res: ServerResponse, held: { last?: Buffer }, chunk: Buffer): boolean {
  const previous = held.last;
  held.last = chunk;
  return previous === undefined || res.write(previous);
}

/** Why a response closed before it finished. */
function prematureClose(): Error {
  return Object.assign(new Error("the response closed before it finished"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

/**
 * Writes a read stream's chunks to the response one behind (see {@link forward}), pausing the
 * stream while the response is full. Chunks go as the stream emits them, views of the socket's
 * chunks, without the copy and the promise per chunk of an async iteration.
 */
function pump(stream: Readable, res: ServerResponse, held: { last?: Buffer }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      if (!forward(res, held, chunk)) stream.pause();
    };
    const onDrain = (): void => {
      stream.resume();
    };
    const settle = (err?: Error): void => {
      stream.off("data", onData).off("end", onEnd).off("error", settle);
      res.off("drain", onDrain).off("close", onClose).off("error", settle);
      if (err === undefined) resolve();
      else {
        stream.destroy();
        reject(err);
      }
    };
    const onEnd = (): void => settle();
    const onClose = (): void => settle(prematureClose());
    stream.on("data", onData).once("end", onEnd).once("error", settle);
    res.on("drain", onDrain).once("close", onClose).once("error", settle);
    if (gone(res)) settle(prematureClose());
  });
}

/** Ends the response with the last chunk; settles when it is flushed, or rejects when it closes first. */
function finish(res: ServerResponse, last: Buffer | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (gone(res)) {
      reject(prematureClose());
      return;
    }
    const onFinish = (): void => {
      res.off("close", onClose).off("error", onError);
      resolve();
    };
    const onClose = (): void => {
      res.off("finish", onFinish).off("error", onError);
      if (res.writableFinished) resolve();
      else reject(prematureClose());
    };
    const onError = (err: Error): void => {
      res.off("finish", onFinish).off("close", onClose);
      reject(err);
    };
    res.once("finish", onFinish).once("close", onClose).once("error", onError);
    res.end(last);
  });
}

/** What the entity's tracked columns say of its content; nothing when they cannot be read (the open then says why). */
function trackedOf<T extends ObjectLiteral>(entity: T, property: keyof T & string): TrackedContent {
  try {
    return trackedContentOf(entity, property);
  } catch {
    return { size: null, sha256: null };
  }
}

function isPrematureClose(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET" || code === "EPIPE";
}
