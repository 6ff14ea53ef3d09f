import type { DataSource } from "typeorm";
import { Readable } from "node:stream";
import { oidOf, sweepOrphans } from "../../src";
import { countObjects, objectBytes, randomBytes } from "../support/database";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true, poolSize: 30 });

/** A slow upload: the object exists (uncommitted) for a while before its row does. */
function slowContent(bytes: Buffer): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= bytes.length) return void this.push(null);
      const piece = bytes.subarray(offset, offset + 64 * 1024);
      offset += piece.length;
      setTimeout(() => this.push(piece), 5);
    },
  });
}

test("sweeps with no grace period racing 20 concurrent streamed uploads delete none of them", async () => {
  const before = await countObjects(ds);
  const contents = Array.from({ length: 20 }, (_, i) => randomBytes(400 * 1024 + i, 800 + i));
  let uploading = true;
  const uploads = Promise.all(
    contents.map(async (content, i) => {
      // save() creates the object in the row's transaction: invisible to a sweep until both commit.
      const saved = await ds.getRepository(CleanupDoc).save({ name: `up${i}`, file: slowContent(content) });
      return oidOf(saved.file);
    }),
  ).finally(() => {
    uploading = false;
  });
  const sweeps: number[] = [];
  const sweeper = (async () => {
    // No grace period at all: only the transaction keeps the objects safe. (insert() creates its
    // objects in autocommit before the row exists: the grace period is what protects those.)
    while (uploading) sweeps.push((await sweepOrphans(ds, { graceMs: 0, batchSize: 5 })).unlinked);
  })();
  const saved = async () => {
    const rows = await ds.getRepository(CleanupDoc).find({ where: {}, order: { id: "ASC" } });
    return rows.filter((r) => r.name.startsWith("up"));
  };
  const oids = await uploads;
  await sweeper;
  const noGrace = await sweepOrphans(ds, { graceMs: 0 });
  expect(sweeps.length).toBeGreaterThan(0);
  expect(sweeps.every((n) => n === 0)).toBe(true);
  expect(noGrace.unlinked).toBe(0);
  expect(await countObjects(ds)).toBe(before + 20);
  expect((await saved()).length).toBe(20);
  for (const [i, oid] of oids.entries()) expect((await objectBytes(ds, oid)).equals(contents[i]!)).toBe(true);
});
