import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DataSource } from "typeorm";
import { LargeObject, LargeObjectRepository, isLargeObjectError, largeObjectStatus, registerLargeObjects, sweepOrphans } from "../../src";
import { collect } from "../support/streams";
import { promote } from "../support/scratch-server";
import { caughtUp, portOf, useReplicatedServers } from "../support/replication";
import { CleanupDoc } from "./fixtures/cleanup";

// The primary stops while a standby serves a read and the primary takes a write; the standby is
// promoted and a data source pointed at it carries on.
const servers = useReplicatedServers([CleanupDoc]);
let promoted: DataSource | undefined;

afterAll(async () => {
  await promoted?.destroy();
});

test("a read on the standby outlives the primary; after promotion nothing committed is lost and what was in flight left nothing", async () => {
  const { primary, standby, ds } = servers;
  const docs = ds.getRepository(CleanupDoc);
  const small = [randomBytes(70_000), randomBytes(1234)];
  const kept = [await docs.save({ name: "kept 0", file: small[0]! }), await docs.save({ name: "kept 1", file: small[1]! })];
  const big = randomBytes(24 * 1024 * 1024 + 5);
  const bigOid = await LargeObject.create(ds, { data: big });
  const target = await docs.save({ name: "in flight", file: null });
  await caughtUp(primary, standby);

  // Mid-read of the standby: the first bytes are in, the rest is not asked for yet.
  const reader = await LargeObject.open(ds, bigOid, "r");
  expect(portOf(reader)).toBe(standby.port);
  const stream = reader.createReadStream({ highWaterMark: 64 * 1024 });
  const [first] = (await once(stream, "data")) as [Buffer];
  stream.pause();

  // In flight on the primary: an entity's write stream and a create, both past their first pieces.
  const files = new LargeObjectRepository(ds.manager);
  const upload = new PassThrough();
  const uploading = pipeline(upload, await files.createWriteStream(target, "file"));
  upload.write(randomBytes(2 * 1024 * 1024));
  const creating = new PassThrough();
  const created = LargeObject.create(ds, { data: creating });
  creating.write(randomBytes(1024 * 1024));
  await new Promise((resolve) => setTimeout(resolve, 200));

  await primary.stop("fast");
  upload.end(randomBytes(1024 * 1024));
  creating.end(randomBytes(1024 * 1024));
  const [uploadError, createError] = await Promise.all([uploading.catch((e: unknown) => e), created.catch((e: unknown) => e)]);
  expect(isLargeObjectError(uploadError, "ERR_LO_CONNECTION")).toBe(true);
  expect(isLargeObjectError(createError, "ERR_LO_CONNECTION")).toBe(true);

  stream.resume();
  const rest = await collect(stream);
  expect(Buffer.concat([first, rest]).equals(big)).toBe(true);
  // Reads go on from the standby while there is no primary.
  expect((await new LargeObjectRepository(ds.manager, { readFrom: "replica" }).read(kept[1]!, "file")).equals(small[1]!)).toBe(true);
  await ds.destroy();

  await promote(standby);
  promoted = await registerLargeObjects(new DataSource({ type: "postgres", url: standby.url(), entities: [CleanupDoc] })).initialize();
  const after = new LargeObjectRepository(promoted.manager);
  for (const [i, doc] of kept.entries()) expect((await after.read(doc, "file")).equals(small[i]!)).toBe(true);
  expect((await collect((await LargeObject.open(promoted, bigOid, "r")).createReadStream())).equals(big)).toBe(true);
  const reloaded = await promoted.getRepository(CleanupDoc).findOneByOrFail({ id: target.id });
  expect(reloaded.file).toBeNull();

  // Writes go on, and the next sweep leaves exactly the objects that rows reference (and the one created by hand).
  await after.write(reloaded, "file", "written after the failover");
  expect((await after.read(reloaded, "file")).toString()).toBe("written after the failover");
  await sweepOrphans(promoted, { graceMs: 0 });
  const referenced = (await promoted.getRepository(CleanupDoc).find()).map((d) => d.file as number);
  const objects = ((await promoted.query("SELECT oid FROM pg_largeobject_metadata ORDER BY oid")) as { oid: number }[]).map((r) => r.oid);
  expect(objects).toEqual([...referenced, bigOid].sort((a, b) => a - b));
  const status = await largeObjectStatus(promoted, { graceMs: 0 });
  expect({ orphans: status.orphans, missingObjects: status.missingObjects }).toEqual({ orphans: 0, missingObjects: 0 });
});
