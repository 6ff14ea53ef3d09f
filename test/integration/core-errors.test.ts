import { DataSource, type DataSourceOptions } from "typeorm";
import { LargeObject, LargeObjectError } from "../../src";
import { databaseUrl, idleInTransaction, openDataSource } from "../support/database";
import { drain, rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { checkClean: true });

async function unknownOid(): Promise<number> {
  const oid = await LargeObject.create(ds);
  await LargeObject.unlink(ds, oid);
  return oid;
}

describe("ERR_LO_NOT_FOUND", () => {
  test("opening, unlinking or reading an oid with no object", async () => {
    const oid = await unknownOid();
    for (const mode of ["r", "w", "rw", "a"] as const) {
      const err = await rejection(LargeObject.open(ds, oid, mode));
      expect(err).toBeInstanceOf(LargeObjectError);
      expect(err).toMatchObject({ code: "ERR_LO_NOT_FOUND", oid });
      expect((err as Error).cause).toMatchObject({ code: "42704" });
    }
    expect(await rejection(LargeObject.unlink(ds, oid))).toMatchObject({ code: "ERR_LO_NOT_FOUND", oid });
    expect(await LargeObject.exists(ds, oid)).toBe(false);
  });

  test("a read stream of an object unlinked after the handle's snapshot still reads it; a new handle does not", async () => {
    const oid = await LargeObject.create(ds, { data: "here" });
    const lo = await LargeObject.open(ds, oid, "r");
    await LargeObject.unlink(ds, oid);
    expect((await drain(lo.createReadStream())).toString()).toBe("here");
    expect(await rejection(LargeObject.open(ds, oid, "r"))).toMatchObject({ code: "ERR_LO_NOT_FOUND" });
  });
});

test("a failed open leaves its connection clean: the next transaction on it is rolled back when it fails too", async () => {
  // One connection, so every open takes the one the failed open before it gave back.
  const one = await openDataSource({ poolSize: 1 });
  try {
    const oid = await unknownOid();
    for (let i = 0; i < 100; i++) {
      for (const mode of ["r", "w", "rw"] as const) {
        expect(await rejection(LargeObject.open(one, oid, mode))).toMatchObject({ code: "ERR_LO_NOT_FOUND", oid });
      }
    }
    const rows: { status: string }[] = await one.query("SELECT 'clean' AS status");
    expect(rows).toEqual([{ status: "clean" }]);
    expect(await idleInTransaction(ds)).toBe(0);
  } finally {
    await one.destroy();
  }
});

test("ERR_LO_MODE: reading a write handle, writing a read handle", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  const writer = await LargeObject.open(ds, oid, "w");
  expect(await rejection(writer.read())).toMatchObject({ code: "ERR_LO_MODE", oid });
  await writer.close();
  const reader = await LargeObject.open(ds, oid, "r");
  expect(await rejection(reader.write("x"))).toMatchObject({ code: "ERR_LO_MODE", oid });
  await reader.close();
});

test("ERR_LO_CLOSED: every operation after close() or abort()", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  for (const end of ["close", "abort"] as const) {
    const lo = await LargeObject.open(ds, oid, "rw");
    await lo[end]();
    const calls: (() => Promise<unknown>)[] = [
      () => lo.read(),
      () => lo.write("x"),
      () => lo.writePiece(Buffer.from("x")),
      () => lo.seek(0),
      () => lo.tell(),
      () => lo.size(),
      () => lo.truncate(0),
      () => Promise.resolve().then(() => lo.createReadStream()),
      () => Promise.resolve().then(() => lo.createWriteStream()),
    ];
    for (const call of calls) expect(await rejection(call())).toMatchObject({ code: "ERR_LO_CLOSED", oid });
  }
});

test("ERR_LO_CLOSED: a handle whose stream has finished is closed", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  const lo = await LargeObject.open(ds, oid, "r");
  await drain(lo.createReadStream());
  expect(await rejection(lo.read())).toMatchObject({ code: "ERR_LO_CLOSED" });
});

test("ERR_LO_INVALID_ARGUMENT: bad oids, modes, offsets and sizes, before any statement runs", async () => {
  for (const oid of [0, -1, 1.5, NaN, 2 ** 32, Infinity]) {
    expect(await rejection(LargeObject.open(ds, oid, "r"))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
    expect(await rejection(LargeObject.unlink(ds, oid))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
    expect(await rejection(LargeObject.exists(ds, oid))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  }
  const oid = await LargeObject.create(ds, { data: "abc" });
  expect(await rejection(LargeObject.open(ds, oid, "rwx" as "rw"))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  expect(await rejection(LargeObject.open(ds, oid, "r", { chunkSize: 0 }))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  const lo = await LargeObject.open(ds, oid, "rw");
  for (const call of [() => lo.seek(-1), () => lo.seek(0.5), () => lo.seek(NaN), () => lo.seek(0, "sideways" as "set"), () => lo.read(-3), () => lo.truncate(1.25)]) {
    expect(await rejection(call())).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT", oid });
  }
  expect(await rejection(lo.write(12 as unknown as string))).toMatchObject({ code: "ERR_LO_INVALID_VALUE", oid });
  expect(() => lo.createReadStream({ start: 2, end: 1 })).toThrow(expect.objectContaining({ code: "ERR_LO_INVALID_ARGUMENT" }));
  expect(() => lo.createWriteStream({ chunkSize: -1 })).toThrow(expect.objectContaining({ code: "ERR_LO_INVALID_ARGUMENT" }));
  // None of it reached the server, so the transaction is intact.
  await lo.write("X");
  await lo.close();
  expect(await rejection(LargeObject.create({} as DataSource))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
  expect(await rejection(LargeObject.create(null as unknown as DataSource))).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
});

test("ERR_LO_NOT_POSTGRES: a data source of another driver, its manager and its runner", async () => {
  // CockroachDB speaks the PostgreSQL protocol through pg but has no large objects; the DataSource
  // is never initialised, so nothing connects.
  const other = new DataSource({ type: "cockroachdb", url: databaseUrl() } as DataSourceOptions);
  const sources = [other, other.manager, other.createQueryRunner()];
  for (const source of sources) {
    expect(await rejection(LargeObject.create(source))).toMatchObject({ code: "ERR_LO_NOT_POSTGRES" });
    expect(await rejection(LargeObject.open(source, 1234, "r"))).toMatchObject({ code: "ERR_LO_NOT_POSTGRES" });
    expect(await rejection(LargeObject.unlink(source, 1234))).toMatchObject({ code: "ERR_LO_NOT_POSTGRES" });
    expect(await rejection(LargeObject.exists(source, 1234))).toMatchObject({ code: "ERR_LO_NOT_POSTGRES" });
  }
});

test("errors keep the server's error as cause", async () => {
  const oid = await unknownOid();
  const err = (await rejection(LargeObject.open(ds, oid, "r"))) as LargeObjectError;
  expect(err.name).toBe("LargeObjectError");
  expect(err.message).toContain(String(oid));
  expect(err.cause).toBeInstanceOf(Error);
});
