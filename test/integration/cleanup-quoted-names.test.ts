import type { DataSource } from "typeorm";
import { registerLargeObjects, sweepOrphans, findReferences, removeLargeObjectTriggers, syncLargeObjectTriggers } from "../../src";
import { countObjects, makeDataSource, objectBytes, objectExists } from "../support/database";
import { openOrmDataSource } from "../support/orm";
import { dropCleanup } from "../support/cleanup";
import { CLEANUP_ENTITIES, ODD_SCHEMA, OddDoc } from "./fixtures/cleanup";

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;
const table = `${q(ODD_SCHEMA)}.${q('Odd "Doc" Ω')}`;
const column = q('The "File" ñ');

let base: DataSource;
let ds: DataSource;
beforeAll(async () => {
  base = await openOrmDataSource(CLEANUP_ENTITIES);
  await base.query(`CREATE SCHEMA ${q(ODD_SCHEMA)}`);
  await base.query(`CREATE TABLE ${table} ("Id" serial PRIMARY KEY, ${column} oid)`);
  ds = await registerLargeObjects(makeDataSource({ entities: [OddDoc], synchronize: false })).initialize();
  await syncLargeObjectTriggers(ds);
});
afterAll(async () => {
  if (ds?.isInitialized) {
    await removeLargeObjectTriggers(ds);
    await ds.destroy();
  }
  await base?.query(`DROP SCHEMA IF EXISTS ${q(ODD_SCHEMA)} CASCADE`);
  await dropCleanup(base);
});

/** Creates recorded objects and rows referencing them, the way the subscriber does. */
async function insertRows(n: number, tag: string): Promise<{ id: number; oid: number }[]> {
  return ds.query(
    `WITH created AS MATERIALIZED (SELECT lo_from_bytea(0, convert_to($2 || g, 'UTF8')) AS oid FROM generate_series(1, $1) g),
          recorded AS (INSERT INTO typeorm_large_objects (oid, created_for) SELECT oid, 'odd' FROM created)
     INSERT INTO ${table} (${column}) SELECT oid FROM created RETURNING "Id" AS id, ${column} AS oid`,
    [n, tag],
  );
}

test("triggers, sync and the reference check work on a table, column and schema that need quoting", async () => {
  const rows = await insertRows(4, "odd");
  const before = await countObjects(ds);
  expect(await findReferences(ds, rows[0]!.oid)).toEqual([
    { entity: "OddDoc", property: "file", table: `${ODD_SCHEMA}.Odd "Doc" Ω`, column: 'The "File" ñ' },
  ]);
  await ds.query(`DELETE FROM ${table} WHERE "Id" = $1`, [rows[0]!.id]);
  await ds.query(`UPDATE ${table} SET ${column} = NULL WHERE "Id" = $1`, [rows[1]!.id]);
  expect(await countObjects(ds)).toBe(before - 2);
  expect(await objectExists(ds, rows[0]!.oid)).toBe(false);
  expect(await objectExists(ds, rows[1]!.oid)).toBe(false);
  expect((await objectBytes(ds, rows[2]!.oid)).toString()).toBe("odd3");
  await ds.query(`TRUNCATE ${table}`);
  expect(await countObjects(ds)).toBe(before - 4);
  await syncLargeObjectTriggers(ds);
});

test("the sweep reads references from that column too", async () => {
  const [kept, orphan] = await insertRows(2, "sweep");
  // Detach the second object without the triggers, as a dropped table would.
  await ds.query(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
  await ds.query(`UPDATE ${table} SET ${column} = NULL WHERE "Id" = $1`, [orphan!.id]);
  await ds.query(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
  const report = await sweepOrphans(ds, { graceMs: 0 });
  expect(report.unlinked).toBe(1);
  expect(await objectExists(ds, orphan!.oid)).toBe(false);
  expect((await objectBytes(ds, kept!.oid)).toString()).toBe("sweep1");
  await ds.query(`DELETE FROM ${table}`);
});
