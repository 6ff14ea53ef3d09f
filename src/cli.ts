#!/usr/bin/env node
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { DataSource } from "typeorm";
import { isLargeObjectError } from "./errors";
import { largeObjectStatus, type LargeObjectStatus } from "./status";
import { DEFAULT_GRACE_MS, DEFAULT_SWEEP_BATCH_SIZE, sweepOrphans, type SweepProgress, type SweepReport } from "./sweep";
import { largeObjectTriggerStatements } from "./triggers";
import { isDataSource } from "./transaction-scope";

/** Exit codes a cron job can act on. */
export const EXIT = {
  /** Done; nothing left to do (a dry run or status found no orphans). */
  OK: 0,
  /** The command failed (database error, permission, ...). Nothing is half-done beyond whole batches. */
  FAILED: 1,
  /** Bad arguments. */
  USAGE: 2,
  /** The data source file could not be loaded, or the database could not be reached. */
  DATA_SOURCE: 3,
  /** A dry run or status found orphans (or records of missing objects): run `sweep --execute`. */
  ORPHANS: 4,
  /** A sweep ran but left orphans it could not take (locked by another sweep, or owned by another role). */
  INCOMPLETE: 5,
} as const;

const USAGE = `Usage: typeorm-large-object <command> --dataSource <file> [options]

Commands:
  status                      count objects, bytes, orphans and objects without a record
  sweep                       find orphaned large objects (a dry run unless --execute)
  migration:triggers <path>   write a migration that installs the unlink triggers, e.g.
                              src/migrations/LargeObjectTriggers

Options:
  -d, --dataSource <file>     a .js or .ts file exporting the DataSource (default or named export)
  --execute, --yes            sweep: unlink the orphans (without it, nothing is changed)
  --dry-run                   sweep: only report (the default)
  --grace <duration>          objects younger than this are left alone (default 24h; e.g. 0, 90s, 30m, 12h, 7d)
  --batch-size <n>            sweep: unlinks per transaction (default ${DEFAULT_SWEEP_BATCH_SIZE})
  --scope recorded|all        sweep: only objects this library created (default), or every object
  --json                      print one JSON object on stdout
  -h, --help                  this text

Exit codes: 0 done, nothing left; 1 failed; 2 bad arguments; 3 data source not loaded or not
reachable; 4 orphans found (dry run or status); 5 sweep left orphans it could not take.`;

class UsageError extends Error {}
class DataSourceError extends Error {}

interface Arguments {
  command: string;
  positional: string[];
  dataSource?: string;
  execute: boolean;
  json: boolean;
  graceMs: number;
  batchSize: number;
  scope: "recorded" | "all";
  help: boolean;
}

function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`--grace: not a duration: ${text} (e.g. 0, 90s, 30m, 12h, 7d)`);
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return Number(match[1]) * units[match[2] ?? "ms"]!;
}

/** Parses argv (without node and the script). */
export function parseArguments(argv: string[]): Arguments {
  const args: Arguments = {
    command: "",
    positional: [],
    execute: false,
    json: false,
    graceMs: DEFAULT_GRACE_MS,
    batchSize: DEFAULT_SWEEP_BATCH_SIZE,
    scope: "recorded",
    help: false,
  };
  let dryRun = false;
  for (let i = 0; i < argv.length; i += 1) {
    const raw = argv[i]!;
    const eq = raw.startsWith("--") ? raw.indexOf("=") : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const value = (): string => {
      if (eq > 0) return raw.slice(eq + 1);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("-")) throw new UsageError(`${flag} needs a value`);
      i += 1;
      return next;
    };
    switch (flag) {
      case "-d":
      case "--dataSource":
      case "--data-source":
        args.dataSource = value();
        break;
      case "--execute":
      case "--yes":
      case "-y":
        args.execute = true;
        break;
      case "--dry-run":
        dryRun = true;
        break;
      case "--json":
        args.json = true;
        break;
      case "--grace":
        args.graceMs = parseDuration(value());
        break;
      case "--batch-size": {
        const n = Number(value());
        if (!Number.isSafeInteger(n) || n < 1) throw new UsageError("--batch-size must be a positive integer");
        args.batchSize = n;
        break;
      }
      case "--scope": {
        const scope = value();
        if (scope !== "recorded" && scope !== "all") throw new UsageError(`--scope must be "recorded" or "all", got ${scope}`);
        args.scope = scope;
        break;
      }
      case "-h":
      case "--help":
        args.help = true;
        break;
      default:
        if (raw.startsWith("-")) throw new UsageError(`unknown option ${raw}`);
        if (args.command === "") args.command = raw;
        else args.positional.push(raw);
    }
  }
  if (dryRun && args.execute) throw new UsageError("--dry-run and --execute contradict each other");
  return args;
}

/** require() for files named at run time (the data source, the TypeScript loader). */
const load = createRequire(__filename);
const importModule = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

/**
 * Lets require() load TypeScript: ts-node first when the project has it (it emits the decorator
 * metadata TypeORM reads for columns without an explicit type; the TypeORM CLI uses it too),
 * else tsx (esbuild emits none, so such entities need explicit column types).
 */
function registerTypeScript(from: string): void {
  // Already loadable: the CLI itself runs under a TypeScript loader.
  if (load.extensions[".ts"] !== undefined) return;
  const paths = [from, process.cwd(), __dirname];
  try {
    load(load.resolve("ts-node/register", { paths }));
    return;
  } catch {
    // not installed: try tsx
  }
  try {
    const api = load(load.resolve("tsx/cjs/api", { paths })) as { register: () => unknown };
    api.register();
  } catch {
    throw new DataSourceError(
      `cannot load ${from}: loading TypeScript needs ts-node or tsx in the project (npm install -D ts-node), or compile it and pass the .js file`,
    );
  }
}

/** Loads a data-source file the way the TypeORM CLI does: its default export, or its one DataSource export. */
export async function loadDataSource(file: string): Promise<DataSource> {
  const path = resolve(process.cwd(), file);
  const ext = extname(path);
  if ([".ts", ".mts", ".cts"].includes(ext)) registerTypeScript(dirname(path));
  let loaded: unknown;
  try {
    loaded = load(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== "ERR_REQUIRE_ESM" && code !== "ERR_REQUIRE_ASYNC_MODULE") {
      throw new DataSourceError(`cannot load ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    loaded = await importModule(pathToFileURL(path).href);
  }
  const exports = (loaded ?? {}) as Record<string, unknown>;
  const candidates: unknown[] = [exports.default, (exports.default as Record<string, unknown> | undefined)?.default, exports];
  for (const candidate of candidates) if (isDataSource(candidate)) return candidate;
  const named = Object.entries(exports).filter(([, v]) => isDataSource(v));
  if (named.length === 1) return named[0]![1] as DataSource;
  throw new DataSourceError(
    named.length === 0
      ? `${file} exports no DataSource (export it as default or as a named export)`
      : `${file} exports several DataSources (${named.map(([k]) => k).join(", ")}): export the one to use as default`,
  );
}

async function connect(file: string | undefined): Promise<DataSource> {
  if (file === undefined) throw new UsageError("--dataSource <file> is required");
  const dataSource = await loadDataSource(file);
  if (!dataSource.isInitialized) {
    // As the TypeORM CLI does: never let a maintenance command change the schema.
    dataSource.setOptions({ synchronize: false, migrationsRun: false, dropSchema: false, logging: false });
    try {
      await dataSource.initialize();
    } catch (err) {
      throw new DataSourceError(`cannot initialize the data source: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return dataSource;
}

const number = new Intl.NumberFormat("en-US");

/** Human-readable bytes (powers of 1,000, as `MB/s` elsewhere in this project). */
export function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A progress bar on a terminal; a plain line at most every second otherwise. */
function progressReporter(stream: NodeJS.WriteStream, dryRun: boolean): { update: (p: SweepProgress) => void; done: () => void } {
  const tty = stream.isTTY === true;
  let last = 0;
  let drawn = false;
  return {
    update(p) {
      const now = Date.now();
      const verb = dryRun ? "checked" : "unlinked";
      const count = dryRun ? p.processed : p.unlinked;
      if (tty) {
        const width = 30;
        const fraction = p.discoveryDone && p.orphans > 0 ? p.processed / p.orphans : 0;
        const filled = Math.round(fraction * width);
        const bar = p.discoveryDone ? `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.round(fraction * 100)}%` : "[searching]";
        stream.write(`\r${bar} ${number.format(count)} ${verb} of ${number.format(p.orphans)}${p.discoveryDone ? "" : "+"}, ${formatBytes(p.bytesFreed)}   `);
        drawn = true;
      } else if (now - last >= 1000) {
        last = now;
        const of = `${number.format(p.processed)} of ${number.format(p.orphans)}${p.discoveryDone ? "" : "+"} orphans`;
        stream.write(
          dryRun
            ? `sweep (dry run): ${of} checked, ${formatBytes(p.bytesFreed)}\n`
            : `sweep: ${of}, ${number.format(p.unlinked)} unlinked, ${formatBytes(p.bytesFreed)}\n`,
        );
      }
    },
    done() {
      if (drawn) stream.write("\n");
    },
  };
}

function sweepText(r: SweepReport): string {
  const lines: string[] = [];
  if (r.dryRun) {
    lines.push(
      `Dry run: ${number.format(r.orphans)} orphans (${formatBytes(r.bytesFreed)}) among ${number.format(r.scanned)} ${r.scope === "all" ? "objects and records" : "recorded objects"}; nothing was changed.`,
    );
    if (r.orphans > 0) lines.push("Run again with --execute to unlink them.");
  } else {
    lines.push(
      `Unlinked ${number.format(r.unlinked)} orphans (${formatBytes(r.bytesFreed)}) in ${number.format(r.batches)} transactions, ${(r.durationMs / 1000).toFixed(1)} s.`,
    );
  }
  if (r.missingRecords > 0) {
    lines.push(`${number.format(r.missingRecords)} records of objects that no longer exist ${r.dryRun ? "would be" : "were"} removed.`);
  }
  if (r.skipped > 0) {
    lines.push(`${number.format(r.skipped)} orphans left in place: locked by another sweep or a delete, referenced again, or owned by another role.`);
  }
  return lines.join("\n");
}

function statusText(s: LargeObjectStatus): string {
  const pad = (n: number) => number.format(n).padStart(12);
  return [
    `Large objects           ${pad(s.objects)}  ${formatBytes(s.totalBytes)}${s.unreadable > 0 ? ` (${number.format(s.unreadable)} not readable by this role, not counted)` : ""}`,
    `  recorded              ${pad(s.recorded)}  created or adopted through a large-object column`,
    `  without a record      ${pad(s.withoutRecord)}  created by other code; the default sweep leaves them`,
    `Orphans                 ${pad(s.orphans)}  unreferenced, older than ${formatDuration(s.graceMs)}: sweep --execute unlinks them`,
    `Unreferenced, younger   ${pad(s.youngUnreferenced)}  within the grace period`,
    `Records of lost objects ${pad(s.missingObjects)}  the sweep removes them`,
    `Unreferenced, no record ${pad(s.unreferencedWithoutRecord)}  only sweep --scope all would unlink them`,
  ].join("\n");
}

function migrationSource(name: string, timestamp: number, up: string[], down: string[]): string {
  const lines = (statements: string[]) => statements.map((s) => `    await queryRunner.query(${JSON.stringify(s)});`).join("\n");
  return `import type { MigrationInterface, QueryRunner } from "typeorm";

/** Installs the typeorm-large-object unlink triggers for the large-object columns as they were when this was generated. */
export class ${name}${timestamp} implements MigrationInterface {
  name = "${name}${timestamp}";

  public async up(queryRunner: QueryRunner): Promise<void> {
${lines(up)}
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
${lines(down)}
  }
}
`;
}

/** Runs the CLI; resolves to the exit code. */
export async function main(argv: string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Promise<number> {
  let args: Arguments;
  try {
    args = parseArguments(argv);
  } catch (e) {
    err.write(`${e instanceof Error ? e.message : String(e)}\n\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  if (args.help || args.command === "" || args.command === "help") {
    (args.help || args.command === "help" ? out : err).write(`${USAGE}\n`);
    return args.help || args.command === "help" ? EXIT.OK : EXIT.USAGE;
  }
  if (!["sweep", "status", "migration:triggers"].includes(args.command)) {
    err.write(`unknown command ${args.command}\n\n${USAGE}\n`);
    return EXIT.USAGE;
  }
  let dataSource: DataSource | undefined;
  try {
    if (args.command === "migration:triggers" && args.positional.length !== 1) {
      throw new UsageError("migration:triggers needs the migration's path and name, e.g. src/migrations/LargeObjectTriggers");
    }
    dataSource = await connect(args.dataSource);
    switch (args.command) {
      case "status": {
        const status = await largeObjectStatus(dataSource, { graceMs: args.graceMs });
        out.write(args.json ? `${JSON.stringify({ command: "status", ...status })}\n` : `${statusText(status)}\n`);
        return status.orphans > 0 || status.missingObjects > 0 ? EXIT.ORPHANS : EXIT.OK;
      }
      case "sweep": {
        const dryRun = !args.execute;
        const progress = args.json ? undefined : progressReporter(err, dryRun);
        const report = await sweepOrphans(dataSource, {
          dryRun,
          graceMs: args.graceMs,
          batchSize: args.batchSize,
          scope: args.scope,
          ...(progress ? { onProgress: progress.update } : {}),
        });
        progress?.done();
        out.write(args.json ? `${JSON.stringify({ command: "sweep", ...report })}\n` : `${sweepText(report)}\n`);
        if (dryRun) return report.orphans > 0 ? EXIT.ORPHANS : EXIT.OK;
        return report.skipped > 0 ? EXIT.INCOMPLETE : EXIT.OK;
      }
      default: {
        const target = resolve(process.cwd(), args.positional[0]!);
        const name = basename(target).replace(/[^A-Za-z0-9_]/g, "");
        if (!/^[A-Za-z_]/.test(name)) throw new UsageError(`not a usable migration name: ${basename(target)}`);
        const { up, down } = await largeObjectTriggerStatements(dataSource);
        const timestamp = Date.now();
        const file = resolve(dirname(target), `${timestamp}-${name}.ts`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, migrationSource(name, timestamp, up, down));
        out.write(args.json ? `${JSON.stringify({ command: "migration:triggers", file })}\n` : `Migration written: ${file}\n`);
        return EXIT.OK;
      }
    }
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof UsageError) {
      err.write(`${message}\n\n${USAGE}\n`);
      return EXIT.USAGE;
    }
    const unreachable = e instanceof DataSourceError || (isLargeObjectError(e, "ERR_LO_CONNECTION"));
    if (args.json) out.write(`${JSON.stringify({ command: args.command, error: { message, code: (e as { code?: unknown }).code ?? null } })}\n`);
    err.write(`typeorm-large-object ${args.command}: ${message}\n`);
    return unreachable ? EXIT.DATA_SOURCE : EXIT.FAILED;
  } finally {
    if (dataSource?.isInitialized) await dataSource.destroy().catch(() => undefined);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = EXIT.FAILED;
    },
  );
}
