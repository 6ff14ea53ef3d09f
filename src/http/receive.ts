import type { IncomingMessage } from "node:http";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import busboy from "busboy";
import { parse as parseDisposition } from "content-disposition";
import type { DeepPartial, EntityManager, EntityTarget, ObjectLiteral } from "typeorm";
import { LargeObjectError, type LargeObjectSource } from "../index";
import { connectWithin } from "../connection/pool-acquire";
import { httpRefusal, type LargeObjectHttpError } from "./errors";
import { essence, headerValue } from "./headers";
import { managerOf } from "./source";

/** What is known of an upload before its bytes are read. */
export interface UploadedFileInfo {
  /** The client's name for the file, when it gave one (the caller's `filename` wins). */
  filename: string | undefined;
  /** Its media type (`application/octet-stream` when the client named none). */
  contentType: string;
}

/** Options of {@link receiveLargeObject}. */
export interface ReceiveLargeObjectOptions<T extends ObjectLiteral> {
  /** Where to write: a DataSource, an EntityManager (joining its transaction) or a QueryRunner. */
  source: LargeObjectSource;
  /** The entity class of the new row. */
  target: EntityTarget<T>;
  /** The `@LargeObjectColumn()` property that receives the bytes. */
  property: keyof T & string;
  /** The largest upload accepted, in bytes (default: no limit); beyond it, 413. */
  maxBytes?: number;
  /** The row's other columns, or a function of the file's name and type that returns them. */
  values?: NoInfer<DeepPartial<T> | ((file: UploadedFileInfo) => DeepPartial<T> | Promise<DeepPartial<T>>)>;
  /** The file name, overriding the one the client sent. */
  filename?: string;
  /** Media types accepted (`image/*` style wildcards allowed); anything else gets 415. Default: any. */
  accept?: readonly string[];
}

/** The largest form fields and part headers tolerated around the one file. */
const FORM_LIMITS = { fields: 64, fieldSize: 64 * 1024, parts: 128, headerPairs: 64 };

const noop = (): void => undefined;

/**
 * Bytes the body may buffer on its way to the object. The object takes the body in large pieces
 * with a write in flight; a buffer of a few socket chunks would stop reading the socket during
 * each write, and the client would wait for the server to read again.
 */
const BODY_HIGH_WATER_MARK = 1024 * 1024;

/** Counts bytes on their way to the object and refuses the one past `maxBytes`. */
export class ByteLimit extends Transform {
  bytes = 0;
  constructor(private readonly maxBytes: number) {
    super({ highWaterMark: BODY_HIGH_WATER_MARK });
    // The save that reads this stream may already have failed: an error then has nobody else to reach.
    this.on("error", noop);
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(httpRefusal("ERR_LO_HTTP_TOO_LARGE", `the upload is larger than ${this.maxBytes} bytes`));
      return;
    }
    callback(null, chunk);
  }
}

function matchesAccepted(contentType: string, accept: readonly string[] | undefined): boolean {
  if (accept === undefined) return true;
  const type = essence(contentType);
  return accept.some((pattern) => {
    const p = essence(pattern);
    return p === "*/*" || p === type || (p.endsWith("/*") && type.startsWith(p.slice(0, -1)));
  });
}

/** One upload as it is parsed: its file once known, and whether the whole request was good. */
interface Upload {
  file: Promise<{ info: UploadedFileInfo; content: Readable }>;
  complete: Promise<void>;
  /** Stops reading the request (after a failure). */
  stop(): void;
}

function settleOnce(): {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
} {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(noop);
  return { promise, resolve, reject };
}

/** Watches the request for a client that goes away before its body is complete. */
function onAbort(req: IncomingMessage, fail: (err: LargeObjectHttpError) => void): void {
  const aborted = (): void => fail(httpRefusal("ERR_LO_HTTP_ABORTED", "the client went away before the upload was complete"));
  req.on("error", aborted);
  req.on("close", () => {
    if (!req.complete) aborted();
  });
}

/**
 * Stops feeding the request to `target` and reads the rest of its body into nowhere: a request
 * left paused would hold its keep-alive connection, and the next request on it, forever. Reading
 * it also lets the early answer reach the client: a socket closed over unread bytes is reset.
 */
function discardRest(req: IncomingMessage, target: NodeJS.WritableStream): void {
  req.unpipe(target);
  req.resume();
}

function rawUpload(req: IncomingMessage, limit: ByteLimit, info: UploadedFileInfo): Upload {
  const done = settleOnce();
  const fail = (err: LargeObjectHttpError): void => {
    limit.destroy(err);
    done.reject(err);
  };
  onAbort(req, fail);
  limit.on("error", (err) => done.reject(err));
  req.on("end", () => {
    if (req.complete) done.resolve();
  });
  req.pipe(limit);
  return {
    file: Promise.resolve({ info, content: limit }),
    complete: done.promise,
    stop: () => discardRest(req, limit),
  };
}

function formUpload(req: IncomingMessage, limit: ByteLimit, options: { filename?: string }): Upload {
  const done = settleOnce();
  let resolveFile!: (file: { info: UploadedFileInfo; content: Readable }) => void;
  let rejectFile!: (err: unknown) => void;
  const file = new Promise<{ info: UploadedFileInfo; content: Readable }>((res, rej) => {
    resolveFile = res;
    rejectFile = rej;
  });
  file.catch(noop);
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers, limits: { ...FORM_LIMITS, files: 1 }, defParamCharset: "utf8" });
  } catch (err) {
    const refusal = httpRefusal("ERR_LO_HTTP_MALFORMED", `the form cannot be read: ${(err as Error).message}`, { cause: err });
    return { file: Promise.reject(refusal), complete: Promise.reject(refusal), stop: noop };
  }
  let seen = false;
  const fail = (err: LargeObjectHttpError): void => {
    limit.destroy(err);
    rejectFile(err);
    done.reject(err);
  };
  onAbort(req, fail);
  limit.on("error", (err) => done.reject(err));
  parser.on("error", (err: unknown) =>
    fail(httpRefusal("ERR_LO_HTTP_MALFORMED", `the form cannot be read: ${(err as Error).message}`, { cause: err })),
  );
  parser.on("filesLimit", () => fail(httpRefusal("ERR_LO_HTTP_TOO_MANY_FILES", "the form has more than one file")));
  parser.on("file", (_name, stream, details) => {
    stream.on("error", (err: unknown) =>
      fail(httpRefusal("ERR_LO_HTTP_MALFORMED", `the form ended inside its file: ${(err as Error).message}`, { cause: err })),
    );
    seen = true;
    stream.pipe(limit);
    resolveFile({
      info: { filename: options.filename ?? clientFilename(details.filename), contentType: details.mimeType || "application/octet-stream" },
      content: limit,
    });
  });
  parser.on("close", () => {
    if (seen) done.resolve();
    else fail(httpRefusal("ERR_LO_HTTP_NO_FILE", "the form has no file"));
  });
  req.pipe(parser);
  return {
    file,
    complete: done.promise,
    stop: () => {
      discardRest(req, parser);
      // Later parts are not wanted: what busboy still emits goes nowhere.
      parser.removeAllListeners("file");
      parser.on("file", (_name, stream) => stream.on("error", noop).resume());
    },
  };
}

/**
 * A client's file name made safe to store and to use: its last path part, without control
 * characters (a percent-encoded NUL is refused by PostgreSQL's text columns); a name left empty,
 * `.` or `..` names no file.
 */
function clientFilename(name: string | undefined): string | undefined {
  // eslint-disable-next-line no-control-regex
  const base = name?.split(/[/\\]/).pop()?.replace(/[\u0000-\u001f\u007f]/g, "");
  return base === undefined || base === "" || base === "." || base === ".." ? undefined : base;
}

/**
 * The filename of a raw upload's Content-Disposition, if it has one. The parser is lenient: a
 * header it cannot read names no file.
 */
function rawFilename(req: IncomingMessage): string | undefined {
  const header = headerValue(req.headers, "content-disposition");
  if (header === undefined) return undefined;
  return clientFilename(parseDisposition(header).parameters.filename);
}

/**
 * Runs `work` in a transaction on the manager's runner, or on a connection taken from the pool the
 * way the library's own streams take one: a full pool then fails within the acquire timeout as
 * ERR_LO_POOL_EXHAUSTED (503) instead of pg's untyped timeout, or a wait without end.
 */
async function inTransaction<R>(manager: EntityManager, work: (m: EntityManager) => Promise<R>): Promise<R> {
  if (manager.queryRunner !== undefined) return manager.transaction(work);
  const runner = manager.connection.createQueryRunner();
  // Not released on a failed connect: after a timed-out wait, connectWithin hands the connection back when it comes.
  await connectWithin(runner, manager.connection);
  try {
    return await runner.manager.transaction(work);
  } finally {
    await runner.release();
  }
}

export function toMaxBytes(value: number | undefined): number {
  if (value === undefined) return Infinity;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", `maxBytes must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Stores one upload as a new row: a raw body (its Content-Type, and a filename from
 * Content-Disposition or the caller) or a multipart/form-data form with exactly one file. The row,
 * the object and its content commit together, or nothing is left: a refusal the client caused
 * rejects with a LargeObjectError carrying the HTTP status in `status` (400, 413, 415). Joins the
 * transaction of a transactional manager or query runner (as a savepoint, so a refusal leaves it usable).
 *
 * @example
 * app.post("/files", async (req, res, next) => {
 *   try {
 *     const doc = await receiveLargeObject(req, {
 *       source: dataSource, target: Document, property: "file", maxBytes: 100 * 1024 * 1024,
 *       values: ({ filename, contentType }) => ({ name: filename ?? "upload", type: contentType }),
 *     });
 *     res.status(201).json({ id: doc.id });
 *   } catch (err) { next(err); }
 * });
 */
export async function receiveLargeObject<T extends ObjectLiteral>(
  req: IncomingMessage,
  options: ReceiveLargeObjectOptions<T>,
): Promise<T> {
  const maxBytes = toMaxBytes(options.maxBytes);
  const manager: EntityManager = managerOf(options.source);
  if (req.readableEnded) {
    // A framework's body parser read it first: waiting for bytes that never come would hang the upload.
    throw new LargeObjectError(
      "ERR_LO_INVALID_ARGUMENT",
      "the request body was already read (a body parser ran before receiveLargeObject); keep body parsing off this route",
    );
  }
  const encoding = headerValue(req.headers, "content-encoding")?.trim().toLowerCase();
  if (encoding !== undefined && encoding !== "" && encoding !== "identity") {
    throw httpRefusal("ERR_LO_HTTP_UNSUPPORTED_TYPE", `uploads with Content-Encoding ${encoding} are not accepted`);
  }
  const contentType = headerValue(req.headers, "content-type") ?? "application/octet-stream";
  const type = essence(contentType);
  // A form's length also counts its delimiters and other fields: there only the file's bytes count.
  const declared = Number(headerValue(req.headers, "content-length"));
  if (type !== "multipart/form-data" && Number.isFinite(declared) && declared > maxBytes) {
    throw httpRefusal("ERR_LO_HTTP_TOO_LARGE", `the upload is larger than ${maxBytes} bytes`);
  }
  if (type === "application/x-www-form-urlencoded" || (type.startsWith("multipart/") && type !== "multipart/form-data")) {
    throw httpRefusal("ERR_LO_HTTP_UNSUPPORTED_TYPE", `a ${type} body cannot carry a file`);
  }
  const limit = new ByteLimit(maxBytes);
  const upload =
    type === "multipart/form-data"
      ? formUpload(req, limit, options.filename === undefined ? {} : { filename: options.filename })
      : rawUpload(req, limit, { filename: options.filename ?? rawFilename(req), contentType });
  let refusal: unknown;
  upload.complete.catch((err: unknown) => (refusal ??= err));
  try {
    const { info, content } = await upload.file;
    if (!matchesAccepted(info.contentType, options.accept)) {
      throw httpRefusal("ERR_LO_HTTP_UNSUPPORTED_TYPE", `uploads of type ${essence(info.contentType)} are not accepted`);
    }
    const values = typeof options.values === "function" ? await options.values(info) : options.values;
    return await inTransaction(manager, async (m) => {
      const row = m.create(options.target, (values ?? {}) as DeepPartial<T>);
      (row as ObjectLiteral)[options.property] = content;
      const saved = await m.save(options.target, row);
      // The form may still hold a second file or end short: nothing commits before it is whole.
      await upload.complete;
      return saved;
    });
  } catch (err) {
    upload.stop();
    limit.destroy();
    throw refusal ?? err;
  }
}
