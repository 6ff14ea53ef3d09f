import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, rmSync } from "node:fs";
import path from "node:path";
import { Writable, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Client } from "pg";
import { DataSource } from "typeorm";
import { LargeObject } from "../src";
import { DIGEST_PIECE, contentBuffer, contentStream } from "./data";
import { SMALL_OBJECT_METHODS } from "./small-objects";

/** What a method measures: a stream written, a stream read, a batch of objects, or nothing (the baseline). */
export type MethodKind = "write" | "read" | "batch" | "baseline";

/** Everything a method child is told by the runner. */
export interface MethodContext {
  url: string;
  size: number;
  /** sha256 of the content of this size (what read methods must see). */
  expectedHash: string;
  /** md5 of each 16 MiB piece (what the server must hold after a write). */
  expectedDigests: string;
  /** Server-readable copy of the content, for lo_import(). */
  importFile: string;
  /** Server-writable directory, for lo_export(). */
  exportDir: string;
  /** Read fixtures made by the setup child. */
  fixture?: Fixture;
  /** Objects in a batch (the many-small-objects methods). */
  count: number;
}

/** The objects read methods read, all holding the same content. */
export interface Fixture {
  oid: number;
  fileId?: number;
  byteaId?: number;
  byteaError?: string;
}

/** The result of one timed run. */
export interface Outcome {
  /** Set on the verification run of read methods. */
  hash?: string;
  /** Objects a write run created, to be verified and removed after timing. */
  oids?: number[];
  rowId?: number;
  /** Rows a batch run inserted without objects, removed after timing. */
  rowIds?: number[];
}

/** An open method: `run` is timed, `after` is not. */
export interface Session {
  run(verify: boolean): Promise<Outcome>;
  after(outcome: Outcome, verify: boolean): Promise<string | undefined>;
  close(): Promise<void>;
}

/** A way of moving bytes in or out of PostgreSQL. */
export interface Method {
  id: string;
  label: string;
  kind: MethodKind;
  /** "orm": needs the repository and registration; "server-files": needs lo_import/lo_export rights. */
  needs?: "orm" | "server-files";
  /** The largest object size the method runs at (every size when unset). */
  maxSize?: number;
  open(ctx: MethodContext): Promise<Session>;
}

const MIB = 1024 * 1024;

/** Consumes a stream, counting bytes and hashing them when asked. */
async function drain(stream: Readable, hash: boolean): Promise<string | undefined> {
  const digest = hash ? createHash("sha256") : undefined;
  await pipeline(
    stream,
    new Writable({
      highWaterMark: MIB,
      write(chunk: Buffer, _encoding, callback) {
        digest?.update(chunk);
        callback();
      },
      writev(chunks, callback) {
        if (digest !== undefined) for (const { chunk } of chunks) digest.update(chunk as Buffer);
        callback();
      },
    }),
  );
  return digest?.digest("hex");
}

/** sha256 of a file read through one reused buffer, so that checking costs this process no memory. */
function hashFile(file: string): string {
  const digest = createHash("sha256");
  const buffer = Buffer.allocUnsafe(MIB);
  const fd = openSync(file, "r");
  try {
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) digest.update(buffer.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return digest.digest("hex");
}

async function pgClient(url: string): Promise<Client> {
  const client = new Client({ connectionString: url });
  await client.connect();
  return client;
}

function dataSource(url: string, entities: Function[] = []): DataSource {
  return new DataSource({ type: "postgres", url, entities, poolSize: 2, logging: false });
}

/** The server's md5 of each 16 MiB piece of an object, so that checking a write costs this process nothing. */
async function objectDigests(ds: DataSource, oid: number): Promise<string> {
  const rows = await ds.query<{ digests: string }[]>(
    `SELECT string_agg(md5(lo_get($1, s, $2::int4)), '' ORDER BY s) AS digests
       FROM generate_series(0::int8, (SELECT greatest(lo_lseek64(fd, 0, 2) - 1, 0) FROM lo_open($1, 262144) AS fd), $2::int8) AS s`,
    [oid, DIGEST_PIECE],
  );
  return rows[0]!.digests;
}

async function unlinkAll(ds: DataSource, oids: number[]): Promise<void> {
  await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])", [oids]);
}

/** Write-side `after`: hash the object when verifying, then remove it. */
function writeAfter(ds: DataSource) {
  return async (outcome: Outcome, verify: boolean): Promise<string | undefined> => {
    const oids = outcome.oids ?? [];
    let hash: string | undefined;
    if (verify && oids[0] !== undefined) {
      const oid = oids[0];
      hash = await ds.transaction(async (manager) => objectDigests(manager.connection, oid));
    }
    await unlinkAll(ds, oids);
    return hash;
  };
}

async function ormDataSource(url: string): Promise<DataSource> {
  const { registerLargeObjects } = await import("../src/registration");
  const { BenchFile } = await import("./entity");
  const ds = registerLargeObjects(dataSource(url, [BenchFile]));
  await ds.initialize();
  return ds;
}

async function fileRepository(ds: DataSource) {
  const { BenchFile } = await import("./entity");
  const { LargeObjectRepository } = await import("../src/orm/repository");
  return { files: ds.getRepository(BenchFile), objects: new LargeObjectRepository(ds.manager), BenchFile };
}

async function pglManager(client: Client) {
  // pg-large-object ships no types; this is the part of its API the benchmark uses.
  const specifier = "pg-large-object";
  const { LargeObjectManager } = (await import(specifier)) as {
    LargeObjectManager: new (options: { pg: Client }) => {
      createAndWritableStreamAsync(bufferSize?: number): Promise<[number, NodeJS.WritableStream]>;
      openAndReadableStreamAsync(oid: number, bufferSize?: number): Promise<[number, Readable]>;
    };
  };
  return new LargeObjectManager({ pg: client });
}

function pgLargeObjectWrite(bufferSize: number | undefined): Method["open"] {
  return async (ctx) => {
    const client = await pgClient(ctx.url);
    const ds = await dataSource(ctx.url).initialize();
    const manager = await pglManager(client);
    return {
      async run() {
        await client.query("BEGIN");
        const [oid, stream] = await manager.createAndWritableStreamAsync(bufferSize);
        // It issues one lowrite per incoming chunk: at "1 MiB buffers" it is fed 1 MiB chunks.
        await pipeline(contentStream(ctx.size, bufferSize), stream);
        await client.query("COMMIT");
        return { oids: [oid] };
      },
      after: writeAfter(ds),
      async close() {
        await client.end();
        await ds.destroy();
      },
    };
  };
}

function pgLargeObjectRead(bufferSize: number | undefined): Method["open"] {
  return async (ctx) => {
    const client = await pgClient(ctx.url);
    const manager = await pglManager(client);
    return {
      async run(verify) {
        await client.query("BEGIN");
        const [, stream] = await manager.openAndReadableStreamAsync(ctx.fixture!.oid, bufferSize);
        const hash = await drain(stream, verify);
        await client.query("COMMIT");
        return hash === undefined ? {} : { hash };
      },
      after: async () => undefined,
      close: () => client.end(),
    };
  };
}

/**
 * `save([...])` of `count` entities in one call: with 1 KiB of content each, or with the column null
 * (the same entity and DataSource, no object to create: what TypeORM itself costs for the rows).
 */
function saveBatch(withObjects: boolean): Method["open"] {
  return async (ctx) => {
    const ds = await ormDataSource(ctx.url);
    const { files } = await fileRepository(ds);
    // Distinct contents (the index in the first bytes), or nulls.
    const values = Array.from({ length: ctx.count }, (_, i) => {
      if (!withObjects) return null;
      const payload = contentBuffer(1024);
      payload.writeUInt32BE(i);
      return payload;
    });
    return {
      async run() {
        const rows = await files.save(values.map((file) => files.create({ file })));
        return { rowIds: rows.map((r) => r.id), oids: withObjects ? rows.map((r) => r.file as number) : [] };
      },
      async after(outcome) {
        await ds.query("DELETE FROM bench_files WHERE id = ANY($1::int[])", [outcome.rowIds ?? []]);
        await unlinkAll(ds, outcome.oids ?? []);
        return undefined;
      },
      close: () => ds.destroy(),
    };
  };
}

/**
 * The least any client can do for the bytes of one small object: a single statement, which is
 * its own transaction, with the bytes as one binary parameter (writes) or one binary COPY
 * (reads). The library's small-object paths are set beside it as well as beside the server's own.
 */
const CLIENT_FLOOR_METHODS: Method[] = [
  {
    id: "client-floor-write",
    label: "the client's floor: one lo_from_bytea statement, no transaction (lz4 pages)",
    kind: "write",
    maxSize: MIB,
    async open(ctx) {
      const client = await pgClient(ctx.url);
      await client.query(
        "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)",
      );
      const ds = await dataSource(ctx.url).initialize();
      const value = contentBuffer(ctx.size);
      return {
        async run() {
          const result = await client.query<{ oid: number }>("SELECT lo_from_bytea(0, $1) AS oid", [value]);
          return { oids: [result.rows[0]!.oid] };
        },
        after: writeAfter(ds),
        async close() {
          await client.end();
          await ds.destroy();
        },
      };
    },
  },
  {
    id: "client-floor-read",
    label: "the client's floor: one binary COPY statement, no transaction",
    kind: "read",
    maxSize: MIB,
    async open(ctx) {
      const client = await pgClient(ctx.url);
      const { CopyOut } = await import("../src/protocol/copy-out");
      const { ByteaCopyDecoder } = await import("../src/protocol/copy-decoder");
      const piece = 256 * 1024;
      const sql =
        `COPY (SELECT lo_get(${ctx.fixture!.oid}::oid, s, LEAST(${piece}::int8, ${ctx.size}::int8 - s)::int4)` +
        ` FROM generate_series(0::int8, ${ctx.size - 1}::int8, ${piece}::int8) AS s) TO STDOUT (FORMAT binary)`;
      return {
        async run(verify) {
          const digest = verify ? createHash("sha256") : undefined;
          const decoder = new ByteaCopyDecoder((bytes) => digest?.update(bytes));
          const copy = new CopyOut(sql, (bytes) => decoder.write(bytes));
          void client.query(copy as unknown as Parameters<Client["query"]>[0]);
          await copy.done;
          if (!decoder.done) throw new Error("COPY output ended early");
          return digest === undefined ? {} : { hash: digest.digest("hex") };
        },
        after: async () => undefined,
        close: () => client.end(),
      };
    },
  },
];

/** Every method, in the order the table lists them. */
export const METHODS: Method[] = [
  {
    id: "lo-handle-write",
    label: "this library: LargeObject handle, createWriteStream",
    kind: "write",
    async open(ctx) {
      const ds = await dataSource(ctx.url).initialize();
      return {
        async run() {
          const runner = ds.createQueryRunner();
          await runner.startTransaction();
          try {
            const oid = await LargeObject.create(runner);
            const handle = await LargeObject.open(runner, oid, "w");
            await pipeline(contentStream(ctx.size), handle.createWriteStream());
            await runner.commitTransaction();
            return { oids: [oid] };
          } catch (err) {
            await runner.rollbackTransaction();
            throw err;
          } finally {
            await runner.release();
          }
        },
        after: writeAfter(ds),
        close: () => ds.destroy(),
      };
    },
  },
  {
    id: "lo-repo-write",
    label: "this library: LargeObjectRepository.createWriteStream",
    kind: "write",
    needs: "orm",
    async open(ctx) {
      const ds = await ormDataSource(ctx.url);
      const { files, objects } = await fileRepository(ds);
      return {
        async run() {
          const row = await files.save(files.create({ file: null }));
          await pipeline(contentStream(ctx.size), await objects.createWriteStream(row, "file"));
          return { oids: [row.file as number], rowId: row.id };
        },
        async after(outcome, verify) {
          const hash = await writeAfter(ds)(outcome, verify);
          await files.delete({ id: outcome.rowId! });
          return hash;
        },
        close: () => ds.destroy(),
      };
    },
  },
  {
    id: "lo-save-write",
    label: "this library: save() of an entity with a stream assigned",
    kind: "write",
    needs: "orm",
    async open(ctx) {
      const ds = await ormDataSource(ctx.url);
      const { files } = await fileRepository(ds);
      return {
        async run() {
          const row = await files.save(files.create({ file: contentStream(ctx.size) }));
          return { oids: [row.file as number], rowId: row.id };
        },
        async after(outcome, verify) {
          const hash = await writeAfter(ds)(outcome, verify);
          await files.delete({ id: outcome.rowId! });
          return hash;
        },
        close: () => ds.destroy(),
      };
    },
  },
  { id: "pgl-default-write", label: "pg-large-object, defaults (16 KiB)", kind: "write", open: pgLargeObjectWrite(undefined) },
  { id: "pgl-1m-write", label: "pg-large-object, 1 MiB buffers", kind: "write", open: pgLargeObjectWrite(MIB) },
  {
    id: "bytea-write",
    label: "whole-value bytea INSERT",
    kind: "write",
    async open(ctx) {
      const client = await pgClient(ctx.url);
      await client.query("CREATE TABLE IF NOT EXISTS bench_bytea (id serial PRIMARY KEY, data bytea)");
      const value = contentBuffer(ctx.size);
      return {
        async run() {
          const result = await client.query<{ id: number }>("INSERT INTO bench_bytea (data) VALUES ($1) RETURNING id", [value]);
          return { rowId: result.rows[0]!.id };
        },
        async after(outcome, verify) {
          let hash: string | undefined;
          if (verify) {
            const rows = await client.query<{ digests: string }>(
              `SELECT string_agg(md5(substring(data FROM s::int + 1 FOR $2)), '' ORDER BY s) AS digests
                 FROM bench_bytea, generate_series(0, greatest(length(data) - 1, 0), $2) AS s WHERE id = $1`,
              [outcome.rowId, DIGEST_PIECE],
            );
            hash = rows.rows[0]!.digests;
          }
          await client.query("DELETE FROM bench_bytea WHERE id = $1", [outcome.rowId]);
          return hash;
        },
        close: () => client.end(),
      };
    },
  },
  {
    id: "server-import",
    label: "server-side lo_import() (the server's ceiling, lz4 pages)",
    kind: "write",
    needs: "server-files",
    async open(ctx) {
      const client = await pgClient(ctx.url);
      // The ceiling compresses pages as this library's writes do: with lz4, where the server has it.
      await client.query(
        "SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)",
      );
      const ds = await dataSource(ctx.url).initialize();
      return {
        async run() {
          const result = await client.query<{ oid: number }>("SELECT lo_import($1) AS oid", [ctx.importFile]);
          return { oids: [result.rows[0]!.oid] };
        },
        after: writeAfter(ds),
        async close() {
          await client.end();
          await ds.destroy();
        },
      };
    },
  },
  {
    id: "lo-handle-read",
    label: "this library: LargeObject handle, createReadStream",
    kind: "read",
    async open(ctx) {
      const ds = await dataSource(ctx.url).initialize();
      return {
        async run(verify) {
          const handle = await LargeObject.open(ds, ctx.fixture!.oid, "r");
          const hash = await drain(handle.createReadStream(), verify);
          return hash === undefined ? {} : { hash };
        },
        after: async () => undefined,
        close: () => ds.destroy(),
      };
    },
  },
  {
    id: "lo-repo-read",
    label: "this library: LargeObjectRepository.createReadStream",
    kind: "read",
    needs: "orm",
    async open(ctx) {
      const ds = await ormDataSource(ctx.url);
      const { files, objects } = await fileRepository(ds);
      const row = await files.findOneByOrFail({ id: ctx.fixture!.fileId! });
      return {
        async run(verify) {
          const hash = await drain(await objects.createReadStream(row, "file"), verify);
          return hash === undefined ? {} : { hash };
        },
        after: async () => undefined,
        close: () => ds.destroy(),
      };
    },
  },
  { id: "pgl-default-read", label: "pg-large-object, defaults (16 KiB)", kind: "read", open: pgLargeObjectRead(undefined) },
  { id: "pgl-1m-read", label: "pg-large-object, 1 MiB buffers", kind: "read", open: pgLargeObjectRead(MIB) },
  {
    id: "bytea-read",
    label: "whole-value bytea SELECT",
    kind: "read",
    async open(ctx) {
      if (ctx.fixture?.byteaId === undefined) throw new Error(`no bytea row to read: ${ctx.fixture?.byteaError ?? "not created"}`);
      const client = await pgClient(ctx.url);
      return {
        async run(verify) {
          const result = await client.query<{ data: Buffer }>("SELECT data FROM bench_bytea WHERE id = $1", [ctx.fixture!.byteaId]);
          const data = result.rows[0]!.data;
          return verify ? { hash: createHash("sha256").update(data).digest("hex") } : {};
        },
        after: async () => undefined,
        close: () => client.end(),
      };
    },
  },
  {
    id: "server-export",
    label: "server-side lo_export() (the server's ceiling)",
    kind: "read",
    needs: "server-files",
    async open(ctx) {
      const client = await pgClient(ctx.url);
      const target = path.join(ctx.exportDir, `export-${process.pid}.bin`);
      return {
        async run() {
          await client.query("SELECT lo_export($1, $2)", [ctx.fixture!.oid, target]);
          return {};
        },
        async after(_outcome, verify) {
          // The file is the server's; hashing it is verification, not part of the timing.
          const hash = verify ? hashFile(target) : undefined;
          rmSync(target, { force: true });
          return hash;
        },
        close: () => client.end(),
      };
    },
  },
  { id: "lo-save-batch", label: "this library: save([...]) of 1 KiB objects", kind: "batch", needs: "orm", open: saveBatch(true) },
  {
    id: "lo-create-batch",
    label: "this library: LargeObject.create of 1 KiB objects, one transaction",
    kind: "batch",
    async open(ctx) {
      const ds = await dataSource(ctx.url).initialize();
      const payload = contentBuffer(1024);
      return {
        async run() {
          const oids: number[] = [];
          await ds.transaction(async (manager) => {
            for (let i = 0; i < ctx.count; i++) oids.push(await LargeObject.create(manager.queryRunner!, { data: payload }));
          });
          return { oids };
        },
        async after(outcome) {
          await unlinkAll(ds, outcome.oids ?? []);
          return undefined;
        },
        close: () => ds.destroy(),
      };
    },
  },
  {
    id: "typeorm-save-batch",
    label: "TypeORM alone: save([...]) of as many rows, column null (the bound)",
    kind: "batch",
    needs: "orm",
    open: saveBatch(false),
  },
  {
    id: "server-create-batch",
    label: "server: lo_from_bytea of as many 1 KiB objects in one statement (the ceiling)",
    kind: "batch",
    async open(ctx) {
      const client = await pgClient(ctx.url);
      // One binary parameter holding every object's bytes, cut by the server.
      const all = contentBuffer(1024 * ctx.count);
      return {
        async run() {
          const result = await client.query<{ oid: number }>(
            "SELECT lo_from_bytea(0, substring($1::bytea FROM i * 1024 + 1 FOR 1024)) AS oid FROM generate_series(0, $2::int - 1) AS i",
            [all, ctx.count],
          );
          return { oids: result.rows.map((r) => r.oid) };
        },
        async after(outcome) {
          await client.query("SELECT lo_unlink(o) FROM unnest($1::oid[]) AS o", [outcome.oids ?? []]);
          return undefined;
        },
        close: () => client.end(),
      };
    },
  },
  ...SMALL_OBJECT_METHODS,
  ...CLIENT_FLOOR_METHODS,
];

/** Creates the objects the read methods read: one object, one bench_files row pointing at it, one bytea row. */
export async function makeFixture(ctx: MethodContext, withOrm: boolean): Promise<Fixture> {
  const ds = await dataSource(ctx.url).initialize();
  try {
    const oid = await LargeObject.create(ds, { data: contentStream(ctx.size) });
    const fixture: Fixture = { oid };
    if (withOrm) {
      const rows = await ds.query<{ id: number }[]>("INSERT INTO bench_files (file) VALUES ($1) RETURNING id", [oid]);
      fixture.fileId = rows[0]!.id;
    }
    await ds.query("CREATE TABLE IF NOT EXISTS bench_bytea (id serial PRIMARY KEY, data bytea)");
    try {
      // Server-side, so the fixture costs no client memory; lo_get of a whole object is itself limited to 1 GB.
      const rows = await ds.query<{ id: number }[]>("INSERT INTO bench_bytea (data) SELECT lo_get($1) RETURNING id", [oid]);
      fixture.byteaId = rows[0]!.id;
    } catch (err) {
      fixture.byteaError = (err as Error).message;
    }
    return fixture;
  } finally {
    await ds.destroy();
  }
}

/** Creates the benchmark's tables through the ORM (synchronize), so the triggers and records table exist. */
export async function prepareSchema(url: string): Promise<void> {
  const { registerLargeObjects } = await import("../src/registration");
  const { BenchFile } = await import("./entity");
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url, entities: [BenchFile], synchronize: true, logging: false }));
  await ds.initialize();
  await ds.destroy();
}
