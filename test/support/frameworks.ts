import { connect } from "node:net";
import type { DataSource } from "typeorm";
import { countObjects } from "./database";
import { countRecords } from "./cleanup";

/** One part of a multipart/form-data body. */
export interface Part {
  name: string;
  filename?: string;
  type?: string;
  body: Buffer | string;
}

/** A multipart/form-data body of the parts, with its boundary. */
export function formBody(parts: Part[], boundary = "tlo-boundary-7d1f"): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const filename = part.filename === undefined ? "" : `; filename="${part.filename}"`;
    const type = part.type === undefined ? "" : `\r\nContent-Type: ${part.type}`;
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"${filename}${type}\r\n\r\n`));
    chunks.push(Buffer.isBuffer(part.body) ? part.body : Buffer.from(part.body));
    chunks.push(Buffer.from("\r\n"));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Sends the head and the first part of a body that its Content-Length says is `declared` bytes
 * long, then goes away: a client cut off mid-upload. Resolves once the socket is closed.
 */
export function sendAndVanish(url: string, head: string, partial: Buffer, afterMs = 150): Promise<void> {
  return new Promise((resolve) => {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    socket.on("error", () => undefined);
    socket.on("close", () => resolve());
    socket.write(head);
    socket.write(partial);
    setTimeout(() => socket.destroy(), afterMs);
  });
}

/**
 * Asks for `path` over a fresh connection and goes away once more than `afterBytes` bytes of the
 * answer have arrived: a client that leaves mid-download. Resolves once the socket is closed.
 */
export function readAndVanish(url: string, path: string, afterBytes: number): Promise<void> {
  return new Promise((resolve) => {
    const { hostname, port } = new URL(url);
    const socket = connect(Number(port), hostname);
    let received = 0;
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received > afterBytes) socket.destroy();
    });
    socket.on("error", () => undefined);
    socket.on("close", () => resolve());
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

/** No large object and no record of one exists. */
export async function expectNoObjects(ds: DataSource): Promise<void> {
  expect(await countObjects(ds)).toBe(0);
  expect(await countRecords(ds)).toBe(0);
}

/** Removes every row of the tables, every record and every object. */
export async function clearAll(ds: DataSource, tables: string[]): Promise<void> {
  for (const table of tables) await ds.query(`DELETE FROM "${table}"`);
  await ds.query("DELETE FROM typeorm_large_objects");
  await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
}
