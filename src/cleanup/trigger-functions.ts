import { qualified } from "../sql";

// The PL/pgSQL of the unlink triggers, generated for the schema the record table lives in.

/** @internal Table listing the columns the triggers cover; it lives beside the record table. */
export const COLUMNS_TABLE = "typeorm_large_object_columns";
const RELEASE_FUNCTION = "typeorm_large_object_release";
const ROW_FUNCTION = "typeorm_large_object_row_trigger";
const TRUNCATE_FUNCTION = "typeorm_large_object_truncate_trigger";
/** Setting (per session, role or database) capping the unlinks the triggers make in one transaction. */
export const UNLINK_LIMIT_SETTING = "typeorm_large_object.unlink_limit";
/** Below the shared lock table's default capacity (64 x max_connections), leaving room for others. */
export const DEFAULT_UNLINK_LIMIT = 2000;
const UNLINK_COUNT_SETTING = "typeorm_large_object.unlinked";
/** @internal The transition tables of the statement triggers, as the function bodies name them. */
export const OLD_ROWS = "typeorm_large_object_old";
/** @internal */
export const NEW_ROWS = "typeorm_large_object_new";

/** @internal One generated function: its qualified name, its signature (for DROP and to_regprocedure), body and CREATE statement. */
export interface TriggerFunction {
  name: string;
  signature: string;
  body: string;
  sql: string;
}

/**
 * @internal The release function of the first shape, one object per call (row triggers): a sync
 * drops it once the functions that called it are replaced.
 */
export function legacyReleaseSignature(home: string): string {
  return `${qualified(home, RELEASE_FUNCTION)}(oid, pg_catalog.regclass)`;
}

/** @internal The qualified names and signatures of the three functions, without building their bodies. */
export function triggerFunctionNames(home: string): Record<"release" | "row" | "truncate", { name: string; signature: string }> {
  const release = qualified(home, RELEASE_FUNCTION);
  const row = qualified(home, ROW_FUNCTION);
  const truncate = qualified(home, TRUNCATE_FUNCTION);
  return {
    release: { name: release, signature: `${release}(oid[], pg_catalog.regclass)` },
    row: { name: row, signature: `${row}()` },
    truncate: { name: truncate, signature: `${truncate}()` },
  };
}

function dollarQuote(body: string): string {
  let tag = "$tlo$";
  for (let n = 0; body.includes(tag); n += 1) tag = `$tlo${n}$`;
  return `${tag}${body}${tag}`;
}

/**
 * @internal The oid types (oid and every domain over it, such as the lo extension's `lo`) as a
 * recursive CTE named `oid_types`: a column of one of them is a reference, whoever declared it.
 */
export const OID_TYPES_CTE = `oid_types AS (
       SELECT 'pg_catalog.oid'::pg_catalog.regtype::oid AS oid
       UNION
       SELECT d.oid FROM pg_catalog.pg_type d JOIN oid_types o ON d.typbasetype = o.oid WHERE d.typtype = 'd'
     )`;

/**
 * The function bodies. The triggers pass their table's large-object columns as arguments (no
 * lookup per row). The reference check reads the catalog, never the library's own tables: every
 * column of an oid type in every user table counts, as it does for the sweep, so a column table
 * lost in a restore, emptied or never written cannot make it unlink a referenced object. A column
 * that carries our row trigger (its name is in the trigger's arguments) has the reference index and
 * is probed through it. A column dropped or renamed since the last sync is skipped, never an error,
 * so TypeORM may drop or retype a column before the triggers are refreshed. The triggers name no
 * column in their definition: `UPDATE OF col` or a WHEN clause on the column would make PostgreSQL
 * refuse `ALTER TABLE ... DROP COLUMN` without CASCADE.
 * @internal
 */
export function triggerFunctions(home: string, records: string): TriggerFunction[] {
  const signatures = triggerFunctionNames(home);
  const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;
  // A trigger's arguments are stored NUL-terminated: a column is covered when NUL name NUL occurs.
  const nul = "'\\x00'::pg_catalog.bytea";
  // Driven from pg_class with a lateral probe of pg_attribute by table: a scan of all of
  // pg_attribute on every release would cost more than the rest of the release together.
  const referenceColumns = `WITH RECURSIVE ${OID_TYPES_CTE}
    SELECT c.oid::pg_catalog.regclass AS "table", a.attname AS "column",
           pg_catalog.has_schema_privilege(c.relnamespace, 'USAGE')
             AND pg_catalog.has_column_privilege(c.oid, a.attnum, 'SELECT') AS readable,
           EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t
                    WHERE t.tgrelid = c.oid AND t.tgfoid = pg_catalog.to_regprocedure(${literal(signatures.row.signature)})
                      AND pg_catalog.position(${nul} || t.tgargs,
                            ${nul} || pg_catalog.convert_to(a.attname::text, pg_catalog.getdatabaseencoding()) || ${nul}) > 0) AS indexed
      FROM pg_catalog.pg_class c
      CROSS JOIN LATERAL (
        SELECT a.attname, a.attnum FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           AND a.atttypid IN (SELECT oid FROM oid_types)
        OFFSET 0) a
     WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
       AND c.relnamespace <> 'pg_catalog'::pg_catalog.regnamespace
       AND c.relnamespace <> 'information_schema'::pg_catalog.regnamespace
       AND c.oid IS DISTINCT FROM pg_catalog.to_regclass(${literal(records)})
       AND c.oid IS DISTINCT FROM except_table`;
  const count = `pg_catalog.current_setting('${UNLINK_COUNT_SETTING}', true)`;
  const limit = `pg_catalog.current_setting('${UNLINK_LIMIT_SETTING}', true)`;
  const owned = "(pg_catalog.pg_has_role(m.lomowner, 'USAGE') OR pg_catalog.current_setting('lo_compat_privileges')::boolean)";
  const release = `
DECLARE
  ref record;
  probes text := '';
  candidates oid[];
  kept oid[];
  doomed oid[];
  unlinked integer;
  room integer;
BEGIN
  SELECT pg_catalog.array_agg(DISTINCT c.o ORDER BY c.o) INTO candidates FROM pg_catalog.unnest(objects) AS c(o) WHERE c.o IS NOT NULL;
  IF candidates IS NULL THEN RETURN 0; END IF;
  -- Raw SQL can share an object between rows: one goes only when no oid column of any table still
  -- references it (the triggers run AFTER, so the rows being deleted or changed are not seen). The
  -- whole set is checked in one statement, an anti-join per column, not a probe per object.
  FOR ref IN ${referenceColumns}
  LOOP
    -- A column this role may not read might reference any of them: keep them all (the sweep says why).
    IF NOT ref.readable THEN RETURN 0; END IF;
    IF ref.indexed THEN
      probes := probes || pg_catalog.format(' AND NOT EXISTS (SELECT 1 FROM %s r WHERE r.%I::pg_catalog.int8 = c.o::pg_catalog.int8)', ref."table", ref."column");
    ELSE
      probes := probes || pg_catalog.format(' AND NOT EXISTS (SELECT 1 FROM %s r WHERE r.%I = c.o)', ref."table", ref."column");
    END IF;
  END LOOP;
  -- Objects this role may not unlink stay (and keep their records): refusing the user's DELETE
  -- over them would be worse, and so would touching record rows this role may not lock.
  EXECUTE 'SELECT pg_catalog.array_agg(c.o ORDER BY c.o) FROM pg_catalog.unnest($1) AS c(o)
            WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = c.o AND NOT ${owned.replace(/'/g, "''")})' || probes
    INTO candidates USING candidates;
  IF candidates IS NULL THEN RETURN 0; END IF;
  -- Records of objects already gone go too.
  DELETE FROM ${records} r WHERE r.oid = ANY (candidates)
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid);
  SELECT pg_catalog.array_agg(m.oid ORDER BY m.oid) INTO candidates
    FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = ANY (candidates);
  IF candidates IS NULL THEN RETURN 0; END IF;
  -- lo_unlink holds a lock per object until commit, and the lock table is shared: past the limit,
  -- the rest of a bulk DELETE or TRUNCATE is left to the sweep (recorded as due at once) rather
  -- than failing the user's statement with "out of shared memory".
  unlinked := COALESCE(NULLIF(${count}, ''), '0')::integer;
  room := GREATEST(COALESCE(NULLIF(${limit}, ''), '${DEFAULT_UNLINK_LIMIT}')::integer - unlinked, 0);
  IF pg_catalog.cardinality(candidates) > room THEN
    INSERT INTO ${records} (oid, created_for, created_at)
      SELECT c.o, 'deferred by a bulk delete', '-infinity' FROM pg_catalog.unnest(candidates[room + 1:]) AS c(o)
      ON CONFLICT (oid) DO UPDATE SET created_at = '-infinity';
    candidates := candidates[1:room];
  END IF;
  IF pg_catalog.cardinality(candidates) = 0 THEN RETURN 0; END IF;
  -- The sweep holds record rows FOR UPDATE while it unlinks: wait for it (in oid order, as every
  -- release locks, so two releases cannot deadlock), then look again.
  PERFORM 1 FROM (SELECT r.oid FROM ${records} r WHERE r.oid = ANY (candidates) ORDER BY r.oid FOR UPDATE) l;
  SELECT pg_catalog.array_agg(m.oid) FILTER (WHERE NOT ${owned}), pg_catalog.array_agg(m.oid ORDER BY m.oid) FILTER (WHERE ${owned})
    INTO kept, doomed
    FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = ANY (candidates);
  DELETE FROM ${records} r WHERE r.oid = ANY (candidates) AND r.oid <> ALL (COALESCE(kept, '{}'));
  IF doomed IS NULL THEN RETURN 0; END IF;
  PERFORM pg_catalog.lo_unlink(c.o) FROM pg_catalog.unnest(doomed) AS c(o);
  PERFORM pg_catalog.set_config('${UNLINK_COUNT_SETTING}', (unlinked + pg_catalog.cardinality(doomed))::text, true);
  RETURN pg_catalog.cardinality(doomed);
END`;
  // The statement triggers see the changed rows as transition tables: every old value, less (for
  // an UPDATE) the values the new rows still hold, is a candidate. A trigger of the row-level shape
  // (a database whose sync has not run since) goes through the same release one row at a time.
  const row = `
DECLARE
  col text;
  found oid[];
  objects oid[] := '{}';
  old_oid oid;
  new_oid oid;
BEGIN
  FOR col IN SELECT a.attname::text FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attname = ANY (TG_ARGV) AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF TG_LEVEL = 'ROW' THEN
      IF TG_OP = 'DELETE' THEN
        EXECUTE pg_catalog.format('SELECT ($1).%I::pg_catalog.oid', col) INTO old_oid USING OLD;
      ELSE
        EXECUTE pg_catalog.format('SELECT ($1).%1$I::pg_catalog.oid, ($2).%1$I::pg_catalog.oid', col) INTO old_oid, new_oid USING OLD, NEW;
        CONTINUE WHEN old_oid IS NOT DISTINCT FROM new_oid;
      END IF;
      objects := objects || old_oid;
    ELSIF TG_OP = 'DELETE' THEN
      EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(o.%1$I::pg_catalog.oid) FROM ${OLD_ROWS} o WHERE o.%1$I IS NOT NULL', col)
        INTO found;
      objects := objects || found;
    ELSE
      EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(d.o) FROM (
          SELECT o.%1$I::pg_catalog.oid FROM ${OLD_ROWS} o WHERE o.%1$I IS NOT NULL
          EXCEPT SELECT n.%1$I::pg_catalog.oid FROM ${NEW_ROWS} n WHERE n.%1$I IS NOT NULL) AS d(o)', col)
        INTO found;
      objects := objects || found;
    END IF;
  END LOOP;
  IF pg_catalog.cardinality(objects) > 0 THEN PERFORM ${signatures.release.name}(objects, NULL); END IF;
  RETURN NULL;
END`;
  const truncate = `
DECLARE
  col text;
  found oid[];
  objects oid[] := '{}';
BEGIN
  FOR col IN SELECT a.attname::text FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = TG_RELID AND a.attname = ANY (TG_ARGV) AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    EXECUTE pg_catalog.format('SELECT pg_catalog.array_agg(DISTINCT %1$I::pg_catalog.oid) FROM %2$s WHERE %1$I IS NOT NULL', col, TG_RELID::pg_catalog.regclass)
      INTO found;
    objects := objects || found;
  END LOOP;
  -- Every row of this table is going: only references from other tables keep an object.
  IF pg_catalog.cardinality(objects) > 0 THEN PERFORM ${signatures.release.name}(objects, TG_RELID::pg_catalog.regclass); END IF;
  RETURN NULL;
END`;
  return [
    {
      ...signatures.release,
      body: release,
      sql: `CREATE OR REPLACE FUNCTION ${signatures.release.name}(objects oid[], except_table pg_catalog.regclass DEFAULT NULL)
  RETURNS integer LANGUAGE plpgsql AS ${dollarQuote(release)}`,
    },
    {
      ...signatures.row,
      body: row,
      sql: `CREATE OR REPLACE FUNCTION ${signatures.row.name}() RETURNS trigger LANGUAGE plpgsql AS ${dollarQuote(row)}`,
    },
    {
      ...signatures.truncate,
      body: truncate,
      sql: `CREATE OR REPLACE FUNCTION ${signatures.truncate.name}() RETURNS trigger LANGUAGE plpgsql AS ${dollarQuote(truncate)}`,
    },
  ];
}
