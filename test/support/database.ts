import "reflect-metadata";
import { Client } from "pg";
import { DataSource, type DataSourceOptions } from "typeorm";

export const WORKER_DATABASE_PREFIX = "tlo_test_";

/**
 * Drops a test database without ever hanging a run: a session stuck sending to a client that
 * stopped reading can hold DROP DATABASE up, so the attempt is bounded and a failure only logged.
 */
export async function dropTestDatabase(admin: import("pg").Client, name: string): Promise<void> {
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name.replace(/"/g, '""')}" WITH (FORCE)`);
  } catch (err) {
    console.log(`(could not drop test database ${name}: ${(err as Error).message})`);
  }
}

/** Admin connection settings that bound every statement of the set-up and tear-down. */
export const ADMIN_TIMEOUTS = { statement_timeout: 20_000, lock_timeout: 10_000, query_timeout: 30_000 };

/** The URL of this jest worker's own database. */
export function databaseUrl(): string {
  const base = process.env.DATABASE_URL;
  if (!base) throw new Error("DATABASE_URL is not set: the jest globalSetup sets it");
  if (process.env.TLO_TEST_SHARED_DATABASE) return base;
  const url = new URL(base);
  const prefix = process.env.TLO_TEST_DATABASE_PREFIX ?? WORKER_DATABASE_PREFIX;
  url.pathname = `/${prefix}${process.env.JEST_WORKER_ID ?? "1"}`;
  return url.toString();
}

type Extra = Partial<Omit<Extract<DataSourceOptions, { type: "postgres" }>, "type">>;

/** A DataSource on this worker's database (not yet initialised). */
export function makeDataSource(options: Extra = {}): DataSource {
  return new DataSource({ type: "postgres", url: databaseUrl(), ...options } as DataSourceOptions);
}

/** An initialised DataSource on this worker's database. */
export async function openDataSource(options: Extra = {}): Promise<DataSource> {
  return makeDataSource(options).initialize();
}

/** How many large objects exist in the database. */
export async function countObjects(ds: DataSource): Promise<number> {
  const rows: { n: string }[] = await ds.query("SELECT count(*) AS n FROM pg_largeobject_metadata");
  return Number(rows[0]!.n);
}

/** Whether one object exists. */
export async function objectExists(ds: DataSource, oid: number): Promise<boolean> {
  const rows: { found: boolean }[] = await ds.query(
    "SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = $1) AS found",
    [oid],
  );
  return rows[0]!.found;
}

/** An object's bytes, read with the server's stateless lo_get. */
export async function objectBytes(ds: DataSource, oid: number): Promise<Buffer> {
  const rows: { data: Buffer }[] = await ds.query("SELECT lo_get($1) AS data", [oid]);
  return rows[0]!.data;
}

/** Sessions of this database (other than ours) left idle in a transaction. */
export async function idleInTransaction(ds: DataSource): Promise<number> {
  const rows: { n: string }[] = await ds.query(
    `SELECT count(*) AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'`,
  );
  return Number(rows[0]!.n);
}

/** Unlinks every large object in this worker's database (tests start from none). */
export async function unlinkAll(ds: DataSource): Promise<void> {
  await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
}

/** Unlinks the given objects only: for files that remove just what they created. */
export async function unlinkThese(ds: DataSource, oids: number[]): Promise<void> {
  await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])", [oids]);
}

/** Deterministic pseudo-random bytes, so a failure can be reproduced. */
export function randomBytes(length: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A query a pg client was given: the port of its server, the SQL text if it has one, and the query itself. */
export interface ClientQuery {
  port: number;
  text: string | undefined;
  query: unknown;
}

/** Records every query pg clients are given while `work` runs (each one round trip to the server). */
export async function clientQueries(work: () => Promise<unknown>): Promise<ClientQuery[]> {
  const seen: ClientQuery[] = [];
  const proto = Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = proto.query;
  proto.query = function (this: { port: number }, ...args: unknown[]) {
    const query = args[0];
    const text = typeof query === "string" ? query : (query as { text?: unknown } | undefined)?.text;
    seen.push({ port: this.port, text: text === undefined || text === null ? undefined : String(text), query });
    return original.apply(this, args);
  };
  try {
    await work();
  } finally {
    proto.query = original;
  }
  return seen;
}
