import type { LargeObjectStatus } from "../cleanup/status";
import type { SweepProgress, SweepReport } from "../cleanup/sweep";

const number = new Intl.NumberFormat("en-US");

/** @internal Human-readable bytes (powers of 1,000, as `MB/s` elsewhere in this project). */
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

/** @internal A progress bar on a terminal; a plain line at most every second otherwise. */
export function progressReporter(stream: NodeJS.WriteStream, dryRun: boolean): { update: (p: SweepProgress) => void; done: () => void } {
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

/** @internal The report of a sweep, as text. */
export function sweepText(r: SweepReport): string {
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

/** @internal The status, as a table. */
export function statusText(s: LargeObjectStatus): string {
  const pad = (n: number) => number.format(n).padStart(12);
  return [
    `Large objects           ${pad(s.objects)}  ${formatBytes(s.totalBytes)}${s.unreadable > 0 ? ` (${number.format(s.unreadable)} not readable by this role, not counted)` : ""}`,
    `  recorded              ${pad(s.recorded)}  created or adopted through a large-object column`,
    `  without a record      ${pad(s.withoutRecord)}  created by other code; the default sweep leaves them`,
    `Orphans                 ${pad(s.orphans)}  unreferenced, older than ${formatDuration(s.graceMs)}: sweep --execute unlinks them`,
    `Unreferenced, younger   ${pad(s.youngUnreferenced)}  within the grace period`,
    `Records of lost objects ${pad(s.missingObjects)}  the sweep removes them`,
    `Unreferenced, no record ${pad(s.unreferencedWithoutRecord)}  only sweep --scope all would unlink them`,
    `Dangling references     ${pad(s.danglingReferences.reduce((n, d) => n + d.rows, 0))}  rows naming objects that do not exist`,
    ...s.danglingReferences.map((d) => `  ${d.table}.${d.column}: ${number.format(d.rows)} rows`),
    ...s.problems.map((p) => `Problem: ${p}`),
  ].join("\n");
}

/** @internal The source of a migration file running `up` and `down`. */
export function migrationSource(name: string, timestamp: number, up: string[], down: string[]): string {
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
