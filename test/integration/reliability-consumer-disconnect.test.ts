import http from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObjectRepository } from "../../src";
import { idleInTransaction, randomBytes } from "../support/database";
import { openVictim, victimName } from "../support/faults";
import { checkedOut } from "../support/pool";
import { closed, within } from "../support/streams";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

// A consumer that goes away at any point must give the connection back at once: a pool of one
// serves the next query, and no session stays idle in transaction.
const MiB = 1024 * 1024;
const SEED = 20261123;
const app = victimName("disconnect");
const data = randomBytes(40 * MiB, 5);
let owner: DataSource;
let admin: DataSource;
let ds: DataSource;
let doc: Document;

useDataSource((opened) => (owner = opened), {
  orm: [Document],
  admin: (opened) => (admin = opened),
  setUp: async () => {
    ds = await openVictim([Document], app, { poolSize: 1 });
    doc = await owner.getRepository(Document).save({ name: "big", attachment: data });
  },
  tearDown: () => ds.destroy(),
});

/** Ten points in the object, from a seeded generator (xorshift), so a failure can be replayed. */
function seededPoints(seed: number, count: number, max: number): number[] {
  let x = seed >>> 0;
  const points: number[] = [];
  for (let i = 0; i < count; i += 1) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    points.push((x >>> 0) % max);
  }
  return points;
}
const points = seededPoints(SEED, 10, data.length);

async function expectReleasedAtOnce(): Promise<void> {
  // "At once": the pool has its connection back by the time the stream has closed.
  expect(checkedOut(ds)).toBe(0);
  expect(await within(2000, ds.query("SELECT 1 AS one"), "a query on the pool of one")).toEqual([{ one: 1 }]);
  expect(await idleInTransaction(admin)).toBe(0);
  const sessions: { state: string }[] = await admin.query(
    "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
    [app],
  );
  expect(sessions.every((s) => s.state === "idle")).toBe(true);
}

test.each(points.map((point, n) => [n + 1, point]))(
  "destroy #%i: a consumer destroys the read stream after %i bytes",
  async (_n, point) => {
    const stream = await new LargeObjectRepository(ds.manager).createReadStream(doc, "attachment", { highWaterMark: 256 * 1024 });
    const done = closed(stream);
    let received = 0;
    const head: Buffer[] = [];
    await new Promise<void>((resolve) => {
      stream.on("data", (chunk: Buffer) => {
        if (received < 4096) head.push(chunk);
        received += chunk.length;
        if (received >= point) {
          stream.destroy();
          resolve();
        }
      });
      stream.on("close", () => resolve());
    });
    expect(await within(5000, done, "the destroyed stream's close")).toBeUndefined();
    expect(Buffer.concat(head).subarray(0, 16).equals(data.subarray(0, 16))).toBe(true);
    await expectReleasedAtOnce();
  },
);

test.each(points.slice(0, 5).map((point, n) => [n + 1, point]))(
  "HTTP disconnect #%i: the client goes away after %i bytes of a streamed download",
  async (_n, point) => {
    let served: Promise<unknown> = Promise.resolve();
    const server = http.createServer((req, res) => {
      served = (async () => {
        const stream = await new LargeObjectRepository(ds.manager).createReadStream(doc, "attachment");
        res.setHeader("content-type", "application/octet-stream");
        const finished = closed(stream);
        await pipeline(stream, res).catch(() => undefined);
        return finished;
      })();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const received = await new Promise<number>((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path: "/file" }, (res) => {
          let count = 0;
          res.on("data", (chunk: Buffer) => {
            count += chunk.length;
            if (count >= point) {
              req.destroy();
              resolve(count);
            }
          });
          res.on("end", () => resolve(count));
        });
        req.on("error", (err) => ((err as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(err)));
      });
      expect(received).toBeGreaterThanOrEqual(Math.min(point, 1));
      await within(5000, served, "the server side of the download");
      await expectReleasedAtOnce();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  },
);
