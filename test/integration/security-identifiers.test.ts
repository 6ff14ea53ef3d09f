import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Column, Entity, PrimaryGeneratedColumn, type DataSource } from "typeorm";
import { LargeObject, LargeObjectColumn, LargeObjectRepository, oidOf, type LargeObjectValue, sweepOrphans } from "../../src";
import { idleInTransaction, objectBytes, objectExists, randomBytes } from "../support/database";
import { drain } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

// Identifiers that would break SQL built by concatenation: spaces, capitals, non-ASCII letters,
// semicolons, comment dashes, $1, %s/%I (format() directives) and a dollar-quote tag. TypeORM
// cannot create tables whose names contain double quotes, so those are tested on raw-SQL tables.
const SCHEMA = "Sché ma $tlo$ %I";
const TABLE = "Spaced Täble; DROP $1 -- %s";
const COLUMN = "Blob Ω %I $$";
const KEY = "Ïd Key";

@Entity({ name: TABLE, schema: SCHEMA })
class Oddity {
  @PrimaryGeneratedColumn({ name: KEY }) id!: number;
  @Column({ name: "Näme", default: "" }) name!: string;
  @LargeObjectColumn({ name: COLUMN }) blob!: LargeObjectValue;
}

let ds: DataSource;
let admin: DataSource;
const quoted = `"${SCHEMA}"."${TABLE}"`;

useDataSource((opened) => (ds = opened), {
  orm: [Oddity],
  schemas: [SCHEMA],
  admin: (opened) => (admin = opened),
  tearDown: async () => void (await admin.query(`DROP SCHEMA IF EXISTS "qu""oted schema" CASCADE`)),
});
afterEach(async () => {
  expect(await idleInTransaction(admin)).toBe(0);
});

test("save, stream, replace and remove through the ORM on a table, column and schema with hostile names", async () => {
  const repo = ds.getRepository(Oddity);
  const data = randomBytes(1024 * 1024 + 77, 9);
  const doc = await repo.save({ name: "odd", blob: Readable.from([data]) });
  const files = new LargeObjectRepository(ds.manager);
  expect((await drain(await files.createReadStream(doc, "blob", { start: 5, end: 1004 }))).equals(data.subarray(5, 1005))).toBe(true);
  await pipeline(Readable.from(["streamed"]), await files.createWriteStream(doc, "blob"));
  expect((await files.read(doc, "blob")).toString()).toBe("streamed");
  const first = oidOf(doc.blob);
  await repo.save({ id: doc.id, blob: Buffer.from("replaced") });
  expect(await objectExists(admin, first)).toBe(false);
  const row = await repo.findOneByOrFail({ id: doc.id });
  expect((await objectBytes(admin, oidOf(row.blob))).toString()).toBe("replaced");
  await repo.remove(row);
  expect(await objectExists(admin, oidOf(row.blob))).toBe(false);
});

test("the triggers cover delete(), update() to null, raw SQL and TRUNCATE on that table", async () => {
  const repo = ds.getRepository(Oddity);
  const saved = await repo.save([{ blob: "a" }, { blob: "b" }, { blob: "c" }, { blob: "d" }, { blob: "e" }]);
  const oids = saved.map((s) => oidOf(s.blob));
  await repo.delete(saved[0]!.id);
  await repo.update(saved[1]!.id, { blob: null });
  await admin.query(`DELETE FROM ${quoted} WHERE "${KEY}" = $1`, [saved[2]!.id]);
  expect(await Promise.all(oids.slice(0, 3).map((oid) => objectExists(admin, oid)))).toEqual([false, false, false]);
  expect(await objectExists(admin, oids[3]!)).toBe(true);
  await repo.clear();
  expect(await Promise.all(oids.slice(3).map((oid) => objectExists(admin, oid)))).toEqual([false, false]);
});

test("the sweep keeps objects referenced from hostile names, including raw tables with quotes in every name", async () => {
  await admin.query(`CREATE SCHEMA "qu""oted schema"`);
  await admin.query(`CREATE TABLE "qu""oted schema"."ta""ble; --" ("i""d" int PRIMARY KEY, "o""id "" col" oid)`);
  const repo = ds.getRepository(Oddity);
  const kept = await repo.save({ blob: "kept by the entity" });
  // Objects the library created and recorded, then referenced only from the raw table.
  const rawOnly = await repo.save({ blob: "kept by the raw table" });
  const rawOid = oidOf(rawOnly.blob);
  await admin.query(`INSERT INTO "qu""oted schema"."ta""ble; --" VALUES (1, $1)`, [rawOid]);
  await admin.query(`ALTER TABLE ${quoted} DISABLE TRIGGER USER`);
  await admin.query(`DELETE FROM ${quoted} WHERE "${KEY}" = $1`, [rawOnly.id]);
  // And one true orphan: recorded, referenced by nothing.
  const orphan = await repo.save({ blob: "orphan" });
  await admin.query(`DELETE FROM ${quoted} WHERE "${KEY}" = $1`, [orphan.id]);
  await admin.query(`ALTER TABLE ${quoted} ENABLE TRIGGER USER`);
  const unrecorded = await LargeObject.create(admin, { data: "not ours" });

  const report = await sweepOrphans(ds, { graceMs: 0 });
  expect(report.unlinked).toBe(1);
  expect(await objectExists(admin, oidOf(orphan.blob))).toBe(false);
  expect((await objectBytes(admin, oidOf(kept.blob))).toString()).toBe("kept by the entity");
  expect((await objectBytes(admin, rawOid)).toString()).toBe("kept by the raw table");
  expect(await objectExists(admin, unrecorded)).toBe(true);
  await LargeObject.unlink(admin, unrecorded);
});
