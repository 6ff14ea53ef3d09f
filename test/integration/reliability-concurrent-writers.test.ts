import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { DataSource } from "typeorm";
import { LargeObjectRepository, oidOf } from "../../src";
import { objectBytes, randomBytes } from "../support/database";
import { openVictim, victimName } from "../support/faults";
import { checkedOut } from "../support/pool";
import { closed, drain, rejection, within } from "../support/streams";
import { Document } from "./fixtures/documents";
import { useDataSource } from "../support/use-data-source";

// Two writers of one entity's object through the repository: the second waits on the row lock the
// first holds (SELECT ... FOR UPDATE) until the first commits or rolls back, then replaces the
// content whole. With lock_timeout set it fails fast with ERR_LO_TIMEOUT instead. Readers never wait.
const MiB = 1024 * 1024;
const first = randomBytes(3 * MiB, 41);
const second = randomBytes(2 * MiB + 17, 42);
let ds: DataSource;
let admin: DataSource;

useDataSource((opened) => (ds = opened), { orm: [Document], poolSize: 4, admin: (opened) => (admin = opened), checkClean: true });

const pieces = (data: Buffer, size: number): Buffer[] =>
  Array.from({ length: Math.ceil(data.length / size) }, (_, n) => data.subarray(n * size, (n + 1) * size));

test("the second writer waits for the first to commit, then replaces the content whole (last writer wins, no mix)", async () => {
  const doc = await ds.getRepository(Document).save({ name: "two writers", attachment: "original" });
  const files = new LargeObjectRepository(ds.manager);
  const a = await files.createWriteStream(doc, "attachment");
  await new Promise<void>((resolve, reject) => a.write(first.subarray(0, MiB), (err) => (err ? reject(err) : resolve())));
  let bOpened = false;
  const bStream = files.createWriteStream(doc, "attachment").then((s) => ((bOpened = true), s));
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(bOpened).toBe(false);
  // A reader meanwhile sees the committed content, not A's half-written bytes.
  expect((await files.read(doc, "attachment")).toString()).toBe("original");
  a.end(first.subarray(MiB));
  await new Promise((resolve) => a.on("close", resolve));
  expect((await objectBytes(admin, oidOf(doc.attachment))).equals(first)).toBe(true);
  await pipeline(Readable.from(pieces(second, 100_000)), await within(2000, bStream));
  expect((await objectBytes(admin, oidOf(doc.attachment))).equals(second)).toBe(true);
});

test("when the first writer rolls back, the second writes over the untouched original", async () => {
  const doc = await ds.getRepository(Document).save({ name: "rollback first", attachment: "original" });
  const files = new LargeObjectRepository(ds.manager);
  const a = await files.createWriteStream(doc, "attachment");
  a.write(first);
  const bStream = files.createWriteStream(doc, "attachment", { append: true });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const aClosed = closed(a);
  a.destroy(new Error("client went away"));
  expect(await aClosed).toMatchObject({ message: "client went away" });
  await pipeline(Readable.from([" and more"]), await within(2000, bStream));
  expect((await objectBytes(admin, oidOf(doc.attachment))).toString()).toBe("original and more");
});

test("write() calls racing on one entity serialize: every result is one complete content", async () => {
  const doc = await ds.getRepository(Document).save({ name: "race", attachment: "0" });
  const files = new LargeObjectRepository(ds.manager);
  const contents = Array.from({ length: 6 }, (_, i) => randomBytes(MiB + i * 1000, 60 + i));
  await Promise.all(contents.map((c) => files.write(doc, "attachment", Readable.from(pieces(c, 256 * 1024)))));
  const final = await objectBytes(admin, oidOf(doc.attachment));
  expect(contents.some((c) => c.equals(final))).toBe(true);
});

test("with lock_timeout the second writer fails fast with ERR_LO_TIMEOUT and the first still commits", async () => {
  const app = victimName("writers_timeout");
  const impatient = await openVictim([Document], app, { poolSize: 1, extra: { lock_timeout: 200 } });
  try {
    const doc = await ds.getRepository(Document).save({ name: "impatient", attachment: "original" });
    const a = await new LargeObjectRepository(ds.manager).createWriteStream(doc, "attachment");
    a.write(first);
    const started = Date.now();
    const err = await rejection(new LargeObjectRepository(impatient.manager).createWriteStream(doc, "attachment"));
    expect(err).toMatchObject({ code: "ERR_LO_TIMEOUT" });
    expect((err as Error).cause).toMatchObject({ code: "55P03" });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(checkedOut(impatient)).toBe(0);
    a.end();
    await new Promise((resolve) => a.on("close", resolve));
    expect((await drain(await new LargeObjectRepository(impatient.manager).createReadStream(doc, "attachment"))).equals(first)).toBe(true);
  } finally {
    await impatient.destroy();
  }
});
