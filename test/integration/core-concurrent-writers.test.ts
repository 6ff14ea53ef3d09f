import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes } from "../support/database";
import { rejection } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { checkClean: true });

test("ERR_LO_TIMEOUT: an unlink waiting on another transaction's unlink of the same object hits lock_timeout", async () => {
  const oid = await LargeObject.create(ds, { data: "contested" });
  const holder = ds.createQueryRunner();
  const waiter = ds.createQueryRunner();
  try {
    await holder.startTransaction();
    await LargeObject.unlink(holder, oid);
    await waiter.query("SET lock_timeout = '100ms'");
    const err = await rejection(LargeObject.unlink(waiter, oid));
    expect(err).toMatchObject({ code: "ERR_LO_TIMEOUT", oid });
    expect((err as Error).cause).toMatchObject({ code: "55P03" });
    await holder.rollbackTransaction();
    await waiter.query("RESET lock_timeout");
  } finally {
    await holder.release();
    await waiter.release();
  }
  expect((await objectBytes(ds, oid)).toString()).toBe("contested");
});

test("ERR_LO_CONFLICT: a second writer of the same page fails once the first commits, and nothing of it lands", async () => {
  const oid = await LargeObject.create(ds, { data: "0123456789" });
  const a = await LargeObject.open(ds, oid, "w");
  const b = await LargeObject.open(ds, oid, "w");
  try {
    await a.write("AA");
    const blocked = b.write("BB");
    await new Promise((resolve) => setTimeout(resolve, 50));
    await a.close();
    const err = await rejection(blocked);
    expect(err).toMatchObject({ code: "ERR_LO_CONFLICT", oid });
    expect((err as Error).message).toContain("tuple concurrently updated");
    expect(await rejection(b.close())).toMatchObject({ code: "ERR_LO_TRANSACTION" });
  } finally {
    await a.abort();
    await b.abort();
  }
  expect((await objectBytes(ds, oid)).toString()).toBe("AA23456789");
});

test("writers of different pages of one object do not conflict", async () => {
  const oid = await LargeObject.create(ds, { data: Buffer.alloc(3 * 2048, 0x2e) });
  const a = await LargeObject.open(ds, oid, "w");
  const b = await LargeObject.open(ds, oid, "w");
  await a.write("AA");
  await b.seek(2 * 2048);
  await b.write("BB");
  await Promise.all([a.close(), b.close()]);
  const bytes = await objectBytes(ds, oid);
  expect(bytes.subarray(0, 2).toString()).toBe("AA");
  expect(bytes.subarray(4096, 4098).toString()).toBe("BB");
});
