import "reflect-metadata";
import { DataSource } from "typeorm";
import { registerLargeObjects } from "../src/registration";
import { sweepOrphans, type SweepReport } from "../src/sweep";
import { BenchFile } from "./entity";

/** The orphan sweep measured against bare lo_unlink of as many objects, 1,000 per transaction. */
export interface SweepFigures {
  objects: number;
  orphans: number;
  sweepPerSecond: number;
  barePerSecond: number;
  report: SweepReport;
}

const BATCH = 1000;

/**
 * Creates `count` recorded objects, half referenced by rows, then times `sweepOrphans` (grace 0)
 * and, for comparison, bare `lo_unlink` of the same number of unreferenced objects.
 */
export async function benchSweep(url: string, count: number): Promise<SweepFigures> {
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url, entities: [BenchFile], synchronize: true }));
  await ds.initialize();
  try {
    const orphans = Math.floor(count / 2);
    // Objects and records in the library's own batched form; the referenced half gets rows.
    for (let done = 0; done < count; done += 10_000) {
      const n = Math.min(10_000, count - done);
      await ds.query(
        `INSERT INTO typeorm_large_objects (oid, created_for, created_at)
         SELECT lo_from_bytea(0, '\\x00'::bytea), 'bench', now() - interval '1 day' FROM generate_series(1, $1)`,
        [n],
      );
    }
    await ds.query(
      `INSERT INTO bench_files (file)
       SELECT r.oid FROM typeorm_large_objects r WHERE r.created_for = 'bench' ORDER BY r.oid LIMIT $1`,
      [count - orphans],
    );
    const started = process.hrtime.bigint();
    const report = await sweepOrphans(ds, { graceMs: 0 });
    const sweepSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (report.unlinked !== orphans) throw new Error(`the sweep unlinked ${report.unlinked}, expected ${orphans}`);

    const bare: number[] = (
      await ds.query(`SELECT lo_from_bytea(0, '\\x00'::bytea) AS oid FROM generate_series(1, $1)`, [orphans])
    ).map((r: { oid: number }) => r.oid);
    const runner = ds.createQueryRunner();
    const client = (await runner.connect()) as { query(sql: string, values?: unknown[]): Promise<unknown> };
    const bareStarted = process.hrtime.bigint();
    for (let at = 0; at < bare.length; at += BATCH) {
      await client.query("BEGIN");
      await client.query("SELECT lo_unlink(o) FROM unnest($1::oid[]) AS o", [bare.slice(at, at + BATCH)]);
      await client.query("COMMIT");
    }
    const bareSeconds = Number(process.hrtime.bigint() - bareStarted) / 1e9;
    await runner.release();
    return { objects: count, orphans, sweepPerSecond: orphans / sweepSeconds, barePerSecond: orphans / bareSeconds, report };
  } finally {
    // Deleting the rows lets the triggers unlink the referenced half, up to their per-transaction
    // limit; the sweep takes the rest in batches (one statement for all would exhaust the lock table).
    await ds.query("DELETE FROM bench_files WHERE file IN (SELECT oid FROM typeorm_large_objects WHERE created_for = 'bench')");
    await sweepOrphans(ds, { graceMs: 0 });
    await ds.destroy();
  }
}
