import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { Column, Entity, PrimaryGeneratedColumn, type DataSource } from "typeorm";
import {
  LargeObject,
  LargeObjectColumn,
  discardStagedObject,
  oidOf,
  stageLargeObject,
  sweepOrphans,
  touchStagedObject,
  type LargeObjectValue,
} from "../../src";
import { objectBytes, objectExists, randomBytes } from "../support/database";
import { useDataSource } from "../support/use-data-source";

@Entity({ name: "staged_doc" })
class StagedDoc {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "text", default: "" }) name!: string;
  @LargeObjectColumn({ createOnInsert: false }) content!: LargeObjectValue;
}

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [StagedDoc], triggers: true, checkClean: true });

const sha256 = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");

async function recordOf(oid: number): Promise<{ staged: boolean; size: string | null; sha256: string | null; created_for: string } | undefined> {
  const rows = await ds.query("SELECT staged, size::text AS size, sha256, created_for FROM typeorm_large_objects WHERE oid = $1", [oid]);
  return rows[0];
}

/** Moves a record's grace clock back by two days. */
async function age(oid: number): Promise<void> {
  await ds.query("UPDATE typeorm_large_objects SET created_at = now() - interval '2 days' WHERE oid = $1", [oid]);
}

test("an empty staged object is created and recorded with size 0 and the empty digest", async () => {
  const staged = await stageLargeObject(ds);
  expect(staged).toEqual({ oid: expect.any(Number), size: 0, sha256: sha256(Buffer.alloc(0)) });
  expect(await objectExists(ds, staged.oid)).toBe(true);
  expect(await recordOf(staged.oid)).toEqual({ staged: true, size: "0", sha256: staged.sha256, created_for: "staged" });
  expect(await discardStagedObject(ds, staged.oid)).toBe(true);
});

test("content from a Buffer and from a stream is written with its size and sha256 taken in the same pass", async () => {
  const small = randomBytes(1000, 3);
  const big = randomBytes(3 * 1024 * 1024 + 17, 4);
  const fromBuffer = await stageLargeObject(ds, { content: small, label: "avatar upload" });
  const fromStream = await stageLargeObject(ds, { content: Readable.from([big.subarray(0, 100_000), big.subarray(100_000)]) });
  expect(fromBuffer).toMatchObject({ size: small.length, sha256: sha256(small) });
  expect(fromStream).toMatchObject({ size: big.length, sha256: sha256(big) });
  expect((await objectBytes(ds, fromStream.oid)).equals(big)).toBe(true);
  expect(await recordOf(fromBuffer.oid)).toMatchObject({ created_for: "avatar upload", size: String(small.length) });
  await discardStagedObject(ds, fromBuffer.oid);
  await discardStagedObject(ds, fromStream.oid);
});

test("a failing source leaves no object and no record, and a rolled-back caller's transaction takes the object with it", async () => {
  const before: { n: string }[] = await ds.query("SELECT count(*) AS n FROM typeorm_large_objects");
  const failing = new Readable({
    read() {
      this.push(randomBytes(512 * 1024, 5));
      this.destroy(new Error("client went away"));
    },
  });
  await expect(stageLargeObject(ds, { content: failing })).rejects.toThrow("client went away");
  let inside = 0;
  await expect(
    ds.transaction(async (manager) => {
      inside = (await stageLargeObject(manager, { content: randomBytes(2 * 1024 * 1024, 6) })).oid;
      throw new Error("rolled back");
    }),
  ).rejects.toThrow("rolled back");
  expect(await objectExists(ds, inside)).toBe(false);
  expect(await ds.query("SELECT count(*) AS n FROM typeorm_large_objects")).toEqual(before);
});

test("touch renews the grace period; it answers false for an unknown, discarded or adopted object", async () => {
  const staged = await stageLargeObject(ds, { content: "hello" });
  await age(staged.oid);
  expect(await touchStagedObject(ds, staged.oid)).toBe(true);
  const rows: { young: boolean }[] = await ds.query(
    "SELECT created_at > now() - interval '1 minute' AS young FROM typeorm_large_objects WHERE oid = $1",
    [staged.oid],
  );
  expect(rows[0]!.young).toBe(true);
  expect(await touchStagedObject(ds, 4_000_000_000)).toBe(false);

  const adopted = await stageLargeObject(ds, { content: "adopted" });
  await ds.getRepository(StagedDoc).save({ name: "a", content: adopted.oid });
  expect(await touchStagedObject(ds, adopted.oid)).toBe(false);
  expect(await discardStagedObject(ds, staged.oid)).toBe(true);
  expect(await touchStagedObject(ds, staged.oid)).toBe(false);
});

test("discard unlinks a staged object at once, and leaves adopted, column-made and foreign objects alone", async () => {
  const staged = await stageLargeObject(ds, { content: "bye" });
  expect(await discardStagedObject(ds, staged.oid)).toBe(true);
  expect(await objectExists(ds, staged.oid)).toBe(false);
  expect(await recordOf(staged.oid)).toBeUndefined();
  expect(await discardStagedObject(ds, staged.oid)).toBe(false);

  const adopted = await stageLargeObject(ds, { content: "kept" });
  const row = await ds.getRepository(StagedDoc).save({ name: "kept", content: adopted.oid });
  expect(await discardStagedObject(ds, adopted.oid)).toBe(false);
  const made = await ds.getRepository(StagedDoc).save({ name: "made", content: Buffer.from("made by a column") });
  expect(await discardStagedObject(ds, oidOf(made.content))).toBe(false);
  const foreign = await LargeObject.create(ds, { data: "not ours" });
  expect(await discardStagedObject(ds, foreign)).toBe(false);
  for (const oid of [adopted.oid, oidOf(made.content), foreign]) expect(await objectExists(ds, oid)).toBe(true);
  expect(oidOf(row.content)).toBe(adopted.oid);
  await LargeObject.unlink(ds, foreign);
});

test("save() with a staged oid adopts it: the record becomes the column's, and deleting the row unlinks the object", async () => {
  const staged = await stageLargeObject(ds, { content: "adopt me" });
  const repo = ds.getRepository(StagedDoc);
  const row = await repo.save(repo.create({ name: "adopter", content: staged.oid }));
  expect(await recordOf(staged.oid)).toEqual({ staged: false, size: null, sha256: null, created_for: "staged_doc.content" });
  expect((await objectBytes(ds, staged.oid)).toString()).toBe("adopt me");
  await repo.remove(row);
  expect(await objectExists(ds, staged.oid)).toBe(false);
  expect(await recordOf(staged.oid)).toBeUndefined();
});

test("a rolled-back adoption leaves the object staged, and a second adoption of one object is refused", async () => {
  const staged = await stageLargeObject(ds, { content: "twice" });
  await expect(
    ds.transaction(async (manager) => {
      await manager.getRepository(StagedDoc).save({ name: "rolled back", content: staged.oid });
      throw new Error("changed my mind");
    }),
  ).rejects.toThrow("changed my mind");
  expect(await recordOf(staged.oid)).toMatchObject({ staged: true, created_for: "staged" });
  expect(await touchStagedObject(ds, staged.oid)).toBe(true);

  const repo = ds.getRepository(StagedDoc);
  await repo.save({ name: "first", content: staged.oid });
  await expect(repo.save({ name: "second", content: staged.oid })).rejects.toMatchObject({ code: "ERR_LO_IN_USE" });
});

test("two adoptions of one staged object at once: one wins, the other is refused", async () => {
  const staged = await stageLargeObject(ds, { content: "race" });
  const repo = ds.getRepository(StagedDoc);
  const results = await Promise.allSettled([repo.save({ name: "x", content: staged.oid }), repo.save({ name: "y", content: staged.oid })]);
  expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  const refused = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  expect(refused?.reason).toMatchObject({ code: "ERR_LO_IN_USE" });
});

test("the sweep removes an unadopted staged object after its grace period, never an adopted or a touched one", async () => {
  const unadopted = await stageLargeObject(ds, { content: "forgotten" });
  const adopted = await stageLargeObject(ds, { content: "owned" });
  const touched = await stageLargeObject(ds, { content: "still uploading" });
  const young = await stageLargeObject(ds, { content: "just arrived" });
  await ds.getRepository(StagedDoc).save({ name: "owner", content: adopted.oid });
  for (const oid of [unadopted.oid, adopted.oid, touched.oid]) await age(oid);
  expect(await touchStagedObject(ds, touched.oid)).toBe(true);

  const report = await sweepOrphans(ds, { graceMs: 60 * 60 * 1000 });
  expect(await objectExists(ds, unadopted.oid)).toBe(false);
  for (const oid of [adopted.oid, touched.oid, young.oid]) expect(await objectExists(ds, oid)).toBe(true);
  expect(report.unlinked).toBe(1);
  await discardStagedObject(ds, touched.oid);
  await discardStagedObject(ds, young.oid);
});

test("a write through a raw handle makes the record forget a staged object's size and digest", async () => {
  const staged = await stageLargeObject(ds, { content: "tus part 1;" });
  const lo = await LargeObject.open(ds, staged.oid, "a");
  await lo.write(" part 2");
  await lo.close();
  expect(await recordOf(staged.oid)).toMatchObject({ staged: true, size: null, sha256: null });
  expect(await discardStagedObject(ds, staged.oid)).toBe(true);
});
