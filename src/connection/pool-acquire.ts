import type { DataSource, QueryRunner } from "typeorm";
import { LargeObjectError } from "../errors";
import type { PgClient } from "./source";

/**
 * How long a call waits for a pooled connection when every one is in use and the data source sets
 * no `connectTimeoutMS` of its own. Bounded, because the classic deadlock (a transaction holding
 * the last connection while a stream opened beside it waits for another) would otherwise hang.
 * @internal
 */
export const DEFAULT_ACQUIRE_TIMEOUT_MS = 10_000;

/** The fields of a pg Pool read here (public in pg-pool, not in TypeORM's types). */
interface PoolState {
  totalCount: number;
  idleCount: number;
  waitingCount: number;
  options?: { max?: number; connectionTimeoutMillis?: number };
}

function poolOf(dataSource: DataSource): PoolState | undefined {
  const pool = (dataSource.driver as unknown as { master?: Partial<PoolState> }).master;
  return pool !== undefined && typeof pool.totalCount === "number" ? (pool as PoolState) : undefined;
}

/** @internal The acquire timeout of a data source: its `connectTimeoutMS` (pg's connectionTimeoutMillis), or the default. */
export function acquireTimeoutOf(dataSource: DataSource): number {
  const configured = poolOf(dataSource)?.options?.connectionTimeoutMillis;
  return typeof configured === "number" && configured > 0 ? configured : DEFAULT_ACQUIRE_TIMEOUT_MS;
}

function exhausted(dataSource: DataSource, waitedMs: number, cause?: unknown): LargeObjectError {
  const pool = poolOf(dataSource);
  const state =
    pool === undefined ? "" : ` (${pool.totalCount - pool.idleCount} of ${pool.options?.max ?? "?"} connections in use, ${pool.waitingCount} callers waiting)`;
  return new LargeObjectError(
    "ERR_LO_POOL_EXHAUSTED",
    `no pooled connection became free within ${waitedMs} ms${state}. Inside a transaction, build the repository ` +
      "(or pass the source) on the transaction's manager or query runner: work given the data source needs a " +
      "connection of its own, which never comes while the transaction holds the last one",
    cause === undefined ? {} : { cause },
  );
}

function saturated(pool: PoolState | undefined): boolean {
  if (pool === undefined) return false;
  const max = pool.options?.max ?? 10;
  return pool.waitingCount > 0 || (pool.idleCount === 0 && pool.totalCount >= max);
}

/**
 * Connects a runner the library created. When the pool has no free connection it waits at most the
 * acquire timeout, then fails with ERR_LO_POOL_EXHAUSTED; a connection that arrives after that is
 * handed straight back.
 * @internal
 */
export async function connectWithin(runner: QueryRunner, dataSource: DataSource): Promise<PgClient> {
  const pool = poolOf(dataSource);
  const connecting = runner.connect() as Promise<PgClient>;
  if (!saturated(pool)) return connecting;
  const limit = acquireTimeoutOf(dataSource);
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(exhausted(dataSource, limit));
    }, limit);
  });
  try {
    return await Promise.race([connecting, timeout]);
  } catch (err) {
    if (timedOut) {
      // pg-pool offers no way to leave its queue: release the connection when it comes.
      connecting.then(
        () => runner.release(),
        () => undefined,
      );
    } else if (err instanceof Error && err.message.includes("timeout exceeded when trying to connect")) {
      throw exhausted(dataSource, limit, err);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
