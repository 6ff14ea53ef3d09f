import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes } from "../support/database";
import { rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened));

// Descriptors are numbered from 0 in every transaction: a handle that outlives the caller's
// transaction holds the number of whatever the next transaction opens first.
test("regression: a handle whose joined transaction has ended never touches the next transaction's descriptors", async () => {
  const first = await LargeObject.create(ds, { data: "first object" });
  const second = await LargeObject.create(ds, { data: "second object" });
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const stale = await LargeObject.open(runner, first, "rw");
    await runner.commitTransaction();

    await runner.startTransaction();
    const fresh = await LargeObject.open(runner, second, "rw");
    expect(await rejection(stale.read(6))).toMatchObject({ code: "ERR_LO_CLOSED", oid: first });
    expect(await rejection(stale.write("XXXXXX"))).toMatchObject({ code: "ERR_LO_CLOSED", oid: first });
    expect(() => stale.createReadStream()).toThrow(expect.objectContaining({ code: "ERR_LO_CLOSED" }));
    // close() of the stale handle must not close the fresh handle's descriptor.
    await stale.close();
    expect((await fresh.read(6)).toString()).toBe("second");
    await fresh.write("!");
    await fresh.close();
    await runner.commitTransaction();
  } finally {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
    await runner.release();
  }
  expect((await objectBytes(ds, first)).toString()).toBe("first object");
  expect((await objectBytes(ds, second)).toString()).toBe("second!object");
});

test("a handle whose joined transaction was rolled back reports ERR_LO_CLOSED, and close() is harmless", async () => {
  const oid = await LargeObject.create(ds, { data: "abc" });
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const lo = await LargeObject.open(runner, oid, "r");
    await runner.rollbackTransaction();
    expect(await rejection(lo.tell())).toMatchObject({ code: "ERR_LO_CLOSED" });
    await lo.close();
    expect(await runner.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  } finally {
    await runner.release();
  }
});
