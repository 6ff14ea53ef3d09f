import type { IncomingMessage } from "node:http";
import type { Readable } from "node:stream";
import { discardStagedObject, stageLargeObject, type LargeObjectSource } from "../index";
import { httpRefusal } from "./errors";
import { ByteLimit, toMaxBytes } from "./receive";

/** Options of {@link largeObjectStorage}. */
export interface LargeObjectStorageOptions {
  /** Where the files are staged: a DataSource, an EntityManager or a QueryRunner. */
  source: LargeObjectSource;
  /** The largest file accepted, in bytes (default: no limit); a larger one fails with a 413 refusal. */
  maxBytes?: number;
  /** Kept in each object's record (`created_for`) for people reading the table (default "upload"). */
  label?: string;
}

/** What multer hands a storage engine for each file (the fields of multer's own `File` it reads). */
export interface IncomingFormFile {
  fieldname: string;
  originalname: string;
  encoding: string;
  mimetype: string;
  stream: Readable;
}

/** What the engine adds to each file (multer merges it into `req.file` / `req.files`). */
export interface StagedFileInfo {
  /** The staged object holding the bytes: set a column to it and `save()` to adopt it. */
  oid: number;
  /** Bytes written. */
  size: number;
  /** SHA-256 of the bytes as 64 lowercase hex digits, taken while they were written. */
  sha256: string | null;
}

/** A file as the request carries it once the engine has stored it. */
export type LargeObjectFile = Omit<IncomingFormFile, "stream"> & StagedFileInfo;

/**
 * A multer `StorageEngine`, written against multer's documented contract rather than its types so
 * that neither this entry nor its declarations need multer to be installed.
 */
export interface LargeObjectStorageEngine {
  _handleFile(req: IncomingMessage, file: IncomingFormFile, callback: (error?: unknown, info?: StagedFileInfo) => void): void;
  _removeFile(req: IncomingMessage, file: Partial<StagedFileInfo>, callback: (error: Error | null) => void): void;
}

const DEFAULT_LABEL = "upload";

/**
 * A multer storage engine that streams each file into a staged large object (created and recorded,
 * owned by no row yet) and puts its `oid`, `size` and `sha256` on the file. A `save()` that sets a
 * column to the oid adopts the object; one never adopted is removed by the sweep after its grace
 * period; multer's `_removeFile` (a later file failing, a limit) unlinks it at once. A client that
 * goes away mid-file leaves no object.
 *
 * @example
 * const upload = multer({ storage: largeObjectStorage({ source: dataSource, maxBytes: 100 * 1024 * 1024 }) });
 * app.post("/documents", upload.single("file"), async (req, res) => {
 *   if (!isLargeObjectFile(req.file)) return void res.status(400).end();
 *   const saved = await dataSource.getRepository(Document).save({ name: req.file.originalname, attachment: req.file.oid });
 *   res.status(201).json({ id: saved.id, sha256: req.file.sha256 });
 * });
 */
export function largeObjectStorage(options: LargeObjectStorageOptions): LargeObjectStorageEngine {
  const maxBytes = toMaxBytes(options.maxBytes);
  const { source } = options;
  const label = options.label ?? DEFAULT_LABEL;
  return {
    _handleFile(req, file, callback) {
      const limit = new ByteLimit(maxBytes);
      const input = file.stream;
      let settled = false;
      const settle = (err: unknown, info?: StagedFileInfo): void => {
        if (settled) return;
        settled = true;
        req.off("close", onClose);
        input.off("error", onInputError);
        if (err !== null) {
          // The rest of this file goes nowhere, so the form can still be read to its end.
          input.unpipe(limit);
          input.resume();
          callback(err);
        } else callback(null, info);
      };
      const onClose = (): void => {
        if (!req.complete) limit.destroy(httpRefusal("ERR_LO_HTTP_ABORTED", "the client went away before the file was complete"));
      };
      const onInputError = (err: unknown): void => {
        limit.destroy(httpRefusal("ERR_LO_HTTP_MALFORMED", `the form ended inside its file: ${(err as Error).message}`, { cause: err }));
      };
      req.on("close", onClose);
      input.on("error", onInputError);
      input.pipe(limit);
      stageLargeObject(source, { content: limit, label }).then(
        ({ oid, size, sha256 }) => settle(null, { oid, size, sha256 }),
        (err: unknown) => {
          limit.destroy();
          settle(err);
        },
      );
    },
    _removeFile(_req, file, callback) {
      if (file.oid === undefined) {
        callback(null);
        return;
      }
      discardStagedObject(source, file.oid).then(
        () => callback(null),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
    },
  };
}

/**
 * Whether multer's `req.file` (or an entry of `req.files`) was stored by {@link largeObjectStorage}:
 * narrows it to a file with `oid`, `size` and `sha256`.
 *
 * @example
 * if (!isLargeObjectFile(req.file)) return res.status(400).end();
 * await repository.save({ name: req.file.originalname, attachment: req.file.oid });
 */
export function isLargeObjectFile<T>(file: T): file is T & LargeObjectFile {
  if (file === null || typeof file !== "object") return false;
  const f = file as Partial<LargeObjectFile>;
  return typeof f.oid === "number" && typeof f.size === "number" && typeof f.originalname === "string";
}
