import { LargeObjectError } from "../errors";
import type { TransactionScope } from "./transaction-scope";

// Lookups in the system catalogs that several layers make, each written once.

/** @internal Whether a relation (table, index) of this name exists: `to_regclass`, which never fails on a missing one. */
export async function relationExists(scope: TransactionScope, name: string): Promise<boolean> {
  const rows = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [name]);
  return rows[0]!.found;
}

/** @internal Whether large object `oid` exists, read from `pg_largeobject_metadata`, which every role may read. */
export async function largeObjectExists(scope: TransactionScope, oid: number): Promise<boolean> {
  const rows = await scope.query<{ found: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata WHERE oid = $1) AS found",
    [oid],
  );
  return rows[0]!.found;
}

/** @internal The schema that unqualified names resolve to, or ERR_LO_DATABASE when the search_path names none. */
export async function currentSchema(scope: TransactionScope): Promise<string> {
  const rows = await scope.query<{ schema: string | null }>("SELECT pg_catalog.current_schema() AS schema");
  const schema = rows[0]?.schema;
  if (!schema) {
    throw new LargeObjectError("ERR_LO_DATABASE", "no current schema: the search_path names no existing schema");
  }
  return schema;
}
