import { parseArgs } from "node:util";
import { DEFAULT_GRACE_MS, DEFAULT_SWEEP_BATCH_SIZE } from "../cleanup/sweep";

/** @internal Bad command-line arguments: the CLI prints the message and the usage, and exits 2. */
export class UsageError extends Error {}

/** @internal The CLI's usage text. */
export const USAGE = `Usage: typeorm-large-object <command> --dataSource <file> [options]

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

/** @internal The parsed command line. */
export interface Arguments {
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

const OPTIONS = {
  dataSource: { type: "string", short: "d" },
  "data-source": { type: "string" },
  execute: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  "dry-run": { type: "boolean" },
  json: { type: "boolean" },
  grace: { type: "string" },
  "batch-size": { type: "string" },
  scope: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) throw new UsageError(`--grace: not a duration: ${text} (e.g. 0, 90s, 30m, 12h, 7d)`);
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return Number(match[1]) * units[match[2] ?? "ms"]!;
}

/** parseArgs's errors, in the CLI's words: the option it names, and what is wrong with it. */
function usageErrorOf(err: unknown): UsageError {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const option = /'(-[^',\s]*)/.exec(message)?.[1] ?? "an option";
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return new UsageError(`unknown option ${option}`);
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") return new UsageError(`${option} needs a value`);
  return new UsageError(message);
}

/** @internal Parses argv (without node and the script). */
export function parseArguments(argv: string[]): Arguments {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw usageErrorOf(err);
  }
  const { values, positionals } = parsed;
  const execute = values.execute === true || values.yes === true;
  if (values["dry-run"] === true && execute) throw new UsageError("--dry-run and --execute contradict each other");
  let batchSize = DEFAULT_SWEEP_BATCH_SIZE;
  if (values["batch-size"] !== undefined) {
    batchSize = Number(values["batch-size"]);
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new UsageError("--batch-size must be a positive integer");
  }
  const scope = values.scope ?? "recorded";
  if (scope !== "recorded" && scope !== "all") throw new UsageError(`--scope must be "recorded" or "all", got ${scope}`);
  const dataSource = values.dataSource ?? values["data-source"];
  return {
    command: positionals[0] ?? "",
    positional: positionals.slice(1),
    ...(dataSource === undefined ? {} : { dataSource }),
    execute,
    json: values.json === true,
    graceMs: values.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(values.grace),
    batchSize,
    scope,
    help: values.help === true,
  };
}
