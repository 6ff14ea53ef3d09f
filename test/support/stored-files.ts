import type { DataSource } from "typeorm";
import { StoredFile } from "../integration/fixtures/http-files";
import { countObjects, idleInTransaction } from "./database";
import { countRecords } from "./cleanup";
import { eventually } from "./http-server";
import { checkedOut } from "./pool";

/**
 * Run after each HTTP upload test: every connection is back in the pool and none is idle in a
 * transaction, then the rows, records and objects are removed so the next test starts empty.
 */
export async function releasedThenCleared(ds: DataSource, admin: DataSource): Promise<void> {
  await eventually(() => checkedOut(ds) === 0, 5000, "every connection back in the pool");
  expect(await idleInTransaction(admin)).toBe(0);
  await ds.getRepository(StoredFile).clear();
  await ds.query("DELETE FROM typeorm_large_objects");
  await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
}

/** A refused upload left no row, no object and no record. */
export async function expectNothingStored(ds: DataSource): Promise<void> {
  expect(await ds.getRepository(StoredFile).count()).toBe(0);
  expect(await countObjects(ds)).toBe(0);
  expect(await countRecords(ds)).toBe(0);
}
