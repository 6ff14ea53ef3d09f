import type { DataSource, EntityManager, QueryRunner } from "typeorm";
import { LargeObjectError, type LargeObjectSource } from "../index";

function isQueryRunner(source: object): source is QueryRunner {
  const s = source as Partial<QueryRunner>;
  return typeof s.startTransaction === "function" && typeof s.release === "function" && "manager" in s;
}

function isDataSource(source: object): source is DataSource {
  const s = source as Partial<DataSource>;
  return typeof s.createQueryRunner === "function" && typeof s.initialize === "function";
}

/**
 * The entity manager behind a source: a query runner's own manager (which runs on that runner and
 * so in its transaction), a data source's manager, or the manager itself.
 */
export function managerOf(source: LargeObjectSource): EntityManager {
  if (source === null || typeof source !== "object") {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "expected a DataSource, EntityManager or QueryRunner");
  }
  if (isQueryRunner(source)) return source.manager;
  if (isDataSource(source)) return source.manager;
  return source;
}
