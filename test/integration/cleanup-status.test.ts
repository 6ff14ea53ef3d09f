import { DataSource, type DataSourceOptions } from "typeorm";
import { largeObjectStatus, registerLargeObjects, type LargeObjectStatus } from "../../src";
import { databaseUrl, idleInTransaction, makeDataSource, unlinkThese } from "../support/database";
import { checkedOut } from "../support/pool";
import { dropCleanup } from "../support/cleanup";
import { CLEANUP_ENTITIES } from "./fixtures/cleanup";

// Roles are cluster-wide: the name carries this worker and process.
const role = `tlo_status_monitor_${process.env.JEST_WORKER_ID ?? "1"}_${process.pid}`;
const HOUR = 60 * 60 * 1000;
let ds: DataSource;
let monitor: DataSource | undefined;
const created: number[] = [];

beforeAll(async () => {
  ds = await registerLargeObjects(makeDataSource({ entities: CLEANUP_ENTITIES, synchronize: true })).initialize();
});
afterEach(async () => {
  expect(checkedOut(ds)).toBe(0);
  if (monitor !== undefined) expect(checkedOut(monitor)).toBe(0);
  expect(await idleInTransaction(ds)).toBe(0);
});
afterAll(async () => {
  await monitor?.destroy();
  await ds.query(`DROP OWNED BY "${role}"`).catch(() => undefined);
  await ds.query(`DROP ROLE IF EXISTS "${role}"`);
  await ds.query("DROP TABLE IF EXISTS status_raw");
  await ds.query("DROP DOMAIN IF EXISTS status_ref");
  await unlinkThese(ds, created);
  await dropCleanup(ds);
});

async function newObject(sql: string, ...params: unknown[]): Promise<number> {
  const rows: { oid: number }[] = await ds.query(sql, params);
  created.push(rows[0]!.oid);
  return rows[0]!.oid;
}

/** Sizes as lo_lseek64 reports them, over every object (the superuser may open each one). */
async function sizesThroughDescriptors(): Promise<number> {
  return ds.transaction(async (m) => {
    const rows: { bytes: string | null }[] = await m.query(
      "SELECT sum(lo_lseek64(lo_open(oid, 262144), 0, 2))::text AS bytes FROM pg_largeobject_metadata",
    );
    return Number(rows[0]!.bytes ?? "0");
  });
}

test("totalBytes is each object's size, measured from pages or, without pg_largeobject, through descriptors", async () => {
  const before = await largeObjectStatus(ds);
  // Empty, one byte, several pages, and a hole: the size is the end of the last page written.
  await newObject("SELECT lo_create(0) AS oid");
  const one = await newObject("SELECT lo_from_bytea(0, '\\x61'::bytea) AS oid");
  const pages = await newObject("SELECT lo_from_bytea(0, decode(repeat('ab', 5000), 'hex')) AS oid");
  const sparse = await newObject("SELECT lo_create(0) AS oid");
  await ds.query("SELECT lo_put($1, 10485760, '\\x010203'::bytea)", [sparse]);
  const sizes = 0 + 1 + 5000 + 10485763;

  const after = await largeObjectStatus(ds);
  expect(after.objects - before.objects).toBe(4);
  expect(after.totalBytes - before.totalBytes).toBe(sizes);
  expect(after.totalBytes).toBe(await sizesThroughDescriptors());
  expect(after.unreadable).toBe(0);

  // An ordinary role may not read pg_largeobject: it measures what it may open and counts the rest.
  await ds.query(`DROP ROLE IF EXISTS "${role}"`);
  await ds.query(`CREATE ROLE "${role}" LOGIN NOSUPERUSER`);
  await ds.query(`GRANT SELECT ON ALL TABLES IN SCHEMA public TO "${role}"`);
  await ds.query(`ALTER LARGE OBJECT ${one} OWNER TO "${role}"`);
  await ds.query(`ALTER LARGE OBJECT ${pages} OWNER TO "${role}"`);
  await ds.query(`GRANT SELECT ON LARGE OBJECT ${sparse} TO "${role}"`);
  const url = new URL(databaseUrl());
  url.username = role;
  url.password = "";
  monitor = await registerLargeObjects(
    new DataSource({ type: "postgres", url: url.toString(), entities: CLEANUP_ENTITIES } as DataSourceOptions),
  ).initialize();
  const readable: { readable: boolean }[] = await monitor.query("SELECT has_table_privilege('pg_largeobject', 'SELECT') AS readable");
  expect(readable).toEqual([{ readable: false }]);
  const seen = await largeObjectStatus(monitor);
  expect(seen.totalBytes).toBe(1 + 5000 + 10485763);
  expect(seen.unreadable).toBe(after.objects - 3);
  expect(seen.objects).toBe(after.objects);
});

test("the counts: orphans, young, unrecorded, missing and dangling, over a column of a domain over oid too", async () => {
  await ds.query("CREATE DOMAIN status_ref AS oid");
  await ds.query("CREATE TABLE status_raw (id serial PRIMARY KEY, ref status_ref)");
  const before = await largeObjectStatus(ds, { graceMs: HOUR });
  const object = () => newObject("SELECT lo_from_bytea(0, '\\x00'::bytea) AS oid");
  const record = (oid: number, age: string) =>
    ds.query(`INSERT INTO typeorm_large_objects (oid, created_for, created_at) VALUES ($1, 'status test', now() - $2::interval)`, [oid, age]);
  const [both, raw, orphan, young] = [await object(), await object(), await object(), await object()];
  await object(); // without a record, referenced by nothing
  const freeReferenced = await object();
  for (const oid of [both, raw, orphan]) await record(oid, "2 hours");
  await record(young, "1 minute");
  await ds.query("INSERT INTO cleanup_doc (file) VALUES ($1), ($1)", [both]);
  await ds.query("INSERT INTO status_raw (ref) VALUES ($1), ($2), ($3)", [both, raw, freeReferenced]);
  // A record whose object is gone, and rows naming objects that do not exist (no trigger fires on INSERT).
  const lost = await object();
  await record(lost, "2 hours");
  await unlinkThese(ds, [lost]);
  await ds.query("INSERT INTO status_raw (ref) VALUES ($1), ($1)", [lost]);
  await ds.query("INSERT INTO cleanup_doc (file) VALUES ($1)", [lost]);

  const after = await largeObjectStatus(ds, { graceMs: HOUR });
  const delta = (key: keyof LargeObjectStatus) => (after[key] as number) - (before[key] as number);
  expect({
    objects: delta("objects"),
    recorded: delta("recorded"),
    withoutRecord: delta("withoutRecord"),
    missingObjects: delta("missingObjects"),
    orphans: delta("orphans"),
    youngUnreferenced: delta("youngUnreferenced"),
    unreferencedWithoutRecord: delta("unreferencedWithoutRecord"),
  }).toEqual({
    objects: 6,
    recorded: 4,
    withoutRecord: 2,
    missingObjects: 1,
    orphans: 1,
    youngUnreferenced: 1,
    unreferencedWithoutRecord: 1,
  });
  expect(after.danglingReferences).toEqual(
    expect.arrayContaining([
      { table: '"public"."cleanup_doc"', column: "file", rows: 1 },
      { table: '"public"."status_raw"', column: "ref", rows: 2 },
    ]),
  );
  expect(after.danglingReferences).toHaveLength(before.danglingReferences.length + 2);
  // Leave nothing dangling for the files that run after this one.
  await ds.query("DELETE FROM status_raw");
  await ds.query("DELETE FROM cleanup_doc");
  await ds.query("DELETE FROM typeorm_large_objects WHERE created_for = 'status test'");
});
