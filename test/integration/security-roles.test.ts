import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Column, DataSource, Entity, PrimaryGeneratedColumn, type DataSourceOptions } from "typeorm";
import { LargeObject, LargeObjectColumn, LargeObjectRepository, oidOf, registerLargeObjects, type LargeObjectValue, sweepOrphans } from "../../src";
import { databaseUrl, idleInTransaction, objectBytes, objectExists, openDataSource, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { drain, rejection } from "../support/streams";

// Everything as ordinary roles. Roles are cluster-wide: the names carry this worker and process.
const tag = `${process.env.JEST_WORKER_ID ?? "1"}_${process.pid}`;
const ownerRole = `tlo_sec_owner_${tag}`;
const otherRole = `tlo_sec_other_${tag}`;
const readerRole = `tlo_sec_Reader ${tag}`; // a name that needs quoting
const writerRole = `tlo_sec_writer_${tag}`;
const schema = `tlo sec ${tag}`;

@Entity({ name: "sec_document" })
class SecDocument {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ default: "" }) name!: string;
  @LargeObjectColumn() file!: LargeObjectValue;
  @LargeObjectColumn({ grant: { read: [readerRole], write: [writerRole] } }) shared!: LargeObjectValue;
}

let admin: DataSource;
const sources: Record<string, DataSource> = {};
const MiB = 1024 * 1024;

async function connectAs(role: string, synchronize = false): Promise<DataSource> {
  const url = new URL(databaseUrl());
  url.username = encodeURIComponent(role);
  url.password = "";
  const ds = registerLargeObjects(
    new DataSource({ type: "postgres", url: url.toString(), schema, entities: [SecDocument], synchronize } as DataSourceOptions),
  );
  return ds.initialize();
}

beforeAll(async () => {
  admin = await openDataSource();
  for (const role of [ownerRole, otherRole, readerRole, writerRole]) {
    await admin.query(`DROP ROLE IF EXISTS "${role}"`);
    await admin.query(`CREATE ROLE "${role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`);
  }
  await admin.query(`CREATE SCHEMA "${schema}" AUTHORIZATION "${ownerRole}"`);
  // The owner creates every table, function and trigger itself.
  sources.owner = await connectAs(ownerRole, true);
  for (const role of [otherRole, readerRole, writerRole]) {
    await sources.owner.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`);
    await sources.owner.query(`GRANT SELECT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${schema}" TO "${role}"`);
    sources[role] = await connectAs(role);
  }
});
afterEach(async () => {
  for (const ds of Object.values(sources)) expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(admin)).toBe(0);
});
afterAll(async () => {
  for (const ds of Object.values(sources)) await ds.destroy();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const role of [ownerRole, otherRole, readerRole, writerRole]) {
    // DROP OWNED removes the role's large objects and the grants it holds on others.
    await admin.query(`DROP OWNED BY "${role}"`);
    await admin.query(`DROP ROLE "${role}"`);
  }
  await admin.destroy();
});

const owner = (): DataSource => sources.owner!;
const as = (role: string): DataSource => sources[role]!;

test("the roles really are ordinary: no superuser, and pg_largeobject itself is out of reach", async () => {
  const who: { usesuper: boolean }[] = await owner().query("SELECT usesuper FROM pg_user WHERE usename = current_user");
  expect(who).toEqual([{ usesuper: false }]);
  expect(await rejection(owner().query("SELECT count(*) FROM pg_largeobject"))).toMatchObject({ code: "42501" });
});

test("an ordinary role that owns its schema saves, streams, replaces and removes through the ORM", async () => {
  const repo = owner().getRepository(SecDocument);
  const big = randomBytes(3 * MiB + 5, 8);
  const doc = await repo.save({ name: "mine", file: Readable.from([big]), shared: "small" });
  const files = new LargeObjectRepository(owner().manager);
  expect((await drain(await files.createReadStream(doc, "file"))).equals(big)).toBe(true);
  await pipeline(Readable.from(["rewritten"]), await files.createWriteStream(doc, "file"));
  expect((await files.read(doc, "file")).toString()).toBe("rewritten");
  const first = oidOf(doc.file);
  const loaded = await repo.findOneByOrFail({ id: doc.id });
  loaded.file = Buffer.from("replaced");
  await repo.save(loaded);
  expect(await objectExists(admin, first)).toBe(false);
  const objects = [oidOf(loaded.file), oidOf(loaded.shared)];
  await repo.remove(loaded);
  for (const oid of objects) expect(await objectExists(admin, oid)).toBe(false);
  const viaDelete = await repo.save({ name: "deleted", file: "x", shared: "y" });
  await repo.delete(viaDelete.id);
  expect(await objectExists(admin, oidOf(viaDelete.file))).toBe(false);
});

test("a role without privileges on the objects: ERR_LO_PERMISSION_DENIED on read and write, and it cannot unlink", async () => {
  const doc = await owner().getRepository(SecDocument).save({ name: "private", file: "secret", shared: "shared secret" });
  const files = new LargeObjectRepository(as(otherRole).manager);
  expect(await rejection(files.read(doc, "file"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED", oid: doc.file });
  expect(await rejection(files.createReadStream(doc, "file"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
  expect(await rejection(files.createWriteStream(doc, "file"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
  expect(await rejection(files.write(doc, "file", "overwritten"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
  expect(await rejection(LargeObject.unlink(as(otherRole), oidOf(doc.file)))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
  expect((await objectBytes(admin, oidOf(doc.file))).toString()).toBe("secret");
  // Deleting the row (the table allows it) leaves the objects: the role may not unlink them.
  await as(otherRole).getRepository(SecDocument).delete(doc.id);
  expect((await objectBytes(admin, oidOf(doc.file))).toString()).toBe("secret");
  // Their owner's sweep collects them.
  const report = await sweepOrphans(owner(), { graceMs: 0 });
  expect(report.unlinked).toBeGreaterThanOrEqual(2);
  expect(await objectExists(admin, oidOf(doc.file))).toBe(false);
  expect(await objectExists(admin, oidOf(doc.shared))).toBe(false);
});

test("the column's grant option also covers an object the repository creates for a null column", async () => {
  const doc = await owner().getRepository(SecDocument).save({ name: "granted later", file: "f", shared: null });
  expect(doc.shared).toBeNull();
  const files = new LargeObjectRepository(owner().manager);
  await pipeline(Readable.from([Buffer.from("streamed in by the owner")]), await files.createWriteStream(doc, "shared"));
  const stored = await owner().getRepository(SecDocument).findOneByOrFail({ id: doc.id });
  expect(stored.shared).toBe(doc.shared);
  const reader = new LargeObjectRepository(as(readerRole).manager);
  expect((await reader.read(stored, "shared")).toString()).toBe("streamed in by the owner");
  expect(await rejection(reader.write(stored, "shared", "no"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED", oid: stored.shared });
  await new LargeObjectRepository(as(writerRole).manager).write(stored, "shared", "and rewritten by the writer");
  expect((await reader.read(stored, "shared")).toString()).toBe("and rewritten by the writer");
  expect(await rejection(new LargeObjectRepository(as(otherRole).manager).read(stored, "shared"))).toMatchObject({
    code: "ERR_LO_PERMISSION_DENIED",
  });
});

test("the column's grant option: the read role reads, the write role writes, nobody else does either", async () => {
  const doc = await owner().getRepository(SecDocument).save({ name: "granted", file: "f", shared: Readable.from([randomBytes(2 * MiB, 4)]) });
  const small = await owner().getRepository(SecDocument).save({ name: "granted small", file: "f", shared: "tiny" });
  for (const target of [doc, small]) {
    const reader = new LargeObjectRepository(as(readerRole).manager);
    const expected = await objectBytes(admin, oidOf(target.shared));
    expect((await drain(await reader.createReadStream(target, "shared"))).equals(expected)).toBe(true);
    expect(await rejection(reader.write(target, "shared", "no"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
    // The grant is per column: the other column's object stays private.
    expect(await rejection(reader.read(target, "file"))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
    const writer = new LargeObjectRepository(as(writerRole).manager);
    await writer.write(target, "shared", "written by the writer");
    expect((await writer.read(target, "shared")).toString()).toBe("written by the writer");
    expect(await rejection(LargeObject.unlink(as(writerRole), oidOf(target.shared)))).toMatchObject({ code: "ERR_LO_PERMISSION_DENIED" });
    expect(await rejection(new LargeObjectRepository(as(otherRole).manager).read(target, "shared"))).toMatchObject({
      code: "ERR_LO_PERMISSION_DENIED",
    });
  }
});
