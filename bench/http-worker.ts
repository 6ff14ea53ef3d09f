/**
 * The processes of the HTTP and tus rows: `http-worker.js server <url>` serves receiveLargeObject
 * and sendLargeObject on node:http, `http-worker.js tus-server <url>` serves @tus/server with
 * LargeObjectTusStore, and `http-worker.js client <url>` runs the requests and the same bytes
 * through the library directly, one job at a time over IPC. Servers print `ready <port>`.
 */
import "reflect-metadata";
import { createHash } from "node:crypto";
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DataSource } from "typeorm";
import { registerLargeObjects } from "../src";
import { LargeObjectRepository } from "../src/orm/repository";
import { contentBuffer, contentStream } from "./data";
import { BenchFile } from "./entity";

/** One job of the client, and its answer. */
export type ClientJob =
  | { op: "http-upload" | "piped-upload" | "direct-write"; size: number; verify: boolean }
  | { op: "http-download" | "piped-download" | "direct-read"; id: number; verify: boolean }
  | { op: "http-many"; kind: "upload" | "download"; clients: number; perClient: number; size: number; id?: number }
  | { op: "fixture"; size: number }
  | { op: "tus-upload" | "tus-digest-upload" | "chunked-upload" | "plain-write"; size: number; chunkSize: number; verify: boolean }
  | { op: "rss"; port: number }
  | { op: "clear" };

/** The job type whose `op` may be `K`. */
type JobOf<K extends ClientJob["op"]> = ClientJob extends infer J ? (J extends { op: infer O } ? (K extends O ? J : never) : never) : never;

export interface JobResult {
  seconds?: number;
  /**
   * CPU seconds (user and system) of the process that did the library's work in the timed run:
   * the server's for a request, the client's own for the direct streams.
   */
  cpu?: number;
  id?: number;
  hash?: string;
  rss?: number;
}

const POOL = 12;

async function openSource(url: string): Promise<DataSource> {
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url, entities: [BenchFile], poolSize: POOL, logging: false }));
  return ds.initialize();
}

function maxRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** This process's CPU seconds so far, user and system. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** Answers the requests every server takes beside its own: its peak RSS and its CPU time. */
function answerProbe(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.url === "/rss") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ rss: maxRss() }));
  else if (req.url === "/cpu") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ cpu: cpuSeconds() }));
  else return false;
  return true;
}

function fail(res: ServerResponse, err: unknown): void {
  process.stderr.write(`request failed: ${String(err)}\n`);
  if (!res.headersSent) res.writeHead(500);
  res.end();
}

/** PUT /files stores the body through receiveLargeObject; GET /files/<id> answers through sendLargeObject. */
async function serveHttp(url: string): Promise<void> {
  const { receiveLargeObject, sendLargeObject, httpStatusOf } = await import("../src/http");
  const ds = await openSource(url);
  const files = ds.getRepository(BenchFile);
  const objects = new LargeObjectRepository(ds.manager);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    (async () => {
      if (answerProbe(req, res)) return;
      if (req.method === "PUT" && req.url === "/files") {
        try {
          const saved = await receiveLargeObject(req, { source: ds, target: BenchFile, property: "file" });
          res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: saved.id }));
        } catch (err) {
          res.writeHead(httpStatusOf(err)).end();
          req.resume();
        }
        return;
      }
      if (req.method === "PUT" && req.url === "/piped") {
        // What an application writes without the helper, and what the direct write does: a row, then
        // the body piped into the repository's write stream.
        const row = await files.save(files.create({ file: null }));
        await pipeline(req, await objects.createWriteStream(row, "file"));
        res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: row.id }));
        return;
      }
      const match = /^\/files\/(\d+)$/.exec(req.url ?? "");
      if (req.method === "GET" && match) {
        const entity = await files.findOneBy({ id: Number(match[1]) });
        if (entity === null) {
          res.writeHead(404).end();
          return;
        }
        await sendLargeObject(req, res, { source: ds, entity, property: "file" });
        return;
      }
      const piped = /^\/piped\/(\d+)$/.exec(req.url ?? "");
      if (req.method === "GET" && piped) {
        // What an application writes without the helper: the repository's read stream piped to the response.
        const entity = await files.findOneByOrFail({ id: Number(piped[1]) });
        const handle = await objects.openStream(entity, "file", { mode: "r" });
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": await handle.size() });
        await pipeline(handle.createReadStream(), res);
        return;
      }
      res.writeHead(404).end();
    })().catch((err: unknown) => fail(res, err));
  });
  await listen(server);
}

/**
 * A tus store that keeps nothing but the sha256 of what it receives, in memory: what @tus/server
 * costs with a store that does the least a store can (a digest is what LargeObjectTusStore keeps
 * too), so that tus's own share of the gap is measured, not guessed. `take` hands out the digest
 * of a finished upload once. @tus/server is loaded lazily (it is ESM), hence its module passed in.
 */
function digestOnlyStore(tus: typeof import("@tus/server")): { store: InstanceType<typeof tus.DataStore>; take(id: string): string | undefined } {
  const uploads = new Map<string, { id: string; size?: number; offset: number; hash: ReturnType<typeof createHash> }>();
  const finished = new Map<string, string>();
  const store = new tus.DataStore();
  store.extensions = ["creation"];
  store.create = async (upload) => {
    uploads.set(upload.id, { id: upload.id, ...(upload.size !== undefined ? { size: upload.size } : {}), offset: 0, hash: createHash("sha256") });
    return upload;
  };
  store.getUpload = async (id) => {
    const known = uploads.get(id);
    if (known === undefined) throw tus.ERRORS.FILE_NOT_FOUND;
    return new tus.Upload({ id, offset: known.offset, ...(known.size !== undefined ? { size: known.size } : {}) });
  };
  store.write = async (stream, id, offset) => {
    const known = uploads.get(id);
    if (known === undefined) throw tus.ERRORS.FILE_NOT_FOUND;
    if (offset !== known.offset) throw tus.ERRORS.INVALID_OFFSET;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      known.hash.update(chunk);
      known.offset += chunk.length;
    }
    if (known.offset === known.size) finished.set(id, known.hash.digest("hex"));
    return known.offset;
  };
  return {
    store,
    take(id) {
      const hash = finished.get(id);
      finished.delete(id);
      uploads.delete(id);
      return hash;
    },
  };
}

/** @tus/server on LargeObjectTusStore at /files; a finished upload is adopted into a bench_files row. */
async function serveTus(url: string): Promise<void> {
  const tusModule = await import("@tus/server");
  const { Server, MemoryLocker } = tusModule;
  const { LargeObjectTusStore } = await import("../src/tus");
  const ds = await openSource(url);
  const files = ds.getRepository(BenchFile);
  const tus = new Server({
    path: "/files",
    datastore: new LargeObjectTusStore({ source: ds }),
    locker: new MemoryLocker(),
    async onUploadFinish(_req, upload) {
      await files.save({ file: Number(upload.storage!.path) });
      return {};
    },
  });
  const objects = new LargeObjectRepository(ds.manager);
  const digests = digestOnlyStore(tusModule);
  const digestOnly = new Server({ path: "/digest-only", datastore: digests.store, locker: new MemoryLocker() });
  const server = createServer((req, res) => {
    if (answerProbe(req, res)) return;
    if (req.url?.startsWith("/chunks")) {
      chunk(req, res).catch((err: unknown) => fail(res, err));
      return;
    }
    const digestOf = /^\/digest-of\/([^/?]+)$/.exec(req.url ?? "");
    if (digestOf !== null) {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ hash: digests.take(digestOf[1]!) }));
      return;
    }
    (req.url?.startsWith("/digest-only") ? digestOnly : tus).handle(req, res).catch((err: unknown) => fail(res, err));
  });
  /**
   * The same requests without tus: POST /chunks makes a row, and each PATCH /chunks/<id>?offset=N
   * pipes its body into the row's write stream (appending after the first), a transaction each.
   */
  async function chunk(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === "POST") {
      const row = await files.save(files.create({ file: null }));
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: row.id }));
      return;
    }
    const match = /^\/chunks\/(\d+)\?offset=(\d+)$/.exec(req.url ?? "");
    if (req.method !== "PATCH" || match === null) {
      res.writeHead(404).end();
      return;
    }
    const row = await files.findOneByOrFail({ id: Number(match[1]) });
    await pipeline(req, await objects.createWriteStream(row, "file", { append: Number(match[2]) > 0 }));
    res.writeHead(204).end();
  }
  await listen(server);
}

async function listen(server: ReturnType<typeof createServer>): Promise<void> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`);
  process.on("SIGTERM", () => process.exit(0));
}

/** One HTTP exchange; resolves the status and the body, drained (hashed when asked). */
function exchange(
  port: number,
  options: { method: string; path: string; headers?: Record<string, string | number>; body?: Readable; hash?: boolean; keep?: boolean },
): Promise<{ status: number; body: string; hash?: string; headers: IncomingMessage["headers"] }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, method: options.method, path: options.path, headers: options.headers ?? {}, agent }, (res) => {
      const digest = options.hash ? createHash("sha256") : undefined;
      let body = "";
      res.on("data", (chunk: Buffer) => {
        if (digest !== undefined) digest.update(chunk);
        else if (options.keep !== false && body.length < 4096) body += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, ...(digest ? { hash: digest.digest("hex") } : {}) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (options.body === undefined) req.end();
    else options.body.pipe(req);
  });
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** Consumes a stream, hashing it when asked. */
async function drain(stream: Readable, hash: boolean): Promise<string | undefined> {
  const digest = hash ? createHash("sha256") : undefined;
  await pipeline(
    stream,
    new Writable({
      highWaterMark: 1024 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        digest?.update(chunk);
        callback();
      },
    }),
  );
  return digest?.digest("hex");
}

/** The content of `size` bytes in 64 KiB chunks, out of one buffer (the tus rows send the same buffer both ways). */
function bufferStream(buffer: Buffer): Readable {
  const piece = 64 * 1024;
  let at = 0;
  return new Readable({
    highWaterMark: piece,
    read() {
      if (at >= buffer.length) this.push(null);
      else {
        this.push(buffer.subarray(at, at + piece));
        at += piece;
      }
    },
  });
}

async function client(url: string): Promise<void> {
  const ds = await openSource(url);
  const files = ds.getRepository(BenchFile);
  const objects = new LargeObjectRepository(ds.manager);
  const before: { id: number | null }[] = await ds.query("SELECT max(id) AS id FROM bench_files");
  const firstId = Number(before[0]?.id ?? 0);
  const buffers = new Map<number, Buffer>();
  const bufferOf = (size: number): Buffer => {
    let b = buffers.get(size);
    if (b === undefined) buffers.set(size, (b = contentBuffer(size)));
    return b;
  };
  const ports = JSON.parse(process.argv[4] ?? "{}") as { http?: number; tus?: number };
  /** The server's SHA-256 of a row's object, to check what a run stored. */
  const storedHash = async (id: number): Promise<string> => {
    const rows: { h: string }[] = await ds.query("SELECT encode(sha256(lo_get(file)), 'hex') AS h FROM bench_files WHERE id = $1", [id]);
    return rows[0]?.h ?? "missing";
  };
  /** Times `task`; `cpu` is the CPU time it took of the server on `port`, or of this process. */
  const timed = async <T>(task: () => Promise<T>, port?: number): Promise<{ seconds: number; cpu: number; value: T }> => {
    const cpuOf = async (): Promise<number> =>
      port === undefined ? cpuSeconds() : (JSON.parse((await exchange(port, { method: "GET", path: "/cpu" })).body) as { cpu: number }).cpu;
    const cpuBefore = await cpuOf();
    const started = process.hrtime.bigint();
    const value = await task();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { seconds, cpu: (await cpuOf()) - cpuBefore, value };
  };
  const upload = async (job: JobOf<"http-upload">, path: string): Promise<JobResult> => {
    const { seconds, cpu, value } = await timed(
      () =>
        exchange(ports.http!, {
          method: "PUT",
          path,
          headers: { "content-type": "application/octet-stream", "content-length": job.size },
          body: contentStream(job.size),
        }),
      ports.http!,
    );
    if (value.status !== 201) throw new Error(`upload to ${path} answered ${value.status}`);
    const id = (JSON.parse(value.body) as { id: number }).id;
    return { seconds, cpu, id, ...(job.verify ? { hash: await storedHash(id) } : {}) };
  };

  const jobs: Record<ClientJob["op"], (job: never) => Promise<JobResult>> = {
    "http-upload": (job: JobOf<"http-upload">) => upload(job, "/files"),
    "piped-upload": (job: JobOf<"piped-upload">) => upload(job, "/piped"),
    "direct-write": async (job: JobOf<"direct-write">) => {
      const { seconds, cpu, value: id } = await timed(async () => {
        const row = await files.save(files.create({ file: null }));
        await pipeline(contentStream(job.size), await objects.createWriteStream(row, "file"));
        return row.id;
      });
      return { seconds, cpu, id, ...(job.verify ? { hash: await storedHash(id) } : {}) };
    },
    "http-download": async (job: JobOf<"http-download">) => {
      const { seconds, value } = await timed(() => exchange(ports.http!, { method: "GET", path: `/files/${job.id}`, hash: job.verify, keep: false }));
      if (value.status !== 200) throw new Error(`download answered ${value.status}`);
      return { seconds, ...(value.hash !== undefined ? { hash: value.hash } : {}) };
    },
    "piped-download": async (job: JobOf<"piped-download">) => {
      const { seconds, value } = await timed(() => exchange(ports.http!, { method: "GET", path: `/piped/${job.id}`, hash: job.verify, keep: false }));
      if (value.status !== 200) throw new Error(`download answered ${value.status}`);
      return { seconds, ...(value.hash !== undefined ? { hash: value.hash } : {}) };
    },
    "direct-read": async (job: JobOf<"direct-read">) => {
      const { seconds, value } = await timed(async () => {
        const row = await files.findOneByOrFail({ id: job.id });
        return drain(await objects.createReadStream(row, "file"), job.verify);
      });
      return { seconds, ...(value !== undefined ? { hash: value } : {}) };
    },
    "http-many": async (job: JobOf<"http-many">) => {
      const one = async (): Promise<void> => {
        for (let i = 0; i < job.perClient; i++) {
          const r =
            job.kind === "upload"
              ? await exchange(ports.http!, {
                  method: "PUT",
                  path: "/files",
                  headers: { "content-type": "application/octet-stream", "content-length": job.size },
                  body: contentStream(job.size),
                })
              : await exchange(ports.http!, { method: "GET", path: `/files/${job.id!}`, keep: false });
          if (r.status !== (job.kind === "upload" ? 201 : 200)) throw new Error(`${job.kind} answered ${r.status}`);
        }
      };
      const { seconds } = await timed(() => Promise.all(Array.from({ length: job.clients }, one)));
      return { seconds };
    },
    fixture: async (job: JobOf<"fixture">) => {
      const row = await files.save(files.create({ file: null }));
      await pipeline(contentStream(job.size), await objects.createWriteStream(row, "file"));
      return { id: row.id };
    },
    "tus-upload": async (job: JobOf<"tus-upload">) => {
      const tus = await import("tus-js-client");
      const data = bufferOf(job.size);
      const { seconds, cpu } = await timed(
        () =>
          new Promise<void>((resolve, reject) => {
            const upload = new tus.Upload(data, {
              endpoint: `http://127.0.0.1:${ports.tus!}/files`,
              chunkSize: job.chunkSize,
              retryDelays: null,
              metadata: { filename: "bench.bin" },
              onSuccess: () => resolve(),
              onError: reject,
            });
            upload.start();
          }),
        ports.tus!,
      );
      const newest: { id: number }[] = await ds.query("SELECT max(id) AS id FROM bench_files");
      const id = Number(newest[0]!.id);
      const hash = job.verify ? await storedHash(id) : undefined;
      return { seconds, cpu, id, ...(hash !== undefined ? { hash } : {}) };
    },
    "tus-digest-upload": async (job: JobOf<"tus-digest-upload">) => {
      const tus = await import("tus-js-client");
      const data = bufferOf(job.size);
      let url: string | null = null;
      const { seconds, cpu } = await timed(
        () =>
          new Promise<void>((resolve, reject) => {
            const upload = new tus.Upload(data, {
              endpoint: `http://127.0.0.1:${ports.tus!}/digest-only`,
              chunkSize: job.chunkSize,
              retryDelays: null,
              metadata: { filename: "bench.bin" },
              onSuccess: () => {
                url = upload.url;
                resolve();
              },
              onError: reject,
            });
            upload.start();
          }),
        ports.tus!,
      );
      const id = new URL(url!).pathname.split("/").pop()!;
      const answer = await exchange(ports.tus!, { method: "GET", path: `/digest-of/${id}` });
      const hash = (JSON.parse(answer.body) as { hash?: string }).hash;
      return { seconds, cpu, ...(hash !== undefined ? { hash } : {}) };
    },
    "chunked-upload": async (job: JobOf<"chunked-upload">) => {
      const data = bufferOf(job.size);
      const { seconds, cpu, value: id } = await timed(async () => {
        const created = await exchange(ports.tus!, { method: "POST", path: "/chunks" });
        if (created.status !== 201) throw new Error(`POST /chunks answered ${created.status}`);
        const row = (JSON.parse(created.body) as { id: number }).id;
        for (let offset = 0; offset < job.size; offset += job.chunkSize) {
          const body = data.subarray(offset, Math.min(offset + job.chunkSize, job.size));
          const r = await exchange(ports.tus!, {
            method: "PATCH",
            path: `/chunks/${row}?offset=${offset}`,
            headers: { "content-type": "application/offset+octet-stream", "content-length": body.length },
            body: bufferStream(body),
          });
          if (r.status !== 204) throw new Error(`PATCH /chunks answered ${r.status}`);
        }
        return row;
      }, ports.tus!);
      return { seconds, cpu, id, ...(job.verify ? { hash: await storedHash(id) } : {}) };
    },
    "plain-write": async (job: JobOf<"plain-write">) => {
      const data = bufferOf(job.size);
      const { seconds, cpu, value: id } = await timed(async () => {
        const row = await files.save(files.create({ file: null }));
        await pipeline(bufferStream(data), await objects.createWriteStream(row, "file"));
        return row.id;
      });
      return { seconds, cpu, id, ...(job.verify ? { hash: await storedHash(id) } : {}) };
    },
    rss: async (job: JobOf<"rss">) => {
      const r = await exchange(job.port, { method: "GET", path: "/rss" });
      return { rss: (JSON.parse(r.body) as { rss: number }).rss };
    },
    clear: async () => {
      // Only the rows made since this process started: the other phases' fixtures stay as they are.
      await ds.transaction(async (m) => {
        await m.query("SELECT lo_unlink(file) FROM bench_files WHERE id > $1 AND file IS NOT NULL", [firstId]);
        await m.query("DELETE FROM bench_files WHERE id > $1", [firstId]);
      });
      return {};
    },
  };

  process.on("message", (message: { job?: ClientJob; close?: true }) => {
    if (message.close) {
      agent.destroy();
      void ds.destroy().finally(() => process.disconnect());
      return;
    }
    const job = message.job!;
    (jobs[job.op] as (j: ClientJob) => Promise<JobResult>)(job).then(
      (result) => process.send!({ result }),
      (err: unknown) => process.send!({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
  process.send!({ ready: true });
}

const [role = "", url = ""] = process.argv.slice(2);
(role === "server" ? serveHttp(url) : role === "tus-server" ? serveTus(url) : client(url)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});

