import { Column, Entity, PrimaryGeneratedColumn, type DataSource } from "typeorm";
import { LargeObjectColumn, registerLargeObjects, type LargeObjectValue, installLargeObjectTriggers, largeObjectTriggerStatements, removeLargeObjectTriggers, syncLargeObjectTriggers } from "../../src";
import { makeDataSource, objectExists } from "../support/database";
import { dropCleanup, expectGone, expectIntact, saveWithContent } from "../support/cleanup";

@Entity({ name: "sync_doc" })
class SyncDocV1 {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn() file!: LargeObjectValue;
  @LargeObjectColumn() thumb!: LargeObjectValue;
}

@Entity({ name: "sync_doc" })
class SyncDocV2 {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn() file!: LargeObjectValue;
}

@Entity({ name: "sync_doc" })
class SyncDocV3 {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "text", nullable: true }) note!: string | null;
}

async function open(entity: Function, synchronize = true): Promise<DataSource> {
  return registerLargeObjects(makeDataSource({ entities: [entity], synchronize })).initialize();
}

interface Installed {
  triggers: { table: string; name: string; oid: number }[];
  functions: { name: string; xmin: string }[];
  indexes: { name: string; oid: number }[];
  columns: { table: string; column: string }[];
}

async function installed(ds: DataSource): Promise<Installed> {
  const triggers = await ds.query(
    `SELECT c.relname AS table, t.tgname AS name, t.oid::int AS oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE t.tgname LIKE 'typeorm_large_object%' ORDER BY 1, 2`,
  );
  const functions = await ds.query(
    `SELECT proname AS name, xmin::text AS xmin FROM pg_proc WHERE proname LIKE 'typeorm_large_object%' ORDER BY 1`,
  );
  const indexes = await ds.query(
    `SELECT relname AS name, oid::int AS oid FROM pg_class WHERE relkind = 'i' AND relname LIKE 'typeorm_lo_%' ORDER BY 1`,
  );
  const exists: { t: string | null }[] = await ds.query(`SELECT to_regclass('typeorm_large_object_columns')::text AS t`);
  const columns = exists[0]!.t
    ? await ds.query(`SELECT "table"::text AS table, "column" FROM typeorm_large_object_columns ORDER BY 1, 2`)
    : [];
  return { triggers, functions, indexes, columns };
}

let ds: DataSource | undefined;
afterEach(async () => {
  await dropCleanup(ds);
  ds = undefined;
});

test("synchronize installs a DELETE, an UPDATE and a TRUNCATE trigger per table, an index per column, and a second sync changes nothing", async () => {
  ds = await open(SyncDocV1);
  const first = await installed(ds);
  expect(first.triggers.map((t) => `${t.table}.${t.name}`)).toEqual([
    "sync_doc.typeorm_large_object_deletes",
    "sync_doc.typeorm_large_object_truncate",
    "sync_doc.typeorm_large_object_updates",
  ]);
  expect(first.indexes).toHaveLength(2);
  expect(first.columns).toEqual([
    { table: "sync_doc", column: "file" },
    { table: "sync_doc", column: "thumb" },
  ]);
  expect(first.functions.map((f) => f.name)).toEqual([
    "typeorm_large_object_release",
    "typeorm_large_object_row_trigger",
    "typeorm_large_object_truncate_trigger",
  ]);
  await syncLargeObjectTriggers(ds);
  await ds.synchronize();
  expect(await installed(ds)).toEqual(first);
});

test("TypeORM's schema diff stays empty: the reference indexes and triggers are invisible to it", async () => {
  ds = await open(SyncDocV1);
  const sql = await ds.driver.createSchemaBuilder().log();
  expect(sql.upQueries.map((q) => q.query)).toEqual([]);
});

test("synchronize can drop a large-object column, and the sync drops its index; a table left with none loses its triggers", async () => {
  ds = await open(SyncDocV1);
  const [row] = await saveWithContent(ds, SyncDocV1, 1, 300);
  await ds.destroy();

  ds = await open(SyncDocV2);
  let now = await installed(ds);
  expect(now.columns).toEqual([{ table: "sync_doc", column: "file" }]);
  expect(now.indexes).toHaveLength(1);
  expect(now.triggers).toHaveLength(3);
  await ds.query("DELETE FROM sync_doc WHERE id = $1", [row!.id]);
  await expectGone(ds, [row!]);
  await ds.destroy();

  ds = await open(SyncDocV3);
  now = await installed(ds);
  expect(now.columns).toEqual([]);
  expect(now.indexes).toEqual([]);
  expect(now.triggers).toEqual([]);
});

test("a renamed table keeps its triggers working; a dropped column is skipped before and by the next sync", async () => {
  ds = await open(SyncDocV2);
  const [row] = await saveWithContent(ds, SyncDocV2, 1, 310);
  await ds.query(`ALTER TABLE sync_doc RENAME TO sync_doc_renamed`);
  await ds.query(`DELETE FROM sync_doc_renamed`);
  await expectGone(ds, [row!]);
  await ds.query(`ALTER TABLE sync_doc_renamed RENAME TO sync_doc`);
  await saveWithContent(ds, SyncDocV2, 2, 311);
  await ds.query(`ALTER TABLE sync_doc DROP COLUMN file`);
  // Before the triggers are refreshed, the dropped column is skipped, not an error.
  await ds.query(`DELETE FROM sync_doc WHERE id = (SELECT min(id) FROM sync_doc)`);
  await ds.query(`UPDATE sync_doc SET id = id`);
  await ds.query(`TRUNCATE sync_doc`);
  await expect(syncLargeObjectTriggers(ds)).resolves.toBeUndefined();
  expect((await installed(ds)).columns).toEqual([]);
});

test("migration helpers: remove, then install inside the migration's transaction", async () => {
  ds = await open(SyncDocV2);
  await removeLargeObjectTriggers(ds);
  const removed = await installed(ds);
  expect(removed).toEqual({ triggers: [], functions: [], indexes: [], columns: [] });
  const [unprotected] = await saveWithContent(ds, SyncDocV2, 1, 320);
  await ds.query("DELETE FROM sync_doc");
  expect(await objectExists(ds, unprotected!.oid)).toBe(true);
  await ds.query("SELECT lo_unlink($1)", [unprotected!.oid]);

  const runner = ds.createQueryRunner();
  await runner.startTransaction();
  await installLargeObjectTriggers(runner);
  await runner.rollbackTransaction();
  expect((await installed(ds)).triggers).toEqual([]);
  await runner.startTransaction();
  await installLargeObjectTriggers(runner);
  await runner.commitTransaction();
  await runner.release();
  const [row] = await saveWithContent(ds, SyncDocV2, 1, 330);
  await ds.query("DELETE FROM sync_doc");
  await expectGone(ds, [row!]);
});

test("statements for a migration file install and remove the same thing", async () => {
  ds = await open(SyncDocV2);
  const { up, down } = await largeObjectTriggerStatements(ds);
  await removeLargeObjectTriggers(ds);
  for (const statement of up) await ds.query(statement);
  for (const statement of up) await ds.query(statement);
  const after = await installed(ds);
  expect(after.triggers).toHaveLength(3);
  expect(after.columns).toEqual([{ table: "sync_doc", column: "file" }]);
  const [row, keep] = await saveWithContent(ds, SyncDocV2, 2, 340);
  await ds.query("DELETE FROM sync_doc WHERE id = $1", [row!.id]);
  await expectGone(ds, [row!]);
  for (const statement of down) await ds.query(statement);
  const gone = await installed(ds);
  expect(gone.triggers).toEqual([]);
  expect(gone.indexes).toEqual([]);
  expect(gone.columns).toEqual([]);
  await ds.query("DELETE FROM sync_doc");
  await expectIntact(ds, [keep!]);
});

test("an installation with the row trigger of the first shape keeps working, and the next sync replaces it", async () => {
  ds = await open(SyncDocV1);
  // The first shape: one row trigger for UPDATE and DELETE, and a release function per object.
  await ds.query("DROP TRIGGER typeorm_large_object_deletes ON sync_doc");
  await ds.query("DROP TRIGGER typeorm_large_object_updates ON sync_doc");
  await ds.query(
    `CREATE TRIGGER typeorm_large_object_rows AFTER UPDATE OR DELETE ON sync_doc FOR EACH ROW
       EXECUTE FUNCTION typeorm_large_object_row_trigger('file', 'thumb')`,
  );
  await ds.query("CREATE FUNCTION typeorm_large_object_release(o oid, except_table regclass) RETURNS boolean LANGUAGE sql AS 'SELECT false'");
  const [deleted, replaced, shared, kept] = await saveWithContent(ds, SyncDocV1, 4, 360);
  await ds.query("CREATE TABLE sync_raw (ref oid)");
  await ds.query("INSERT INTO sync_raw VALUES ($1)", [shared!.oid]);
  await ds.query("DELETE FROM sync_doc WHERE id = ANY ($1::int[])", [[deleted!.id, shared!.id]]);
  await ds.query("UPDATE sync_doc SET file = NULL WHERE id = $1", [replaced!.id]);
  await expectGone(ds, [deleted!, replaced!]);
  await expectIntact(ds, [shared!, kept!]);

  await syncLargeObjectTriggers(ds);
  const now = await installed(ds);
  expect(now.triggers.map((t) => t.name)).toEqual(["typeorm_large_object_deletes", "typeorm_large_object_truncate", "typeorm_large_object_updates"]);
  const legacy: { found: boolean }[] = await ds.query("SELECT to_regprocedure('typeorm_large_object_release(oid, regclass)') IS NOT NULL AS found");
  expect(legacy).toEqual([{ found: false }]);
  await ds.query("DELETE FROM sync_doc WHERE id = $1", [kept!.id]);
  await expectGone(ds, [kept!]);
  await ds.query("DELETE FROM sync_raw");
  await ds.query("DROP TABLE sync_raw");
  await ds.query("SELECT lo_unlink($1)", [shared!.oid]);
});
