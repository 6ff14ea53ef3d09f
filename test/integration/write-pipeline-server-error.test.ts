import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject, LargeObjectError } from "../../src";
import { idleInTransaction, objectBytes, randomBytes } from "../support/database";
import { checkedOut } from "../support/pool";
import { closed, rejection, within } from "../support/streams";
import { useOneConnection } from "../support/use-data-source";

// The server refuses a lowrite that would end past the largest object size (2^31 - 1 pages of
// 2 KiB): seeking just below it makes the second piece of a pipeline fail while the first succeeds
// and the third is already on its way.
const MAX_SIZE = 2147483647 * 2048;
const PIECE = 4096;

let ds: DataSource;
let admin: DataSource;
const created: number[] = [];

useOneConnection((pool, observer) => ((ds = pool), (admin = observer)), { unlink: created });

function pieces(count: number): Readable {
  return Readable.from(Array.from({ length: count }, (_, i) => randomBytes(PIECE, i + 1)));
}

test("a lowrite refused mid-pipeline fails the stream, and the owned transaction is rolled back", async () => {
  const oid = await LargeObject.create(admin, { data: "kept" });
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, "w");
  await lo.seek(MAX_SIZE - PIECE - 100);
  const stream = lo.createWriteStream({ chunkSize: PIECE });
  const err = await rejection(pipeline(pieces(6), stream));
  expect(err).toBeInstanceOf(LargeObjectError);
  expect(err).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT", oid });
  expect((err as Error).message).toMatch(/write request size/);
  await lo.abort();
  expect((await objectBytes(admin, oid)).toString()).toBe("kept");
  // The one connection of the pool is back and usable.
  expect(await within(5000, ds.query("SELECT 1 AS one"), "a query after the failed pipeline")).toEqual([{ one: 1 }]);
  expect(checkedOut(ds)).toBe(0);
  expect(await idleInTransaction(admin)).toBe(0);
});

test("in a joined transaction the failure leaves it aborted but rollback-able, and the runner usable", async () => {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const oid = await LargeObject.create(runner);
    const lo = await LargeObject.open(runner, oid, "w");
    await lo.seek(MAX_SIZE - PIECE - 100);
    const err = await rejection(pipeline(pieces(6), lo.createWriteStream({ chunkSize: PIECE })));
    expect(err).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT" });
    // PostgreSQL has aborted the transaction: the next statement says so, and ROLLBACK works.
    await expect(runner.query("SELECT 1")).rejects.toThrow(/current transaction is aborted/);
    await runner.rollbackTransaction();
    expect(await runner.query("SELECT 2 AS two")).toEqual([{ two: 2 }]);
    expect(await LargeObject.exists(admin, oid)).toBe(false);
  } finally {
    await runner.release();
  }
});

test("a refused piece written one by one fails the stream once, at the latest when it ends, and nothing written is kept", async () => {
  const oid = await LargeObject.create(admin);
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, "w");
  await lo.seek(MAX_SIZE - PIECE - 100);
  const stream = lo.createWriteStream({ chunkSize: PIECE });
  const errors: unknown[] = [];
  stream.on("error", (e) => errors.push(e));
  const done = closed(stream);
  const callbacks: (Error | null | undefined)[] = [];
  for (let i = 0; i < 5; i++) stream.write(randomBytes(PIECE, i), (e) => callbacks.push(e));
  // Pieces go out several at a time (up to 512 KiB unanswered): every write may have been
  // accepted before the refusal comes back, and then the end reports it.
  stream.end();
  await within(5000, done, "the stream's close");
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatchObject({ code: "ERR_LO_INVALID_ARGUMENT", oid });
  // The first piece fitted; no write was left without an answer.
  expect(callbacks).toHaveLength(5);
  expect(callbacks[0]).toBeFalsy();
  expect(await within(5000, ds.query("SELECT 1 AS one"), "a query after the failed pipeline")).toEqual([{ one: 1 }]);
  expect(checkedOut(ds)).toBe(0);
  expect(await LargeObject.exists(admin, oid)).toBe(true);
  expect((await objectBytes(admin, oid)).length).toBe(0);
});
