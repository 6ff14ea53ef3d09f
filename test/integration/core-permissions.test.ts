import { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { databaseUrl, idleInTransaction, objectBytes, unlinkAll } from "../support/database";
import { checkedOut } from "../support/pool";
import { drain, rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

// Roles are cluster-wide: a name of this file, worker and process keeps parallel runs apart.
const role = `tlo_core_reader_${process.env.JEST_WORKER_ID ?? "1"}_${process.pid}`;
let admin: DataSource;
let reader: DataSource;
let owned: number;

useDataSource((opened) => (admin = opened), {
  unlink: "none",
  setUp: async () => {
    await admin.query(`DROP ROLE IF EXISTS "${role}"`);
    await admin.query(`CREATE ROLE "${role}" LOGIN NOSUPERUSER`);
    const url = new URL(databaseUrl());
    url.username = role;
    url.password = "";
    reader = await new DataSource({ type: "postgres", url: url.toString() }).initialize();
    owned = await LargeObject.create(admin, { data: "owned by postgres" });
  },
  tearDown: async () => {
    await reader?.destroy();
    await unlinkAll(admin);
    await admin.query(`REASSIGN OWNED BY "${role}" TO CURRENT_USER`);
    await admin.query(`DROP OWNED BY "${role}"`);
    await admin.query(`DROP ROLE "${role}"`);
  },
});
afterEach(async () => {
  expect(checkedOut(reader)).toBe(0);
  expect(await idleInTransaction(admin)).toBe(0);
});

test("the role really is not a superuser", async () => {
  expect(await reader.query("SELECT current_user AS who, usesuper FROM pg_user WHERE usename = current_user")).toEqual([
    { who: role, usesuper: false },
  ]);
});

test("ERR_LO_PERMISSION_DENIED: reading, writing or unlinking another role's object without grants", async () => {
  for (const mode of ["r", "w", "rw", "a"] as const) {
    const err = await rejection(LargeObject.open(reader, owned, mode));
    expect(err).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED", oid: owned });
    expect((err as Error).cause).toMatchObject({ code: "42501" });
  }
  expect(await rejection(LargeObject.unlink(reader, owned))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED", oid: owned });
  // exists() reads pg_largeobject_metadata, which every role may read.
  expect(await LargeObject.exists(reader, owned)).toBe(true);
});

test("GRANT SELECT allows reading (handle and stream) but not writing; only the owner may unlink", async () => {
  await admin.query(`GRANT SELECT ON LARGE OBJECT ${owned} TO "${role}"`);
  const lo = await LargeObject.open(reader, owned, "r");
  expect((await lo.read(5)).toString()).toBe("owned");
  expect((await drain(lo.createReadStream({ start: 9 }))).toString()).toBe("postgres");
  expect(await rejection(LargeObject.open(reader, owned, "w"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
  await admin.query(`GRANT UPDATE ON LARGE OBJECT ${owned} TO "${role}"`);
  const writer = await LargeObject.open(reader, owned, "w");
  await writer.write("OWNED");
  await writer.close();
  expect((await objectBytes(admin, owned)).toString()).toBe("OWNED by postgres");
  expect(await rejection(LargeObject.unlink(reader, owned))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
});

test("a non-superuser creates, fills, reads and unlinks objects of its own", async () => {
  const oid = await LargeObject.create(reader, { data: Buffer.alloc(2 * 1024 * 1024 + 1, 9) });
  const lo = await LargeObject.open(reader, oid, "rw");
  expect(await lo.size()).toBe(2 * 1024 * 1024 + 1);
  await lo.close();
  const stream = (await LargeObject.open(reader, oid, "r")).createReadStream();
  expect((await drain(stream)).length).toBe(2 * 1024 * 1024 + 1);
  await LargeObject.unlink(reader, oid);
  expect(await LargeObject.exists(reader, oid)).toBe(false);
});
