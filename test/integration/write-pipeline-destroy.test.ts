import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import { LargeObject } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { expectConnectionFree as connectionFree } from "../support/pool";
import { closed, within } from "../support/streams";
import { useOneConnection } from "../support/use-data-source";

// One connection: a pipeline left unsynchronised, or a runner left checked out, hangs the next query.
const PIECE = 64 * 1024;
let ds: DataSource;
let admin: DataSource;
const created: number[] = [];

useOneConnection((pool, observer) => ((ds = pool), (admin = observer)), { unlink: created });

const expectConnectionFree = (): Promise<void> => connectionFree(ds, admin, "a query after the destroy");

/** An endless producer of pieces; it counts what the stream has accepted. */
function endless(): Readable & { sent: number } {
  const source = new Readable({
    read() {
      source.sent += 1;
      this.push(randomBytes(PIECE, source.sent));
    },
  }) as Readable & { sent: number };
  source.sent = 0;
  return source;
}

test("destroying a write stream while lowrite calls are in flight commits nothing and frees the only connection", async () => {
  const oid = await LargeObject.create(admin, { data: "old" });
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, "w");
  const stream = lo.createWriteStream({ chunkSize: PIECE });
  const source = endless();
  source.pipe(stream);
  // Destroyed from inside a piece's callback: the next pieces are on the wire at that moment.
  await new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (stream.bytesWritten >= 8 * PIECE) {
        clearInterval(check);
        resolve();
      }
    }, 1);
  });
  const done = closed(stream);
  stream.destroy();
  source.destroy();
  expect(await within(5000, done, "the stream's close")).toBeUndefined();
  expect(lo.isClosed).toBe(true);
  await expectConnectionFree();
  expect((await objectBytes(admin, oid)).toString()).toBe("old");
});

test("destroying with an error in a joined transaction leaves the caller's runner free to roll back", async () => {
  const runner = ds.createQueryRunner();
  try {
    await runner.startTransaction();
    const oid = await LargeObject.create(runner);
    const lo = await LargeObject.open(runner, oid, "w");
    const stream = lo.createWriteStream({ chunkSize: PIECE });
    const source = endless();
    source.pipe(stream);
    await new Promise<void>((resolve) => stream.once("drain", () => resolve()));
    const done = closed(stream);
    stream.destroy(new Error("client went away"));
    source.destroy();
    expect(await within(5000, done, "the stream's close")).toMatchObject({ message: "client went away" });
    // Every piece in flight has been answered: the runner takes statements again at once.
    expect(await within(5000, runner.query("SELECT 3 AS three"), "a statement on the runner")).toEqual([{ three: 3 }]);
    await runner.rollbackTransaction();
    expect(await LargeObject.exists(admin, oid)).toBe(false);
  } finally {
    await runner.release();
  }
  await expectConnectionFree();
});

test("destroying right after the first write, before the pipeline has its connection, still frees it", async () => {
  const oid = await LargeObject.create(admin, { data: "old" });
  created.push(oid);
  const lo = await LargeObject.open(ds, oid, "w");
  const stream = lo.createWriteStream({ chunkSize: PIECE });
  stream.write(randomBytes(3 * PIECE, 4));
  const done = closed(stream);
  stream.destroy();
  expect(await within(5000, done, "the stream's close")).toBeUndefined();
  await expectConnectionFree();
  expect((await objectBytes(admin, oid)).toString()).toBe("old");
});
