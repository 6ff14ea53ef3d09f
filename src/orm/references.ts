import { toLargeObjectError } from "../errors";
import { qualified, quoteIdentifier, schemaOf } from "../sql";
import { currentSchema } from "../connection/catalog";
import { dataSourceOf, type LargeObjectSource } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { largeObjectColumns, type LargeObjectColumnInfo } from "./column";

/** A large-object column that references an object. */
export interface LargeObjectReference {
  entity: string;
  property: string;
  table: string;
  column: string;
}

/**
 * The large-object columns of the data source whose rows reference `oid`, optionally leaving one
 * column out. The subscriber refuses to adopt an object that is already referenced (ERR_LO_IN_USE):
 * each object has one owner, so that unlinking it on delete never takes another row's data.
 *
 * @example
 * if ((await findReferences(queryRunner, oid)).length > 0) throw new LargeObjectError("ERR_LO_IN_USE", "...");
 */
export async function findReferences(
  source: LargeObjectSource,
  oid: number,
  options: { except?: Pick<LargeObjectColumnInfo, "entity" | "column"> } = {},
): Promise<LargeObjectReference[]> {
  const dataSource = dataSourceOf(source);
  return TransactionScope.using(source, { transaction: false }, async (scope) => {
    const current = await currentSchema(scope);
    const columns = largeObjectColumns(dataSource).filter(
      (c) => c.entity.tableType !== "view" && !(options.except && c.entity === options.except.entity && c.column === options.except.column),
    );
    const found: LargeObjectReference[] = [];
    if (columns.length > 0) {
      // Same expression as the reference index, so each probe is an index lookup.
      const checks = columns.map((c, n) => {
        const table = qualified(schemaOf(dataSource, c.entity) ?? current, c.entity.tableName);
        return `SELECT ${n} AS n WHERE EXISTS (SELECT 1 FROM ${table} WHERE ${quoteIdentifier(c.column.databaseName)}::pg_catalog.int8 = $1::pg_catalog.int8)`;
      });
      const rows = await scope.query<{ n: number }>(checks.join(" UNION ALL "), [oid]);
      for (const { n } of rows) {
        const c = columns[n]!;
        found.push({
          entity: c.entity.name,
          property: c.property,
          table: `${schemaOf(dataSource, c.entity) ?? current}.${c.entity.tableName}`,
          column: c.column.databaseName,
        });
      }
    }
    return found;
  }).catch((err: unknown) => {
    throw toLargeObjectError(err, { oid });
  });
}
