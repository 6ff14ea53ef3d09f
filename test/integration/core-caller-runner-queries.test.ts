import { createHash, randomBytes } from "node:crypto";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { checkClean: true });

/** Rejects when `work` has not settled within `ms`: a stream holding the connection shows as a hang. */
function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

function written(stream: NodeJS.WritableStream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())));
}

test("the caller's own query between two writes of a write stream on its transaction runs at once", async () => {
  const first = randomBytes(300 * 1024);
  const second = randomBytes(300 * 1024);
  const oid = await ds.transaction((manager) =>
    within(10_000, "the transaction", (async () => {
      const oid = await LargeObject.create(manager);
      const lo = await LargeObject.open(manager, oid, "w");
      const stream = lo.createWriteStream();
      await written(stream, first);
      // The same connection: TypeORM sends this straight to pg, not through the library.
      const [row] = (await within(5_000, "a query between writes", manager.query("SELECT 41 + 1 AS n"))) as { n: number }[];
      expect(row!.n).toBe(42);
      await written(stream, second);
      await new Promise<void>((resolve, reject) => stream.end(() => resolve()).on("error", reject));
      return oid;
    })()),
  );
  expect((await objectBytes(ds, oid)).equals(Buffer.concat([first, second]))).toBe(true);
});

test("the caller's own query for each chunk of a read stream on its transaction does not wait for the stream", async () => {
  const content = randomBytes(6 * 1024 * 1024 + 123);
  const oid = await LargeObject.create(ds, { data: content });
  const digest = await ds.transaction((manager) =>
    within(20_000, "reading with a query per chunk", (async () => {
      const lo = await LargeObject.open(manager, oid, "r");
      const hash = createHash("sha256");
      let queries = 0;
      for await (const chunk of lo.createReadStream({ highWaterMark: 64 * 1024 })) {
        hash.update(chunk as Buffer);
        await manager.query("SELECT 1");
        queries += 1;
      }
      expect(queries).toBeGreaterThan(1);
      return hash.digest("hex");
    })()),
  );
  expect(digest).toBe(createHash("sha256").update(content).digest("hex"));
});
