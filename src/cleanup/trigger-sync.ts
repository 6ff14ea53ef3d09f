import { createHash } from "node:crypto";
import type { DataSource, QueryRunner } from "typeorm";
import { LargeObjectError, toLargeObjectError } from "../errors";
import { qualified, quoteIdentifier, schemaOf } from "../sql";
import { currentSchema, relationExists } from "../connection/catalog";
import { dataSourceOf, type LargeObjectSource } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import { largeObjectColumns } from "../orm/column";
import { assertRecordTable, recordsMetadata, resolveHome } from "./home";
import { COLUMNS_TABLE, NEW_ROWS, OLD_ROWS, legacyReleaseSignature, triggerFunctionNames, triggerFunctions } from "./trigger-functions";

/** Trigger names are per table, so fixed names stay short whatever the table is called. */
const DELETE_TRIGGER = "typeorm_large_object_deletes";
const UPDATE_TRIGGER = "typeorm_large_object_updates";
const TRUNCATE_TRIGGER = "typeorm_large_object_truncate";
/** The row-level trigger of the first shape, replaced by the two statement triggers on the next sync. */
const LEGACY_ROW_TRIGGER = "typeorm_large_object_rows";
/** Our triggers as a table carries them once synced, in name order. */
const TABLE_TRIGGERS = [DELETE_TRIGGER, TRUNCATE_TRIGGER, UPDATE_TRIGGER];
const INDEX_PREFIX = "typeorm_lo_";
const MARKER = "typeorm-large-object";
/** Serializes concurrent installs (several application instances starting at once). */
const INSTALL_LOCK_KEY = 0x746c6f01;

/** @internal A large-object column as the triggers see it: schema, table and column names. */
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

/** A string literal (for COMMENT, which takes no parameters). */
function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Identity of a table or column as one string: its names joined by NUL, which no name contains. */
function key(...names: (string | null)[]): string {
  return names.join("\u0000");
}

function columnKey(c: { schema: string | null; table: string | null; column: string }): string {
  return key(c.schema, c.table, c.column);
}

function tableKey(t: { schema: string | null; table: string | null }): string {
  return key(t.schema, t.table);
}

/** @internal Index names must be unique per schema and at most 63 bytes: a hash of the column's identity. */
export function indexName(column: TriggerColumn): string {
  const hash = createHash("sha256").update(columnKey(column)).digest("hex");
  return `${INDEX_PREFIX}${hash.slice(0, 20)}`;
}

/**
 * The column table holds names, never a `regclass`: pg_restore loads table data before it creates
 * indexes, so a value naming an index (or a table outside a `--schema` dump) would fail the table's
 * COPY. Nothing depends on it for safety; it tells the sync which columns it covered and the sweep
 * which columns have a reference index.
 */
function columnsTableSql(home: string): string[] {
  const table = qualified(home, COLUMNS_TABLE);
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (
  "schema" text NOT NULL,
  "table" text NOT NULL,
  "column" text NOT NULL,
  "index" text,
  PRIMARY KEY ("schema", "table", "column")
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
    `INSERT INTO ${qualified(home, COLUMNS_TABLE)} ("schema", "table", "column", "index")
  VALUES (${literal(column.schema)}, ${literal(column.table)}, ${literal(column.column)}, ${literal(index)})
  ON CONFLICT ("schema", "table", "column") DO UPDATE SET "index" = EXCLUDED."index"`,
  ];
}

function installTableSql(home: string, table: Pick<TriggerColumn, "schema" | "table">, columns: string[]): string[] {
  const name = tableName(table);
  const args = columns.map(literal).join(", ");
  const fn = triggerFunctionNames(home).row.name;
  // Statement triggers with transition tables: one reference check for all the rows of a
  // statement, where a row trigger checked every table once per row. A trigger with transition
  // tables takes a single event, hence two.
  return [
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(LEGACY_ROW_TRIGGER)} ON ${name}`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(DELETE_TRIGGER)} ON ${name}`,
    `CREATE TRIGGER ${quoteIdentifier(DELETE_TRIGGER)} AFTER DELETE ON ${name} REFERENCING OLD TABLE AS ${OLD_ROWS} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}(${args})`,
    `COMMENT ON TRIGGER ${quoteIdentifier(DELETE_TRIGGER)} ON ${name} IS ${literal(`${MARKER}: unlinks the large objects of deleted rows`)}`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(UPDATE_TRIGGER)} ON ${name}`,
    `CREATE TRIGGER ${quoteIdentifier(UPDATE_TRIGGER)} AFTER UPDATE ON ${name} REFERENCING OLD TABLE AS ${OLD_ROWS} NEW TABLE AS ${NEW_ROWS} FOR EACH STATEMENT EXECUTE FUNCTION ${fn}(${args})`,
    `COMMENT ON TRIGGER ${quoteIdentifier(UPDATE_TRIGGER)} ON ${name} IS ${literal(`${MARKER}: unlinks the large objects of replaced values`)}`,
    `DROP TRIGGER IF EXISTS ${quoteIdentifier(TRUNCATE_TRIGGER)} ON ${name}`,
    `CREATE TRIGGER ${quoteIdentifier(TRUNCATE_TRIGGER)} BEFORE TRUNCATE ON ${name} FOR EACH STATEMENT EXECUTE FUNCTION ${triggerFunctionNames(home).truncate.name}(${args})`,
    `COMMENT ON TRIGGER ${quoteIdentifier(TRUNCATE_TRIGGER)} ON ${name} IS ${literal(`${MARKER}: unlinks the large objects of a truncated table`)}`,
  ];
}

function removeTableSql(table: Pick<TriggerColumn, "schema" | "table">): string[] {
  return [LEGACY_ROW_TRIGGER, ...TABLE_TRIGGERS].map((t) => `DROP TRIGGER IF EXISTS ${quoteIdentifier(t)} ON ${tableName(table)}`);
}

function removeColumnSql(home: string, column: TriggerColumn): string[] {
  return [
    `DROP INDEX IF EXISTS ${qualified(column.schema, indexName(column))}`,
    `DELETE FROM ${qualified(home, COLUMNS_TABLE)}
  WHERE "schema" = ${literal(column.schema)} AND "table" = ${literal(column.table)} AND "column" = ${literal(column.column)}`,
  ];
}

async function columnExists(scope: TransactionScope, column: TriggerColumn): Promise<boolean> {
  const rows = await scope.query<{ found: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
       WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped) AS found`,
    [tableName(column), column.column],
  );
  return rows[0]!.found;
}

function uniqueTables(columns: TriggerColumn[]): Pick<TriggerColumn, "schema" | "table">[] {
  const seen = new Map<string, Pick<TriggerColumn, "schema" | "table">>();
  for (const c of columns) seen.set(tableKey(c), { schema: c.schema, table: c.table });
  return [...seen.values()];
}

/** The distinct table columns behind the data source's large-object columns (inheritance shares tables). */
function triggerColumns(dataSource: DataSource, current: string): TriggerColumn[] {
  const seen = new Map<string, TriggerColumn>();
  for (const info of largeObjectColumns(dataSource)) {
    if (info.entity.tableType === "view") continue;
    const column = { schema: schemaOf(dataSource, info.entity) ?? current, table: info.entity.tableName, column: info.column.databaseName };
    seen.set(columnKey(column), column);
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
  schema: string;
  table: string;
  column: string;
  live: boolean;
  /** The row names its reference index. */
  indexed: boolean;
}

/** SQL testing that the column named by a column-table row `c` exists. */
const LIVE_COLUMN = `EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(c."schema") || '.' || pg_catalog.quote_ident(c."table"))
           AND a.attname = c."column" AND NOT a.attisdropped)`;

/**
 * A column table of the first shape named tables and indexes by `regclass`, which made every dump
 * of it fail to restore: rewrite it as names, keeping its rows.
 */
async function upgradeColumnsTable(scope: TransactionScope, home: string): Promise<void> {
  const table = qualified(home, COLUMNS_TABLE);
  const shape = await scope.query<{ named: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
       WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname = 'schema' AND NOT a.attisdropped) AS named`,
    [table],
  );
  if (shape[0]!.named || !(await relationExists(scope, table))) return;
  const rows = await scope.query<{ schema: string; table: string; column: string; index: string | null }>(
    `SELECT n.nspname AS schema, t.relname AS table, c."column", i.relname AS index
       FROM ${table} c
       JOIN pg_catalog.pg_class t ON t.oid = c."table"
       JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
       LEFT JOIN pg_catalog.pg_class i ON i.oid = c."index"`,
  );
  await scope.query(`DROP TABLE ${table}`);
  for (const statement of columnsTableSql(home)) await scope.query(statement);
  for (const row of rows) {
    await scope.query(`INSERT INTO ${table} ("schema", "table", "column", "index") VALUES ($1, $2, $3, $4)`, [
      row.schema,
      row.table,
      row.column,
      row.index,
    ]);
  }
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
    await assertRecordTable(scope, records);
    await upgradeColumnsTable(scope, home);
    await run(columnsTableSql(home));
    for (const fn of triggerFunctions(home, records)) {
      // Replacing an unchanged function would still rewrite the catalog and invalidate cached plans.
      const current = await scope.query<{ same: boolean }>(
        `SELECT p.prosrc = $2 AS same FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure($1)`,
        [fn.signature, fn.body],
      );
      if (current[0]?.same !== true) await scope.query(fn.sql);
    }
    // Nothing calls the release function of the first shape once the others are replaced.
    const legacy = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regprocedure($1) IS NOT NULL AS found", [legacyReleaseSignature(home)]);
    if (legacy[0]!.found) await scope.query(`DROP FUNCTION ${legacyReleaseSignature(home)}`);

    // Which of the wanted columns exist now (a migration may add them later).
    const present: TriggerColumn[] = [];
    for (const column of columns) if (await columnExists(scope, column)) present.push(column);

    const existing = await scope.query<ExistingColumn>(
      `SELECT c."schema" AS schema, c."table" AS table, c."column", ${LIVE_COLUMN} AS live, c."index" IS NOT NULL AS indexed
         FROM ${qualified(home, COLUMNS_TABLE)} c`,
    );
    const wanted = new Set(present.map(columnKey));
    const ourTables = new Set(columns.map(tableKey));
    for (const row of existing) {
      if (wanted.has(columnKey(row))) continue;
      // Rows of tables this data source does not know are another data source's: leave them,
      // unless their table or column is gone.
      if (row.live && !ourTables.has(tableKey(row))) continue;
      await run(removeColumnSql(home, { schema: row.schema, table: row.table, column: row.column }));
    }

    const registered = new Set(existing.filter((r) => r.indexed).map(columnKey));
    const indexed = await existingIndexes(scope, present);
    for (const column of present) {
      if (registered.has(columnKey(column)) && indexed.has(columnKey(column))) continue;
      await run(installColumnSql(home, column));
    }

    // Tables that carry our triggers: keep them on tables with covered columns, drop them elsewhere.
    const triggered = await triggeredTables(scope, home);
    const covered = await scope.query<{ schema: string; table: string; columns: string[] }>(
      `SELECT c."schema" AS schema, c."table" AS table, pg_catalog.array_agg(c."column" ORDER BY c."column") AS columns
         FROM ${qualified(home, COLUMNS_TABLE)} c
        WHERE ${LIVE_COLUMN}
        GROUP BY c."schema", c."table"`,
    );
    const coveredKeys = new Set(covered.map(tableKey));
    for (const table of triggered) {
      if (!coveredKeys.has(tableKey(table))) {
        await run(removeTableSql(table));
      }
    }
    for (const table of covered) {
      const found = triggered.find((t) => t.schema === table.schema && t.table === table.table);
      const wantedArgs = key(...table.columns);
      const current =
        found !== undefined &&
        key(...found.triggers) === key(...TABLE_TRIGGERS) &&
        found.args.every((a) => key(...triggerArguments(a)) === wantedArgs);
      if (current) continue;
      await run(installTableSql(home, table, table.columns));
    }
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

/** The tables that carry our triggers (either of them), with their trigger names and arguments. */
async function triggeredTables(
  scope: TransactionScope,
  home: string,
): Promise<{ schema: string; table: string; triggers: string[]; args: Buffer[] }[]> {
  const functions = triggerFunctionNames(home);
  return scope.query(
    `SELECT n.nspname AS schema, c.relname AS table, pg_catalog.array_agg(t.tgname::text ORDER BY t.tgname) AS triggers,
            pg_catalog.array_agg(t.tgargs ORDER BY t.tgname) AS args
       FROM pg_catalog.pg_trigger t
       JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE t.tgname = ANY ($1::text[])
        AND t.tgfoid IN (pg_catalog.to_regprocedure($2), pg_catalog.to_regprocedure($3))
      GROUP BY n.nspname, c.relname`,
    [[LEGACY_ROW_TRIGGER, ...TABLE_TRIGGERS], functions.row.signature, functions.truncate.signature],
  );
}

async function existingIndexes(scope: TransactionScope, columns: TriggerColumn[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (const column of columns) {
    if (await relationExists(scope, qualified(column.schema, indexName(column)))) found.add(columnKey(column));
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
    await upgradeColumnsTable(scope, home);
    const triggered = await triggeredTables(scope, home);
    // The indexes the column table lists, and those of triggered tables marked as ours (the column
    // table may be missing or empty after a partial restore).
    const indexes = new Set<string>();
    if (await relationExists(scope, qualified(home, COLUMNS_TABLE))) {
      const listed = await scope.query<{ schema: string; index: string }>(
        `SELECT c."schema" AS schema, c."index" AS index FROM ${qualified(home, COLUMNS_TABLE)} c WHERE c."index" IS NOT NULL`,
      );
      for (const row of listed) indexes.add(qualified(row.schema, row.index));
    }
    for (const table of triggered) {
      const marked = await scope.query<{ index: string }>(
        `SELECT i.relname AS index FROM pg_catalog.pg_index x
           JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
           JOIN pg_catalog.pg_description d ON d.objoid = i.oid AND d.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
          WHERE x.indrelid = pg_catalog.to_regclass($1) AND i.relname LIKE $2 AND d.description LIKE $3`,
        [tableName(table), `${INDEX_PREFIX}%`, `${MARKER}: reference index of %`],
      );
      for (const row of marked) indexes.add(qualified(table.schema, row.index));
    }
    for (const index of indexes) await scope.query(`DROP INDEX IF EXISTS ${index}`);
    for (const table of triggered) {
      for (const statement of removeTableSql(table)) await scope.query(statement);
    }
    for (const fn of Object.values(triggerFunctionNames(home))) await scope.query(`DROP FUNCTION IF EXISTS ${fn.signature}`);
    await scope.query(`DROP FUNCTION IF EXISTS ${legacyReleaseSignature(home)}`);
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
      ...triggerFunctions(home, records).map((f) => f.sql),
      `DROP FUNCTION IF EXISTS ${legacyReleaseSignature(home)}`,
      ...columns.flatMap((c) => installColumnSql(home, c)),
      ...tables.flatMap((t) =>
        installTableSql(
          home,
          t,
          columns.filter((c) => c.schema === t.schema && c.table === t.table).map((c) => c.column),
        ),
      ),
    ];
    // Down leaves the database as it was before up: the functions and the column table go too.
    const down = [
      ...tables.flatMap((t) => removeTableSql(t)),
      ...columns.map((c) => `DROP INDEX IF EXISTS ${qualified(c.schema, indexName(c))}`),
      ...Object.values(triggerFunctionNames(home)).map((fn) => `DROP FUNCTION IF EXISTS ${fn.signature}`),
      `DROP FUNCTION IF EXISTS ${legacyReleaseSignature(home)}`,
      `DROP TABLE IF EXISTS ${qualified(home, COLUMNS_TABLE)}`,
    ];
    return { up, down };
  });
}

/**
 * @internal What keeps the triggers from working as installed, one line each with what to run: a
 * missing record table, functions or column table, or declared columns without their triggers (a
 * `--table` restore brings the triggers' tables without the functions, so they fail to restore).
 */
export async function installationProblems(scope: TransactionScope, dataSource: DataSource, home: string, records: string): Promise<string[]> {
  const problems: string[] = [];
  const sync = "call syncLargeObjectTriggers(dataSource) or run the trigger migration again";
  if (!(await relationExists(scope, records))) {
    problems.push(`the record table ${records} does not exist: run the migrations (or synchronize), then ${sync}`);
  }
  const functions = Object.values(triggerFunctionNames(home));
  const found = await scope.query<{ missing: string[] }>(
    `SELECT pg_catalog.array_agg(s ORDER BY s) FILTER (WHERE pg_catalog.to_regprocedure(s) IS NULL) AS missing
       FROM pg_catalog.unnest($1::text[]) AS s`,
    [functions.map((f) => f.signature)],
  );
  const missingFunctions = found[0]?.missing ?? [];
  if (missingFunctions.length > 0) {
    problems.push(`${missingFunctions.length} of the 3 unlink functions are missing in schema ${quoteIdentifier(home)}: ${sync}`);
  }
  if (!(await relationExists(scope, qualified(home, COLUMNS_TABLE)))) {
    problems.push(`the column table ${qualified(home, COLUMNS_TABLE)} does not exist: ${sync}`);
  }
  const triggered = new Map((await triggeredTables(scope, home)).map((t) => [tableKey(t), t]));
  const uncovered: string[] = [];
  for (const column of triggerColumns(dataSource, await currentSchema(scope))) {
    if (!(await columnExists(scope, column))) continue;
    const table = triggered.get(tableKey(column));
    const covered =
      table !== undefined &&
      TABLE_TRIGGERS.every((t) => table.triggers.includes(t)) &&
      table.args.every((a) => triggerArguments(a).includes(column.column));
    if (!covered) uncovered.push(`${tableName(column)}.${quoteIdentifier(column.column)}`);
  }
  if (uncovered.length > 0) {
    problems.push(`${uncovered.length} large-object columns have no unlink triggers (${uncovered.join(", ")}): ${sync}`);
  }
  return problems;
}
