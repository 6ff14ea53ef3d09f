import { createHash } from "node:crypto";
import type { DataSource, QueryRunner } from "typeorm";
import { LargeObjectError, toLargeObjectError } from "./errors";
import { largeObjectColumns, type LargeObjectColumnInfo } from "./column";
import { RECORDS_TABLE } from "./records";
import { quoteIdentifier } from "./sql";
import { TransactionScope, dataSourceOf, type LargeObjectSource } from "./transaction-scope";

/** Table listing the columns the triggers cover; it lives beside the record table. */
export const COLUMNS_TABLE = "typeorm_large_object_columns";
const RELEASE_FUNCTION = "typeorm_large_object_release";
const ROW_FUNCTION = "typeorm_large_object_row_trigger";
const TRUNCATE_FUNCTION = "typeorm_large_object_truncate_trigger";
/** Trigger names are per table, so fixed names stay short whatever the table is called. */
const ROW_TRIGGER = "typeorm_large_object_rows";
const TRUNCATE_TRIGGER = "typeorm_large_object_truncate";
const INDEX_PREFIX = "typeorm_lo_";
const MARKER = "typeorm-large-object";
/** Setting (per session, role or database) capping the unlinks the triggers make in one transaction. */
export const UNLINK_LIMIT_SETTING = "typeorm_large_object.unlink_limit";
/** Below the shared lock table's default capacity (64 x max_connections), leaving room for others. */
export const DEFAULT_UNLINK_LIMIT = 2000;
const UNLINK_COUNT_SETTING = "typeorm_large_object.unlinked";
/** Serializes concurrent installs (several application instances starting at once). */
const INSTALL_LOCK_KEY = 0x746c6f01;

/** A large-object column as the triggers see it: schema, table and column names. */
export interface TriggerColumn {
  schema: string;
  table: string;
  column: string;
}

/** Where the functions, the column list and the record table live, and the columns to cover. */
interface TriggerPlan {
  home: string;
  records: string;
  columns: TriggerColumn[];
}

function qualified(schema: string, name: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
}

/** A string literal (for COMMENT, which takes no parameters). */
function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Index names must be unique per schema and at most 63 bytes: a hash of the column's identity. */
export function indexName(column: TriggerColumn): string {
  const hash = createHash("sha256").update(`${column.schema}\u0000${column.table}\u0000${column.column}`).digest("hex");
  return `${INDEX_PREFIX}${hash.slice(0, 20)}`;
}

function dollarQuote(body: string): string {
  let tag = "$tlo$";
  for (let n = 0; body.includes(tag); n += 1) tag = `$tlo${n}$`;
  return `${tag}${body}${tag}`;
}

/**
 * The function bodies. The triggers pass their table's large-object columns as arguments (no
 * lookup per row); the reference check finds every covered column in the column table, by table
 * oid (so renamed tables keep working) and column name. A column dropped or renamed since the last
 * sync is skipped, never an error, so TypeORM may drop or retype a column before the triggers are
 * refreshed. The triggers name no column in their definition: `UPDATE OF col` or a WHEN clause on
 * the column would make PostgreSQL refuse `ALTER TABLE ... DROP COLUMN` without CASCADE.
 */
function functionSql(home: string, records: string): { name: string; signature: string; sql: string }[] {
  const columns = qualified(home, COLUMNS_TABLE);
  const liveColumns = `SELECT c."table", c."column" FROM ${columns} c
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c."table" AND a.attname = c."column" AND NOT a.attisdropped`;
  const release = `
DECLARE
  ref record;
  used boolean;
  owner oid;
  unlinked integer;
BEGIN
  IF o IS NULL THEN RETURN false; END IF;
  -- Raw SQL can share an object between rows: it goes only when no large-object column still
  -- references it (the triggers run AFTER, so the row being deleted or changed is not seen).
  FOR ref IN ${liveColumns}
     WHERE except_table IS NULL OR c."table" <> except_table
  LOOP
    EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I::pg_catalog.int8 = $1)', ref."table", ref."column")
      INTO used USING o::pg_catalog.int8;
    IF used THEN RETURN false; END IF;
  END LOOP;
  -- An object this role may not unlink stays (and keeps its record): refusing the user's DELETE
  -- over it would be worse, and so would touching a record table this role may not lock.
  SELECT m.lomowner INTO owner FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = o;
  IF FOUND AND NOT (pg_catalog.pg_has_role(owner, 'USAGE') OR pg_catalog.current_setting('lo_compat_privileges')::boolean) THEN
    RETURN false;
  END IF;
  -- The sweep holds record rows FOR UPDATE while it unlinks: wait for it, then look again.
  PERFORM 1 FROM ${records} r WHERE r.oid = o FOR UPDATE;
  SELECT m.lomowner INTO owner FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = o;
  IF NOT FOUND THEN
    DELETE FROM ${records} r WHERE r.oid = o;
    RETURN false;
  END IF;
  -- An object this role may not unlink stays (and keeps its record): refusing the user's DELETE
  -- over it would be worse. The status command counts it as an orphan.
  IF NOT (pg_catalog.pg_has_role(owner, 'USAGE') OR pg_catalog.current_setting('lo_compat_privileges')::boolean) THEN
    RETURN false;
  END IF;
  -- lo_unlink holds a lock per object until commit, and the lock table is shared: past the limit,
  -- the rest of a bulk DELETE or TRUNCATE is left to the sweep (recorded as due at once) rather
  -- than failing the user's statement with "out of shared memory".
  unlinked := COALESCE(NULLIF(pg_catalog.current_setting('${UNLINK_COUNT_SETTING}', true), ''), '0')::integer;
  IF unlinked >= COALESCE(NULLIF(pg_catalog.current_setting('${UNLINK_LIMIT_SETTING}', true), ''), '${DEFAULT_UNLINK_LIMIT}')::integer THEN
    INSERT INTO ${records} (oid, created_for, created_at) VALUES (o, 'deferred by a bulk delete', '-infinity')
      ON CONFLICT (oid) DO UPDATE SET created_at = '-infinity';
    RETURN false;
  END IF;
  PERFORM pg_catalog.lo_unlink(o);
  PERFORM pg_catalog.set_config('${UNLINK_COUNT_SETTING}', (unlinked + 1)::text, true);
  DELETE FROM ${records} r WHERE r.oid = o;
  RETURN true;
END`;
  const row = `
DECLARE
  col text;
  old_oid oid;
  new_oid oid;
BEGIN
  FOREACH col IN ARRAY TG_ARGV
  LOOP
    BEGIN
      IF TG_OP = 'DELETE' THEN
        EXECUTE pg_catalog.format('SELECT ($1).%I', col) INTO old_oid USING OLD;
      ELSE
        EXECUTE pg_catalog.format('SELECT ($1).%1$I, ($2).%1$I', col) INTO old_oid, new_oid USING OLD, NEW;
      END IF;
    EXCEPTION WHEN undefined_column THEN
      CONTINUE;
    END;
    CONTINUE WHEN TG_OP = 'UPDATE' AND old_oid IS NOT DISTINCT FROM new_oid;
    PERFORM ${qualified(home, RELEASE_FUNCTION)}(old_oid, NULL);
  END LOOP;
  RETURN NULL;
END`;
  const truncate = `
DECLARE
  col text;
  o oid;
BEGIN
  FOR col IN SELECT a.attname::text FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attname = ANY (TG_ARGV) AND NOT a.attisdropped
  LOOP
    FOR o IN EXECUTE pg_catalog.format('SELECT DISTINCT %1$I FROM %2$s WHERE %1$I IS NOT NULL', col, TG_RELID::pg_catalog.regclass)
    LOOP
      -- Every row of this table is going: only references from other tables keep an object.
      PERFORM ${qualified(home, RELEASE_FUNCTION)}(o, TG_RELID::pg_catalog.regclass);
    END LOOP;
  END LOOP;
  RETURN NULL;
END`;
  return [
    {
      name: RELEASE_FUNCTION,
      signature: `${qualified(home, RELEASE_FUNCTION)}(oid, pg_catalog.regclass)`,
      sql: `CREATE OR REPLACE FUNCTION ${qualified(home, RELEASE_FUNCTION)}(o oid, except_table pg_catalog.regclass DEFAULT NULL)
  RETURNS boolean LANGUAGE plpgsql AS ${dollarQuote(release)}`,
    },
    {
      name: ROW_FUNCTION,
      signature: `${qualified(home, ROW_FUNCTION)}()`,
      sql: `CREATE OR REPLACE FUNCTION ${qualified(home, ROW_FUNCTION)}() RETURNS trigger LANGUAGE plpgsql AS ${dollarQuote(row)}`,
    },
    {
      name: TRUNCATE_FUNCTION,
      signature: `${qualified(home, TRUNCATE_FUNCTION)}()`,
      sql: `CREATE OR REPLACE FUNCTION ${qualified(home, TRUNCATE_FUNCTION)}() RETURNS trigger LANGUAGE plpgsql AS ${dollarQuote(truncate)}`,
    },
  ];
}

function columnsTableSql(home: string): string[] {
  const table = qualified(home, COLUMNS_TABLE);
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (
  "table" pg_catalog.regclass NOT NULL,
  "column" text NOT NULL,
  "index" pg_catalog.regclass,
  PRIMARY KEY ("table", "column")
)`,
    `COMMENT ON TABLE ${table} IS ${literal(`${MARKER}: the large-object columns whose triggers unlink objects no row references any more`)}`,
  ];
}

function tableName(column: Pick<TriggerColumn, "schema" | "table">): string {
  return qualified(column.schema, column.table);
}

function installColumnSql(home: string, column: TriggerColumn): string[] {
  const index = indexName(column);
  return [
    // An expression index: TypeORM's schema diff lists only plain column indexes, so synchronize
    // and migration:generate leave it alone. The reference check compares the same expression.
    `CREATE INDEX IF NOT EXISTS ${quoteIdentifier(index)} ON ${tableName(column)} ((${quoteIdentifier(column.column)}::pg_catalog.int8))`,
    `COMMENT ON INDEX ${qualified(column.schema, index)} IS ${literal(`${MARKER}: reference index of ${column.column}`)}`,
    `INSERT INTO ${qualified(home, COLUMNS_TABLE)} ("table", "column", "index")
  VALUES (${literal(tableName(column))}::pg_catalog.regclass, ${literal(column.column)}, ${literal(qualified(column.schema, index))}::pg_catalog.regclass)
  ON CONFLICT ("table", "column") DO UPDATE SET "index" = EXCLUDED."index"`,
  ];
}

function installTableSql(home: string, table: Pick<TriggerColumn, "schema" | "table">, columns: string[]): string[] {
  const name = tableName(table);
  const args = columns.map(literal).join(", ");
  return [
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(ROW_TRIGGER)} ON ${name}`,
    `CREATE TRIGGER ${quoteIdentifier(ROW_TRIGGER)} AFTER UPDATE OR DELETE ON ${name} FOR EACH ROW EXECUTE FUNCTION ${qualified(home, ROW_FUNCTION)}(${args})`,
    `COMMENT ON TRIGGER ${quoteIdentifier(ROW_TRIGGER)} ON ${name} IS ${literal(`${MARKER}: unlinks the large objects of deleted rows and replaced values`)}`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(TRUNCATE_TRIGGER)} ON ${name}`,
    `CREATE TRIGGER ${quoteIdentifier(TRUNCATE_TRIGGER)} BEFORE TRUNCATE ON ${name} FOR EACH STATEMENT EXECUTE FUNCTION ${qualified(home, TRUNCATE_FUNCTION)}(${args})`,
    `COMMENT ON TRIGGER ${quoteIdentifier(TRUNCATE_TRIGGER)} ON ${name} IS ${literal(`${MARKER}: unlinks the large objects of a truncated table`)}`,
  ];
}

function removeTableSql(table: Pick<TriggerColumn, "schema" | "table">): string[] {
  return [
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(ROW_TRIGGER)} ON ${tableName(table)}`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(TRUNCATE_TRIGGER)} ON ${tableName(table)}`,
  ];
}

function removeColumnSql(home: string, column: TriggerColumn): string[] {
  return [
    `DROP INDEX IF EXISTS ${qualified(column.schema, indexName(column))}`,
    `DELETE FROM ${qualified(home, COLUMNS_TABLE)} WHERE "table" = ${literal(tableName(column))}::pg_catalog.regclass AND "column" = ${literal(column.column)}`,
  ];
}

function uniqueTables(columns: TriggerColumn[]): Pick<TriggerColumn, "schema" | "table">[] {
  const seen = new Map<string, Pick<TriggerColumn, "schema" | "table">>();
  for (const c of columns) seen.set(`${c.schema}\u0000${c.table}`, { schema: c.schema, table: c.table });
  return [...seen.values()];
}

/** The schema objects of our tables live in when the entity and data source name none. */
async function currentSchema(scope: TransactionScope): Promise<string> {
  const rows = await scope.query<{ schema: string | null }>("SELECT pg_catalog.current_schema() AS schema");
  const schema = rows[0]?.schema;
  if (!schema) {
    throw new LargeObjectError("ERR_LO_DATABASE", "no current schema: the search_path names no existing schema");
  }
  return schema;
}

/** The record table's metadata, found by name so that a second copy of this library still matches. */
function recordsMetadata(dataSource: DataSource): { schema?: string; tableName: string } | undefined {
  return dataSource.entityMetadatas.find((e) => e.tableName === RECORDS_TABLE && e.tableType !== "view");
}

function schemaOf(dataSource: DataSource, entity: { schema?: string }, fallback: string): string {
  return entity.schema ?? (dataSource.options as { schema?: string }).schema ?? fallback;
}

/** The schema holding the record table (and our functions), and the record table's quoted name. */
export async function resolveHome(dataSource: DataSource, scope: TransactionScope): Promise<{ home: string; records: string }> {
  const current = await currentSchema(scope);
  const meta = recordsMetadata(dataSource);
  const home = schemaOf(dataSource, meta ?? {}, current);
  return { home, records: qualified(home, meta?.tableName ?? RECORDS_TABLE) };
}

/** Like {@link resolveHome}, and ERR_LO_NOT_REGISTERED when the record table does not exist. */
export async function locateRecords(dataSource: DataSource, scope: TransactionScope): Promise<{ home: string; records: string }> {
  const located = await resolveHome(dataSource, scope);
  const exists = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [located.records]);
  if (!exists[0]!.found) {
    throw new LargeObjectError(
      "ERR_LO_NOT_REGISTERED",
      `the record table ${located.records} does not exist: register the data source with registerLargeObjects() and synchronize or migrate`,
    );
  }
  return located;
}

/** The distinct table columns behind the data source's large-object columns (inheritance shares tables). */
function triggerColumns(dataSource: DataSource, current: string): TriggerColumn[] {
  const seen = new Map<string, TriggerColumn>();
  for (const info of largeObjectColumns(dataSource)) {
    if (info.entity.tableType === "view") continue;
    const column = { schema: schemaOf(dataSource, info.entity, current), table: info.entity.tableName, column: info.column.databaseName };
    seen.set(`${column.schema}\u0000${column.table}\u0000${column.column}`, column);
  }
  return [...seen.values()];
}

async function plan(dataSource: DataSource, scope: TransactionScope): Promise<TriggerPlan> {
  if (recordsMetadata(dataSource) === undefined) {
    throw new LargeObjectError(
      "ERR_LO_NOT_REGISTERED",
      "the large-object triggers need the record table: call registerLargeObjects(dataSource) before initialize()",
    );
  }
  const { home, records } = await resolveHome(dataSource, scope);
  return { home, records, columns: triggerColumns(dataSource, await currentSchema(scope)) };
}

function withScope<T>(source: LargeObjectSource, task: (scope: TransactionScope, dataSource: DataSource) => Promise<T>): Promise<T> {
  const dataSource = dataSourceOf(source);
  return TransactionScope.using(source, { transaction: true }, (scope) => task(scope, dataSource)).catch((err: unknown) => {
    throw toLargeObjectError(err);
  });
}

interface ExistingColumn {
  table_oid: number;
  schema: string | null;
  table: string | null;
  column: string;
  live: boolean;
}

/**
 * Installs or refreshes the unlink triggers, reference indexes and functions for every
 * large-object column of the data source, and removes those of columns that are no longer
 * large-object columns (or no longer exist). Idempotent and cheap when nothing changed; runs in
 * one transaction (the caller's, when given a query runner inside one). Columns that do not exist
 * yet are skipped, so it may run in a migration before a later migration adds them.
 *
 * @example
 * await dataSource.initialize();
 * await syncLargeObjectTriggers(dataSource); // registerLargeObjects() does this after synchronize()
 */
export async function syncLargeObjectTriggers(source: DataSource | QueryRunner): Promise<void> {
  await withScope(source, async (scope, dataSource) => {
    const { home, records, columns } = await plan(dataSource, scope);
    await scope.query("SELECT pg_catalog.pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
    const run = async (statements: string[]): Promise<void> => {
      for (const statement of statements) await scope.query(statement);
    };
    const tableExists = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [
      records,
    ]);
    if (!tableExists[0]!.found) {
      throw new LargeObjectError(
        "ERR_LO_NOT_REGISTERED",
        `the record table ${records} does not exist: run synchronize or the migration that creates it first`,
      );
    }
    await run(columnsTableSql(home));
    for (const fn of functionSql(home, records)) {
      // Replacing an unchanged function would still rewrite the catalog and invalidate cached plans.
      const current = await scope.query<{ same: boolean }>(
        `SELECT p.prosrc = $2 AS same FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure($1)`,
        [fn.signature, bodyOf(fn.sql)],
      );
      if (current[0]?.same !== true) await scope.query(fn.sql);
    }

    // Which of the wanted columns exist now (a migration may add them later).
    const present: TriggerColumn[] = [];
    for (const column of columns) {
      const rows = await scope.query<{ found: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
           WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped) AS found`,
        [tableName(column), column.column],
      );
      if (rows[0]!.found) present.push(column);
    }

    const existing = await scope.query<ExistingColumn>(
      `SELECT c."table"::oid AS table_oid, n.nspname AS schema, t.relname AS table, c."column",
              EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = c."table" AND a.attname = c."column" AND NOT a.attisdropped) AS live
         FROM ${qualified(home, COLUMNS_TABLE)} c
         LEFT JOIN pg_catalog.pg_class t ON t.oid = c."table"
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace`,
    );
    const wanted = new Set(present.map((c) => `${c.schema}\u0000${c.table}\u0000${c.column}`));
    const ourTables = new Set(columns.map((c) => `${c.schema}\u0000${c.table}`));
    let changed = false;
    for (const row of existing) {
      const key = `${row.schema}\u0000${row.table}\u0000${row.column}`;
      if (row.schema !== null && row.table !== null && wanted.has(key)) continue;
      // Rows of tables this data source does not know are another data source's: leave them,
      // unless their table or column is gone.
      const known = row.schema !== null && row.table !== null && ourTables.has(`${row.schema}\u0000${row.table}`);
      if (row.live && !known) continue;
      if (row.schema !== null && row.table !== null) {
        await run(removeColumnSql(home, { schema: row.schema, table: row.table, column: row.column }));
      } else {
        await scope.query(`DELETE FROM ${qualified(home, COLUMNS_TABLE)} WHERE "table"::oid = $1 AND "column" = $2`, [
          row.table_oid,
          row.column,
        ]);
      }
      changed = true;
    }

    const registered = new Set(
      existing.filter((r) => r.schema !== null && r.table !== null).map((r) => `${r.schema}\u0000${r.table}\u0000${r.column}`),
    );
    const indexed = await existingIndexes(scope, present);
    for (const column of present) {
      const key = `${column.schema}\u0000${column.table}\u0000${column.column}`;
      if (registered.has(key) && indexed.has(key)) continue;
      await run(installColumnSql(home, column));
      changed = true;
    }

    // Tables that carry our triggers: keep them on tables with covered columns, drop them elsewhere.
    const triggered = await scope.query<{ schema: string; table: string; triggers: string[]; args: Buffer[] }>(
      `SELECT n.nspname AS schema, c.relname AS table, pg_catalog.array_agg(t.tgname::text ORDER BY t.tgname) AS triggers,
              pg_catalog.array_agg(t.tgargs ORDER BY t.tgname) AS args
         FROM pg_catalog.pg_trigger t
         JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname IN ($1, $2)
          AND t.tgfoid IN (pg_catalog.to_regprocedure($3), pg_catalog.to_regprocedure($4))
        GROUP BY n.nspname, c.relname`,
      [ROW_TRIGGER, TRUNCATE_TRIGGER, `${qualified(home, ROW_FUNCTION)}()`, `${qualified(home, TRUNCATE_FUNCTION)}()`],
    );
    const covered = await scope.query<{ schema: string; table: string; columns: string[] }>(
      `SELECT n.nspname AS schema, t.relname AS table, pg_catalog.array_agg(c."column" ORDER BY c."column") AS columns
         FROM ${qualified(home, COLUMNS_TABLE)} c
         JOIN pg_catalog.pg_class t ON t.oid = c."table"
         JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
        GROUP BY n.nspname, t.relname`,
    );
    const coveredKeys = new Set(covered.map((t) => `${t.schema}\u0000${t.table}`));
    for (const table of triggered) {
      if (!coveredKeys.has(`${table.schema}\u0000${table.table}`)) {
        await run(removeTableSql(table));
        changed = true;
      }
    }
    for (const table of covered) {
      const found = triggered.find((t) => t.schema === table.schema && t.table === table.table);
      const wantedArgs = table.columns.join("\u0000");
      const current =
        found !== undefined &&
        found.triggers.length === 2 &&
        found.triggers.includes(ROW_TRIGGER) &&
        found.triggers.includes(TRUNCATE_TRIGGER) &&
        found.args.every((a) => triggerArguments(a).join("\u0000") === wantedArgs);
      if (current) continue;
      await run(installTableSql(home, table, table.columns));
      changed = true;
    }
    // The functions join the column table with pg_attribute on every release: without statistics
    // the planner scans pg_attribute each time (measured: 15x slower deletes).
    if (changed) await scope.query(`ANALYZE ${qualified(home, COLUMNS_TABLE)}`);
  });
}

/** pg_trigger.tgargs: each argument followed by a NUL byte. */
function triggerArguments(raw: Buffer): string[] {
  const args: string[] = [];
  let start = 0;
  for (let i = 0; i < raw.length; i += 1) {
    if (raw[i] === 0) {
      args.push(raw.subarray(start, i).toString("utf8"));
      start = i + 1;
    }
  }
  return args;
}

function bodyOf(sql: string): string {
  const match = /AS (\$tlo\d*\$)([\s\S]*)\1$/.exec(sql);
  return match?.[2] ?? "";
}

async function existingIndexes(scope: TransactionScope, columns: TriggerColumn[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const column of columns) {
    const rows = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [
      qualified(column.schema, indexName(column)),
    ]);
    if (rows[0]!.found) found.add(`${column.schema}\u0000${column.table}\u0000${column.column}`);
  }
  return found;
}

/**
 * Installs the triggers from a migration's `up()`: the same as {@link syncLargeObjectTriggers}, on
 * the migration's query runner and transaction.
 *
 * @example
 * export class LargeObjectTriggers1700000000000 implements MigrationInterface {
 *   up = (queryRunner: QueryRunner) => installLargeObjectTriggers(queryRunner);
 *   down = (queryRunner: QueryRunner) => removeLargeObjectTriggers(queryRunner);
 * }
 */
export function installLargeObjectTriggers(queryRunner: QueryRunner): Promise<void> {
  return syncLargeObjectTriggers(queryRunner);
}

/**
 * Removes every trigger, reference index and function this library installed in the data source's
 * schema, and the column table. Objects already stored are left as they are.
 *
 * @example
 * down = (queryRunner: QueryRunner) => removeLargeObjectTriggers(queryRunner);
 */
export async function removeLargeObjectTriggers(source: DataSource | QueryRunner): Promise<void> {
  await withScope(source, async (scope, dataSource) => {
    const { home } = await resolveHome(dataSource, scope);
    await scope.query("SELECT pg_catalog.pg_advisory_xact_lock($1)", [INSTALL_LOCK_KEY]);
    const hasTable = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [
      qualified(home, COLUMNS_TABLE),
    ]);
    if (hasTable[0]!.found) {
      const indexes = await scope.query<{ index: string }>(
        `SELECT c."index"::text AS index FROM ${qualified(home, COLUMNS_TABLE)} c
          WHERE c."index" IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_class i WHERE i.oid = c."index")`,
      );
      for (const { index } of indexes) await scope.query(`DROP INDEX IF EXISTS ${index}`);
    }
    const triggered = await scope.query<{ schema: string; table: string }>(
      `SELECT DISTINCT n.nspname AS schema, c.relname AS table
         FROM pg_catalog.pg_trigger t
         JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname IN ($1, $2) AND t.tgfoid IN (pg_catalog.to_regprocedure($3), pg_catalog.to_regprocedure($4))`,
      [ROW_TRIGGER, TRUNCATE_TRIGGER, `${qualified(home, ROW_FUNCTION)}()`, `${qualified(home, TRUNCATE_FUNCTION)}()`],
    );
    for (const table of triggered) for (const statement of removeTableSql(table)) await scope.query(statement);
    for (const fn of functionSql(home, "unused")) await scope.query(`DROP FUNCTION IF EXISTS ${fn.signature}`);
    await scope.query(`DROP TABLE IF EXISTS ${qualified(home, COLUMNS_TABLE)}`);
  });
}

/** Statements for a migration file, frozen at the columns the data source declares now. */
export interface TriggerMigrationStatements {
  up: string[];
  down: string[];
}

/**
 * The SQL that installs (up) and removes (down) the triggers for the data source's current
 * large-object columns, for a migration file that must not depend on later entity changes. The
 * `migration:triggers` command of the CLI writes such a file.
 *
 * @example
 * const { up, down } = await largeObjectTriggerStatements(dataSource);
 */
export async function largeObjectTriggerStatements(source: DataSource | QueryRunner): Promise<TriggerMigrationStatements> {
  return withScope(source, async (scope, dataSource) => {
    const { home, records, columns } = await plan(dataSource, scope);
    const tables = uniqueTables(columns);
    const up = [
      ...columnsTableSql(home),
      ...functionSql(home, records).map((f) => f.sql),
      ...columns.flatMap((c) => installColumnSql(home, c)),
      ...tables.flatMap((t) =>
        installTableSql(
          home,
          t,
          columns.filter((c) => c.schema === t.schema && c.table === t.table).map((c) => c.column),
        ),
      ),
      `ANALYZE ${qualified(home, COLUMNS_TABLE)}`,
    ];
    const down = [...tables.flatMap((t) => removeTableSql(t)), ...columns.flatMap((c) => removeColumnSql(home, c))];
    return { up, down };
  });
}

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
        const table = qualified(schemaOf(dataSource, c.entity, current), c.entity.tableName);
        return `SELECT ${n} AS n WHERE EXISTS (SELECT 1 FROM ${table} WHERE ${quoteIdentifier(c.column.databaseName)}::pg_catalog.int8 = $1::pg_catalog.int8)`;
      });
      const rows = await scope.query<{ n: number }>(checks.join(" UNION ALL "), [oid]);
      for (const { n } of rows) {
        const c = columns[n]!;
        found.push({
          entity: c.entity.name,
          property: c.property,
          table: `${schemaOf(dataSource, c.entity, current)}.${c.entity.tableName}`,
          column: c.column.databaseName,
        });
      }
    }
    return found;
  }).catch((err: unknown) => {
    throw toLargeObjectError(err, { oid });
  });
}
