import os from "node:os";
import { formatSize } from "./data";
import { BATCH_WARMUP_RUNS, CHECKED_WHILE_TIMED, OBJECTS_PER_SMALL_RUN, SMALL_OBJECT, type Options } from "./plan";
import { pairedRatio, type Row } from "./stats";
import { OBJECTS_PER_TINY_RUN, TINY_OBJECT, smallObjectsSection } from "./small-objects";
import type { SweepFigures } from "./sweep";

const mb = (v: number | undefined): string => (v === undefined ? "" : v >= 100 ? v.toFixed(0) : v.toFixed(1));
const mib = (bytes: number): string => (bytes > 0 ? (bytes / 2 ** 20).toFixed(0) : "");

/** The orphan sweep's figures: how it ran, the table, peak RSS and the status query. */
function sweepSection(sweep: SweepFigures | string): string[] {
  if (typeof sweep === "string") return [`Failed: ${sweep}`];
  const s = sweep.status;
  return [
    `${sweep.objects} recorded objects, ${sweep.orphans} of them unreferenced; \`sweepOrphans(ds, { graceMs: 0 })\` ` +
      `(batches of ${sweep.report.batches > 0 ? Math.ceil(sweep.orphans / sweep.report.batches) : 0} on average) against bare \`lo_unlink\` of as many objects, 1,000 per transaction. ` +
      `${sweep.rounds} rounds; the two alternate which goes first, and the ratio is taken within each round. ` +
      "Both run in one child process, which also creates and removes the objects of every round.",
    "",
    "| method | objects/s (median) | min-max | ratio (median of rounds) |",
    "|---|---:|---:|---:|",
    `| sweepOrphans | ${sweep.sweepPerSecond.toFixed(0)} | ${sweep.sweepRange.map((v) => v.toFixed(0)).join("-")} | ${sweep.ratio.toFixed(2)}x (${sweep.ratioRange.map((v) => v.toFixed(2)).join("-")}) |`,
    `| bare lo_unlink, 1,000 per transaction | ${sweep.barePerSecond.toFixed(0)} | | 1.00x |`,
    "",
    `Peak RSS of that process: ${sweep.maxRss !== undefined ? `${mib(sweep.maxRss)} MiB` : "not measured"}. ` +
      `\`largeObjectStatus(ds, { graceMs: 0 })\` on the first round's database, before its sweep, took ${sweep.statusSeconds.toFixed(1)} s ` +
      `(${s.objects} objects, ${s.recorded} recorded, ${s.orphans} orphans, ${s.missingObjects} records without an object).`,
  ];
}

/** A run of the sweep phase alone, as bench/results/sweep-N.md. */
export function renderSweepMarkdown(
  sweep: SweepFigures | string,
  meta: { version: string; ormBaseline: number; seconds: number; embedded: boolean },
): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const lines = [
    `# npm run bench -- ${process.argv.slice(2).join(" ")}`,
    "",
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
      `Node ${process.version}; PostgreSQL ${meta.version}${meta.embedded ? " (embedded)" : ""}; run took ${meta.seconds.toFixed(0)} s. ` +
      `A process with TypeORM loaded and a DataSource initialised peaks at ${mib(meta.ormBaseline)} MiB.`,
    "",
    ...sweepSection(sweep),
  ];
  if (typeof sweep !== "string") {
    const rss = (sweep.maxRss ?? 0) / 2 ** 20;
    lines.push(
      "",
      "| target | measured | met |",
      "|---|---|---|",
      `| sweep >= 0.9 x bare lo_unlink | ${sweep.ratio.toFixed(2)}x | ${sweep.ratio >= 0.9 ? "yes" : "**no**"} |`,
      `| peak RSS <= 150 MiB | ${rss.toFixed(0)} MiB | ${rss <= 150 ? "yes" : "**no**"} |`,
    );
  }
  lines.push("");
  return lines.join("\n");
}

/** The run as bench/results/latest.md. */
export function renderMarkdown(
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
      `Objects of ${formatSize(SMALL_OBJECT)} or less are timed ${OBJECTS_PER_SMALL_RUN} to a run (of ${formatSize(TINY_OBJECT)} or less, ${OBJECTS_PER_TINY_RUN}), back to back in the same process (a warm process), and reported per object. ` +
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
    // Flat from 1 MiB up: smaller objects move too few bytes to reach the GC's threshold.
    const rss = rows.filter((r) => r.method === m && r.maxRss > 0 && r.size >= 2 ** 20).map((r) => r.maxRss / 2 ** 20);
    return rss.length > 1 ? Math.max(...rss) - Math.min(...rss) : undefined;
  });
  target("flat: handle streams' peak RSS spread across sizes from 1 MiB <= 10 MiB (write, read)", spread, 10, false, " MiB");
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
  target("orphan sweep >= 0.9 x bare lo_unlink", [typeof sweep === "string" ? undefined : sweep.ratio], 0.9, true, "x");
  target("orphan sweep: peak RSS <= 150 MiB", [typeof sweep === "string" ? undefined : (sweep.maxRss ?? 0) / 2 ** 20], 150, false, " MiB");
  lines.push("", ...smallObjectsSection(rows, options.sizes));
  lines.push("", "## Orphan sweep", "", ...sweepSection(sweep));
  lines.push("", "![throughput and peak RSS](latest.svg)", "");
  return lines.join("\n");
}
