import type { DataSource } from "typeorm";
import { LargeObject, registerLargeObjects, sweepOrphans } from "../../src";
import { countObjects, databaseUrl, makeDataSource, objectBytes, objectExists } from "../support/database";
import { CLEANUP_ENTITIES } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

test("objects the library did not create survive the default sweep; scope 'all' unlinks the unreferenced ones", async () => {
  const foreign = await LargeObject.create(ds, { data: "someone else's" });
  const before = await countObjects(ds);
  const report = await sweepOrphans(ds, { graceMs: 0 });
  expect(report).toMatchObject({ orphans: 0, unlinked: 0 });
  expect((await objectBytes(ds, foreign)).toString()).toBe("someone else's");

  // Objects without a record have no known age: the grace period cannot hold them back.
  const dry = await sweepOrphans(ds, { scope: "all", dryRun: true });
  expect(dry).toMatchObject({ orphans: 1, unlinked: 0, bytesFreed: "someone else's".length });
  expect(await objectExists(ds, foreign)).toBe(true);
  const all = await sweepOrphans(ds, { scope: "all" });
  expect(all).toMatchObject({ orphans: 1, unlinked: 1, scope: "all" });
  expect(await countObjects(ds)).toBe(before - 1);
});

test("an orphan owned by a role the sweeping role may not act for is skipped and kept, not an error", async () => {
  const roles = ["sweep_limited", "sweep_stranger"];
  for (const role of roles) await ds.query(`DROP ROLE IF EXISTS ${role}`);
  await ds.query("CREATE ROLE sweep_limited LOGIN");
  await ds.query("CREATE ROLE sweep_stranger NOLOGIN");
  await ds.query("GRANT SELECT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sweep_limited");
  const mine = await LargeObject.create(ds, { data: "mine" });
  const theirs = await LargeObject.create(ds, { data: "theirs" });
  await ds.query(`ALTER LARGE OBJECT ${mine} OWNER TO sweep_limited`);
  await ds.query(`ALTER LARGE OBJECT ${theirs} OWNER TO sweep_stranger`);
  await ds.query(`INSERT INTO typeorm_large_objects (oid, created_for) VALUES ($1, 'x'), ($2, 'x')`, [mine, theirs]);
  const url = new URL(databaseUrl());
  url.username = "sweep_limited";
  const limited = registerLargeObjects(makeDataSource({ url: url.toString(), entities: CLEANUP_ENTITIES } as Parameters<typeof makeDataSource>[0]));
  try {
    await limited.initialize();
    const report = await sweepOrphans(limited, { graceMs: 0 });
    expect(report).toMatchObject({ orphans: 2, unlinked: 1, skipped: 1, bytesFreed: 4 });
  } finally {
    if (limited.isInitialized) await limited.destroy();
    await ds.query(`SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE lomowner IN (SELECT oid FROM pg_roles WHERE rolname = ANY ($1))`, [roles]);
    await ds.query("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM sweep_limited");
    for (const role of roles) await ds.query(`DROP ROLE ${role}`);
  }
  expect(await objectExists(ds, mine)).toBe(false);
  expect(await objectExists(ds, theirs)).toBe(false);
});
