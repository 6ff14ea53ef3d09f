/** Median of a non-empty list. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** One method at one size, summarised. */
export interface Row {
  method: string;
  label: string;
  kind: "write" | "read" | "batch" | "baseline";
  size: number;
  /** MB/s (10^6 bytes/s) for streams, objects/s for batches. */
  median?: number;
  min?: number;
  max?: number;
  runs: number;
  /** Throughput of each round (undefined where the run failed), aligned across methods of one size. */
  perRun?: (number | undefined)[];
  maxRss: number;
  verified: boolean | "not checked";
  skipped?: string;
  error?: string;
}

/** Throughputs of each run: MB/s for bytes, objects/s for batches. */
export function rates(seconds: number[], size: number, kind: Row["kind"], count: number): number[] {
  return seconds.map((s) => (kind === "batch" ? count / s : size / 1e6 / s));
}

/** Ratios of two methods run by run (same round, minutes apart at most): median, min and max. */
export function pairedRatio(a: Row | undefined, b: Row | undefined): { median: number; min: number; max: number } | undefined {
  if (a?.perRun === undefined || b?.perRun === undefined || a.error !== undefined || b.error !== undefined) return undefined;
  const ratios: number[] = [];
  a.perRun.forEach((x, i) => {
    const y = b.perRun![i];
    if (x !== undefined && y !== undefined) ratios.push(x / y);
  });
  if (ratios.length === 0) return undefined;
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) };
}
