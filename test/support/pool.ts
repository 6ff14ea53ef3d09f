import type { DataSource } from "typeorm";
import { idleInTransaction } from "./database";
import { eventually } from "./http-server";
import { within } from "./streams";

interface PgPool {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
}

/** Connections of the data source's pool that are checked out (0 when every one was released). */
export function checkedOut(ds: DataSource): number {
  const pool = (ds.driver as unknown as { master: PgPool }).master;
  return pool.totalCount - pool.idleCount;
}

/**
 * Expects the pool to be whole again: a query on it answers within 5 s (`what` names it if not),
 * none of its connections is checked out, and `observer` sees no session idle in a transaction.
 */
export async function expectConnectionFree(ds: DataSource, observer: DataSource, what: string): Promise<void> {
  expect(await within(5000, ds.query("SELECT 1 AS one"), what)).toEqual([{ one: 1 }]);
  expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(observer)).toBe(0);
}

/**
 * Expects every connection of the pools back within 5 s (a server in the test's process may still
 * be finishing a response) and `observer` to see no session idle in a transaction.
 */
export async function expectConnectionsBack(pools: DataSource | DataSource[], observer: DataSource): Promise<void> {
  const all = Array.isArray(pools) ? pools : [pools];
  await eventually(() => all.every((pool) => checkedOut(pool) === 0), 5000, "every connection back in its pool");
  expect(await idleInTransaction(observer)).toBe(0);
}
