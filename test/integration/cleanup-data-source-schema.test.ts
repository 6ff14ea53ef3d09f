import type { DataSource } from "typeorm";
import { registerLargeObjects, largeObjectStatus, sweepOrphans, removeLargeObjectTriggers } from "../../src";
import { countObjects, makeDataSource } from "../support/database";
import { expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";

const SCHEMA = "tlo App";
let ds: DataSource;
beforeAll(async () => {
  const admin = await makeDataSource().initialize();
  await admin.query(`CREATE SCHEMA IF NOT EXISTS "${SCHEMA}"`);
  await admin.destroy();
  ds = await registerLargeObjects(makeDataSource({ entities: CLEANUP_ENTITIES, synchronize: true, schema: SCHEMA })).initialize();
});
afterAll(async () => {
  if (!ds?.isInitialized) return;
  await removeLargeObjectTriggers(ds);
  await ds.query(`SELECT lo_unlink(oid) FROM "${SCHEMA}".typeorm_large_objects r WHERE EXISTS (SELECT 1 FROM pg_largeobject_metadata m WHERE m.oid = r.oid)`);
  await ds.query(`DROP SCHEMA "${SCHEMA}" CASCADE`);
  await ds.destroy();
});

test("with the data source's schema option, the record table, functions and triggers all live in that schema", async () => {
  // Other test files may have left their own functions in public: look only at what this data
  // source's tables use.
  const placed: { schema: string }[] = await ds.query(
    `SELECT DISTINCT n.nspname AS schema
       FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE t.tgrelid = format('%I.%I', $1::text, 'cleanup_doc')::regclass AND NOT t.tgisinternal`,
    [SCHEMA],
  );
  expect(placed).toEqual([{ schema: SCHEMA }]);
  const release: unknown[] = await ds.query(
    `SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.proname = 'typeorm_large_object_release' AND n.nspname = $1`,
    [SCHEMA],
  );
  expect(release).toHaveLength(1);
  const [gone, kept, orphan] = await saveWithContent(ds, CleanupDoc, 3, 1400);
  await ds.getRepository(CleanupDoc).delete(gone!.id);
  await expectGone(ds, [gone!]);
  await ds.query(`ALTER TABLE "${SCHEMA}".cleanup_doc DISABLE TRIGGER USER`);
  await ds.query(`DELETE FROM "${SCHEMA}".cleanup_doc WHERE id = $1`, [orphan!.id]);
  await ds.query(`ALTER TABLE "${SCHEMA}".cleanup_doc ENABLE TRIGGER USER`);
  expect(await largeObjectStatus(ds, { graceMs: 0 })).toMatchObject({ orphans: 1, recorded: await countObjects(ds) });
  expect((await sweepOrphans(ds, { graceMs: 0 })).unlinked).toBe(1);
  await expectGone(ds, [orphan!]);
  await expectIntact(ds, [kept!]);
});
