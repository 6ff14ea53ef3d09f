import type { DataSource } from "typeorm";
import { sweepOrphans } from "../../src";
import { countObjects } from "../support/database";
import { expectGone, expectIntact, saveWithContent, type Stored } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), {
  orm: CLEANUP_ENTITIES,
  triggers: true,
  setUp: async (opened) => {
    await opened.query(`CREATE SCHEMA sweep_elsewhere`);
    await opened.query(`CREATE DOMAIN sweep_elsewhere.lo AS oid`);
    await opened.query(`CREATE DOMAIN sweep_elsewhere.blob_ref AS sweep_elsewhere.lo`);
    await opened.query(`CREATE TABLE sweep_elsewhere.legacy (id serial PRIMARY KEY, plain oid, via_lo sweep_elsewhere.lo, via_domain sweep_elsewhere.blob_ref)`);
    await opened.query(`CREATE TABLE public.sweep_holder (id serial PRIMARY KEY, ref oid)`);
    await opened.query(`CREATE MATERIALIZED VIEW public.sweep_snapshot AS SELECT 0::oid AS ref WITH NO DATA`);
  },
  tearDown: async (opened) => {
    await opened.query(`DROP SCHEMA IF EXISTS sweep_elsewhere CASCADE`);
    await opened.query(`DROP MATERIALIZED VIEW IF EXISTS public.sweep_snapshot`);
    await opened.query(`DROP TABLE IF EXISTS public.sweep_holder`);
  },
});

test("objects referenced only by columns no entity declares (oid, a domain named lo, a domain over it, a materialized view) survive any sweep", async () => {
  const rows = await saveWithContent(ds, CleanupDoc, 6, 900);
  const [plain, viaLo, viaDomain, inHolder, inView, orphan] = rows as [Stored, Stored, Stored, Stored, Stored, Stored];
  await ds.query(`INSERT INTO sweep_elsewhere.legacy (plain, via_lo, via_domain) VALUES ($1, NULL, NULL), (NULL, $2, NULL), (NULL, NULL, $3)`, [
    plain.oid,
    viaLo.oid,
    viaDomain.oid,
  ]);
  await ds.query(`INSERT INTO public.sweep_holder (ref) VALUES ($1)`, [inHolder.oid]);
  await ds.query(`DROP MATERIALIZED VIEW public.sweep_snapshot`);
  await ds.query(`CREATE MATERIALIZED VIEW public.sweep_snapshot AS SELECT $$${inView.oid}$$::oid AS ref`);
  // The entity's own rows let go of all six, without the triggers (as after a DROP TABLE).
  await ds.query(`ALTER TABLE cleanup_doc DISABLE TRIGGER USER`);
  await ds.query(`DELETE FROM cleanup_doc`);
  await ds.query(`ALTER TABLE cleanup_doc ENABLE TRIGGER USER`);
  const before = await countObjects(ds);

  const recorded = await sweepOrphans(ds, { graceMs: 0 });
  expect(recorded.unlinked).toBe(1);
  const all = await sweepOrphans(ds, { graceMs: 0, scope: "all" });
  expect(all.unlinked).toBe(0);
  expect(await countObjects(ds)).toBe(before - 1);
  await expectGone(ds, [orphan]);
  await expectIntact(ds, [plain, viaLo, viaDomain, inHolder, inView]);
});
