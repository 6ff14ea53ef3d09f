import type { DataSource } from "typeorm";
import { LargeObjectError } from "../errors";
import { qualified, schemaOf } from "../sql";
import { currentSchema, relationExists } from "../connection/catalog";
import type { TransactionScope } from "../connection/transaction-scope";
import { RECORDS_TABLE } from "../orm/records";

/** @internal Where the record table, the column table and the trigger functions live. */
export interface Home {
  /** The schema. */
  home: string;
  /** The record table's quoted, qualified name. */
  records: string;
}

/** @internal The record table's metadata, found by name so that a second copy of this library still matches. */
export function recordsMetadata(dataSource: DataSource): { schema?: string } | undefined {
  return dataSource.entityMetadatas.find((e) => e.tableName === RECORDS_TABLE && e.tableType !== "view");
}

/** @internal The schema holding the record table (and our functions), and the record table's quoted name. */
export async function resolveHome(dataSource: DataSource, scope: TransactionScope): Promise<Home> {
  const current = await currentSchema(scope);
  const home = schemaOf(dataSource, recordsMetadata(dataSource)) ?? current;
  return { home, records: qualified(home, RECORDS_TABLE) };
}

/** @internal ERR_LO_NOT_REGISTERED unless the record table exists. */
export async function assertRecordTable(scope: TransactionScope, records: string): Promise<void> {
  if (!(await relationExists(scope, records))) {
    throw new LargeObjectError(
      "ERR_LO_NOT_REGISTERED",
      `the record table ${records} does not exist: register the data source with registerLargeObjects(), then run synchronize or the migration that creates it`,
    );
  }
}

/** @internal Like {@link resolveHome}, and ERR_LO_NOT_REGISTERED when the record table does not exist. */
export async function locateRecords(dataSource: DataSource, scope: TransactionScope): Promise<Home> {
  const located = await resolveHome(dataSource, scope);
  await assertRecordTable(scope, located.records);
  return located;
}
