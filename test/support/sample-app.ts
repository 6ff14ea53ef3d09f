import { createHash } from "node:crypto";
import { once } from "node:events";
import { request, type ClientRequest, type IncomingMessage } from "node:http";
import type { DataSource } from "typeorm";
import { RECORDS_TABLE } from "../../src";
import { createApp, type App } from "../../sample-app/src/app";
import { Document } from "../../sample-app/src/document";
import type { UploadEvent } from "../../sample-app/src/events";
import { countObjects, idleInTransaction, randomBytes } from "./database";
import { dropAll, openOrmDataSource } from "./orm";
import { checkedOut } from "./pool";

/** The sample app on this worker's test database, listening on a free port. */
export interface SampleServer {
  app: App;
  url: string;
  dataSource: DataSource;
}

/** Starts the sample app on a fresh data source (schema synchronized) and a free port. */
export async function startSample(options: { poolSize?: number; maxUploadBytes?: number } = {}): Promise<SampleServer> {
  const dataSource = await openOrmDataSource([Document], options.poolSize ? { poolSize: options.poolSize } : {});
  const app = createApp({ dataSource, maxUploadBytes: options.maxUploadBytes ?? 256 * 1024 * 1024, onError: () => undefined });
  const url = await app.listen(0);
  return { app, url, dataSource };
}

/** Stops the app, drops its tables and unlinks every object. */
export async function stopSample(sample: SampleServer | undefined): Promise<void> {
  if (sample === undefined) return;
  await sample.app.close();
  await dropAll(sample.dataSource);
}

/**
 * Gives a test file the sample app: started before the tests (handed to `assign`, then `setUp`
 * run on it), stopped with its tables and objects dropped after them.
 */
export function useSample(
  assign: (sample: SampleServer) => void,
  options: Parameters<typeof startSample>[0] & { setUp?: (sample: SampleServer) => Promise<void> } = {},
): void {
  const { setUp, ...startOptions } = options;
  let sample: SampleServer | undefined;
  beforeAll(async () => {
    sample = await startSample(startOptions);
    assign(sample);
    await setUp?.(sample);
  });
  afterAll(() => stopSample(sample));
}

/** Rows in the documents table. */
export async function countDocuments(ds: DataSource): Promise<number> {
  return ds.manager.count(Document);
}

/** Lowercase hex SHA-256. */
export function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A response read whole: status, headers and body. */
export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** One HTTP request with node:http (no pooling), body sent in 1 MiB pieces, the response read whole. */
export function send(url: string, options: { method?: string; headers?: Record<string, string | number>; body?: Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "GET", headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    const body = options.body;
    if (body === undefined) {
      req.end();
      return;
    }
    let offset = 0;
    const writeMore = (): void => {
      while (offset < body.length) {
        const piece = body.subarray(offset, offset + 1024 * 1024);
        offset += piece.length;
        if (!req.write(piece)) {
          req.once("drain", writeMore);
          return;
        }
      }
      req.end();
    };
    writeMore();
  });
}

/** A multipart/form-data body with one file part, as a browser sends it. */
export function multipartBody(field: string, filename: string, type: string, content: Buffer): { body: Buffer; contentType: string } {
  const boundary = `----sample${createHash("sha1").update(content.subarray(0, 64)).digest("hex")}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return { body: Buffer.concat([head, content, tail]), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** The next upload event of a given phase. */
export function nextUploadEvent<P extends UploadEvent["phase"]>(app: App, phase: P, timeoutMs = 20_000): Promise<Extract<UploadEvent, { phase: P }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      app.events.off("upload", listener);
      reject(new Error(`no "${phase}" upload event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (event: UploadEvent): void => {
      if (event.phase !== phase) return;
      clearTimeout(timer);
      app.events.off("upload", listener);
      resolve(event as Extract<UploadEvent, { phase: P }>);
    };
    app.events.on("upload", listener);
  });
}

/** Waits until `check` holds (polling every 20 ms), or fails after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Asserts that nothing of a refused or aborted upload is left: no row, no object, no record, no connection. */
export async function expectNothingLeft(sample: SampleServer): Promise<void> {
  const ds = sample.dataSource;
  await eventually(() => checkedOut(ds) === 0, "every connection back in the pool");
  expect(await countDocuments(ds)).toBe(0);
  expect(await countObjects(ds)).toBe(0);
  const records: { n: string }[] = await ds.query(`SELECT count(*) AS n FROM ${RECORDS_TABLE}`);
  expect(Number(records[0]!.n)).toBe(0);
  expect(await idleInTransaction(ds)).toBe(0);
}

/** Writes `piece` to a request until `bytes` have gone out, honouring backpressure. */
export async function writeBytes(req: ClientRequest, bytes: number, seed = 1): Promise<void> {
  const piece = randomBytes(256 * 1024, seed);
  for (let sent = 0; sent < bytes; sent += piece.length) {
    if (!req.write(piece.subarray(0, Math.min(piece.length, bytes - sent)))) await once(req, "drain");
  }
}

/** Resolves with the response of a request whose body is still being written, or undefined if it fails. */
export function responseOf(req: ClientRequest): Promise<IncomingMessage | undefined> {
  return new Promise((resolve) => {
    req.once("response", resolve);
    req.once("error", () => resolve(undefined));
  });
}
