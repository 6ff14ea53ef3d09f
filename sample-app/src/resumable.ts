// @tus/server is an ES module: this file is loaded by main.ts (run by tsx), never by the app's tests in jest.
import { Server } from "@tus/server";
import type { DataSource } from "typeorm";
// In a project of your own: import { LargeObjectTusStore } from "typeorm-large-object/tus";
import { LargeObjectTusStore } from "../../src/tus";
import type { ResumableUploads } from "./app";
import type { AppEvents } from "./events";
import { adoptUpload } from "./upload";

/** Options of {@link resumableUploads}. */
export interface ResumableOptions {
  /** The largest upload accepted, in bytes; tus refuses a longer Upload-Length with 413. */
  maxUploadBytes: number;
  /** The size of each PATCH the page sends (default 8 MiB). */
  chunkBytes?: number;
  /** Files of at least this size go through tus (default 8 MiB). */
  minBytes?: number;
}

const MiB = 1024 * 1024;

/**
 * A tus server under `/files` whose uploads stream into large objects: each finished upload's
 * object is adopted into a new document, by saving its oid into the `content` column. Until then
 * it is a staged object, which the store keeps across the client's reconnections.
 *
 * @example
 * const app = createApp({ dataSource, resumable: (events) => resumableUploads(dataSource, events, { maxUploadBytes }) });
 */
export function resumableUploads(dataSource: DataSource, events: AppEvents, options: ResumableOptions): ResumableUploads {
  const path = "/files";
  const server = new Server({
    path,
    datastore: new LargeObjectTusStore({ source: dataSource }),
    maxSize: options.maxUploadBytes,
    async onUploadFinish(_req, upload) {
      await adoptUpload(dataSource, events, Number(upload.storage!.path), {
        name: upload.metadata?.filename || "upload",
        contentType: upload.metadata?.filetype || "application/octet-stream",
      });
      return {};
    },
  });
  // Uploads abandoned for longer than the store's expiry (a day) go, with their objects.
  const sweep = setInterval(() => void server.cleanUpExpiredUploads().catch((err: unknown) => console.error(err)), 60 * 60 * 1000);
  sweep.unref();
  return {
    path,
    chunkBytes: options.chunkBytes ?? 8 * MiB,
    minBytes: options.minBytes ?? 8 * MiB,
    handle: (req, res) => server.handle(req, res),
    close: () => clearInterval(sweep),
  };
}
