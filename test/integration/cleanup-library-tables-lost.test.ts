import type { DataSource } from "typeorm";
import { largeObjectStatus, largeObjectTriggerStatements, removeLargeObjectTriggers, sweepOrphans, syncLargeObjectTriggers } from "../../src";
import { objectExists } from "../support/database";
import { expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

// Nothing may unlink an object a column still references, whatever state the library's own tables
// are in: the release function and the sweep read the catalog, the column table only speeds them up.

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

afterEach(async () => {
  await ds.query("DELETE FROM cleanup_other");
  await ds.query("DELETE FROM cleanup_doc");
  await syncLargeObjectTriggers(ds);
});

/** A raw table the library does not cover: its references count all the same. */
async function withRawTable(work: () => Promise<void>): Promise<void> {
  await ds.query("CREATE TABLE lost_raw_refs (ref oid)");
  try {
    await work();
  } finally {
    await ds.query("DROP TABLE lost_raw_refs");
  }
}

const states: [string, string][] = [
  ["empty", "TRUNCATE typeorm_large_object_columns"],
  ["missing", "DROP TABLE typeorm_large_object_columns"],
];

test.each(states)("with the column table %s, deletes keep every object a column still references, and the sweep too", async (_state, damage) => {
  await withRawTable(async () => {
    const [sameTable, otherTable, rawTable, alone] = await saveWithContent(ds, CleanupDoc, 4, 2500);
    await ds.query("INSERT INTO cleanup_doc (name, file) VALUES ('copy', $1)", [sameTable!.oid]);
    await ds.query("INSERT INTO cleanup_other (file) VALUES ($1)", [otherTable!.oid]);
    await ds.query("INSERT INTO lost_raw_refs (ref) VALUES ($1)", [rawTable!.oid]);
    await ds.query(damage);
    await ds.query("DELETE FROM cleanup_doc WHERE name <> 'copy'");
    await expectIntact(ds, [sameTable!, otherTable!, rawTable!]);
    await expectGone(ds, [alone!]);
    // A TRUNCATE lets go of the last reference to one, not of the others.
    await ds.query("TRUNCATE cleanup_doc");
    await expectGone(ds, [sameTable!]);
    await expectIntact(ds, [otherTable!, rawTable!]);
    // Every record is due: the sweep still unlinks only what nothing references.
    await ds.query("UPDATE typeorm_large_objects SET created_at = '-infinity'");
    expect((await sweepOrphans(ds)).unlinked).toBe(0);
    await expectIntact(ds, [otherTable!, rawTable!]);
    await ds.query("DELETE FROM cleanup_other");
    await expectGone(ds, [otherTable!]);
    await ds.query("DELETE FROM lost_raw_refs");
    expect((await sweepOrphans(ds)).unlinked).toBe(1);
    expect(await objectExists(ds, rawTable!.oid)).toBe(false);
  });
});

test("status works without the functions and without the record table, and says what to run", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 2600);
  await removeLargeObjectTriggers(ds);
  const bare = await largeObjectStatus(ds);
  expect(bare).toMatchObject({ objects: 1, recorded: 1, danglingReferences: [] });
  expect(bare.problems).toEqual([
    expect.stringContaining("3 of the 3 unlink functions are missing"),
    expect.stringContaining("the column table"),
    expect.stringContaining("3 large-object columns have no unlink triggers"),
  ]);
  await ds.query("ALTER TABLE typeorm_large_objects RENAME TO typeorm_large_objects_away");
  try {
    const unrecorded = await largeObjectStatus(ds);
    expect(unrecorded).toMatchObject({ objects: 1, recorded: 0, withoutRecord: 1, orphans: 0 });
    expect(unrecorded.problems[0]).toMatch(/^the record table .* does not exist: run the migrations/);
  } finally {
    await ds.query("ALTER TABLE typeorm_large_objects_away RENAME TO typeorm_large_objects");
  }
  await syncLargeObjectTriggers(ds);
  expect((await largeObjectStatus(ds)).problems).toEqual([]);
  await ds.query("DELETE FROM cleanup_doc");
  await expectGone(ds, [row!]);
});

test("status counts, per column, the rows whose oid names no object", async () => {
  const [kept, lost] = await saveWithContent(ds, CleanupDoc, 2, 2700);
  await ds.query("INSERT INTO cleanup_other (file) VALUES ($1), ($1)", [lost!.oid]);
  // Unlinked behind the triggers' back, as a restore without large objects leaves things.
  await ds.query("SELECT lo_unlink($1)", [lost!.oid]);
  const status = await largeObjectStatus(ds);
  expect(status.danglingReferences).toEqual([
    { table: '"public"."cleanup_doc"', column: "file", rows: 1 },
    { table: '"public"."cleanup_other"', column: "file", rows: 2 },
  ]);
  await ds.query("DELETE FROM cleanup_doc");
  await ds.query("DELETE FROM cleanup_other");
  await expectGone(ds, [kept!]);
  expect((await largeObjectStatus(ds)).danglingReferences).toEqual([]);
});

test("sync rewrites a column table that names tables and indexes by regclass, keeping its rows", async () => {
  await ds.query("DROP TABLE typeorm_large_object_columns");
  await ds.query(`CREATE TABLE typeorm_large_object_columns (
    "table" regclass NOT NULL, "column" text NOT NULL, "index" regclass, PRIMARY KEY ("table", "column"))`);
  const index: { name: string }[] = await ds.query(
    `SELECT i.relname AS name FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
      WHERE x.indrelid = 'cleanup_doc'::regclass AND i.relname LIKE 'typeorm_lo_%'`,
  );
  await ds.query(`INSERT INTO typeorm_large_object_columns VALUES ('cleanup_doc', 'file', $1), ('cleanup_other', 'file', NULL)`, [index[0]!.name]);
  await syncLargeObjectTriggers(ds);
  const rows: { schema: string; table: string; index: string | null }[] = await ds.query(
    `SELECT "schema", "table", "index" FROM typeorm_large_object_columns WHERE "table" IN ('cleanup_doc', 'cleanup_other') ORDER BY 2`,
  );
  expect(rows).toEqual([
    { schema: "public", table: "cleanup_doc", index: index[0]!.name },
    { schema: "public", table: "cleanup_other", index: expect.stringMatching(/^typeorm_lo_/) },
  ]);
  const types: { type: string }[] = await ds.query(
    `SELECT DISTINCT format_type(atttypid, NULL) AS type FROM pg_attribute WHERE attrelid = 'typeorm_large_object_columns'::regclass AND attnum > 0`,
  );
  expect(types).toEqual([{ type: "text" }]);
});

test("the generated migration's down() removes the triggers, indexes, functions and the column table", async () => {
  const { up, down } = await largeObjectTriggerStatements(ds);
  await removeLargeObjectTriggers(ds);
  for (const statement of up) await ds.query(statement);
  const installed = async (): Promise<number> => {
    const rows: { n: number }[] = await ds.query(
      `SELECT (SELECT count(*) FROM pg_proc WHERE proname LIKE 'typeorm_large_object%')
            + (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'typeorm_large_object%')
            + (SELECT count(*) FROM pg_class WHERE relname LIKE 'typeorm_lo_%' OR relname = 'typeorm_large_object_columns') AS n`,
    );
    return Number(rows[0]!.n);
  };
  expect(await installed()).toBeGreaterThan(0);
  for (const statement of down) await ds.query(statement);
  expect(await installed()).toBe(0);
});
