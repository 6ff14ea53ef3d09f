import type { DataSource, EntityTarget, ObjectLiteral } from "typeorm";
import { oidOf, type LargeObjectValue, removeLargeObjectTriggers } from "../../src";
import { dropAll } from "./orm";
import { objectBytes, objectExists, randomBytes } from "./database";

/** A saved row's object and the bytes it must still hold. */
export interface Stored {
  id: number;
  oid: number;
  bytes: Buffer;
}

/** Saves `n` rows with distinct content through the ORM (the subscriber creates and records the objects). */
export async function saveWithContent<T extends ObjectLiteral>(
  ds: DataSource,
  target: EntityTarget<T>,
  n: number,
  seed: number,
  extra: Partial<T> = {},
): Promise<Stored[]> {
  const contents = Array.from({ length: n }, (_, i) => randomBytes(100 + i, seed + i));
  // save() replaces the content in each object with its oid, so the bytes are kept apart.
  const rows = contents.map((content) => ({ ...extra, file: Buffer.from(content) }));
  const saved = (await ds.getRepository(target).save(rows as unknown as T[])) as unknown as { id: number; file: LargeObjectValue }[];
  return saved.map((row, i) => ({ id: row.id, oid: oidOf(row.file), bytes: contents[i]! }));
}

/** Expects every survivor to exist with its bytes intact. */
export async function expectIntact(ds: DataSource, survivors: Stored[]): Promise<void> {
  for (const s of survivors) {
    expect(await objectExists(ds, s.oid)).toBe(true);
    expect((await objectBytes(ds, s.oid)).equals(s.bytes)).toBe(true);
  }
}

/** Expects none of the objects to exist any more. */
export async function expectGone(ds: DataSource, gone: Stored[]): Promise<void> {
  for (const g of gone) expect(await objectExists(ds, g.oid)).toBe(false);
}

/** Removes the triggers and functions, then the tables and every object. */
export async function dropCleanup(ds: DataSource | undefined): Promise<void> {
  if (!ds?.isInitialized) return;
  await removeLargeObjectTriggers(ds);
  await dropAll(ds);
}

/** How many record rows exist. */
export async function countRecords(ds: DataSource): Promise<number> {
  const rows: { n: string }[] = await ds.query("SELECT count(*) AS n FROM typeorm_large_objects");
  return Number(rows[0]!.n);
}

/**
 * Every row of `table` whose `column` holds an oid has its object, and every object has its
 * record: nothing was lost or left behind.
 */
export async function expectNothingLost(ds: DataSource, table: string, column: string): Promise<void> {
  const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;
  const rows: { lost: string }[] = await ds.query(
    `SELECT (SELECT count(*) FROM ${quote(table)} f WHERE f.${quote(column)} IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM pg_largeobject_metadata m WHERE m.oid = f.${quote(column)}))
          + (SELECT count(*) FROM pg_largeobject_metadata m
               WHERE NOT EXISTS (SELECT 1 FROM typeorm_large_objects r WHERE r.oid = m.oid)) AS lost`,
  );
  expect(Number(rows[0]!.lost)).toBe(0);
}
