/**
 * npm run bench [-- --sizes 1M,64M,512M] [--quick] [--reps N] [--only id,id] [--profile]
 *
 * Measures every method side by side against one PostgreSQL (DATABASE_URL, or an embedded server),
 * each method and size in a child process of its own, and writes bench/results/latest.{md,svg}.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, createWriteStream, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { Client } from "pg";
import { renderChart } from "./chart";
import { contentHash, contentStream, formatSize, parseSize, pieceDigests } from "./data";
import { METHODS, prepareSchema, type Fixture, type Method, type MethodContext } from "./methods";
import { median, pairedRatio, rates, type Row } from "./stats";
import { benchSweep, type SweepFigures } from "./sweep";
import type { WorkerReport } from "./worker";

interface Options {
  sizes: number[];
  quick: boolean;
  reps?: number;
  only?: string[];
  profile: boolean;
  count: number;
}

function parseArgs(argv: string[]): Options {
  const options: Options = { sizes: [], quick: false, profile: false, count: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg.startsWith("--sizes")) options.sizes = value().split(",").map(parseSize);
    else if (arg === "--quick") options.quick = true;
    else if (arg.startsWith("--reps")) options.reps = Number(value());
    else if (arg.startsWith("--only")) options.only = value().split(",");
    else if (arg === "--profile") options.profile = true;
    else if (arg === "--help" || arg === "-h") {
      console.log("npm run bench -- [--sizes 1M,64M,512M] [--quick] [--reps N] [--only method,...] [--profile]");
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (options.sizes.length === 0) options.sizes = options.quick ? [parseSize("1M"), parseSize("16M")] : ["1M", "64M", "512M"].map(parseSize);
  if (options.quick) options.count = 200;
  return options;
}

/** Timed runs per size: many at 1 MiB, a few for big objects. */
function repsFor(size: number, options: Options): number {
  if (options.reps !== undefined) return options.reps;
  if (size <= SMALL_OBJECT) return options.quick ? 5 : 10;
  if (size >= 2 ** 30) return 2;
  if (options.quick) return 2;
  // Ratios of single 64 MiB runs spread widely (0.52x-2.70x of lo_export in one run): five rounds
  // cost about 25 s more than three. From CHECKED_WHILE_TIMED on, a run takes seconds.
  return size < CHECKED_WHILE_TIMED ? 5 : 3;
}

/** Objects of this size or less are timed in a warm process: several back to back per timed run. */
const SMALL_OBJECT = 4 * 2 ** 20;
const OBJECTS_PER_SMALL_RUN = 8;

/**
 * Untimed rounds of the small-object batches before the timed ones. A fresh process saved its first
 * batches of 1,000 rows two to three times slower than later ones (V8 had not yet compiled the save
 * path): 7-11k objects/s in rounds 1-3 and 15-22k/s from round 4 on here, TypeORM alone 12-28k/s and
 * then 35-60k/s.
 */
const BATCH_WARMUP_RUNS = 3;

/** Writes of this size or more are checked in their first timed run instead of an untimed one. */
const CHECKED_WHILE_TIMED = 256 * 2 ** 20;

function objectsPerRun(size: number): number {
  return size <= SMALL_OBJECT ? OBJECTS_PER_SMALL_RUN : 1;
}

const ROOT = path.resolve(__dirname, "..");
const RESULTS = path.join(__dirname, "results");
const CHILD_TIMEOUT_MS = 10 * 60 * 1000;
/**
 * Children run compiled JavaScript on plain node: a TypeScript loader in the child would add about
 * 30 MiB of its own to every peak RSS. Inside node_modules so that the build resolves packages.
 */
const BUILD = path.join(ROOT, "node_modules", ".cache", "typeorm-large-object-bench");

function compileWorker(): void {
  rmSync(BUILD, { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(__dirname, "tsconfig.json"), "--outDir", BUILD], {
    cwd: ROOT,
    stdio: "inherit",
  });
}

/** A child that does its one job and exits (the baseline, the fixture). */
function runChild(args: string[]): Promise<WorkerReport> {
  const nodeArgs: string[] = [];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, path.join(BUILD, "bench", "worker.js"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("@@bench "));
      if (line !== undefined) resolve(JSON.parse(line.slice(8)) as WorkerReport);
      else {
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        resolve({ method: args[0]!, size: 0, seconds: [], verified: "not checked", maxRss: 0, error: `${why}: ${err.trim().split("\n").slice(-3).join(" ")}` });
      }
    });
  });
}

/** A method's child process, asked for one run at a time. */
class MethodChild {
  private readonly child: ChildProcess;
  private out = "";
  private err = "";
  private readonly exited: Promise<void>;
  private pending: { resolve(v: RunResult): void } | undefined;
  readonly ready: Promise<string | undefined>;

  constructor(args: string[], profile: boolean) {
    const nodeArgs: string[] = [];
    if (profile) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${path.join(RESULTS, "profiles")}`);
    this.child = spawn(process.execPath, [...nodeArgs, path.join(BUILD, "bench", "worker.js"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    this.child.stdout!.on("data", (d: Buffer) => (this.out += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) => this.child.on("close", () => resolve()));
    this.ready = new Promise((resolve) => {
      this.child.on("message", (message: { ready?: true; result?: { seconds: number; verified: boolean | "not checked" }; error?: string }) => {
        if (message.ready) resolve(undefined);
        else this.pending?.resolve(message.error !== undefined ? { error: message.error } : message.result!);
      });
      void this.exited.then(() => {
        const failure = this.report()?.error ?? `exited: ${this.err.trim().split("\n").slice(-3).join(" ")}`;
        resolve(failure);
        this.pending?.resolve({ error: failure });
      });
    });
  }

  /** One run of `objects` objects; a run that takes longer than the child limit kills the child. */
  run(verify: boolean, objects: number): Promise<RunResult> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
      this.pending = {
        resolve: (v) => {
          clearTimeout(timer);
          this.pending = undefined;
          resolve(v);
        },
      };
      this.child.send({ run: { verify, objects } });
    });
  }

  /** Closes the method and returns the child's own report (its peak RSS). */
  async close(): Promise<WorkerReport | undefined> {
    if (this.child.connected) this.child.send({ close: true });
    await this.exited;
    return this.report();
  }

  private report(): WorkerReport | undefined {
    const line = this.out.split("\n").find((l) => l.startsWith("@@bench "));
    return line === undefined ? undefined : (JSON.parse(line.slice(8)) as WorkerReport);
  }
}

type RunResult = { seconds: number; verified: boolean | "not checked" } | { error: string };

async function withClient<T>(url: string, task: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await task(client);
  } finally {
    await client.end();
  }
}

/** A database of its own for the run, dropped at the end; the given one when we may not create one. */
async function benchDatabase(url: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `typeorm_large_object_bench_${process.pid}`;
  try {
    await withClient(url, (c) => c.query(`CREATE DATABASE "${name}"`));
  } catch (err) {
    console.log(`(using the database of DATABASE_URL as is: CREATE DATABASE failed: ${(err as Error).message})`);
    return { url, drop: async () => undefined };
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: () => withClient(url, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

async function serverInfo(url: string): Promise<{ version: string; local: boolean; fileAccess: string | undefined }> {
  return withClient(url, async (c) => {
    const version = (await c.query<{ server_version: string }>("SHOW server_version")).rows[0]!.server_version;
    const host = new URL(url).hostname;
    const local = ["127.0.0.1", "localhost", "::1", "[::1]", ""].includes(host);
    const rights = await c.query<{ ok: boolean }>(
      "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') AND pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') AS ok FROM pg_roles WHERE rolname = current_user",
    );
    let fileAccess: string | undefined;
    if (!local) fileAccess = `the server is not on this machine (${host}), so it cannot read the file this run writes`;
    else if (!rights.rows[0]?.ok) fileAccess = "the role is neither superuser nor in pg_read_server_files/pg_write_server_files";
    return { version, local, fileAccess };
  });
}

const TMPFS_MAGIC = 0x01021994;

/**
 * Where lo_import() reads and lo_export() writes their files: a tmpfs (/dev/shm) when it has room
 * for the content and one export, so that the server's ceiling is its own work and not the disk's
 * (on disk, an lo_export of 512 MiB waits for writeback, and of 64 MiB varied threefold from run to
 * run); the system's temporary directory otherwise.
 */
function serverFilesPlace(largest: number): { dir: string; note: string } {
  const shm = "/dev/shm";
  try {
    const fs = statfsSync(shm);
    const free = fs.bavail * fs.bsize;
    if (fs.type === TMPFS_MAGIC && free >= 2 * largest + 256 * 2 ** 20) return { dir: shm, note: `a file in ${shm} (tmpfs)` };
  } catch {
    // no /dev/shm here: fall through
  }
  return { dir: os.tmpdir(), note: `a file in ${os.tmpdir()} (not a tmpfs with room for it, so lo_export may wait for the disk)` };
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const started = Date.now();
  let phaseStarted = started;
  /** Milliseconds spent in CHECKPOINT since the previous phase ended. */
  let settling = 0;
  /** Seconds on the clock of timed runs, and in runs altogether (checks and clean-up included). */
  let timed = 0;
  let inRuns = 0;
  /** Seconds since the previous phase ended, and where they went, for the progress lines. */
  const elapsed = (): string => {
    const now = Date.now();
    const seconds = (now - phaseStarted) / 1000;
    phaseStarted = now;
    const parts = [
      [timed, "timed"],
      [inRuns - timed, "checking and clearing up"],
      [settling / 1000, "in CHECKPOINT"],
    ] as const;
    settling = 0;
    timed = 0;
    inRuns = 0;
    const shown = parts.filter(([s]) => s >= 1).map(([s, what]) => `${s.toFixed(0)} s ${what}`);
    return `${seconds.toFixed(0)} s${shown.length > 0 ? `: ${shown.join(", ")}` : ""}`;
  };
  mkdirSync(RESULTS, { recursive: true });
  compileWorker();

  let embedded: { stop(): Promise<void> } | undefined;
  let baseUrl = process.env.DATABASE_URL;
  let scratch: string | undefined;
  if (baseUrl === undefined || baseUrl === "") {
    const { startEmbeddedPostgres } = await import("../scripts/embedded-postgres");
    scratch = mkdtempSync(path.join(os.tmpdir(), "lo-bench-pg-"));
    const server = await startEmbeddedPostgres({ dataDir: path.join(scratch, "data"), persistent: false });
    embedded = server;
    baseUrl = server.url;
    console.log(`DATABASE_URL is not set: started an embedded PostgreSQL on port ${server.port}`);
  }
  const database = await benchDatabase(baseUrl);
  const url = database.url;
  const info = await serverInfo(url);

  // lo_import()/lo_export() run as the server's OS user (postgres): the file must be readable by it
  // (a 755 directory, a 644 file) and the export directory writable by it.
  const serverFiles = serverFilesPlace(Math.max(...options.sizes));
  const files = mkdtempSync(path.join(serverFiles.dir, "lo-bench-files-"));
  chmodSync(files, 0o755);
  const exportDir = path.join(files, "export");
  mkdirSync(exportDir);
  chmodSync(exportDir, 0o777);

  let ormReason: string | undefined;
  try {
    await prepareSchema(url);
  } catch (err) {
    ormReason = `the ORM layer is not usable: ${(err as Error).message}`;
  }

  const methods = METHODS.filter((m) => options.only === undefined || options.only.includes(m.id));
  const skipReason = (m: Method): string | undefined =>
    m.needs === "orm" ? ormReason : m.needs === "server-files" ? info.fileAccess : undefined;

  const rows: Row[] = [];
  const record = (m: Method, size: number, report: WorkerReport, count: number, perRun?: (number | undefined)[]): Row => {
    const r = rates(report.seconds, size, m.kind, count);
    const row: Row = {
      ...(perRun !== undefined ? { perRun } : {}),
      method: m.id,
      label: m.label,
      kind: m.kind,
      size,
      runs: r.length,
      maxRss: report.maxRss,
      verified: report.verified,
      ...(r.length > 0 ? { median: median(r), min: Math.min(...r), max: Math.max(...r) } : {}),
      ...(report.error !== undefined ? { error: report.error } : {}),
    };
    rows.push(row);
    const shown = row.error ?? `${row.median?.toFixed(1)} ${m.kind === "batch" ? "objects/s" : "MB/s"}, peak RSS ${(row.maxRss / 2 ** 20).toFixed(0)} MiB`;
    console.log(`  ${m.id.padEnd(18)} ${formatSize(size).padStart(8)}  ${shown}`);
    return row;
  };

  // A CHECKPOINT before each run writes out what the previous run left dirty, so that no method is
  // timed while the server flushes another method's pages (reads after big writes suffered most).
  const admin = new Client({ connectionString: url });
  await admin.connect();
  let checkpoints: string | undefined = "a CHECKPOINT before every run";
  const settle = async (): Promise<void> => {
    if (checkpoints === undefined) return;
    const began = Date.now();
    await admin.query("CHECKPOINT").finally(() => (settling += Date.now() - began)).catch((err: Error) => {
      checkpoints = undefined;
      console.log(`  (no CHECKPOINT between runs: ${err.message})`);
    });
  };

  const context = (size: number, extra: Partial<MethodContext>): MethodContext => ({
    url,
    size,
    expectedHash: "",
    expectedDigests: "",
    importFile: path.join(files, "content.bin"),
    exportDir,
    count: options.count,
    ...extra,
  });

  const baseline: Method = { id: "baseline", label: "bare pg connection (RSS baseline)", kind: "baseline", open: () => Promise.reject(new Error("run in the worker")) };
  const baseReport = await runChild([baseline.id, JSON.stringify(context(0, {}))]);
  const baselineRow = record(baseline, 0, baseReport, 0);
  const ormBaseline = (await runChild(["baseline-orm", JSON.stringify(context(0, {}))])).maxRss;

  for (const size of options.sizes) {
    const perRun = objectsPerRun(size);
    console.log(
      `\n${formatSize(size)}: ${repsFor(size, options)} timed runs per method${perRun > 1 ? ` of ${perRun} objects each` : ""}, and one run that checks the bytes`,
    );
    const expectedHash = await contentHash(size);
    const expectedDigests = await pieceDigests(size);
    const importFile = path.join(files, "content.bin");
    await pipeline(contentStream(size, 1024 * 1024), createWriteStream(importFile));
    chmodSync(importFile, 0o644);
    const fixtureReport = await runChild(["fixture", JSON.stringify(context(size, { expectedHash, expectedDigests })), "0", ormReason ? "plain" : "orm"]);
    if (fixtureReport.error !== undefined) throw new Error(`could not create the read fixture: ${fixtureReport.error}`);
    const fixture = fixtureReport.fixture as Fixture;
    const reps = repsFor(size, options);
    // Whole-value bytea holds the value in memory three times over (1.6 GB of RSS at 512 MiB) and
    // takes the longest of all: from 512 MiB on, one timed run shows that it does not scale.
    const runsOf = (m: Method): number => (m.id.startsWith("bytea-") && size >= 512 * 2 ** 20 ? Math.min(reps, 1) : reps);
    const running: { m: Method; child: MethodChild; seconds: (number | undefined)[]; verified: boolean | "not checked"; error?: string }[] = [];
    for (const m of methods) {
      if (m.kind !== "write" && m.kind !== "read") continue;
      const skipped = skipReason(m);
      if (skipped !== undefined) {
        rows.push({ method: m.id, label: m.label, kind: m.kind, size, runs: 0, maxRss: 0, verified: "not checked", skipped });
        console.log(`  ${m.id.padEnd(18)} ${formatSize(size).padStart(8)}  skipped: ${skipped}`);
        continue;
      }
      const ctx = context(size, { expectedHash, expectedDigests, fixture });
      const child = new MethodChild([m.id, JSON.stringify(ctx)], options.profile && m.id.startsWith("lo-"));
      const failed = await child.ready;
      running.push({ m, child, seconds: [], verified: "not checked", ...(failed !== undefined ? { error: failed } : {}) });
    }
    // A write's bytes are checked by the server after the clock stops, so from 256 MiB on its first
    // timed run is also its check: a fresh process's first touch of its pages (350 ms for 64 MiB
    // read here) is then a few percent of a run.
    const checkedWhileTimed = (m: Method): boolean => m.kind === "write" && size >= CHECKED_WHILE_TIMED;
    // Reads first, on a server that no write has left vacuuming; then writes. Within each phase, run
    // 0 checks the bytes (untimed; skipped by the writes that check in run 1), then every method
    // runs once per round, in a rotating order.
    for (const phase of [running.filter((e) => e.m.kind === "read"), running.filter((e) => e.m.kind === "write")]) {
      for (let rep = 0; rep <= reps; rep++) {
        for (let k = 0; k < phase.length; k++) {
          const entry = phase[(k + rep) % phase.length]!;
          if (rep > runsOf(entry.m) || (rep === 0 && checkedWhileTimed(entry.m))) continue;
          if (entry.error !== undefined) {
            if (rep > 0) entry.seconds.push(undefined);
            continue;
          }
          await settle();
          const verify = rep === 0 || (rep === 1 && checkedWhileTimed(entry.m));
          const objects = rep === 0 ? 1 : perRun;
          const began = Date.now();
          const result = await entry.child.run(verify, objects);
          inRuns += (Date.now() - began) / 1000;
          if ("error" in result) {
            entry.error = result.error;
            if (rep > 0) entry.seconds.push(undefined);
            continue;
          }
          if (verify) entry.verified = result.verified;
          if (rep > 0) {
            entry.seconds.push(result.seconds);
            timed += result.seconds * objects;
          }
        }
      }
    }
    for (const entry of running) {
      const report = await entry.child.close();
      const seconds = entry.seconds.filter((x): x is number => x !== undefined);
      const merged: WorkerReport = {
        method: entry.m.id,
        size,
        seconds: entry.error === undefined ? seconds : [],
        verified: entry.verified,
        maxRss: report?.maxRss ?? 0,
        ...(entry.error !== undefined ? { error: entry.error } : {}),
      };
      record(entry.m, size, merged, 0, entry.seconds.map((x) => (x === undefined ? undefined : size / 1e6 / x)));
    }
    await withClient(url, (c) => c.query("SELECT lo_unlink($1)", [fixture.oid]).then(() => c.query("TRUNCATE bench_bytea")));
    rmSync(importFile, { force: true });
    console.log(`  (${formatSize(size)}: ${elapsed()})`);
  }

  console.log(`\nmany small objects: ${options.count} x 1 KiB`);
  // Like the streams: every method in a child of its own, runs interleaved round by round.
  const batches: { m: Method; child: MethodChild; seconds: number[]; error?: string }[] = [];
  for (const m of methods.filter((x) => x.kind === "batch")) {
    const skipped = skipReason(m);
    if (skipped !== undefined) {
      rows.push({ method: m.id, label: m.label, kind: m.kind, size: 1024, runs: 0, maxRss: 0, verified: "not checked", skipped });
      console.log(`  ${m.id.padEnd(18)} skipped: ${skipped}`);
      continue;
    }
    const child = new MethodChild([m.id, JSON.stringify(context(1024, {}))], false);
    const failed = await child.ready;
    batches.push({ m, child, seconds: [], ...(failed !== undefined ? { error: failed } : {}) });
  }
  for (let rep = 0; rep < BATCH_WARMUP_RUNS + (options.quick ? 3 : 5); rep++) {
    for (let k = 0; k < batches.length; k++) {
      const entry = batches[(k + rep) % batches.length]!;
      if (entry.error !== undefined) continue;
      const result = await entry.child.run(false, 1);
      if ("error" in result) entry.error = result.error;
      else if (rep >= BATCH_WARMUP_RUNS) entry.seconds.push(result.seconds);
    }
  }
  for (const { m, child, seconds, error } of batches) {
    const report = await child.close();
    record(m, 1024, { method: m.id, size: 1024, seconds: error === undefined ? seconds : [], verified: "not checked", maxRss: report?.maxRss ?? 0, ...(error !== undefined ? { error } : {}) }, options.count);
  }
  console.log(`  (many small objects: ${elapsed()})`);

  const sweepCount = options.quick ? 10_000 : 100_000;
  console.log(`\norphan sweep: ${sweepCount} recorded objects, half referenced`);
  const sweep = await benchSweep(url, sweepCount).catch((err: unknown) => (err as Error).message);
  console.log(
    typeof sweep === "string"
      ? `  failed: ${sweep}`
      : `  sweepOrphans ${sweep.sweepPerSecond.toFixed(0)}/s, bare lo_unlink ${sweep.barePerSecond.toFixed(0)}/s, ratio ${sweep.ratio.toFixed(2)}x`,
  );
  console.log(`  (orphan sweep: ${elapsed()})`);

  await admin.end();
  await database.drop();
  await embedded?.stop();
  rmSync(files, { recursive: true, force: true });
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });

  const seconds = (Date.now() - started) / 1000;
  const markdown = renderMarkdown(rows, options, {
    ...info,
    baseline: baselineRow.maxRss,
    ormBaseline,
    seconds,
    embedded: embedded !== undefined,
    settling: checkpoints ?? "no CHECKPOINT between runs (the role may not)",
    serverFiles: serverFiles.note,
    sweep,
  });
  writeFileSync(path.join(RESULTS, "latest.md"), markdown);
  writeFileSync(path.join(RESULTS, "latest.svg"), renderChart(rows, options.sizes, baselineRow.maxRss));
  console.log(`\n${markdown}`);
  console.log(`written: bench/results/latest.md, bench/results/latest.svg (${seconds.toFixed(0)} s)`);
}

const mb = (v: number | undefined): string => (v === undefined ? "" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
const mib = (bytes: number): string => (bytes > 0 ? (bytes / 2 ** 20).toFixed(0) : "");

function renderMarkdown(
  rows: Row[],
  options: Options,
  meta: {
    version: string;
    baseline: number;
    ormBaseline: number;
    seconds: number;
    embedded: boolean;
    settling: string;
    serverFiles: string;
    sweep: SweepFigures | string;
  },
): string {
  const find = (method: string, size: number): Row | undefined => rows.find((r) => r.method === method && r.size === size);
  const lines: string[] = [];
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  lines.push("# npm run bench: latest run", "");
  lines.push(
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
      `Node ${process.version}; PostgreSQL ${meta.version}${meta.embedded ? " (embedded)" : ""}; run took ${meta.seconds.toFixed(0)} s.`,
  );
  lines.push(
    `Command: \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}\`. MB/s = 10^6 bytes/s, median of the timed runs (min-max beside it), ` +
      "and one run of each method checks the bytes: an untimed run before them (reads: sha256 in the process; writes: the server's md5 of each 16 MiB piece), " +
      `or, for writes of ${formatSize(CHECKED_WHILE_TIMED)} and more, the first timed run, checked by the server after the clock stops. ` +
      "Writes include creating the object and the commit; reads include opening and the end of the transaction. " +
      `Objects of ${formatSize(SMALL_OBJECT)} or less are timed ${OBJECTS_PER_SMALL_RUN} to a run, back to back in the same process (a warm process), and reported per object. ` +
      "Sources are generated in 64 KiB chunks (pg-large-object at 1 MiB buffers is fed 1 MiB chunks). Peak RSS is the child process's own; " +
      `a bare pg connection peaks at ${mib(meta.baseline)} MiB, a process with TypeORM loaded and a DataSource initialised (where every method of this library starts) at ${mib(meta.ormBaseline)} MiB. ` +
      `The server's lo_import() reads, and its lo_export() writes, ${meta.serverFiles}. Between runs: ${meta.settling}.`,
    "",
  );
  lines.push("| method | op | size | MB/s (median) | min-max | runs | peak RSS MiB | over bare pg | bytes checked |");
  lines.push("|---|---|---|---:|---:|---:|---:|---:|---|");
  for (const r of rows.filter((x) => x.kind === "write" || x.kind === "read")) {
    const status = r.skipped !== undefined ? `skipped: ${r.skipped}` : r.error !== undefined ? `failed: ${r.error.slice(0, 120)}` : "";
    lines.push(
      `| ${r.label} | ${r.kind} | ${formatSize(r.size)} | ${status || mb(r.median)} | ${status ? "" : `${mb(r.min)}-${mb(r.max)}`} | ${r.runs} | ${mib(r.maxRss)} | ${
        r.maxRss > 0 ? mib(r.maxRss - meta.baseline) : ""
      } | ${r.verified === true ? "yes" : r.verified === false ? "NO" : "-"} |`,
    );
  }
  lines.push(
    "",
    `## Many small objects (${options.count} x 1 KiB)`,
    "",
    `Each method's process runs ${BATCH_WARMUP_RUNS} untimed rounds first (a warm process); the rounds go one method after the other.`,
    "",
    "| method | objects/s (median) | min-max | runs | peak RSS MiB |",
    "|---|---:|---:|---:|---:|",
  );
  for (const r of rows.filter((x) => x.kind === "batch")) {
    const status = r.skipped !== undefined ? `skipped: ${r.skipped}` : r.error !== undefined ? `failed: ${r.error.slice(0, 120)}` : "";
    lines.push(`| ${r.label} | ${status || r.median?.toFixed(0)} | ${status ? "" : `${r.min?.toFixed(0)}-${r.max?.toFixed(0)}`} | ${r.runs} | ${mib(r.maxRss)} |`);
  }

  lines.push("", "## Ratios within this run", "");
  lines.push(
    "Each round runs every method once, one after the other; a ratio is taken within each round, and the table gives the median of those ratios (min-max).",
    "",
  );
  lines.push("| size | op | this library | vs server ceiling | vs pg-large-object defaults | vs pg-large-object 1 MiB |", "|---|---|---|---:|---:|---:|");
  const shown = (r: ReturnType<typeof pairedRatio>): string =>
    r === undefined ? "n/a" : `${r.median.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)})`;
  for (const size of options.sizes) {
    for (const op of ["write", "read"] as const) {
      const server = find(op === "write" ? "server-import" : "server-export", size);
      const pgl = find(`pgl-default-${op}`, size);
      const pgl1m = find(`pgl-1m-${op}`, size);
      for (const ours of ["lo-handle", "lo-repo", ...(op === "write" ? ["lo-save"] : [])]) {
        const row = find(`${ours}-${op}`, size);
        if (row?.median === undefined) continue;
        lines.push(
          `| ${formatSize(size)} | ${op} | ${row.label.replace("this library: ", "")} | ${shown(pairedRatio(row, server))} | ${shown(pairedRatio(row, pgl))} | ${shown(pairedRatio(row, pgl1m))} |`,
        );
      }
    }
  }

  lines.push("", "## Targets (objects >= 64 MiB unless stated)", "", "| target | measured | met |", "|---|---|---|");
  const big = options.sizes.filter((s) => s >= 64 * 2 ** 20);
  const target = (name: string, values: (number | undefined)[], limit: number, higher: boolean, unit: string): void => {
    const known = values.filter((v): v is number => v !== undefined);
    if (known.length === 0) {
      lines.push(`| ${name} | not measured | - |`);
      return;
    }
    const met = known.every((v) => (higher ? v >= limit : v <= limit));
    lines.push(`| ${name} | ${known.map((v) => `${v.toFixed(2)}${unit}`).join(", ")} | ${met ? "yes" : "**no**"} |`);
  };
  const per = (f: (size: number) => number | undefined): (number | undefined)[] => big.map(f);
  const div = (a: string, b: string) => (s: number) => pairedRatio(find(a, s), find(b, s))?.median;
  const sizesNote = big.map(formatSize).join(", ");
  target(`write >= 0.9 x lo_import (${sizesNote})`, per(div("lo-handle-write", "server-import")), 0.9, true, "x");
  target(`write >= 1.5 x pg-large-object defaults`, per(div("lo-handle-write", "pgl-default-write")), 1.5, true, "x");
  // Not a target: the most any client could reach over pg-large-object in this run.
  const bound = per(div("server-import", "pgl-default-write")).filter((v): v is number => v !== undefined);
  if (bound.length > 0) lines.push(`| (bound: lo_import itself vs pg-large-object defaults) | ${bound.map((v) => `${v.toFixed(2)}x`).join(", ")} | - |`);
  target(`read >= 0.9 x lo_export`, per(div("lo-handle-read", "server-export")), 0.9, true, "x");
  target(`read >= 5 x pg-large-object defaults`, per(div("lo-handle-read", "pgl-default-read")), 5, true, "x");
  const ourStreams = rows.filter((r) => r.method.startsWith("lo-") && (r.kind === "read" || r.kind === "write") && r.maxRss > 0 && r.error === undefined);
  target("peak RSS <= 100 MiB, every stream of this library, every size", [Math.max(...ourStreams.map((r) => r.maxRss / 2 ** 20))], 100, false, " MiB");
  target("peak RSS <= 45 MiB over a bare pg connection", [Math.max(...ourStreams.map((r) => (r.maxRss - meta.baseline) / 2 ** 20))], 45, false, " MiB");
  if (meta.ormBaseline > 0 && ourStreams.length > 0) {
    const over = Math.max(...ourStreams.map((r) => (r.maxRss - meta.ormBaseline) / 2 ** 20));
    lines.push(`| (peak RSS over a process with TypeORM and a DataSource, ${mib(meta.ormBaseline)} MiB) | ${over.toFixed(2)} MiB | - |`);
  }
  const spread = ["lo-handle-write", "lo-handle-read"].map((m) => {
    const rss = rows.filter((r) => r.method === m && r.maxRss > 0).map((r) => r.maxRss / 2 ** 20);
    return rss.length > 1 ? Math.max(...rss) - Math.min(...rss) : undefined;
  });
  target("flat: handle streams' peak RSS spread across sizes <= 10 MiB (write, read)", spread, 10, false, " MiB");
  const small = options.sizes.find((s) => s === 2 ** 20);
  if (small !== undefined) {
    target("1 MiB objects, warm: write >= 100 MB/s incl. commit", [find("lo-handle-write", small)?.median], 100, true, " MB/s");
    target("1 MiB objects, warm: read >= 170 MB/s", [find("lo-handle-read", small)?.median], 170, true, " MB/s");
    // Not targets: what the server itself reached with the same objects in this run.
    const ceiling = ["server-import", "server-export"].map((m) => find(m, small)?.median);
    if (ceiling.every((v) => v !== undefined)) {
      lines.push(`| (the server's own lo_import, lo_export of 1 MiB objects) | ${ceiling.map((v) => `${v!.toFixed(2)} MB/s`).join(", ")} | - |`);
    }
  }
  target("many small objects via save([...]) >= 20k/s", [find("lo-save-batch", 1024)?.median], 20000, true, "/s");
  // Not targets: what TypeORM alone and the server alone reached for as many objects in this run.
  const bounds = ["typeorm-save-batch", "server-create-batch"].map((m) => find(m, 1024)?.median);
  if (bounds.every((v) => v !== undefined)) {
    lines.push(`| (TypeORM alone saving as many rows with the column null; the server creating as many objects in one statement) | ${bounds.map((v) => `${v!.toFixed(0)}/s`).join(", ")} | - |`);
  }
  const sweep = meta.sweep;
  target("orphan sweep >= 75k objects/s", [typeof sweep === "string" ? undefined : sweep.sweepPerSecond], 75000, true, "/s");
  if (typeof sweep !== "string") lines.push(`| (bare lo_unlink of as many objects, 1,000 per transaction) | ${sweep.barePerSecond.toFixed(0)}/s | - |`);
  lines.push("", "## Orphan sweep", "");
  if (typeof sweep === "string") lines.push(`Failed: ${sweep}`);
  else {
    lines.push(
      `${sweep.objects} recorded objects, ${sweep.orphans} of them unreferenced; \`sweepOrphans(ds, { graceMs: 0 })\` ` +
        `(batches of ${sweep.report.batches > 0 ? Math.ceil(sweep.orphans / sweep.report.batches) : 0} on average) against bare \`lo_unlink\` of as many objects, 1,000 per transaction. ` +
        `${sweep.rounds} rounds; the two alternate which goes first, and the ratio is taken within each round.`,
      "",
      "| method | objects/s (median) | min-max | ratio (median of rounds) |",
      "|---|---:|---:|---:|",
      `| sweepOrphans | ${sweep.sweepPerSecond.toFixed(0)} | ${sweep.sweepRange.map((v) => v.toFixed(0)).join("-")} | ${sweep.ratio.toFixed(2)}x (${sweep.ratioRange.map((v) => v.toFixed(2)).join("-")}) |`,
      `| bare lo_unlink, 1,000 per transaction | ${sweep.barePerSecond.toFixed(0)} | | 1.00x |`,
    );
  }
  lines.push("", "![throughput and peak RSS](latest.svg)", "");
  return lines.join("\n");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
