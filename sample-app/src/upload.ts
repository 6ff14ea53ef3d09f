import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import busboy from "busboy";
import type { DataSource } from "typeorm";
import { LargeObjectRepository } from "../../src";
import { ContentMeter } from "./content-meter";
import { Document } from "./document";
import { HttpError } from "./http-error";
import type { AppEvents } from "./events";

/** What an upload is stored as, besides its bytes. */
interface UploadInfo {
  name: string;
  contentType: string;
}

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * Stores one upload in one transaction: the row is inserted with no object, the bytes stream into
 * an object created for it, and size and digest are written last. Any failure, including the
 * client going away (`meter` destroyed) or `complete` rejecting, rolls everything back, so no row
 * and no object are left of it.
 */
async function store(
  dataSource: DataSource,
  events: AppEvents,
  meter: ContentMeter,
  info: UploadInfo,
  complete: Promise<void> = Promise.resolve(),
): Promise<Document> {
  try {
    const doc = await dataSource.transaction(async (manager) => {
      const row = manager.create(Document, { ...info, size: 0, sha256: EMPTY_SHA256, content: null });
      await manager.save(row);
      events.emit("upload", { phase: "started", id: row.id });
      // Built on the transaction's manager, the write stream joins this transaction.
      const files = new LargeObjectRepository(manager);
      await pipeline(meter, await files.createWriteStream(row, "content"));
      await complete;
      row.size = meter.bytes;
      row.sha256 = meter.digest();
      await manager.update(Document, row.id, { size: row.size, sha256: row.sha256 });
      return row;
    });
    const stored = await dataSource.manager.findOneByOrFail(Document, { id: doc.id });
    events.emit("upload", { phase: "stored", id: stored.id, bytes: meter.bytes });
    return stored;
  } catch (err) {
    events.emit("upload", { phase: "failed", bytes: meter.bytes, error: err });
    throw err;
  }
}

/** Feeds the request into `meter`, and fails it when the client goes away before the end. */
function feed(req: IncomingMessage, source: Readable, meter: ContentMeter): void {
  source.on("error", (err) => meter.destroy(badRequest(err)));
  source.pipe(meter);
  abortedBy(req, meter);
}

/** A failure of the request's own stream (a cut connection, a malformed form) is the client's. */
function badRequest(err: Error): HttpError {
  return err instanceof HttpError ? err : new HttpError(400, err.message);
}

function abortedBy(req: IncomingMessage, target: { destroy(err: Error): unknown }): void {
  req.once("close", () => {
    if (!req.complete) target.destroy(new HttpError(400, "the client went away before the upload ended"));
  });
}

/** A raw upload: the request body is the file, `?name=` its name, Content-Type its type. */
export function storeRawUpload(
  dataSource: DataSource,
  events: AppEvents,
  req: IncomingMessage,
  url: URL,
  maxUploadBytes: number,
): Promise<Document> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > maxUploadBytes) {
    throw new HttpError(413, `the upload is larger than the limit of ${maxUploadBytes} bytes`);
  }
  const meter = new ContentMeter(maxUploadBytes);
  feed(req, req, meter);
  return store(dataSource, events, meter, {
    name: url.searchParams.get("name") || "upload",
    contentType: req.headers["content-type"] || "application/octet-stream",
  });
}

/**
 * A browser form (multipart/form-data) with one file part. The transaction commits only once the
 * whole form has been read, so a request cut after the file's last byte still leaves nothing.
 */
export function storeMultipartUpload(
  dataSource: DataSource,
  events: AppEvents,
  req: IncomingMessage,
  maxUploadBytes: number,
): Promise<Document> {
  let form: busboy.Busboy;
  try {
    // One byte over the limit lets the meter see the overflow and fail the upload.
    form = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxUploadBytes + 1, fields: 20, parts: 40 } });
  } catch (err) {
    throw new HttpError(400, err instanceof Error ? err.message : "bad multipart request");
  }
  return new Promise<Document>((resolve, reject) => {
    let meter: ContentMeter | undefined;
    const formRead = new Promise<void>((done, fail) => {
      form.once("close", done);
      form.once("error", (err: Error) => fail(new HttpError(400, err.message)));
      form.once("filesLimit", () => fail(new HttpError(400, "send one file per request")));
      form.once("partsLimit", () => fail(new HttpError(400, "too many parts")));
    });
    formRead.catch((err: unknown) => {
      // Once a file is being stored, its transaction settles the request (after the rollback).
      if (meter !== undefined) meter.destroy(err as Error);
      else reject(err);
    });
    form.on("file", (_field, file, info) => {
      meter = new ContentMeter(maxUploadBytes);
      file.on("error", (err: Error) => meter?.destroy(badRequest(err)));
      file.pipe(meter);
      store(dataSource, events, meter, { name: info.filename || "upload", contentType: info.mimeType || "application/octet-stream" }, formRead).then(
        resolve,
        reject,
      );
    });
    form.once("close", () => {
      if (meter === undefined) reject(new HttpError(400, "the form has no file"));
    });
    abortedBy(req, {
      destroy: (err: Error) => {
        meter?.destroy(err);
        form.destroy(err);
      },
    });
    req.pipe(form);
  }).catch((err: unknown) => {
    // Stop parsing: the caller drains or closes what is left of the request.
    req.unpipe(form);
    form.destroy();
    throw err;
  });
}
