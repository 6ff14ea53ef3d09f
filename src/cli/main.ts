#!/usr/bin/env node
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import type { DataSource } from "typeorm";
import { isLargeObjectError } from "../errors";
import { largeObjectStatus } from "../cleanup/status";
import { sweepOrphans } from "../cleanup/sweep";
import { largeObjectTriggerStatements } from "../cleanup/trigger-sync";
import { USAGE, UsageError, parseArguments, type Arguments } from "./arguments";
import { DataSourceError, connect } from "./data-source-file";
import { migrationSource, progressReporter, statusText, sweepText } from "./output";

/** @internal Exit codes a cron job can act on. */
export const EXIT = {
  /** Done; nothing left to do (a dry run or status found no orphans). */
  OK: 0,
  /** The command failed (database error, permission, ...). Nothing is half-done beyond whole batches. */
  FAILED: 1,
  /** Bad arguments. */
  USAGE: 2,
  /** The data source file could not be loaded, or the database could not be reached. */
  DATA_SOURCE: 3,
  /**
   * A dry run or status found orphans or records of missing objects (run `sweep --execute`), or
   * status found rows naming missing objects or an incomplete installation (it says what to run).
   */
  ORPHANS: 4,
  /** A sweep ran but left orphans it could not take (locked by another sweep, or owned by another role). */
  INCOMPLETE: 5,
} as const;

/** @internal Runs the CLI; resolves to the exit code. */
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
        const damaged = status.danglingReferences.length > 0 || status.problems.length > 0;
        return status.orphans > 0 || status.missingObjects > 0 || damaged ? EXIT.ORPHANS : EXIT.OK;
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
