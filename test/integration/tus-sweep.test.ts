import { Readable } from "node:stream";
import type { DataSource } from "typeorm";
import type { Upload as TusClientUpload } from "tus-js-client";
import { sweepOrphans } from "../../src";
import { countObjects, objectExists, randomBytes } from "../support/database";
import { dropTusTable, leftovers, objectSha256, poolSettled, runTusUpload, sha256, uploadRow, useTusServer, type TusServer, type TusOutcome } from "../support/tus";
import { useDataSource } from "../support/use-data-source";
import { TusFile } from "./fixtures/tus-file";

// Ten resumable uploads trickle in while the orphan sweep runs with a short grace period: it
// removes none of them. Three then stop; past the expiry, the sweep takes their objects and
// deleteExpired() their rows, and the seven that went on finish byte-exact.
let ds: DataSource;
let server: TusServer;

const EXPIRATION_MS = 3000;
const SWEEP_GRACE_MS = 1000;
useDataSource((opened) => (ds = opened), { orm: [TusFile], tearDown: dropTusTable });
useTusServer((started) => (server = started), { expirationMs: EXPIRATION_MS, commitEveryBytes: 256 * 1024 });

const KiB = 1024;
const SIZE = 4 * 1024 * KiB;
const STEP = 64 * KiB;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A stream handing out `data` a step every 50 ms, that goes quiet for good once `stopped()` says so. */
function trickle(data: Buffer, stopped: () => boolean): Readable {
  let at = 0;
  return new Readable({
    read() {
      setTimeout(() => {
        if (stopped()) return;
        const value = data.subarray(at, at + STEP);
        at += value.length;
        this.push(value.length > 0 ? value : null);
      }, 50);
    },
  });
}

test("the sweep removes none of 10 receiving uploads; past the expiry, the stopped ones go", async () => {
  const files = Array.from({ length: 10 }, (_, i) => randomBytes(SIZE, 100 + i));
  const stopping = new Set([2, 5, 8]);
  let stop = false;
  const clients: TusClientUpload[] = [];
  const outcomes: Promise<TusOutcome>[] = files.map((data, i) =>
    runTusUpload(trickle(data, () => stop && stopping.has(i)), {
      endpoint: `${server.urls[0]}/files`,
      chunkSize: 256 * KiB,
      uploadSize: SIZE,
      metadata: { filename: `file-${i}` },
      started: (upload) => (clients[i] = upload),
    }),
  );

  // Phase one: all ten receiving, the sweep beside them.
  const started = Date.now();
  let unlinked = 0;
  let sweeps = 0;
  while (Date.now() - started < 2000) {
    unlinked += (await sweepOrphans(ds, { graceMs: SWEEP_GRACE_MS })).unlinked;
    sweeps += 1;
    await sleep(100);
  }
  expect(sweeps).toBeGreaterThan(3);
  expect(unlinked).toBe(0);
  const rows: { n: string }[] = await ds.query('SELECT count(*) AS n FROM "typeorm_large_object_tus_uploads"');
  expect(Number(rows[0]!.n)).toBe(10);

  // Phase two: three stop; the seven others go on to the end while the sweep keeps running.
  stop = true;
  const urls = clients.map((c) => c.url!);
  const stoppedOids = await Promise.all([...stopping].map(async (i) => (await uploadRow(ds, urls[i]!))!.oid));
  const going = [...files.keys()].filter((i) => !stopping.has(i));
  const finished = Promise.all(going.map((i) => outcomes[i]!));
  let done = false;
  void finished.then(() => (done = true));
  while (!done) {
    await sweepOrphans(ds, { graceMs: SWEEP_GRACE_MS });
    await sleep(100);
  }
  for (const outcome of await finished) expect(outcome.ok).toBe(true);
  for (const i of going) {
    const file = await ds.getRepository(TusFile).findOneByOrFail({ name: `file-${i}` });
    expect(await objectSha256(ds, file.content as number)).toBe(sha256(files[i]!));
  }

  // Past the expiry: the sweep has taken the stopped uploads' objects, HEAD says 410, and
  // deleteExpired() removes their rows.
  await sleep(EXPIRATION_MS);
  await sweepOrphans(ds, { graceMs: SWEEP_GRACE_MS });
  for (const oid of stoppedOids) expect(await objectExists(ds, oid)).toBe(false);
  const head = await fetch(urls[2]!, { method: "HEAD", headers: { "Tus-Resumable": "1.0.0" } });
  expect(head.status).toBe(410);
  expect(await server.control<{ removed: number }>("expire")).toEqual({ removed: 3 });
  expect(await leftovers(ds)).toEqual({ uploads: 0, staged: 0 });
  expect(await countObjects(ds)).toBe(7);
  for (const i of stopping) await clients[i]!.abort();
  expect(await poolSettled(server)).toBe(0);
}, 60_000);
