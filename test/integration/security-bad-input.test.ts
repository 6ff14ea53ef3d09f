import { Readable } from "node:stream";
import { DataSource, type DataSourceOptions } from "typeorm";
import { LargeObject, LargeObjectColumn, LargeObjectError, LargeObjectRepository, oidOf, registerLargeObjects, type LargeObjectErrorCode, type LargeObjectMode, sweepOrphans } from "../../src";
import { databaseUrl, idleInTransaction, randomBytes } from "../support/database";
import { objectDigests, openVictim, victimName } from "../support/faults";
import { checkedOut } from "../support/pool";
import { within } from "../support/streams";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

// Every public function, called with what users get wrong. Each row must fail with its own code,
// leave no transaction open (the pool of one still answers), and change no data.
let owner: DataSource;
let admin: DataSource;
let ds: DataSource;
let doc: Document;
let nullDoc: Document;
let otherDoc: Document;
let bigDoc: Document;
let unknownOid: number;
const app = victimName("bad_input");
// Another driver: never initialised, so it never connects.
const cockroach = new DataSource({ type: "cockroachdb", url: databaseUrl() } as DataSourceOptions);

useDataSource((opened) => (owner = opened), {
  orm: [Document],
  admin: (opened) => (admin = opened),
  setUp: async () => {
    ds = await openVictim([Document], app, { poolSize: 1 });
    doc = await owner.getRepository(Document).save({ name: "doc", attachment: "fixed content" });
    nullDoc = await owner.getRepository(Document).save({ name: "null", attachment: null });
    otherDoc = await owner.getRepository(Document).save({ name: "other", attachment: "other content" });
    bigDoc = await owner.getRepository(Document).save({ name: "big", attachment: randomBytes(4096, 3) });
    unknownOid = await LargeObject.create(admin);
    await LargeObject.unlink(admin, unknownOid);
  },
  tearDown: () => ds.destroy(),
});

/** Opens a handle on the pool of one, runs `use`, and always closes it (so only `use`'s error remains). */
async function withHandle(mode: LargeObjectMode, use: (lo: LargeObject) => unknown): Promise<unknown> {
  const lo = await LargeObject.open(ds, oidOf(doc.attachment), mode);
  try {
    return await use(lo);
  } finally {
    await lo.abort();
  }
}

async function closedHandle(): Promise<LargeObject> {
  const lo = await LargeObject.open(ds, oidOf(doc.attachment), "rw");
  await lo.close();
  return lo;
}

const files = (options?: { maxReadBytes?: number }): LargeObjectRepository => new LargeObjectRepository(ds.manager, options);
const docs = () => ds.getRepository(Document);
class NotAnEntity {
  id = 1;
  attachment = 1;
}
const unsaved = (): Document => Object.assign(new Document(), { name: "unsaved" });
const missingRow = (): Document => Object.assign(new Document(), { id: 987_654 });
const never = undefined as unknown;

type Row = [what: string, code: LargeObjectErrorCode, call: () => unknown];
const rows: Row[] = [
  // LargeObject statics
  ["open: unknown oid", "ERR_LO_NOT_FOUND", () => LargeObject.open(ds, unknownOid, "r")],
  ["open: unknown oid for writing", "ERR_LO_NOT_FOUND", () => LargeObject.open(ds, unknownOid, "rw")],
  ["open: oid 0", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, 0, "r")],
  ["open: negative oid", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, -1, "r")],
  ["open: fractional oid", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, 1.5, "r")],
  ["open: NaN oid", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, NaN, "r")],
  ["open: oid above 2^32 - 1", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, 2 ** 32, "r")],
  ["open: oid that is not a number", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, "12; DROP TABLE x" as never, "r")],
  ["open: unknown mode", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, oidOf(doc.attachment), "x" as LargeObjectMode)],
  ["open: chunkSize 0", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.open(ds, oidOf(doc.attachment), "r", { chunkSize: 0 })],
  ["unlink: unknown oid", "ERR_LO_NOT_FOUND", () => LargeObject.unlink(ds, unknownOid)],
  ["unlink: oid 0", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.unlink(ds, 0)],
  ["exists: NaN", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.exists(ds, NaN)],
  ["create: content of numbers", "ERR_LO_INVALID_VALUE", () => LargeObject.create(ds, { data: [1, 2, 3] as never })],
  ["create: a number as content", "ERR_LO_INVALID_VALUE", () => LargeObject.create(ds, { data: 42 as never })],
  ["create: a plain object as content", "ERR_LO_INVALID_VALUE", () => LargeObject.create(ds, { data: { bytes: "x" } as never })],
  ["create: a stream of objects", "ERR_LO_INVALID_VALUE", () => LargeObject.create(ds, { data: Readable.from([Buffer.from("ok"), { no: 1 }]) })],
  ["create: not a source", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.create({} as DataSource)],
  ["create: null source", "ERR_LO_INVALID_ARGUMENT", () => LargeObject.create(null as never)],
  ["create: a non-Postgres data source", "ERR_LO_NOT_POSTGRES", () => LargeObject.create(cockroach)],
  ["open: a non-Postgres manager", "ERR_LO_NOT_POSTGRES", () => LargeObject.open(cockroach.manager, 1234, "r")],
  // Handle methods
  ["read: negative size", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.read(-1))],
  ["read: fractional size", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.read(1.5))],
  ["read: NaN size", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.read(NaN))],
  ["read: through a write handle", "ERR_LO_MODE", () => withHandle("w", (lo) => lo.read())],
  ["read: through an append handle", "ERR_LO_MODE", () => withHandle("a", (lo) => lo.read(1))],
  ["write: through a read handle", "ERR_LO_MODE", () => withHandle("r", (lo) => lo.write("x"))],
  ["write: a number", "ERR_LO_INVALID_VALUE", () => withHandle("w", (lo) => lo.write(12 as never))],
  ["truncate: through a read handle", "ERR_LO_MODE", () => withHandle("r", (lo) => lo.truncate(0))],
  ["truncate: negative length", "ERR_LO_INVALID_ARGUMENT", () => withHandle("w", (lo) => lo.truncate(-1))],
  ["seek: negative absolute offset", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.seek(-1, "set"))],
  ["seek: fractional offset", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.seek(0.5))],
  ["seek: NaN offset", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.seek(NaN, "cur"))],
  ["seek: unknown whence", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.seek(0, "sideways" as never))],
  ["seek: whence 3", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.seek(0, 3 as never))],
  ["seek: before the start (server refuses)", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.seek(-10, "cur"))],
  ["createReadStream: start > end", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.createReadStream({ start: 5, end: 2 }))],
  ["createReadStream: negative start", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.createReadStream({ start: -1 }))],
  ["createReadStream: NaN end", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.createReadStream({ end: NaN }))],
  ["createReadStream: highWaterMark 0", "ERR_LO_INVALID_ARGUMENT", () => withHandle("r", (lo) => lo.createReadStream({ highWaterMark: 0 }))],
  ["createReadStream: through a write handle", "ERR_LO_MODE", () => withHandle("w", (lo) => lo.createReadStream())],
  ["createWriteStream: chunkSize -1", "ERR_LO_INVALID_ARGUMENT", () => withHandle("w", (lo) => lo.createWriteStream({ chunkSize: -1 }))],
  ["createWriteStream: through a read handle", "ERR_LO_MODE", () => withHandle("r", (lo) => lo.createWriteStream())],
  ["closed handle: read", "ERR_LO_CLOSED", async () => (await closedHandle()).read()],
  ["closed handle: write", "ERR_LO_CLOSED", async () => (await closedHandle()).write("x")],
  ["closed handle: seek", "ERR_LO_CLOSED", async () => (await closedHandle()).seek(0)],
  ["closed handle: tell", "ERR_LO_CLOSED", async () => (await closedHandle()).tell()],
  ["closed handle: size", "ERR_LO_CLOSED", async () => (await closedHandle()).size()],
  ["closed handle: truncate", "ERR_LO_CLOSED", async () => (await closedHandle()).truncate(0)],
  ["closed handle: createReadStream", "ERR_LO_CLOSED", async () => (await closedHandle()).createReadStream()],
  ["closed handle: createWriteStream", "ERR_LO_CLOSED", async () => (await closedHandle()).createWriteStream()],
  // LargeObjectRepository
  ["repository: a non-Postgres manager", "ERR_LO_NOT_POSTGRES", () => new LargeObjectRepository(cockroach.manager)],
  ["repository: maxReadBytes -1", "ERR_LO_INVALID_ARGUMENT", () => new LargeObjectRepository(ds.manager, { maxReadBytes: -1 })],
  ["read: a property that is not a large-object column", "ERR_LO_NOT_DECORATED", () => files().read(doc, "name")],
  ["read: a property that does not exist", "ERR_LO_NOT_DECORATED", () => files().read(doc, "nope" as never)],
  ["read: an object that is not an entity", "ERR_LO_NOT_DECORATED", () => files().read(new NotAnEntity(), "attachment")],
  ["createWriteStream: a property that is not a large-object column", "ERR_LO_NOT_DECORATED", () => files().createWriteStream(doc, "name")],
  ["read: an entity without its primary key", "ERR_LO_NO_PRIMARY_KEY", () => files().read(unsaved(), "attachment")],
  ["createWriteStream: an entity without its primary key", "ERR_LO_NO_PRIMARY_KEY", () => files().createWriteStream(unsaved(), "attachment")],
  ["openStream: an entity without its primary key", "ERR_LO_NO_PRIMARY_KEY", () => files().openStream(unsaved(), "attachment", { mode: "w" })],
  ["read: a primary key with no row", "ERR_LO_NOT_FOUND", () => files().read(missingRow(), "attachment")],
  ["createWriteStream: a primary key with no row", "ERR_LO_NOT_FOUND", () => files().createWriteStream(missingRow(), "attachment")],
  ["read: a null column", "ERR_LO_NULL", () => files().read(nullDoc, "attachment")],
  ["size: a null column", "ERR_LO_NULL", () => files().size(nullDoc, "attachment")],
  ["createReadStream: a null column", "ERR_LO_NULL", () => files().createReadStream(nullDoc, "attachment")],
  ["openStream: a null column for reading", "ERR_LO_NULL", () => files().openStream(nullDoc, "attachment")],
  ["read: above maxReadBytes", "ERR_LO_TOO_LARGE", () => files({ maxReadBytes: 1024 }).read(bigDoc, "attachment")],
  ["openStream: unknown mode", "ERR_LO_INVALID_ARGUMENT", () => files().openStream(doc, "attachment", { mode: "x" as never })],
  ["openStream: chunkSize NaN", "ERR_LO_INVALID_ARGUMENT", () => files().openStream(doc, "attachment", { chunkSize: NaN })],
  ["createReadStream: start > end", "ERR_LO_INVALID_ARGUMENT", () => files().createReadStream(doc, "attachment", { start: 9, end: 3 })],
  ["createReadStream: fractional start", "ERR_LO_INVALID_ARGUMENT", () => files().createReadStream(doc, "attachment", { start: 0.5 })],
  ["createWriteStream: chunkSize 0", "ERR_LO_INVALID_ARGUMENT", () => files().createWriteStream(doc, "attachment", { chunkSize: 0 })],
  ["write: a number as content", "ERR_LO_INVALID_VALUE", () => files().write(doc, "attachment", 42 as never)],
  ["write: content of numbers", "ERR_LO_INVALID_VALUE", () => files().write(doc, "attachment", [1, 2] as never)],
  ["write: a stream that turns out to carry objects", "ERR_LO_INVALID_VALUE", () => files().write(doc, "attachment", Readable.from(["ok", { no: 1 }]))],
  // save() and insert() through the subscriber
  ["save: a plain object in the column", "ERR_LO_INVALID_VALUE", () => docs().save({ name: "bad", attachment: { bytes: 1 } as never })],
  ["save: a boolean in the column", "ERR_LO_INVALID_VALUE", () => docs().save({ name: "bad", attachment: true as never })],
  ["save: an array of numbers in the column", "ERR_LO_INVALID_VALUE", () => docs().save({ name: "bad", attachment: [1, 2] as never })],
  ["save: a stream of objects in the column", "ERR_LO_INVALID_VALUE", () => docs().save({ name: "bad", attachment: Readable.from([{ no: 1 }]) })],
  ["save: oid 0", "ERR_LO_INVALID_ARGUMENT", () => docs().save({ name: "bad", attachment: 0 })],
  ["save: a negative oid", "ERR_LO_INVALID_ARGUMENT", () => docs().save({ name: "bad", attachment: -5 })],
  ["save: a fractional oid", "ERR_LO_INVALID_ARGUMENT", () => docs().save({ name: "bad", attachment: 7.5 })],
  ["save: an unknown oid", "ERR_LO_NOT_FOUND", () => docs().save({ name: "bad", attachment: unknownOid })],
  ["save: an oid another row owns", "ERR_LO_IN_USE", () => docs().save({ name: "bad", attachment: otherDoc.attachment })],
  ["update via save: an oid another row owns", "ERR_LO_IN_USE", () => docs().save({ id: doc.id, attachment: otherDoc.attachment })],
  ["insert: a plain object in the column", "ERR_LO_INVALID_VALUE", () => docs().insert({ name: "bad", attachment: { bytes: 1 } as never })],
  ["insert: an unknown oid", "ERR_LO_NOT_FOUND", () => docs().insert({ name: "bad", attachment: unknownOid })],
  // Helpers and registration
  ["oidOf: content not saved yet", "ERR_LO_INVALID_VALUE", () => oidOf("not saved")],
  ["oidOf: null", "ERR_LO_NULL", () => oidOf(null)],
  ["registerLargeObjects: after initialize()", "ERR_LO_NOT_REGISTERED", () => registerLargeObjects(admin)],
  ["registerLargeObjects: a non-Postgres data source", "ERR_LO_NOT_POSTGRES", () => registerLargeObjects(cockroach)],
  [
    "@LargeObjectColumn on a symbol property",
    "ERR_LO_INVALID_ARGUMENT",
    () => LargeObjectColumn()(class {}.prototype, Symbol("blob")),
  ],
  // The sweep
  ["sweep: batchSize 0", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { batchSize: 0 })],
  ["sweep: negative batchSize", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { batchSize: -100 })],
  ["sweep: fractional batchSize", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { batchSize: 2.5 })],
  ["sweep: NaN batchSize", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { batchSize: NaN })],
  ["sweep: batchSize as a string", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { batchSize: "1000" as never })],
  ["sweep: a huge batchSize", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { batchSize: 1e9 })],
  ["sweep: negative graceMs", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { graceMs: -1 })],
  ["sweep: unknown scope", "ERR_LO_INVALID_ARGUMENT", () => sweepOrphans(ds, { scope: "everything" as never })],
  ["sweep: a non-Postgres data source", "ERR_LO_NOT_POSTGRES", () => sweepOrphans(cockroach)],
];

async function snapshot(): Promise<unknown> {
  return {
    rows: await admin.query("SELECT id, name, attachment, thumbnail FROM orm_document ORDER BY id"),
    records: await admin.query("SELECT oid, created_for FROM typeorm_large_objects ORDER BY oid"),
    objects: [...(await objectDigests(admin)).entries()],
  };
}

test.each(rows)("%s: %s", async (_what, code, call) => {
  const before = await snapshot();
  let error: unknown = never;
  try {
    await call();
  } catch (err) {
    error = err;
  }
  expect(error).toBeInstanceOf(LargeObjectError);
  expect(error).toMatchObject({ code });
  // No transaction left open, the connection back in the pool, and the pool of one still answers.
  expect(checkedOut(ds)).toBe(0);
  expect(await within(3000, ds.query("SELECT 1 AS one"), "a query on the pool of one")).toEqual([{ one: 1 }]);
  expect(await idleInTransaction(admin)).toBe(0);
  expect(await snapshot()).toEqual(before);
});

test("every code of the table above is a distinct, documented situation", () => {
  const codes = new Set(rows.map(([, code]) => code));
  // The codes that need a failing server or a race, not bad input, are covered by the reliability tests.
  expect([...codes].sort()).toEqual(
    [
      "ERR_LO_CLOSED",
      "ERR_LO_IN_USE",
      "ERR_LO_INVALID_ARGUMENT",
      "ERR_LO_INVALID_VALUE",
      "ERR_LO_MODE",
      "ERR_LO_NOT_DECORATED",
      "ERR_LO_NOT_FOUND",
      "ERR_LO_NOT_POSTGRES",
      "ERR_LO_NOT_REGISTERED",
      "ERR_LO_NO_PRIMARY_KEY",
      "ERR_LO_NULL",
      "ERR_LO_TOO_LARGE",
    ].sort(),
  );
});
