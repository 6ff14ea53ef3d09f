import type { DataSource } from "typeorm";

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
