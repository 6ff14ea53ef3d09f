import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObjectRepository, isLargeObjectError, sweepOrphans } from "../../src";
import { idleInTransaction, randomBytes } from "../support/database";
import { openVictim, terminateBusy, terminateBusyPids, victimName, waitForBackendsGone } from "../support/faults";
import { checkedOut } from "../support/pool";
import { drain } from "../support/streams";
import { Document, Folder, FolderFile } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

// A seeded, bounded soak: several workers doing random saves, streamed updates, range reads,
// removes, deletes by several paths, cascades, sweeps and injected backend kills. Each worker owns
// its rows, so the expected bytes of every row are known exactly. SOAK_OPERATIONS and SOAK_SEED
// make it longer or replay a run.
const OPERATIONS = Number(process.env.SOAK_OPERATIONS ?? 4000);
const SEED = Number(process.env.SOAK_SEED ?? 7);
const WORKERS = 4;
const KiB = 1024;
const MiB = 1024 * KiB;
const entities = [Document, Folder, FolderFile];

let owner: DataSource;
let admin: DataSource;

useDataSource((opened) => (owner = opened), { orm: entities, poolSize: 4, admin: (opened) => (admin = opened) });

class Random {
  constructor(private x: number) {
    this.x = x >>> 0 || 1;
  }
  next(): number {
    this.x ^= this.x << 13;
    this.x ^= this.x >>> 17;
    this.x ^= this.x << 5;
    return (this.x >>> 0) / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.int(items.length)];
  }
}


interface Counts {
  operations: number;
  faults: number;
  sweeps: number;
  byKind: Record<string, number>;
}

/** What a worker expects: the bytes of each of its rows' objects (null for a null column). */
interface Model {
  docs: Map<number, Buffer | null>;
  folders: Map<number, Map<number, Buffer>>;
}

function content(random: Random): Buffer {
  const roll = random.next();
  const size = roll < 0.1 ? 0 : roll < 0.8 ? random.int(64 * KiB) : roll < 0.95 ? random.int(600 * KiB) : MiB + random.int(2 * MiB);
  return randomBytes(size, random.int(2 ** 31) + 1);
}

function chunks(data: Buffer, random: Random): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; ) {
    const size = 1 + random.int(300 * KiB);
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}

async function worker(index: number, operations: number, counts: Counts): Promise<Model> {
  const random = new Random(SEED * 1000 + index);
  const app = victimName(`soak${index}`);
  const ds = await openVictim(entities, app, { poolSize: 2 });
  const model: Model = { docs: new Map(), folders: new Map() };
  const docs = ds.getRepository(Document);
  const folders = ds.getRepository(Folder);
  const files = new LargeObjectRepository(ds.manager);
  const bump = (kind: string): void => void (counts.byKind[kind] = (counts.byKind[kind] ?? 0) + 1);
  const someDoc = (withObject: boolean): [number, Buffer | null] | undefined =>
    random.pick([...model.docs.entries()].filter(([, data]) => !withObject || data !== null));
  /** Runs an operation that must fail with ERR_LO_CONNECTION after a kill of this worker's backend. */
  const expectKilled = async (kind: string, operation: Promise<unknown>): Promise<void> => {
    const err = await operation.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (!isLargeObjectError(err, "ERR_LO_CONNECTION")) throw new Error(`${kind}: expected ERR_LO_CONNECTION, got ${String(err)}`);
    counts.faults += 1;
  };

  try {
    for (let n = 0; n < operations; n += 1) {
      const roll = random.int(100);
      counts.operations += 1;
      if (roll < 18 || model.docs.size < 3) {
        bump("save new");
        const data = content(random);
        const streamed = random.next() < 0.4;
        const saved = await docs.save({ name: `w${index}`, attachment: streamed ? Readable.from(chunks(data, random)) : data });
        model.docs.set(saved.id, data);
      } else if (roll < 28) {
        bump("stream replace");
        const [id] = someDoc(false)!;
        const data = content(random);
        await pipeline(Readable.from(chunks(data, random)), await files.createWriteStream({ ...new Document(), id } as Document, "attachment"));
        model.docs.set(id, data);
      } else if (roll < 34) {
        bump("stream append");
        const target = someDoc(true);
        if (target === undefined) continue;
        const more = randomBytes(random.int(100 * KiB), random.int(1e9) + 1);
        await pipeline(Readable.from([more]), await files.createWriteStream(Object.assign(new Document(), { id: target[0] }), "attachment", { append: true }));
        model.docs.set(target[0], Buffer.concat([target[1]!, more]));
      } else if (roll < 50) {
        bump("range read");
        const target = someDoc(true);
        if (target === undefined) continue;
        const [id, data] = target;
        const doc = Object.assign(new Document(), { id });
        if (data!.length === 0) {
          expect((await drain(await files.createReadStream(doc, "attachment"))).length).toBe(0);
          continue;
        }
        const start = random.int(data!.length);
        const end = start + random.int(data!.length - start);
        const got = await drain(await files.createReadStream(doc, "attachment", { start, end }));
        if (!got.equals(data!.subarray(start, end + 1))) throw new Error(`worker ${index}: range ${start}-${end} of ${id} differs`);
      } else if (roll < 56) {
        bump("save replace");
        const [id] = someDoc(false)!;
        const loaded = await docs.findOneByOrFail({ id });
        const data = content(random);
        loaded.attachment = data;
        await docs.save(loaded);
        model.docs.set(id, data);
      } else if (roll < 60) {
        bump("update to null");
        const [id] = someDoc(false)!;
        await docs.update(id, { attachment: null });
        model.docs.set(id, null);
      } else if (roll < 66) {
        const [id] = someDoc(false)!;
        const path = random.int(3);
        if (path === 0) {
          bump("remove");
          await docs.remove(await docs.findOneByOrFail({ id }));
        } else if (path === 1) {
          bump("delete()");
          await docs.delete(id);
        } else {
          bump("query-builder delete");
          await docs.createQueryBuilder().delete().where("id = :id", { id }).execute();
        }
        model.docs.delete(id);
      } else if (roll < 74) {
        bump("cascade save");
        const data = Array.from({ length: 1 + random.int(3) }, () => content(random));
        const folder = await folders.save({ name: `w${index}`, files: data.map((d) => Object.assign(new FolderFile(), { content: d })) });
        model.folders.set(folder.id, new Map(folder.files.map((f, i) => [f.id, data[i]!])));
      } else if (roll < 80) {
        const folderId = random.pick([...model.folders.keys()]);
        if (folderId === undefined) continue;
        const path = random.int(3);
        if (path === 0) {
          bump("database ON DELETE CASCADE");
          await folders.delete(folderId);
          model.folders.delete(folderId);
        } else if (path === 1) {
          bump("orphaned child removed");
          const folder = await folders.findOneOrFail({ where: { id: folderId }, relations: { files: true } });
          const dropped = folder.files.splice(random.int(Math.max(folder.files.length, 1)), 1)[0];
          await folders.save(folder);
          if (dropped !== undefined) model.folders.get(folderId)!.delete(dropped.id);
        } else {
          bump("remove with cascade");
          await folders.remove(await folders.findOneOrFail({ where: { id: folderId }, relations: { files: true } }));
          model.folders.delete(folderId);
        }
      } else if (roll < 83) {
        bump("sweep");
        // A sweep racing the other workers: the grace period protects what they are uploading.
        await sweepOrphans(ds, { graceMs: 60_000, batchSize: 1 + random.int(50) });
        counts.sweeps += 1;
      } else if (roll < 88) {
        bump("kill mid write stream");
        const [id, before] = someDoc(false)!;
        const stream = await files.createWriteStream(Object.assign(new Document(), { id }), "attachment");
        stream.on("error", () => undefined);
        await new Promise<void>((resolve, reject) => stream.write(randomBytes(MiB + 1, n + 1), (err) => (err ? reject(err) : resolve())));
        if ((await terminateBusy(admin, app)) !== 1) throw new Error("no backend to kill");
        await expectKilled(
          "write stream",
          new Promise((resolve, reject) => {
            stream.on("close", () => (stream.errored ? reject(stream.errored) : resolve(undefined)));
            stream.end(randomBytes(MiB, n + 2));
          }),
        );
        model.docs.set(id, before);
      } else if (roll < 93) {
        bump("kill mid save");
        async function* killing(): AsyncGenerator<Buffer> {
          yield randomBytes(MiB, n + 3);
          await terminateBusy(admin, app);
          yield randomBytes(MiB, n + 4);
        }
        await expectKilled("save", docs.save({ name: `w${index} killed`, attachment: Readable.from(killing()) }));
      } else if (roll < 96) {
        bump("kill mid read stream");
        const target = someDoc(true);
        if (target === undefined || target[1]!.length < MiB) continue;
        const stream = await files.createReadStream(Object.assign(new Document(), { id: target[0] }), "attachment", { highWaterMark: 16 * KiB });
        await new Promise((resolve) => stream.once("data", resolve));
        stream.pause();
        // The server may already have sent the whole object into the socket: then nothing is
        // killed mid-read, and the bytes must simply be right.
        const killed = await terminateBusyPids(admin, app);
        const received = drain(stream);
        if (killed.length === 1) {
          const err = await received.then(
            () => undefined,
            (e: unknown) => e,
          );
          if (err !== undefined) {
            await expectKilled("read stream", received);
            continue;
          }
          // The stream had read and committed everything before the kill landed: its connection
          // went back to the pool, which must learn of the death before the next operation.
          await waitForBackendsGone(admin, killed);
        }
        await received;
      } else {
        bump("read whole");
        const target = someDoc(true);
        if (target === undefined) continue;
        const got = await files.read(Object.assign(new Document(), { id: target[0] }), "attachment");
        if (!got.equals(target[1]!)) throw new Error(`worker ${index}: read() of ${target[0]} differs`);
      }
    }
    expect(checkedOut(ds)).toBe(0);
  } finally {
    await ds.destroy();
  }
  return model;
}

test(`soak: ${OPERATIONS} operations on ${WORKERS} workers (seed ${SEED}) lose nothing and leak nothing`, async () => {
  const counts: Counts = { operations: 0, faults: 0, sweeps: 0, byKind: {} };
  const started = Date.now();
  const models = await Promise.all(Array.from({ length: WORKERS }, (_, i) => worker(i, Math.ceil(OPERATIONS / WORKERS), counts)));

  // Every row's object exists and holds exactly the bytes the model expects.
  const expected = new Map<string, Buffer | null>();
  for (const model of models) {
    for (const [id, data] of model.docs) expected.set(`doc ${id}`, data);
    for (const fileMap of model.folders.values()) for (const [id, data] of fileMap) expected.set(`file ${id}`, data);
  }
  const rows: { key: string; oid: number | null; digest: string | null }[] = await admin.query(
    `SELECT 'doc ' || id AS key, attachment AS oid, md5(lo_get(attachment)) AS digest FROM orm_document
     UNION ALL SELECT 'file ' || id, content, md5(lo_get(content)) FROM orm_folder_file`,
  );
  let losses = 0;
  let checked = 0;
  for (const row of rows) {
    const data = expected.get(row.key);
    if (data === undefined) throw new Error(`${row.key} exists but no worker saved it`);
    if (data === null) {
      if (row.oid !== null) losses += 1;
      continue;
    }
    checked += 1;
    if (row.digest !== createHash("md5").update(data).digest("hex")) losses += 1;
  }
  expect(rows.length).toBe(expected.size);

  // Nothing is left unreferenced: the triggers unlinked what every delete path released, so a final
  // sweep with no grace period finds no orphan among the objects the library created.
  const report = await sweepOrphans(owner, { graceMs: 0 });
  const orphans: { n: number }[] = await admin.query(
    `SELECT count(*)::int AS n FROM pg_largeobject_metadata m
      WHERE NOT EXISTS (SELECT 1 FROM orm_document d WHERE d.attachment = m.oid OR d.thumbnail = m.oid)
        AND NOT EXISTS (SELECT 1 FROM orm_folder_file f WHERE f.content = m.oid)`,
  );
  const unrecorded: { n: number }[] = await admin.query(
    `SELECT count(*)::int AS n FROM (SELECT attachment AS oid FROM orm_document UNION ALL SELECT content FROM orm_folder_file) r
      WHERE r.oid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM typeorm_large_objects t WHERE t.oid = r.oid)`,
  );
  const sessions = await idleInTransaction(admin);
  const leaked: { n: number }[] = await admin.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE 'tlo_soak%'",
  );
  const summary = {
    seed: SEED,
    operations: counts.operations,
    faultsInjected: counts.faults,
    sweeps: counts.sweeps,
    objectsChecked: checked,
    rows: rows.length,
    orphans: orphans[0]!.n,
    sweptAtEnd: report.unlinked,
    losses,
    durationMs: Date.now() - started,
    byKind: counts.byKind,
  };
  console.log(`soak: ${JSON.stringify(summary)}`);
  expect(losses).toBe(0);
  expect(orphans[0]!.n).toBe(0);
  expect(report.unlinked).toBe(0);
  expect(unrecorded[0]!.n).toBe(0);
  expect(sessions).toBe(0);
  expect(leaked[0]!.n).toBe(0);
  expect(counts.faults).toBeGreaterThan(0);
  expect(checked).toBeGreaterThan(0);
}, 600_000);
