import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { DataSource } from "typeorm";
// In a project of your own: import { sendLargeObject } from "typeorm-large-object/http";
import { sendLargeObject } from "../../src/http";
import { Document, toJson } from "./document";
import type { AppEvents } from "./events";
import { HttpError, toHttpError } from "./http-error";
import { isStaticFile, sendStaticFile } from "./static-files";
import { storeUpload } from "./upload";

/** A tus server mounted beside the app (see resumable.ts), and what the page needs to use it. */
export interface ResumableUploads {
  /** The path it answers under, such as `/files`. */
  path: string;
  /** The size of each PATCH the page sends. */
  chunkBytes: number;
  /** Files of at least this size go through it; smaller ones are posted as a form. */
  minBytes: number;
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Stops what it runs in the background. */
  close(): void;
}

/** Options of {@link createApp}. */
export interface AppOptions {
  /** An initialised data source with {@link Document} among its entities and large objects registered. */
  dataSource: DataSource;
  /** The largest upload accepted, in bytes (default 1 GiB); a larger one is refused with 413 and leaves nothing. */
  maxUploadBytes?: number;
  /** Called with each failed request's error, for logging (default: unexpected errors go to stderr). */
  onError?: (err: unknown, req: IncomingMessage) => void;
  /** Mounts resumable uploads: builds the tus server on the app's events. */
  resumable?: (events: AppEvents) => ResumableUploads;
}

/** The sample app: an HTTP server not yet listening, and the events it reports. */
export interface App {
  server: Server;
  events: AppEvents;
  /** Starts listening (port 0 picks a free one) and resolves with the base URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stops accepting connections, ends the open ones and waits for the server to close. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_UPLOAD_BYTES = 1024 * 1024 * 1024;

/** What is read of an upload that is refused before its end, so the client still gets the answer. */
const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;

const DOCUMENT = /^\/api\/documents\/([1-9]\d{0,9})(\/content)?$/;

/**
 * Builds the file store's HTTP server on a data source: the page, the JSON list, uploads (raw body
 * or multipart form, or resumable ones through a mounted tus server), downloads with Range, and
 * delete.
 *
 * @example
 * const app = createApp({ dataSource, maxUploadBytes: 100 * 1024 * 1024 });
 * console.log(await app.listen(3000));
 */
export function createApp(options: AppOptions): App {
  const { dataSource } = options;
  const maxUploadBytes = options.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const events = new EventEmitter() as AppEvents;
  const resumable = options.resumable?.(events);
  const onError =
    options.onError ??
    ((err: unknown) => {
      if (toHttpError(err).status >= 500) console.error(err);
    });

  async function findDocument(id: number): Promise<Document> {
    const doc = await dataSource.manager.findOneBy(Document, { id });
    if (doc === null) throw new HttpError(404, "no such document");
    return doc;
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? "GET";
    const { pathname } = url;
    if (resumable !== undefined && (pathname === resumable.path || pathname.startsWith(`${resumable.path}/`))) {
      return resumable.handle(req, res);
    }
    if (isStaticFile(pathname)) {
      allow(method, ["GET", "HEAD"]);
      return sendStaticFile(res, pathname, method === "HEAD");
    }
    if (pathname === "/api/config") {
      allow(method, ["GET", "HEAD"]);
      const { path, chunkBytes, minBytes } = resumable ?? {};
      return sendJson(res, 200, { maxUploadBytes, resumable: resumable ? { endpoint: path, chunkBytes, minBytes } : null }, method === "HEAD");
    }
    if (pathname === "/api/documents") {
      allow(method, ["GET", "HEAD", "POST"]);
      if (method === "POST") {
        const doc = await storeUpload(dataSource, events, req, url, maxUploadBytes);
        res.setHeader("Location", `/api/documents/${doc.id}`);
        return sendJson(res, 201, toJson(doc));
      }
      const docs = await dataSource.manager.find(Document, { order: { id: "DESC" } });
      return sendJson(res, 200, docs.map(toJson), method === "HEAD");
    }
    const match = DOCUMENT.exec(pathname);
    const id = match === null ? NaN : Number(match[1]);
    if (match === null || id > 2 ** 31 - 1) throw new HttpError(404, "not found");
    if (match[2] !== undefined) {
      allow(method, ["GET", "HEAD"]);
      const doc = await findDocument(id);
      return sendLargeObject(req, res, {
        source: dataSource,
        entity: doc,
        property: "content",
        contentType: doc.contentType,
        filename: doc.name,
        disposition: url.searchParams.has("download") ? "attachment" : "inline",
        lastModified: doc.createdAt,
        cacheControl: "no-cache",
        onError: (err) => onError(err, req),
      });
    }
    allow(method, ["GET", "HEAD", "DELETE"]);
    if (method === "DELETE") {
      // The database's unlink trigger removes the large object with the row.
      const result = await dataSource.manager.delete(Document, { id });
      if (!result.affected) throw new HttpError(404, "no such document");
      res.statusCode = 204;
      res.end();
      return;
    }
    return sendJson(res, 200, toJson(await findDocument(id)), method === "HEAD");
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    route(req, res, url).catch((err: unknown) => {
      onError(err, req);
      sendError(req, res, err);
    });
  });
  // Large uploads and downloads may take longer than Node's default 5-minute request timeout.
  server.requestTimeout = 0;

  return {
    server,
    events,
    listen: (port = 0, host = "127.0.0.1") =>
      new Promise<string>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          resolve(`http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`);
        });
      }),
    close: () =>
      new Promise<void>((resolve, reject) => {
        resumable?.close();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

function allow(method: string, methods: string[]): void {
  if (!methods.includes(method)) throw new HttpError(405, "method not allowed", { Allow: methods.join(", ") });
}

function sendJson(res: ServerResponse, status: number, body: unknown, head = false): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(text));
  res.end(head ? undefined : text);
}

function sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (res.headersSent || res.destroyed) {
    // Mid-body: the only honest signal left is to cut the connection.
    res.destroy();
    return;
  }
  const error = toHttpError(err);
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value);
  if (!req.complete && !req.destroyed) discardRest(req);
  sendJson(res, error.status, { error: error.message }, req.method === "HEAD");
}

/** Reads and drops the rest of a refused request body (up to a bound), so the client can read the answer. */
function discardRest(req: IncomingMessage): void {
  let left = MAX_DISCARDED_BYTES;
  req.on("data", (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) req.destroy();
  });
  req.resume();
}
