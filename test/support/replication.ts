import "reflect-metadata";
import { DataSource, type DataSourceOptions, type EntitySchema, type MixedList } from "typeorm";
import { Client } from "pg";
import { registerLargeObjects, type LargeObject } from "../../src";
import { clientQueries } from "./database";
import { startScratchServer, startStandby, type ScratchServer } from "./scratch-server";

/** A registered data source writing on `primary` and reading on `standby`, initialised. */
export async function openReplicatedDataSource(
  primary: ScratchServer,
  standby: ScratchServer,
  entities: MixedList<Function | string | EntitySchema>,
  options: { synchronize?: boolean } = {},
): Promise<DataSource> {
  const ds = registerLargeObjects(
    new DataSource({
      type: "postgres",
      replication: { master: { url: primary.url() }, slaves: [{ url: standby.url() }] },
      entities,
      synchronize: options.synchronize ?? true,
    } as DataSourceOptions),
  );
  return ds.initialize();
}

/** Runs one statement on a server through a client of its own. */
export async function queryOn<R extends object = Record<string, unknown>>(server: ScratchServer, sql: string, values: unknown[] = []): Promise<R[]> {
  const client = new Client({ connectionString: server.url() });
  await client.connect();
  try {
    return (await client.query<R>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

/** Waits until `standby` has replayed everything `primary` has written so far. */
export async function caughtUp(primary: ScratchServer, standby: ScratchServer): Promise<void> {
  const [{ lsn }] = (await queryOn<{ lsn: string }>(primary, "SELECT pg_current_wal_insert_lsn()::text AS lsn")) as [{ lsn: string }];
  for (let i = 0; i < 500; i += 1) {
    const [row] = await queryOn<{ done: boolean }>(standby, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done", [lsn]);
    if (row!.done) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the standby did not replay ${lsn} in 10 s`);
}

/** The port of the server a handle's connection runs on. */
export function portOf(handle: LargeObject): number {
  return (handle.scope.client as unknown as { port: number }).port;
}

/** Records the text of every statement pg clients send while `work` runs, with the port each went to. */
export async function statementsByPort(work: () => Promise<unknown>): Promise<{ port: number; text: string }[]> {
  return (await clientQueries(work)).map(({ port, text }) => ({ port, text: text ?? "(copy)" }));
}

/** A primary, a hot standby of it and a data source over both, started before the file's tests and removed after them. */
export function useReplicatedServers(entities: MixedList<Function | string | EntitySchema>): {
  primary: ScratchServer;
  standby: ScratchServer;
  ds: DataSource;
} {
  const pair = {} as { primary: ScratchServer; standby: ScratchServer; ds: DataSource };
  beforeAll(async () => {
    pair.primary = await startScratchServer();
    pair.standby = await startStandby(pair.primary);
    pair.ds = await openReplicatedDataSource(pair.primary, pair.standby, entities);
  }, 60_000);
  afterAll(async () => {
    // A test may have destroyed it already, or stopped the primary under it.
    if (pair.ds?.isInitialized) await pair.ds.destroy().catch(() => undefined);
    await pair.standby?.destroy();
    await pair.primary?.destroy();
  });
  return pair;
}
