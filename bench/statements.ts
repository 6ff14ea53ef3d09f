/**
 * npx tsx bench/statements.ts [--quick]
 *
 * Counts what each path of the library sends the server per object: round trips (each query the pg
 * client waits for), the server's ReadyForQuery answers (one per Sync or simple query: the
 * server's own count of round trips) and statements (a pipelined run of `lowrite` calls is one
 * round trip and many statements), and times the path in a warm process beside the server's own. Needs DATABASE_URL;
 * works in a database of its own, dropped at the end.
 */
import "reflect-metadata";
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import pg, { Client } from "pg";
import { DataSource } from "typeorm";
import { LargeObject, LargeObjectRepository, registerLargeObjects } from "../src";
import { BenchFile } from "./entity";
import { contentBuffer, contentStream } from "./data";

interface Counts {
  roundTrips: number;
  ready: number;
  statements: number;
  texts: string[];
}

const counts: Counts = { roundTrips: 0, ready: 0, statements: 0, texts: [] };

/** Counts the server's ReadyForQuery messages; pg binds its handler when a client connects, so this runs first. */
function countReady(): void {
  const proto = pg.Client.prototype as unknown as { _handleReadyForQuery(msg: unknown): void };
  const original = proto._handleReadyForQuery;
  proto._handleReadyForQuery = function (this: unknown, msg: unknown) {
    counts.ready += 1;
    original.call(this, msg);
  };
}

/** Wraps pg's Client.query: every query object and text query is one round trip; pipelined runs report their statements. */
function countQueries(): void {
  const original = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: Client, ...args: unknown[]) {
    const first = args[0] as { text?: string; submit?: unknown; constructor: { name: string } } | string;
    counts.roundTrips += 1;
    let text: string;
    if (typeof first === "string") text = first;
    else if (typeof first.submit === "function") text = `${first.constructor.name}: ${first.text ?? ""}`;
    else text = first.text ?? "?";
    if (typeof first === "object" && typeof first.submit === "function" && first.constructor.name === "LowriteRun") {
      // Counted as its pieces go out (see below).
    } else counts.statements += text.split("; ").length;
    counts.texts.push(text.replace(/\s+/g, " ").slice(0, 70));
    return original.apply(this, args);
  } as typeof pg.Client.prototype.query;
}

interface RunPrototype {
  readonly open: boolean;
  add(piece: Buffer): Promise<void>;
  end(last?: unknown): Promise<void>;
}

/** A pipelined run is one round trip: its pieces, and the statement that may end it, are its statements. */
function countPipelinedPieces(module: { LowriteRun: { prototype: RunPrototype } }): void {
  const { add, end } = module.LowriteRun.prototype;
  module.LowriteRun.prototype.add = function (this: RunPrototype, piece: Buffer) {
    counts.statements += 1;
    return add.call(this, piece);
  };
  module.LowriteRun.prototype.end = function (this: RunPrototype, last?: unknown) {
    if (last !== undefined && this.open) counts.statements += 1;
    return end.call(this, last);
  };
}

async function drain(stream: NodeJS.ReadableStream): Promise<void> {
  await pipeline(stream, new Writable({ highWaterMark: 1024 * 1024, write: (_c, _e, cb) => cb(), writev: (_c, cb) => cb() }));
}

interface PathFigure {
  path: string;
  size: string;
  roundTrips: number;
  ready: number;
  statements: number;
  perSecond: number;
  texts: string[];
}

async function measure(name: string, size: string, objects: number, reps: number, task: () => Promise<void>): Promise<PathFigure> {
  await task(); // warm
  counts.roundTrips = 0;
  counts.ready = 0;
  counts.statements = 0;
  counts.texts = [];
  await task();
  const { roundTrips, ready, statements } = counts;
  const texts = [...counts.texts];
  const started = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) await task();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const figure = { path: name, size, roundTrips: roundTrips / objects, ready: ready / objects, statements: statements / objects, perSecond: (reps * objects) / seconds, texts };
  console.log(
    `${name.padEnd(44)} ${size.padStart(6)}  ${figure.roundTrips.toFixed(2).padStart(6)} round trips ${figure.ready.toFixed(2).padStart(6)} ready ${figure.statements.toFixed(2).padStart(6)} statements per object  ${figure.perSecond.toFixed(0).padStart(7)} objects/s`,
  );
  return figure;
}

async function main(): Promise<void> {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error("DATABASE_URL is not set");
  const quick = process.argv.includes("--quick");
  const name = `typeorm_large_object_statements_${process.pid}`;
  const admin = new Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  countQueries();
  countReady();
  countPipelinedPieces(await import("../src/protocol/lowrite-run"));
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url: url.toString(), entities: [BenchFile], synchronize: true, poolSize: 2 }));
  await ds.initialize();
  const files = ds.getRepository(BenchFile);
  const objects = new LargeObjectRepository(ds.manager);
  const server = new Client({ connectionString: url.toString() });
  await server.connect();
  const figures: PathFigure[] = [];
  const reps = quick ? 10 : 40;
  try {
    for (const [label, size] of [
      ["1M", 1024 * 1024],
      ["64K", 64 * 1024],
      ["1K", 1024],
    ] as const) {
      const fixture = await LargeObject.create(ds, { data: contentBuffer(size) });
      const row = await files.save(files.create({ file: fixture }));
      const made: number[] = [];
      figures.push(
        await measure("handle write (create, open, stream, commit)", label, 1, reps, async () => {
          const runner = ds.createQueryRunner();
          await runner.startTransaction();
          const oid = await LargeObject.create(runner);
          const handle = await LargeObject.open(runner, oid, "w");
          await pipeline(contentStream(size), handle.createWriteStream());
          await runner.commitTransaction();
          await runner.release();
          made.push(oid);
        }),
      );
      const target = await files.save(files.create({ file: null }));
      figures.push(
        await measure("repository write stream", label, 1, reps, async () => {
          await pipeline(contentStream(size), await objects.createWriteStream(target, "file"));
        }),
      );
      const saved: number[] = [];
      const bytes = contentBuffer(size);
      figures.push(
        await measure("LargeObject.create from a data source, Buffer", label, 1, reps, async () => {
          made.push(await LargeObject.create(ds, { data: bytes }));
        }),
      );
      figures.push(
        await measure("save() with a Buffer", label, 1, reps, async () => {
          saved.push((await files.save(files.create({ file: bytes }))).id);
        }),
      );
      figures.push(
        await measure("save() with a stream", label, 1, reps, async () => {
          saved.push((await files.save(files.create({ file: contentStream(size) }))).id);
        }),
      );
      figures.push(
        await measure("server lo_from_bytea (one statement)", label, 1, reps, async () => {
          made.push((await server.query<{ oid: number }>("SELECT lo_from_bytea(0, $1) AS oid", [contentBuffer(size)])).rows[0]!.oid);
        }),
      );
      figures.push(
        await measure("handle read stream (data source)", label, 1, reps, async () => {
          const handle = await LargeObject.open(ds, fixture, "r");
          await drain(handle.createReadStream());
        }),
      );
      figures.push(
        await measure("repository read stream", label, 1, reps, async () => {
          await drain(await objects.createReadStream(row, "file"));
        }),
      );
      figures.push(
        await measure("server lo_get (one statement)", label, 1, reps, async () => {
          await server.query("SELECT lo_get($1) AS data", [fixture]);
        }),
      );
      await ds.query("DELETE FROM bench_files WHERE id = ANY($1::int[])", [[...saved, row.id, target.id]]);
      await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])", [[...made, fixture]]);
    }
    // One PATCH of 16 MiB into the tus store: four pieces, each committed with the upload's offset.
    const { Upload } = await import("@tus/server");
    const { LargeObjectTusStore } = await import("../src/tus");
    const store = new LargeObjectTusStore({ source: ds });
    const tusSize = 16 * 1024 * 1024;
    figures.push(
      await measure("tus store write, one PATCH (4 MiB commits)", "16M", 1, quick ? 1 : 3, async () => {
        const upload = await store.create(new Upload({ id: randomUUID(), size: tusSize, offset: 0 }));
        await store.write(contentStream(tusSize), upload.id, 0);
      }),
    );
    await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
    const count = quick ? 200 : 1000;
    const payload = contentBuffer(1024);
    const batchReps = quick ? 3 : 5;
    const removeAll = async (): Promise<void> => {
      await ds.query("DELETE FROM bench_files");
      await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
    };
    figures.push(
      await measure(`save([...]) of ${count} x 1 KiB`, "1K", count, batchReps, async () => {
        await files.save(Array.from({ length: count }, () => files.create({ file: payload })));
      }),
    );
    figures.push(
      await measure(`save([...]) of ${count}, column null`, "1K", count, batchReps, async () => {
        await files.save(Array.from({ length: count }, () => files.create({ file: null })));
      }),
    );
    figures.push(
      await measure(`LargeObject.create x ${count}, one transaction`, "1K", count, batchReps, async () => {
        await ds.transaction(async (m) => {
          for (let i = 0; i < count; i++) await LargeObject.create(m.queryRunner!, { data: payload });
        });
      }),
    );
    figures.push(
      await measure(`LargeObject.create x ${count} concurrently`, "1K", count, batchReps, async () => {
        await ds.transaction(async (m) => {
          await Promise.all(Array.from({ length: count }, () => LargeObject.create(m.queryRunner!, { data: payload })));
        });
      }),
    );
    const all = contentBuffer(1024 * count);
    figures.push(
      await measure(`server lo_from_bytea x ${count}, one statement`, "1K", count, batchReps, async () => {
        await server.query(
          "SELECT lo_from_bytea(0, substring($1::bytea FROM i * 1024 + 1 FOR 1024)) AS oid FROM generate_series(0, $2::int - 1) AS i",
          [all, count],
        );
      }),
    );
    await removeAll();
  } finally {
    await server.end();
    await ds.destroy();
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
  const out = process.argv.find((a) => a.startsWith("--json="));
  if (out !== undefined) writeFileSync(out.slice(7), JSON.stringify(figures, null, 2));
  if (process.argv.includes("--texts")) for (const f of figures) console.log(`\n${f.path} ${f.size}:\n  ${f.texts.slice(0, 30).join("\n  ")}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
