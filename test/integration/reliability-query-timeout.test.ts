import { createHook } from "node:async_hooks";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { collect } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

/** pg's own client-side timeout on every query of the pool's connections. */
const QUERY_TIMEOUT_MS = 300;

let ds: DataSource;
useDataSource((opened) => (ds = opened), { extra: { query_timeout: QUERY_TIMEOUT_MS } });

/**
 * Counts the timers pg's Client.query starts for its query_timeout while `work` runs, and how many
 * of them are still pending when it ends. Only pg's own timers count: the pool and jest run timers
 * of their own, whose number changes under load.
 */
async function pgQueryTimers(work: () => Promise<void>): Promise<{ started: number; pending: number }> {
  const pending = new Set<number>();
  let started = 0;
  const hook = createHook({
    init(asyncId, type) {
      if (type !== "Timeout") return;
      const stack = new Error().stack ?? "";
      if (!/[\\/]pg[\\/]lib[\\/]client\.js/.test(stack)) return;
      started += 1;
      pending.add(asyncId);
    },
    destroy(asyncId) {
      pending.delete(asyncId);
    },
  });
  hook.enable();
  try {
    await work();
    // Node reports destroyed timers in a later turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    hook.disable();
  }
  return { started, pending: pending.size };
}

const CONTENT = Buffer.alloc(3 * 1024 * 1024 + 5, 7);

test("with pg's query_timeout set, a write and a read stream end cleanly, leave no timer of pg's running and the connection sound past the timeout", async () => {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    let oid = 0;
    let read: Buffer = Buffer.alloc(0);
    const timers = await pgQueryTimers(async () => {
      oid = await LargeObject.create(runner);
      const writer = await LargeObject.open(runner, oid, "w");
      await pipeline(Readable.from([CONTENT]), writer.createWriteStream({ autoClose: false }));
      await writer.close();
      const reader = await LargeObject.open(runner, oid, "r");
      read = await collect(reader.createReadStream({ autoClose: false }));
      await reader.close();
    });
    expect(read.equals(CONTENT)).toBe(true);
    // pg clears a query's timer when the query reports that it is done: none may be left running.
    expect(timers.started).toBeGreaterThan(0);
    expect(timers.pending).toBe(0);
    // Past the timeout: a timer pg left running for either stream would now fail or derail the connection.
    await new Promise((resolve) => setTimeout(resolve, QUERY_TIMEOUT_MS * 2));
    const rows = await runner.query("SELECT $1::int AS n", [42]);
    expect(rows).toEqual([{ n: 42 }]);
    await runner.commitTransaction();
    expect(await LargeObject.exists(ds, oid)).toBe(true);
  } finally {
    if (runner.isTransactionActive) await runner.rollbackTransaction();
    await runner.release();
  }
});
