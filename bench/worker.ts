/**
 * One benchmark method at one size, in a process of its own so that its peak RSS is its own.
 * Run by bench/run.ts; prints one JSON line.
 */
import type { MethodContext } from "./methods";

/** What a child reports. */
export interface WorkerReport {
  method: string;
  size: number;
  /** Seconds of each timed run (the verification run is not among them). */
  seconds: number[];
  verified: boolean | "not checked";
  /** Peak RSS of this process, bytes. */
  maxRss: number;
  error?: string;
  fixture?: unknown;
}

async function main(): Promise<void> {
  const [id = "", contextJson = "{}", repsText = "0"] = process.argv.slice(2);
  const ctx = JSON.parse(contextJson) as MethodContext;
  const reps = Number(repsText);
  if (id === "baseline") {
    // Nothing but pg loaded: the figure every other child is compared with.
    const { Client } = await import("pg");
    const client = new Client({ connectionString: ctx.url });
    await client.connect();
    const started = process.hrtime.bigint();
    await client.query("SELECT 1");
    const seconds = [Number(process.hrtime.bigint() - started) / 1e9];
    await client.end();
    report({ method: id, size: 0, seconds, verified: "not checked", maxRss: maxRss() });
    return;
  }
  await import("reflect-metadata");
  const { METHODS, makeFixture } = await import("./methods");
  if (id === "fixture") {
    const fixture = await makeFixture(ctx, process.argv[5] === "orm");
    report({ method: id, size: ctx.size, seconds: [], verified: "not checked", maxRss: maxRss(), fixture });
    return;
  }
  const method = METHODS.find((m) => m.id === id);
  if (method === undefined) throw new Error(`unknown method ${id}`);
  const session = await method.open(ctx);
  const seconds: number[] = [];
  let verified: boolean | "not checked" = "not checked";
  try {
    // Run 0 checks the bytes and warms the process up; runs 1..reps are timed.
    for (let rep = 0; rep <= reps; rep++) {
      const verify = rep === 0 && (method.kind === "write" || method.kind === "read");
      const started = process.hrtime.bigint();
      const outcome = await session.run(verify);
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      const afterHash = await session.after(outcome, verify);
      if (verify) {
        // Reads are hashed here (sha256); writes are digested by the server, piece by piece (md5).
        const expected = outcome.hash !== undefined || method.kind === "read" ? ctx.expectedHash : ctx.expectedDigests;
        const hash = outcome.hash ?? afterHash;
        verified = hash === undefined ? "not checked" : hash === expected;
        if (verified === false) throw new Error(`bytes differ: got ${hash}, expected ${expected}`);
      }
      if (rep > 0) seconds.push(elapsed);
    }
  } finally {
    await session.close();
  }
  report({ method: id, size: ctx.size, seconds, verified, maxRss: maxRss() });
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
  const message = err instanceof Error ? `${err.message}${(err as { code?: string }).code ? ` (${(err as { code?: string }).code})` : ""}` : String(err);
  report({ method: id ?? "?", size, seconds: [], verified: "not checked", maxRss: maxRss(), error: message });
  process.exitCode = 1;
});
