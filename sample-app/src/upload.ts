import type { IncomingMessage } from "node:http";
import type { DataSource, EntityManager } from "typeorm";
// In a project of your own: import { receiveLargeObject } from "typeorm-large-object/http";
import { receiveLargeObject } from "../../src/http";
import { Document } from "./document";
import type { AppEvents } from "./events";
import { toHttpError } from "./http-error";

/**
 * Runs one upload's transaction and reports it; any failure leaves no row and no object. The
 * library fills `size` and `sha256` as the bytes stream (or, adopting a staged object, from its
 * record), in the same transaction.
 */
async function stored(dataSource: DataSource, events: AppEvents, resumable: boolean, write: (manager: EntityManager) => Promise<Document>): Promise<Document> {
  try {
    const { id } = await dataSource.transaction(write);
    const doc = await dataSource.manager.findOneByOrFail(Document, { id });
    events.emit("upload", { phase: "stored", id, bytes: doc.size, resumable });
    return doc;
  } catch (err) {
    events.emit("upload", { phase: "failed", status: toHttpError(err).status, error: err });
    throw err;
  }
}

/**
 * Stores one upload, a raw body (`?name=` its name, Content-Type its type) or a form with one
 * file, through receiveLargeObject on the transaction's manager: it refuses what is over the limit
 * (413), a client that goes away or a bad form (400), and nothing of those is left.
 */
export function storeUpload(dataSource: DataSource, events: AppEvents, req: IncomingMessage, url: URL, maxBytes: number): Promise<Document> {
  const name = url.searchParams.get("name");
  return stored(dataSource, events, false, (manager) =>
    receiveLargeObject(req, {
      source: manager,
      target: Document,
      property: "content",
      maxBytes,
      ...(name ? { filename: name } : {}),
      values: ({ filename, contentType }) => {
        events.emit("upload", { phase: "started", name: filename ?? "upload", resumable: false });
        return { name: filename ?? "upload", contentType };
      },
    }),
  );
}

/** Adopts a finished resumable upload's object into a new document (saving the oid into its column). */
export function adoptUpload(dataSource: DataSource, events: AppEvents, oid: number, info: { name: string; contentType: string }): Promise<Document> {
  events.emit("upload", { phase: "started", name: info.name, resumable: true });
  return stored(dataSource, events, true, (manager) => manager.save(Document, manager.create(Document, { ...info, content: oid })));
}
