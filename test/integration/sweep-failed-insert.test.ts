import type { DataSource } from "typeorm";
import { sweepOrphans } from "../../src";
import { countObjects } from "../support/database";
import { expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

test("an object created by a failed insert() (autocommit) is left by the default sweep and swept after the grace period", async () => {
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 700);
  const before = await countObjects(ds);
  await ds.query(`ALTER TABLE cleanup_doc ADD CONSTRAINT refuse_bad CHECK (name <> 'bad')`);
  // insert() runs its hooks in autocommit: the object is created, then the INSERT fails.
  await expect(ds.getRepository(CleanupDoc).insert({ name: "bad", file: Buffer.from("leaked") })).rejects.toThrow();
  await ds.query(`ALTER TABLE cleanup_doc DROP CONSTRAINT refuse_bad`);
  expect(await countObjects(ds)).toBe(before + 1);

  const young = await sweepOrphans(ds);
  expect(young.unlinked).toBe(0);
  expect(await countObjects(ds)).toBe(before + 1);

  const due = await sweepOrphans(ds, { graceMs: 0 });
  expect(due.unlinked).toBe(1);
  expect(due.bytesFreed).toBe("leaked".length);
  expect(await countObjects(ds)).toBe(before);
  await expectIntact(ds, [row!]);
});
