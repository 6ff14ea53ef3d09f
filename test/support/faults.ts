import type { DataSource } from "typeorm";
import { makeDataSource } from "./database";
import { registerLargeObjects } from "../../src";
import type { EntitySchema, MixedList } from "typeorm";

/** An application_name unique to this process, so fault injection only hits our own sessions. */
export function victimName(label: string): string {
  return `tlo_${label}_${process.env.JEST_WORKER_ID ?? "1"}_${process.pid}`;
}

/** An ORM data source whose sessions carry `applicationName` (tables already synchronized elsewhere). */
export async function openVictim(
  entities: MixedList<Function | string | EntitySchema>,
  applicationName: string,
  options: { poolSize?: number; extra?: Record<string, unknown> } = {},
): Promise<DataSource> {
  const ds = registerLargeObjects(
    makeDataSource({ entities, applicationName, poolSize: options.poolSize ?? 1, ...(options.extra ? { extra: options.extra } : {}) }),
  );
  return ds.initialize();
}

/**
 * Terminates, from `admin`'s connection, every backend of this database named `applicationName`
 * that is busy (in a transaction or running a statement); returns how many it killed.
 */
export async function terminateBusy(admin: DataSource, applicationName: string): Promise<number> {
  return (await terminateBusyPids(admin, applicationName)).length;
}

/** {@link terminateBusy}, answering the process ids it killed. */
export async function terminateBusyPids(admin: DataSource, applicationName: string): Promise<number[]> {
  const rows: { pid: number; killed: boolean }[] = await admin.query(
    `SELECT pid, pg_terminate_backend(pid) AS killed FROM pg_stat_activity
      WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid() AND state <> 'idle'`,
    [applicationName],
  );
  return rows.filter((r) => r.killed).map((r) => r.pid);
}

/**
 * Waits until the server has forgotten these backends. A backend killed just as it finished its
 * work may already be back in the client's pool; once the server is done with it, its client has
 * been told too, and the pool no longer hands it out.
 */
export async function waitForBackendsGone(admin: DataSource, pids: number[], timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const rows: { n: number }[] = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1)", [pids]);
    if (rows[0]!.n === 0) return;
    if (Date.now() > until) throw new Error(`backends ${pids.join(", ")} are still there after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits until no backend of this database is named `applicationName` (the server noticed every death). */
export async function waitForNoBackend(admin: DataSource, applicationName: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const rows: { n: number }[] = await admin.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
      [applicationName],
    );
    if (rows[0]!.n === 0) return;
    if (Date.now() > until) throw new Error(`backends named ${applicationName} are still there after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Every large object with its size and md5, plus the record table: what "data unchanged" compares. */
export async function objectDigests(admin: DataSource): Promise<Map<number, string>> {
  const rows: { oid: number; digest: string }[] = await admin.query(
    `SELECT m.oid, md5(lo_get(m.oid)) || ':' || octet_length(lo_get(m.oid)) AS digest
       FROM pg_largeobject_metadata m ORDER BY m.oid`,
  );
  return new Map(rows.map((r) => [r.oid, r.digest]));
}
