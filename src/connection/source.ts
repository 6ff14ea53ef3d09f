import type { DataSource, EntityManager, QueryRunner } from "typeorm";
import type { Client } from "pg";
import { LargeObjectError } from "../errors";

/** Where large-object work runs: a data source, an entity manager, or a query runner. */
export type LargeObjectSource = DataSource | EntityManager | QueryRunner;

/** @internal The pg client behind a TypeORM Postgres query runner. */
export type PgClient = Client;

/** @internal Whether a source is a QueryRunner (checked by shape). */
export function isQueryRunner(source: object): source is QueryRunner {
  const s = source as Partial<QueryRunner>;
  return typeof s.startTransaction === "function" && typeof s.release === "function";
}

/** @internal Whether a source is an EntityManager (checked by shape). */
export function isEntityManager(source: object): source is EntityManager {
  const s = source as Partial<EntityManager>;
  return typeof s.transaction === "function" && typeof s.getRepository === "function" && "connection" in s;
}

/** @internal Whether a value is a TypeORM DataSource (checked by shape: the package may be loaded twice). */
export function isDataSource(source: unknown): source is DataSource {
  const s = source as Partial<DataSource> | null;
  return typeof s === "object" && s !== null && typeof s.createQueryRunner === "function" && typeof s.initialize === "function";
}

/** @internal The data source behind any accepted source, checked to be PostgreSQL. */
export function dataSourceOf(source: LargeObjectSource): DataSource {
  if (source === null || typeof source !== "object") {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "expected a DataSource, EntityManager or QueryRunner");
  }
  let dataSource: DataSource | undefined;
  if (isQueryRunner(source)) dataSource = source.connection;
  else if (isEntityManager(source)) dataSource = source.connection;
  else if (isDataSource(source)) dataSource = source;
  if (dataSource === undefined) {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "expected a DataSource, EntityManager or QueryRunner");
  }
  const type = dataSource.options.type;
  if (type !== "postgres") {
    throw new LargeObjectError(
      "ERR_LO_NOT_POSTGRES",
      `large objects need a PostgreSQL data source (type "postgres"), this one is "${String(type)}"`,
    );
  }
  return dataSource;
}
