import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import * as tus from "tus-js-client";
import { databaseUrl } from "./database";
import { tcpProxy, type TcpProxy } from "./raw-http";
import { startScript } from "./sample-process";

/** The tus fixture server: two tus servers sharing one store (see fixtures/tus-server.ts). */
export interface TusServer {
  /** Base URLs of the two servers; uploads live under `/files`. */
  urls: [string, string];
  /** A control route's JSON answer (`pool`: connections checked out, `expire`: deleteExpired()). */
  control<T>(name: "pool" | "expire"): Promise<T>;
  stop(): Promise<void>;
}

/** Starts the fixture server on this worker's database (the test's data source must have made the schema). */
export async function startTusServer(options: { expirationMs?: number; commitEveryBytes?: number } = {}): Promise<TusServer> {
  const server = await startScript("test/integration/fixtures/tus-server.ts", {
    args: [databaseUrl(), JSON.stringify(options)],
    ready: /ready (\S+) (\S+)\n/,
    what: "the tus server",
    timeoutMs: 30_000,
  });
  const urls: [string, string] = [server.ready[1]!, server.ready[2]!];
  return {
    urls,
    async control<T>(name: string): Promise<T> {
      const res = await fetch(`${urls[0]}/control/${name}`, { method: "POST" });
      return (await res.json()) as T;
    },
    stop: () => server.stop(),
  };
}

/** Gives a test file the tus server, started before its tests and stopped after them. */
export function useTusServer(assign: (server: TusServer) => void, options: Parameters<typeof startTusServer>[0] = {}): void {
  let server: TusServer | undefined;
  beforeAll(async () => {
    server = await startTusServer(options);
    assign(server);
  }, 40_000);
  afterAll(async () => server?.stop());
}

/**
 * Connections the tus server has checked out once its requests have settled: a request whose body
 * failed is answered as soon as the stream fails, while the store may still be rolling back.
 */
export async function poolSettled(server: TusServer, withinMs = 3000): Promise<number> {
  const until = Date.now() + withinMs;
  for (;;) {
    const { checkedOut } = await server.control<{ checkedOut: number }>("pool");
    if (checkedOut === 0 || Date.now() > until) return checkedOut;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Drops the store's table (the entity tables and objects go with useDataSource). */
export async function dropTusTable(ds: DataSource): Promise<void> {
  await ds.query('DROP TABLE IF EXISTS "typeorm_large_object_tus_uploads"');
}

/**
 * A TCP proxy in front of `target` that destroys the connection carrying the byte at each offset
 * of `cuts` (counted over everything clients sent through it), as a network that drops mid-PATCH.
 */
export async function cuttingProxy(target: string, cuts: number[]): Promise<TcpProxy & { cutsMade: () => number }> {
  const pending = [...cuts].sort((a, b) => a - b);
  let sent = 0;
  let made = 0;
  const proxy = await tcpProxy(target, (chunk, client, upstream, cut) => {
    const next = pending[0];
    if (next !== undefined && sent + chunk.length >= next) {
      pending.shift();
      made += 1;
      upstream.write(chunk.subarray(0, next - sent));
      sent = next;
      cut();
      return;
    }
    sent += chunk.length;
    if (!upstream.write(chunk)) {
      client.pause();
      upstream.once("drain", () => client.resume());
    }
  });
  return { ...proxy, cutsMade: () => made };
}

/** How a tus-js-client upload ended: success, or the error that stopped it (no retries). */
export type TusOutcome = { ok: true; url: string } | { ok: false; url: string | null; error: Error };

/** Runs one tus-js-client upload to its end (success or first error); `uploadUrl` resumes an existing one. */
export function runTusUpload(
  file: Buffer | Readable,
  options: { endpoint: string; uploadUrl?: string; chunkSize: number; metadata?: Record<string, string>; uploadSize?: number; started?: (upload: tus.Upload) => void },
): Promise<TusOutcome> {
  return new Promise((resolve) => {
    const upload: tus.Upload = new tus.Upload(file, {
      endpoint: options.endpoint,
      uploadUrl: options.uploadUrl ?? null,
      chunkSize: options.chunkSize,
      metadata: options.metadata ?? {},
      uploadSize: options.uploadSize ?? null,
      retryDelays: null,
      onSuccess: () => resolve({ ok: true, url: upload.url! }),
      onError: (error) => resolve({ ok: false, url: upload.url, error }),
    });
    upload.start();
    options.started?.(upload);
  });
}

/** Lowercase hex SHA-256. */
export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The server-side SHA-256 of an object's first `length` bytes (all of them without it). */
export async function objectSha256(ds: DataSource, oid: number, length?: number): Promise<string> {
  const rows: { digest: string }[] = await ds.query(
    length === undefined
      ? "SELECT encode(sha256(lo_get($1)), 'hex') AS digest"
      : "SELECT encode(sha256(lo_get($1, 0, $2)), 'hex') AS digest",
    length === undefined ? [oid] : [oid, length],
  );
  return rows[0]!.digest;
}

/** An object's size, through a descriptor opened and closed in one statement. */
export async function objectSize(ds: DataSource, oid: number): Promise<number> {
  const rows: { size: string }[] = await ds.query(
    "SELECT lo_lseek64(fd, 0, 2) AS size, lo_close(fd) FROM (SELECT lo_open($1, 262144) AS fd OFFSET 0) AS o",
    [oid],
  );
  return Number(rows[0]!.size);
}

/** The store's row of an upload (by the last segment of its URL), or undefined. */
export async function uploadRow(ds: DataSource, url: string): Promise<{ oid: number; offset: number; length: number | null } | undefined> {
  const id = decodeURIComponent(url.slice(url.lastIndexOf("/") + 1));
  const rows: { oid: string; offset: string; length: string | null }[] = await ds.query(
    'SELECT "oid", "offset", "length" FROM "typeorm_large_object_tus_uploads" WHERE "id" = $1',
    [id],
  );
  const row = rows[0];
  return row === undefined ? undefined : { oid: Number(row.oid), offset: Number(row.offset), length: row.length === null ? null : Number(row.length) };
}

/** What the store and staging leave behind: upload rows and staged records (the store has made its table). */
export async function leftovers(ds: DataSource): Promise<{ uploads: number; staged: number }> {
  const uploads: { n: string }[] = await ds.query('SELECT count(*) AS n FROM "typeorm_large_object_tus_uploads"');
  const staged: { n: string }[] = await ds.query("SELECT count(*) AS n FROM typeorm_large_objects WHERE staged");
  return { uploads: Number(uploads[0]!.n), staged: Number(staged[0]!.n) };
}
