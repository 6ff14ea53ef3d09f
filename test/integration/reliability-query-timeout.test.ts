import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src/large-object";
import { collect } from "../support/streams";
import { useDataSource } from "../support/use-data-source";

/** pg's own client-side timeout on every query of the pool's connections. */
const QUERY_TIMEOUT_MS = 300;

let ds: DataSource;
useDataSource((opened) => (ds = opened), { extra: { query_timeout: QUERY_TIMEOUT_MS } });

/** Timers pending in this process. */
function timers(): number {
  return process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
}

const CONTENT = Buffer.alloc(3 * 1024 * 1024 + 5, 7);

test("with pg's query_timeout set, a write and a read stream end cleanly, leave no timer of pg's running and the connection sound past the timeout", async () => {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const timersBefore = timers();
    const oid = await LargeObject.create(runner);
    const writer = await LargeObject.open(runner, oid, "w");
    await pipeline(Readable.from([CONTENT]), writer.createWriteStream({ autoClose: false }));
    await writer.close();
    const reader = await LargeObject.open(runner, oid, "r");
    const read = await collect(reader.createReadStream({ autoClose: false }));
    await reader.close();
    expect(read.equals(CONTENT)).toBe(true);
    // pg clears a query's timer when the query reports that it is done: none may be left running.
    expect(timers()).toBe(timersBefore);
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
