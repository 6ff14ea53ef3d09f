/**
 * npm run bench [-- --sizes 1M,64M,512M] [--quick] [--reps N] [--only id,id] [--profile] [--sweep N]
 *
 * `--only` takes method ids and the phases http, http-upload (its upload rows alone), tus and sweep:
 * given phases alone, only those run. `--reps` also sets the rounds of the HTTP and tus phases.
 *
 * Measures every method side by side against one PostgreSQL (DATABASE_URL, or an embedded server),
 * each method and size in a child process of its own, and writes bench/results/latest.{md,svg}.
 * With --sweep N it runs the orphan sweep alone at N objects and writes bench/results/sweep-N.md.
 */
import { chmodSync, createWriteStream, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { renderChart } from "./chart";
import { benchHttp, benchTus, renderHttpMarkdown, type HttpFigures, type TusFigures } from "./http";
import { CHILD_TIMEOUT_MS, MethodChild, RESULTS, compileWorker, runChild } from "./children";
import { contentHash, contentStream, formatSize, pieceDigests } from "./data";
import { METHODS, type Fixture, type Method, type MethodContext } from "./methods";
import { BATCH_WARMUP_RUNS, CHECKED_WHILE_TIMED, objectsPerRun, parseArgs, phaseWanted, repsFor, type Options } from "./plan";
import { renderMarkdown, renderSweepMarkdown } from "./report";
import { openCheckpoints, startServer, withClient, type BenchServer, type Checkpoints } from "./server";
import { median, rates, type Row } from "./stats";
import type { SweepFigures } from "./sweep";
import type { WorkerReport } from "./worker";

/** Seconds since the previous phase ended, and where they went, for the progress lines. */
class PhaseClock {
  private phaseStarted = Date.now();
  /** Milliseconds spent in CHECKPOINT since the previous phase ended. */
  settling = 0;
  /** Seconds on the clock of timed runs, and in runs altogether (checks and clean-up included). */
  timed = 0;
  inRuns = 0;

  elapsed(): string {
    const now = Date.now();
    const seconds = (now - this.phaseStarted) / 1000;
    this.phaseStarted = now;
    const parts = [
      [this.timed, "timed"],
      [this.inRuns - this.timed, "checking and clearing up"],
      [this.settling / 1000, "in CHECKPOINT"],
    ] as const;
    this.settling = 0;
    this.timed = 0;
    this.inRuns = 0;
    const shown = parts.filter(([s]) => s >= 1).map(([s, what]) => `${s.toFixed(0)} s ${what}`);
    return `${seconds.toFixed(0)} s${shown.length > 0 ? `: ${shown.join(", ")}` : ""}`;
  }
}

/** What every phase of a run shares. */
interface Run {
  options: Options;
  server: BenchServer;
  methods: Method[];
  rows: Row[];
  clock: PhaseClock;
  checkpoints: Checkpoints;
}

function skipReason(run: Run, m: Method): string | undefined {
  return m.needs === "orm" ? run.server.ormReason : m.needs === "server-files" ? run.server.info.fileAccess : undefined;
}

function contextFor(run: Run, size: number, extra: Partial<MethodContext>): MethodContext {
  return {
    url: run.server.url,
    size,
    expectedHash: "",
    expectedDigests: "",
    importFile: path.join(run.server.files, "content.bin"),
    exportDir: run.server.exportDir,
    count: run.options.count,
    ...extra,
  };
}

/** Adds a method's figures to the rows and prints its line. */
function record(run: Run, m: Method, size: number, report: WorkerReport, count: number, perRun?: (number | undefined)[]): Row {
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
  run.rows.push(row);
  const shown = row.error ?? `${row.median?.toFixed(1)} ${m.kind === "batch" ? "objects/s" : "MB/s"}, peak RSS ${(row.maxRss / 2 ** 20).toFixed(0)} MiB`;
  console.log(`  ${m.id.padEnd(18)} ${formatSize(size).padStart(8)}  ${shown}`);
  return row;
}

/** Every stream method at one size: a child each, the read fixture made first, runs interleaved round by round. */
async function measureSize(run: Run, size: number): Promise<void> {
  const { options, server, methods, rows, clock } = run;
  const { url, files } = server;
  const perRun = objectsPerRun(size);
  console.log(
    `\n${formatSize(size)}: ${repsFor(size, options)} timed runs per method${perRun > 1 ? ` of ${perRun} objects each` : ""}, and one run that checks the bytes`,
  );
  const expectedHash = await contentHash(size);
  const expectedDigests = await pieceDigests(size);
  const importFile = path.join(files, "content.bin");
  await pipeline(contentStream(size, 1024 * 1024), createWriteStream(importFile));
  chmodSync(importFile, 0o644);
  const fixtureReport = await runChild(["fixture", JSON.stringify(contextFor(run, size, { expectedHash, expectedDigests })), "0", server.ormReason ? "plain" : "orm"]);
  if (fixtureReport.error !== undefined) throw new Error(`could not create the read fixture: ${fixtureReport.error}`);
  const fixture = fixtureReport.fixture as Fixture;
  const reps = repsFor(size, options);
  // Whole-value bytea holds the value in memory three times over (1.6 GB of RSS at 512 MiB) and
  // takes the longest of all: from 512 MiB on, one timed run shows that it does not scale.
  const runsOf = (m: Method): number => (m.id.startsWith("bytea-") && size >= 512 * 2 ** 20 ? Math.min(reps, 1) : reps);
  const running: { m: Method; child: MethodChild; seconds: (number | undefined)[]; verified: boolean | "not checked"; error?: string }[] = [];
  for (const m of methods) {
    if (m.kind !== "write" && m.kind !== "read") continue;
    if (m.maxSize !== undefined && size > m.maxSize) continue;
    const skipped = skipReason(run, m);
    if (skipped !== undefined) {
      rows.push({ method: m.id, label: m.label, kind: m.kind, size, runs: 0, maxRss: 0, verified: "not checked", skipped });
      console.log(`  ${m.id.padEnd(18)} ${formatSize(size).padStart(8)}  skipped: ${skipped}`);
      continue;
    }
    const ctx = contextFor(run, size, { expectedHash, expectedDigests, fixture });
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
        await run.checkpoints.settle();
        const verify = rep === 0 || (rep === 1 && checkedWhileTimed(entry.m));
        const objects = rep === 0 ? 1 : perRun;
        const began = Date.now();
        const result = await entry.child.run(verify, objects);
        clock.inRuns += (Date.now() - began) / 1000;
        if ("error" in result) {
          entry.error = result.error;
          if (rep > 0) entry.seconds.push(undefined);
          continue;
        }
        if (verify) entry.verified = result.verified;
        if (rep > 0) {
          entry.seconds.push(result.seconds);
          clock.timed += result.seconds * objects;
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
    record(run, entry.m, size, merged, 0, entry.seconds.map((x) => (x === undefined ? undefined : size / 1e6 / x)));
  }
  await withClient(url, (c) => c.query("SELECT lo_unlink($1)", [fixture.oid]).then(() => c.query("TRUNCATE bench_bytea")));
  rmSync(importFile, { force: true });
  console.log(`  (${formatSize(size)}: ${clock.elapsed()})`);
}

/** The many-small-objects methods. */
async function measureBatches(run: Run): Promise<void> {
  const { options, methods, rows, clock } = run;
  console.log(`\nmany small objects: ${options.count} x 1 KiB`);
  // Like the streams: every method in a child of its own, runs interleaved round by round.
  const batches: { m: Method; child: MethodChild; seconds: number[]; error?: string }[] = [];
  for (const m of methods.filter((x) => x.kind === "batch")) {
    const skipped = skipReason(run, m);
    if (skipped !== undefined) {
      rows.push({ method: m.id, label: m.label, kind: m.kind, size: 1024, runs: 0, maxRss: 0, verified: "not checked", skipped });
      console.log(`  ${m.id.padEnd(18)} skipped: ${skipped}`);
      continue;
    }
    const child = new MethodChild([m.id, JSON.stringify(contextFor(run, 1024, {}))], false);
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
    // Rounds line up across methods (each runs once per round), so ratios can be taken round by round.
    const perRound = error === undefined ? seconds.map((x) => options.count / x) : undefined;
    record(run, m, 1024, { method: m.id, size: 1024, seconds: error === undefined ? seconds : [], verified: "not checked", maxRss: report?.maxRss ?? 0, ...(error !== undefined ? { error } : {}) }, options.count, perRound);
  }
  console.log(`  (many small objects: ${clock.elapsed()})`);
}

/** The orphan sweep against bare lo_unlink, in a child of its own; a failure is reported, not thrown. */
async function measureSweep(run: Run): Promise<SweepFigures | string> {
  const count = run.options.sweepCount;
  console.log(`\norphan sweep: ${count} recorded objects, half referenced`);
  // Each round creates 1.5 times the count in objects and removes them again: allow 2 ms an object.
  const child = await runChild(["sweep", JSON.stringify(contextFor(run, 0, { count }))], Math.max(CHILD_TIMEOUT_MS, count * 2));
  const sweep = child.sweep ?? child.error ?? "the sweep's process reported nothing";
  console.log(
    typeof sweep === "string"
      ? `  failed: ${sweep}`
      : `  sweepOrphans ${sweep.sweepPerSecond.toFixed(0)}/s, bare lo_unlink ${sweep.barePerSecond.toFixed(0)}/s, ratio ${sweep.ratio.toFixed(2)}x; ` +
          `peak RSS ${(child.maxRss / 2 ** 20).toFixed(0)} MiB; largeObjectStatus ${sweep.statusSeconds.toFixed(1)} s`,
  );
  console.log(`  (orphan sweep: ${run.clock.elapsed()})`);
  return sweep;
}

/** The HTTP and tus phases, each when wanted; a failure is reported, not thrown. */
async function measureHttpRows(run: Run): Promise<{ http?: HttpFigures | string; tus?: TusFigures | string }> {
  const out: { http?: HttpFigures | string; tus?: TusFigures | string } = {};
  const settle = (): Promise<void> => run.checkpoints.settle();
  const failed = (err: unknown): string => (err instanceof Error ? err.message : String(err));
  if (run.server.ormReason !== undefined) return out;
  const options = { quick: run.options.quick, profile: run.options.profile, ...(run.options.reps !== undefined ? { rounds: run.options.reps } : {}) };
  const uploadsOnly = !phaseWanted(run.options, "http") && phaseWanted(run.options, "http-upload");
  if (phaseWanted(run.options, "http") || uploadsOnly) {
    console.log(`\nHTTP helpers against the direct streams (server in a process of its own)${uploadsOnly ? ": uploads only" : ""}`);
    out.http = await benchHttp(run.server.url, settle, { ...options, uploadsOnly }).catch(failed);
    if (typeof out.http === "string") console.log(`  failed: ${out.http}`);
    console.log(`  (HTTP: ${run.clock.elapsed()})`);
  }
  if (phaseWanted(run.options, "tus")) {
    console.log("\ntus upload against a plain write stream (server in a process of its own)");
    out.tus = await benchTus(run.server.url, settle, options).catch(failed);
    if (typeof out.tus === "string") console.log(`  failed: ${out.tus}`);
    console.log(`  (tus: ${run.clock.elapsed()})`);
  }
  return out;
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const clock = new PhaseClock();
  mkdirSync(RESULTS, { recursive: true });
  compileWorker();

  const server = await startServer(Math.max(...options.sizes));
  const methods = METHODS.filter((m) => options.only === undefined || options.only.includes(m.id));
  const checkpoints = await openCheckpoints(server.url, (ms) => (clock.settling += ms));
  const run: Run = { options, server, methods, rows: [], clock, checkpoints };

  const baseline: Method = { id: "baseline", label: "bare pg connection (RSS baseline)", kind: "baseline", open: () => Promise.reject(new Error("run in the worker")) };
  const baseReport = await runChild([baseline.id, JSON.stringify(contextFor(run, 0, {}))]);
  const baselineRow = record(run, baseline, 0, baseReport, 0);
  const ormBaseline = (await runChild(["baseline-orm", JSON.stringify(contextFor(run, 0, {}))])).maxRss;

  if (!options.sweepOnly && phaseWanted(options, "methods")) {
    for (const size of options.sizes) await measureSize(run, size);
    await measureBatches(run);
  }
  const httpRows = options.sweepOnly ? {} : await measureHttpRows(run);
  const sweep = phaseWanted(options, "sweep") ? await measureSweep(run) : "not run (--only)";

  await checkpoints.close();
  await server.stop();

  const seconds = (Date.now() - started) / 1000;
  if (options.sweepOnly) {
    // A run of one phase must not replace the full run's page.
    const name = `sweep-${options.sweepCount}.md`;
    const markdown = renderSweepMarkdown(sweep, { ...server.info, ormBaseline, seconds, embedded: server.embedded });
    writeFileSync(path.join(RESULTS, name), markdown);
    console.log(`\n${markdown}`);
    console.log(`written: bench/results/${name} (${seconds.toFixed(0)} s)`);
    return;
  }
  if (!phaseWanted(options, "methods")) {
    // Like the sweep alone: a run of some phases must not replace the full run's page.
    const markdown = `# npm run bench: HTTP and tus rows\n\n${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; Node ${process.version}; PostgreSQL ${server.info.version}; run took ${seconds.toFixed(0)} s. Command: \`npm run bench -- ${process.argv.slice(2).join(" ")}\`.\n\n${renderHttpMarkdown(httpRows.http, httpRows.tus)}`;
    writeFileSync(path.join(RESULTS, "http.md"), markdown);
    console.log(`\n${markdown}`);
    console.log(`written: bench/results/http.md (${seconds.toFixed(0)} s)`);
    return;
  }
  const markdown = renderMarkdown(run.rows, options, {
    ...server.info,
    baseline: baselineRow.maxRss,
    ormBaseline,
    seconds,
    embedded: server.embedded,
    settling: checkpoints.note(),
    serverFiles: server.serverFiles,
    sweep,
  });
  const withHttp = httpRows.http !== undefined || httpRows.tus !== undefined ? `${markdown}\n${renderHttpMarkdown(httpRows.http, httpRows.tus)}` : markdown;
  writeFileSync(path.join(RESULTS, "latest.md"), withHttp);
  writeFileSync(path.join(RESULTS, "latest.svg"), renderChart(run.rows, options.sizes, baselineRow.maxRss));
  console.log(`\n${withHttp}`);
  console.log(`written: bench/results/latest.md, bench/results/latest.svg (${seconds.toFixed(0)} s)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
