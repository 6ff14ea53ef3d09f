import { randomBytes } from "node:crypto";
import { closeSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import path from "node:path";
import { DataSource } from "typeorm";
import { LargeObject, LargeObjectRepository, isLargeObjectError, registerLargeObjects } from "../../src";
import { countObjects, idleInTransaction } from "../support/database";
import { canMount, mountTmpfs, scratchFolder, startScratchServer, type ScratchServer } from "../support/scratch-server";
import { CleanupDoc } from "./fixtures/cleanup";

// The data directory lives on a small tmpfs, its WAL on the normal disk (PostgreSQL stops when it
// cannot write WAL; a full data volume only fails the statements that extend a file).
const describeMounted = canMount ? describe : describe.skip;
if (!canMount) console.log("reliability-disk-full: skipped, mounting a tmpfs needs root");

describeMounted("a full data volume", () => {
  let mount: { dir: string; unmount: () => Promise<void> };
  let walParent: string;
  let server: ScratchServer;
  let ds: DataSource;
  const filler = (): string => path.join(mount.dir, "filler");

  beforeAll(async () => {
    mount = await mountTmpfs(64);
    walParent = scratchFolder("tlo-wal-");
    server = await startScratchServer({ root: mount.dir, walDir: path.join(walParent, "wal"), settings: ["logging_collector=off"] });
    ds = await registerLargeObjects(
      new DataSource({ type: "postgres", url: server.url(), entities: [CleanupDoc], synchronize: true, poolSize: 2 }),
    ).initialize();
  }, 60_000);

  afterAll(async () => {
    await ds?.destroy();
    await server?.destroy();
    await mount?.unmount();
    if (walParent !== undefined) rmSync(walParent, { recursive: true, force: true });
  });

  /** Fills the volume up to `leaveMiB` free with a file of zeros the server knows nothing of. */
  function fill(leaveMiB: number): void {
    const { bavail, bsize } = statfsSync(mount.dir);
    let left = bavail * bsize - leaveMiB * 1024 * 1024;
    const fd = openSync(filler(), "w");
    const block = Buffer.alloc(1024 * 1024);
    try {
      while (left > 0) left -= writeSync(fd, block, 0, Math.min(block.length, left));
    } finally {
      closeSync(fd);
    }
  }

  test("a write that fills it fails with ERR_LO_DISK_FULL, commits nothing, and the pool goes on; with space back it works", async () => {
    const files = new LargeObjectRepository(ds.manager);
    const old = randomBytes(300_000);
    const doc = await ds.getRepository(CleanupDoc).save({ name: "before the disk filled", file: old });
    const objects = await countObjects(ds);
    fill(4);

    const big = randomBytes(16 * 1024 * 1024);
    const replace = await files.write(doc, "file", big).catch((err: unknown) => err);
    expect(isLargeObjectError(replace, "ERR_LO_DISK_FULL")).toBe(true);
    expect((replace as { cause?: { code?: string } }).cause?.code).toBe("53100");
    const create = await LargeObject.create(ds, { data: big }).catch((err: unknown) => err);
    expect(isLargeObjectError(create, "ERR_LO_DISK_FULL")).toBe(true);
    const save = await ds.getRepository(CleanupDoc).save({ name: "too big", file: big }).catch((err: unknown) => err);
    expect(isLargeObjectError(save, "ERR_LO_DISK_FULL")).toBe(true);

    // Nothing was committed, and both pooled connections serve the next requests.
    expect((await files.read(doc, "file")).equals(old)).toBe(true);
    expect(await countObjects(ds)).toBe(objects);
    expect(await ds.getRepository(CleanupDoc).countBy({ name: "too big" })).toBe(0);
    expect(await idleInTransaction(ds)).toBe(0);
    await Promise.all([files.size(doc, "file"), files.size(doc, "file")]);

    rmSync(filler());
    expect(await files.write(doc, "file", big)).toBe(big.length);
    expect((await files.read(doc, "file")).equals(big)).toBe(true);
    const oid = await LargeObject.create(ds, { data: big.subarray(0, 1024 * 1024) });
    expect(await LargeObject.exists(ds, oid)).toBe(true);
    const fresh = await ds.getRepository(CleanupDoc).save({ name: "after", file: Buffer.from("space is back") });
    expect((await files.read(fresh, "file")).toString()).toBe("space is back");
  });
});
