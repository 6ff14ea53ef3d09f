import "reflect-metadata";
import { DataSource } from "typeorm";
import { largeObjectStatus, registerLargeObjects, sweepOrphans, type LargeObjectStatus, type SweepReport } from "../src";
import { BenchFile } from "./entity";
import { median } from "./stats";

/** The orphan sweep measured against bare lo_unlink of as many objects, 1,000 per transaction. */
export interface SweepFigures {
  objects: number;
  orphans: number;
  rounds: number;
  /** Medians over the rounds, and their min-max. */
  sweepPerSecond: number;
  sweepRange: [number, number];
  barePerSecond: number;
  /** Median of the ratios taken round by round (sweep / bare), and their min-max. */
  ratio: number;
  ratioRange: [number, number];
  report: SweepReport;
  /** Seconds `largeObjectStatus` took on the database of the first round, before its sweep, and what it said. */
  statusSeconds: number;
  status: LargeObjectStatus;
  /** Peak RSS of the process that ran the sweeps (set by the worker that runs it), bytes. */
  maxRss?: number;
}

const BATCH = 1000;

/**
 * Rounds of: `count` recorded objects, half referenced by rows, swept by `sweepOrphans` (grace 0);
 * and bare `lo_unlink` of as many unreferenced objects. The two alternate which goes first, and
 * the ratio is taken within each round, so that a slow moment of the machine hits both alike.
 */
export async function benchSweep(url: string, count: number, rounds = 3): Promise<SweepFigures> {
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url, entities: [BenchFile], synchronize: true }));
  await ds.initialize();
  const orphans = Math.floor(count / 2);
  const sweeps: number[] = [];
  const bares: number[] = [];
  const ratios: number[] = [];
  let report: SweepReport | undefined;
  let statusSeconds = 0;
  let status: LargeObjectStatus | undefined;
  try {
    const timeSweep = async (): Promise<number> => {
      // Objects and records in the library's own batched form; the referenced half gets rows.
      for (let done = 0; done < count; done += 10_000) {
        await ds.query(
          `INSERT INTO typeorm_large_objects (oid, created_for, created_at)
           SELECT lo_from_bytea(0, '\\x00'::bytea), 'bench', now() - interval '1 day' FROM generate_series(1, $1)`,
          [Math.min(10_000, count - done)],
        );
      }
      await ds.query(
        `INSERT INTO bench_files (file)
         SELECT r.oid FROM typeorm_large_objects r WHERE r.created_for = 'bench' ORDER BY r.oid LIMIT $1`,
        [count - orphans],
      );
      await ds.query("CHECKPOINT");
      if (status === undefined) {
        const asked = process.hrtime.bigint();
        status = await largeObjectStatus(ds, { graceMs: 0 });
        statusSeconds = Number(process.hrtime.bigint() - asked) / 1e9;
      }
      const started = process.hrtime.bigint();
      report = await sweepOrphans(ds, { graceMs: 0 });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (report.unlinked !== orphans) throw new Error(`the sweep unlinked ${report.unlinked}, expected ${orphans}`);
      await removeBenchObjects(ds);
      return orphans / seconds;
    };
    const timeBare = async (): Promise<number> => {
      // Held as array literals of a batch each, as the sweep holds its candidates: a JavaScript
      // number per object would make this process's peak RSS grow with the count.
      const bare: string[] = [];
      for (let done = 0; done < orphans; done += BATCH) {
        const rows: { oids: string }[] = await ds.query(
          `SELECT string_agg(lo_from_bytea(0, '\\x00'::bytea)::text, ',') AS oids FROM generate_series(1, $1)`,
          [Math.min(BATCH, orphans - done)],
        );
        bare.push(`{${rows[0]!.oids}}`);
      }
      await ds.query("CHECKPOINT");
      const runner = ds.createQueryRunner();
      const client = (await runner.connect()) as { query(sql: string, values?: unknown[]): Promise<unknown> };
      const started = process.hrtime.bigint();
      for (const batch of bare) {
        await client.query("BEGIN");
        await client.query("SELECT lo_unlink(o) FROM unnest($1::oid[]) AS o", [batch]);
        await client.query("COMMIT");
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await runner.release();
      return orphans / seconds;
    };
    for (let round = 0; round < rounds; round++) {
      let sweep: number;
      let bare: number;
      if (round % 2 === 0) {
        sweep = await timeSweep();
        bare = await timeBare();
      } else {
        bare = await timeBare();
        sweep = await timeSweep();
      }
      sweeps.push(sweep);
      bares.push(bare);
      ratios.push(sweep / bare);
    }
  } finally {
    await removeBenchObjects(ds);
    await ds.destroy();
  }
  return {
    objects: count,
    orphans,
    rounds,
    sweepPerSecond: median(sweeps),
    sweepRange: [Math.min(...sweeps), Math.max(...sweeps)],
    barePerSecond: median(bares),
    ratio: median(ratios),
    ratioRange: [Math.min(...ratios), Math.max(...ratios)],
    report: report!,
    statusSeconds,
    status: status!,
  };
}

/**
 * Deletes the bench's rows, then sweeps what they referenced. The delete triggers would unlink the
 * referenced half row by row, which takes far longer than the sweep itself at a million objects:
 * where the role may, they are kept from firing (session_replication_role) and the sweep, in
 * batches, takes every object instead.
 */
async function removeBenchObjects(ds: DataSource): Promise<void> {
  await ds.transaction(async (manager) => {
    const [role] = (await manager.query("SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user")) as { rolsuper: boolean }[];
    if (role?.rolsuper === true) await manager.query("SET LOCAL session_replication_role = replica");
    await manager.query("DELETE FROM bench_files WHERE file IN (SELECT oid FROM typeorm_large_objects WHERE created_for = 'bench')");
  });
  await sweepOrphans(ds, { graceMs: 0 });
}
