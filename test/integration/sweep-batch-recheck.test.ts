import { DataSource, Entity, PrimaryGeneratedColumn } from "typeorm";
import { LargeObjectColumn, type LargeObjectValue } from "../../src";
import { batchSql, referenceColumns, type SweepScope } from "../../src/cleanup/sweep";
import { TransactionScope } from "../../src/connection/transaction-scope";
import { locateRecords } from "../../src/cleanup/home";
import { useDataSource } from "../support/use-data-source";

@Entity({ name: "recheck_ref" })
class RecheckRef {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn() file!: LargeObjectValue;
}

let ds: DataSource;
const created: number[] = [];
useDataSource((opened) => (ds = opened), {
  orm: [RecheckRef],
  tearDown: async (opened) => {
    await opened.query("DELETE FROM recheck_ref");
    await opened.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY ($1::oid[])", [created]);
    await opened.query("DELETE FROM typeorm_large_objects WHERE created_for = 'recheck'");
  },
});
afterEach(async () => {
  await ds.query("DELETE FROM recheck_ref");
});

async function createObject(bytes: string, recorded: boolean): Promise<number> {
  const rows = await ds.query<{ oid: number }[]>("SELECT lo_from_bytea(0, convert_to($1, 'UTF8')) AS oid", [bytes]);
  const oid = rows[0]!.oid;
  created.push(oid);
  if (recorded) {
    await ds.query(
      "INSERT INTO typeorm_large_objects (oid, created_for, created_at) VALUES ($1, 'recheck', now() - interval '2 days')",
      [oid],
    );
  }
  return oid;
}

async function exists(oid: number): Promise<boolean> {
  const rows = await ds.query<{ n: number }[]>("SELECT count(*)::int AS n FROM pg_largeobject_metadata WHERE oid = $1", [oid]);
  return rows[0]!.n === 1;
}

async function recorded(oid: number): Promise<boolean> {
  const rows = await ds.query<{ n: number }[]>("SELECT count(*)::int AS n FROM typeorm_large_objects WHERE oid = $1", [oid]);
  return rows[0]!.n === 1;
}

/** Runs one batch statement on `oids` as a sweep does, in a statement of its own. */
async function runBatch(scope: SweepScope, oids: number[], dryRun = false): Promise<Record<string, unknown>> {
  return TransactionScope.using(ds, { transaction: false }, async (tx) => {
    const { records, home } = await locateRecords(ds, tx);
    const columns = await referenceColumns(tx, records, home);
    const rows = await tx.query<Record<string, unknown>>(batchSql(scope, records, columns, { dryRun, pagesReadable: true }), [`{${oids.join(",")}}`, 0]);
    return rows[0]!;
  });
}

test("a batch leaves a candidate that a row came to reference after the search, and counts the rest in one row", async () => {
  const orphan = await createObject("orphan", true);
  const adopted = await createObject("adopted!", true);
  const missing = 4_000_000_001; // a record whose object no longer exists
  await ds.query("INSERT INTO typeorm_large_objects (oid, created_for, created_at) VALUES ($1, 'recheck', now() - interval '2 days')", [
    missing,
  ]);
  // Between the search and the batch, a row comes to reference one of the candidates.
  await ds.query("INSERT INTO recheck_ref (file) VALUES ($1)", [adopted]);

  const dry = await runBatch("recorded", [orphan, adopted, missing], true);
  expect(dry).toEqual({ missing: 1, mine: 1, unlinked: 0, bytes: "6" });
  expect([await exists(orphan), await recorded(missing)]).toEqual([true, true]);

  const done = await runBatch("recorded", [orphan, adopted, missing]);
  expect(done).toEqual({ missing: 1, mine: 1, unlinked: 1, bytes: "6" });
  expect(await exists(orphan)).toBe(false);
  expect(await recorded(orphan)).toBe(false);
  expect(await recorded(missing)).toBe(false);
  // The referenced one is untouched: object, bytes and record.
  expect(await exists(adopted)).toBe(true);
  expect(await recorded(adopted)).toBe(true);
  const bytes = await ds.query<{ data: string }[]>("SELECT convert_from(lo_get($1), 'UTF8') AS data", [adopted]);
  expect(bytes[0]!.data).toBe("adopted!");
});

test("in scope all, a batch leaves an unrecorded candidate that a row came to reference", async () => {
  const free = await createObject("free", false);
  const held = await createObject("held", false);
  await ds.query("INSERT INTO recheck_ref (file) VALUES ($1)", [held]);

  const done = await runBatch("all", [free, held]);
  expect(done).toEqual({ missing: 0, mine: 1, unlinked: 1, bytes: "4" });
  expect(await exists(free)).toBe(false);
  expect(await exists(held)).toBe(true);
});
