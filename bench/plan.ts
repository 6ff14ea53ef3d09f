import { parseSize } from "./data";
import { OBJECTS_PER_TINY_RUN, TINY_OBJECT } from "./small-objects";

/** What one run measures, from the command line. */
export interface Options {
  sizes: number[];
  quick: boolean;
  reps?: number;
  only?: string[];
  profile: boolean;
  count: number;
  /** Recorded objects of the orphan sweep phase (half of them referenced). */
  sweepCount: number;
  /** Set by `--sweep N`: the sweep phase alone, at N objects. */
  sweepOnly: boolean;
}

/** The options of `npm run bench -- ...`. */
export function parseArgs(argv: string[]): Options {
  const options: Options = { sizes: [], quick: false, profile: false, count: 1000, sweepCount: 100_000, sweepOnly: false };
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
    else if (arg.startsWith("--sweep")) {
      options.sweepCount = parseCount(value());
      options.sweepOnly = true;
    }    else if (arg === "--help" || arg === "-h") {
      console.log("npm run bench -- [--sizes 1M,64M,512M] [--quick] [--reps N] [--only method,...|http,http-upload,tus,sweep] [--profile] [--sweep N]");
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}`);
  }
  if (options.sizes.length === 0) options.sizes = options.quick ? [parseSize("64K"), parseSize("1M"), parseSize("16M")] : ["64K", "1M", "64M", "512M"].map(parseSize);
  if (options.quick) {
    options.count = 200;
    if (!options.sweepOnly) options.sweepCount = 10_000;
  }
  return options;
}

/** The phases `--only` may name beside method ids. */
export const PHASES = ["http", "http-upload", "tus", "sweep"] as const;

/**
 * Whether a phase runs: every phase without `--only`; with it, the named phases, and the method
 * phases (streams and small objects) when it names a method. The sweep also runs beside methods.
 */
export function phaseWanted(options: Options, phase: (typeof PHASES)[number] | "methods"): boolean {
  if (options.only === undefined) return true;
  const phases = options.only.filter((id) => (PHASES as readonly string[]).includes(id));
  const methods = options.only.length > phases.length;
  if (phase === "methods") return methods;
  return phases.includes(phase) || (phase === "sweep" && methods && phases.length === 0);
}

/** An object count such as 1000000, 1_000_000 or 1e6: at least 2, so that both halves of the sweep exist. */
function parseCount(text: string): number {
  const n = Number(text.replace(/_/g, ""));
  if (!Number.isSafeInteger(n) || n < 2) throw new Error(`--sweep needs a whole number of objects >= 2, got ${text}`);
  return n;
}

/** Timed runs per size: many at 1 MiB, a few for big objects. */
export function repsFor(size: number, options: Options): number {
  if (options.reps !== undefined) return options.reps;
  if (size <= SMALL_OBJECT) return options.quick ? 5 : 10;
  if (size >= 2 ** 30) return 2;
  if (options.quick) return 2;
  // Ratios of single 64 MiB runs spread widely (0.52x-2.70x of lo_export in one run): five rounds
  // cost about 25 s more than three. From CHECKED_WHILE_TIMED on, a run takes seconds.
  return size < CHECKED_WHILE_TIMED ? 5 : 3;
}

/** Objects of this size or less are timed in a warm process: several back to back per timed run. */
export const SMALL_OBJECT = 4 * 2 ** 20;
export const OBJECTS_PER_SMALL_RUN = 8;

/**
 * Untimed rounds of the small-object batches before the timed ones. A fresh process saved its first
 * batches of 1,000 rows two to three times slower than later ones (V8 had not yet compiled the save
 * path): 7-11k objects/s in rounds 1-3 and 15-22k/s from round 4 on here, TypeORM alone 12-28k/s and
 * then 35-60k/s.
 */
export const BATCH_WARMUP_RUNS = 3;

/** Writes of this size or more are checked in their first timed run instead of an untimed one. */
export const CHECKED_WHILE_TIMED = 256 * 2 ** 20;

/** Objects per timed run: several for small objects, one for big ones. */
export function objectsPerRun(size: number): number {
  if (size <= TINY_OBJECT) return OBJECTS_PER_TINY_RUN;
  return size <= SMALL_OBJECT ? OBJECTS_PER_SMALL_RUN : 1;
}
