import { Client } from "pg";
import { EmbeddedStartError, startEmbeddedPostgres } from "../../scripts/embedded-postgres";
import { ADMIN_TIMEOUTS, WORKER_DATABASE_PREFIX, dropTestDatabase } from "./database";

type Stop = () => Promise<void>;
const globals = globalThis as { __tloStop?: Stop };

async function reachable(url: string): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  await client.end();
}

function hasPgVariables(): boolean {
  return ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"].some((name) => process.env[name] !== undefined);
}

/** Finds a PostgreSQL for the tests: DATABASE_URL/PG*, then Docker (testcontainers), then embedded-postgres. */
async function findDatabase(): Promise<{ url: string; how: string; stop?: Stop }> {
  const tried: string[] = [];
  if (process.env.DATABASE_URL || hasPgVariables()) {
    const url = process.env.DATABASE_URL ?? "";
    try {
      await reachable(url);
      return { url, how: process.env.DATABASE_URL ? "DATABASE_URL" : "PG* variables" };
    } catch (err) {
      throw new Error(`The database named by DATABASE_URL/PG* is not reachable: ${(err as Error).message}`);
    }
  }
  tried.push("no DATABASE_URL or PG* variables");
  try {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql");
    const container = await new PostgreSqlContainer("postgres:16-alpine").start();
    return { url: container.getConnectionUri(), how: "a Docker container (testcontainers)", stop: async () => void (await container.stop()) };
  } catch (err) {
    tried.push(`Docker: ${(err as Error).message.split("\n")[0]}`);
  }
  try {
    // Data in a fresh temporary directory, removed when the server stops.
    const server = await startEmbeddedPostgres({ persistent: false, trust: true });
    return { url: server.url, how: `embedded-postgres on port ${server.port}`, stop: server.stop };
  } catch (err) {
    tried.push(`embedded-postgres: ${err instanceof EmbeddedStartError ? err.attempt : (err as Error).message.split("\n")[0]}`);
  }
  throw new Error(`No PostgreSQL for the tests. Tried: ${tried.join("; ")}. Set DATABASE_URL to a database you can use.`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Drops the databases of earlier runs whose process is gone. */
async function dropStaleDatabases(admin: Client): Promise<void> {
  const { rows } = await admin.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE $1", [
    `${WORKER_DATABASE_PREFIX}%`,
  ]);
  for (const { datname } of rows) {
    const pid = Number(/^tlo_test_(\d+)_/.exec(datname)?.[1]);
    if (!pid || !alive(pid)) await dropTestDatabase(admin, datname);
  }
}

export default async function globalSetup(globalConfig: { maxWorkers: number }): Promise<void> {
  const found = await findDatabase();
  globals.__tloStop = found.stop;
  process.env.DATABASE_URL = found.url;
  // One database per jest worker and per run: large objects are per database, so files running
  // side by side cannot see each other's objects, and two test runs at once cannot collide.
  const prefix = `${WORKER_DATABASE_PREFIX}${process.pid}_`;
  process.env.TLO_TEST_DATABASE_PREFIX = prefix;
  const admin = new Client({ connectionString: found.url, ...ADMIN_TIMEOUTS });
  await admin.connect();
  let isolated = true;
  try {
    await dropStaleDatabases(admin);
    for (let worker = 1; worker <= Math.max(1, globalConfig.maxWorkers); worker += 1) {
      await admin.query(`CREATE DATABASE "${prefix}${worker}"`);
    }
  } catch (err) {
    isolated = false;
    process.env.TLO_TEST_SHARED_DATABASE = "1";
    console.log(`(cannot create per-worker databases: ${(err as Error).message}; tests share one database)`);
  } finally {
    await admin.end();
  }
  console.log(`\nPostgreSQL for tests: ${found.how}${isolated ? ", one database per worker" : ""}`);
}
