/**
 * One benchmark method at one size, in a process of its own so that its peak RSS is its own.
 * Run by bench/run.ts, which asks for each run over IPC; prints one JSON line when closed.
 */
import type { MethodContext, Outcome } from "./methods";
import type { SweepFigures } from "./sweep";

/** What a child reports. */
export interface WorkerReport {
  method: string;
  size: number;
  /** Seconds of the runs (the baseline's only; methods report each run over IPC). */
  seconds: number[];
  verified: boolean | "not checked";
  /** Peak RSS of this process, bytes. */
  maxRss: number;
  error?: string;
  fixture?: unknown;
  sweep?: SweepFigures;
}

async function main(): Promise<void> {
  const [id = "", contextJson = "{}"] = process.argv.slice(2);
  const ctx = JSON.parse(contextJson) as MethodContext;
  if (id === "baseline") {
    // Nothing but pg loaded: the figure every other child is compared with.
    const { Client } = await import("pg");
    const client = new Client({ connectionString: ctx.url });
    await client.connect();
    await reportBaseline(id, client, () => client.end());
    return;
  }
  await import("reflect-metadata");
  if (id === "baseline-orm") {
    // What every method of this library starts from: TypeORM loaded and a DataSource initialised.
    const { DataSource } = await import("typeorm");
    const ds = await new DataSource({ type: "postgres", url: ctx.url, poolSize: 2 }).initialize();
    await reportBaseline(id, ds, () => ds.destroy());
    return;
  }
  if (id === "sweep") {
    // The orphan sweep phase, in a process of its own so that its peak RSS is the sweep's.
    const { benchSweep } = await import("./sweep");
    const sweep = await benchSweep(ctx.url, ctx.count);
    report({ method: id, size: 0, seconds: [], verified: "not checked", maxRss: maxRss(), sweep: { ...sweep, maxRss: maxRss() } });
    return;
  }
  const { METHODS, makeFixture } = await import("./methods");
  if (id === "fixture") {
    const fixture = await makeFixture(ctx, process.argv[5] === "orm");
    report({ method: id, size: ctx.size, seconds: [], verified: "not checked", maxRss: maxRss(), fixture });
    return;
  }
  const method = METHODS.find((m) => m.id === id);
  if (method === undefined) throw new Error(`unknown method ${id}`);
  const session = await method.open(ctx);
  // Served one run at a time, so that the runner can interleave the runs of every method: a slow
  // moment of the machine then hits all of them alike, and ratios are taken run by run.
  await new Promise<void>((resolve) => {
    process.on("message", (message: { run?: { verify: boolean; objects: number }; close?: true }) => {
      if (message.close) {
        session.close().then(
          () => resolve(),
          () => resolve(),
        );
        return;
      }
      const verify = message.run?.verify === true;
      const objects = message.run?.objects ?? 1;
      (async () => {
        // Small objects go back to back (a warm process); the clean-up of writes comes after the
        // clock stops, and the time reported is per object.
        const outcomes: Outcome[] = [];
        const started = process.hrtime.bigint();
        for (let i = 0; i < objects; i++) outcomes.push(await session.run(verify));
        const seconds = Number(process.hrtime.bigint() - started) / 1e9 / objects;
        // Every object of a checking run is checked (such runs hold one object today).
        let verified: boolean | "not checked" = "not checked";
        let mismatch: string | undefined;
        for (const outcome of outcomes) {
          const afterHash = await session.after(outcome, verify);
          if (!verify) continue;
          // Reads are hashed here (sha256); writes are digested by the server, piece by piece (md5).
          const expected = outcome.hash !== undefined || method.kind === "read" ? ctx.expectedHash : ctx.expectedDigests;
          const hash = outcome.hash ?? afterHash;
          if (hash === undefined) continue;
          if (hash !== expected) mismatch ??= `bytes differ: got ${hash}, expected ${expected}`;
          verified = true;
        }
        // Thrown once every object has been cleaned up.
        if (mismatch !== undefined) throw new Error(mismatch);
        return { seconds, verified };
      })().then(
        (result) => process.send!({ result }),
        (err: unknown) => process.send!({ error: describe(err) }),
      );
    });
    process.send!({ ready: true });
  });
  report({ method: id, size: ctx.size, seconds: [], verified: "not checked", maxRss: maxRss() });
  process.disconnect();
}

/** One query on an open connection, then the process's peak RSS. */
async function reportBaseline(id: string, connection: { query(sql: string): Promise<unknown> }, close: () => Promise<void>): Promise<void> {
  const started = process.hrtime.bigint();
  await connection.query("SELECT 1");
  const seconds = [Number(process.hrtime.bigint() - started) / 1e9];
  await close();
  report({ method: id, size: 0, seconds, verified: "not checked", maxRss: maxRss() });
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: string }).code;
  return `${err.message}${code ? ` (${code})` : ""}`;
}

function maxRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function report(r: WorkerReport): void {
  process.stdout.write(`\n@@bench ${JSON.stringify(r)}\n`);
}

main().catch((err: unknown) => {
  const [id, contextJson] = process.argv.slice(2);
  const size = (JSON.parse(contextJson ?? "{}") as { size?: number }).size ?? 0;
  report({ method: id ?? "?", size, seconds: [], verified: "not checked", maxRss: maxRss(), error: describe(err) });
  process.exitCode = 1;
  if (process.connected) process.disconnect();
});
