import "reflect-metadata";
import { Column, Entity, ManyToOne, PrimaryGeneratedColumn, type DataSource } from "typeorm";
import { LargeObjectColumn, isLargeObjectError, registerLargeObjects, type LargeObjectValue } from "../../src";
import { makeDataSource, openDataSource } from "../support/database";

// Each entity below names tracked properties that initialize() must refuse before it creates a table.

@Entity({ name: "track_bad_type" })
class IntegerSize {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { size: "size" } }) content!: LargeObjectValue;
  @Column({ type: "integer", nullable: true }) size!: number | null;
}

@Entity({ name: "track_short_digest" })
class ShortDigest {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { sha256: "digest" } }) content!: LargeObjectValue;
  @Column({ type: "char", length: 32, nullable: true }) digest!: string | null;
}

@Entity({ name: "track_not_nullable" })
class NotNullable {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { size: "size" } }) content!: LargeObjectValue;
  @Column({ type: "bigint" }) size!: string;
}

@Entity({ name: "track_missing" })
class Missing {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { sha256: "digest" } }) content!: LargeObjectValue;
}

@Entity({ name: "track_key" })
class TracksKey {
  @PrimaryGeneratedColumn({ type: "bigint" }) id!: string;
  @LargeObjectColumn({ track: { size: "id" } }) content!: LargeObjectValue;
}

@Entity({ name: "track_other_object" })
class TracksObject {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { size: "other" } }) content!: LargeObjectValue;
  @LargeObjectColumn() other!: LargeObjectValue;
}

@Entity({ name: "track_twice" })
class TrackedTwice {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { sha256: "digest" } }) a!: LargeObjectValue;
  @LargeObjectColumn({ track: { sha256: "digest" } }) b!: LargeObjectValue;
  @Column({ type: "text", nullable: true }) digest!: string | null;
}

@Entity({ name: "track_parent" })
class Parent {
  @PrimaryGeneratedColumn() id!: number;
}

@Entity({ name: "track_relation" })
class TracksRelation {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { size: "parent" } }) content!: LargeObjectValue;
  @ManyToOne(() => Parent, { nullable: true }) parent!: Parent | null;
}

@Entity({ name: "track_good" })
class Good {
  @PrimaryGeneratedColumn() id!: number;
  @LargeObjectColumn({ track: { size: "size", sha256: "digest" } }) content!: LargeObjectValue;
  @Column({ type: "int8", nullable: true }) size!: string | null;
  @Column({ type: "varchar", nullable: true }) digest!: string | null;
  @LargeObjectColumn({ track: { sha256: "textDigest" } }) other!: LargeObjectValue;
  @Column({ type: "text", nullable: true }) textDigest!: string | null;
}

let observer: DataSource;
beforeAll(async () => {
  observer = await openDataSource();
});
afterAll(async () => {
  // Dropping a table unlinks nothing: the objects its rows held go too, or the next file of this
  // jest worker would find them in its database.
  await observer.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
  await observer.query("DROP TABLE IF EXISTS track_good, typeorm_large_objects CASCADE");
  await observer.destroy();
});

async function tableExists(name: string): Promise<boolean> {
  const rows: { found: boolean }[] = await observer.query("SELECT to_regclass($1) IS NOT NULL AS found", [name]);
  return rows[0]!.found;
}

const refused: [string, Function[], string, RegExp][] = [
  ["an integer size", [IntegerSize], "track_bad_type", /bigint/],
  ["a char(32) digest", [ShortDigest], "track_short_digest", /char\(64\)/],
  ["a column that is not nullable", [NotNullable], "track_not_nullable", /nullable/],
  ["a property that is no column", [Missing], "track_missing", /no column/],
  ["the primary key", [TracksKey], "track_key", /key/],
  ["another large-object column", [TracksObject], "track_other_object", /large-object column/],
  ["a column two large-object columns track", [TrackedTwice], "track_twice", /already tracked by TrackedTwice.a/],
  ["a relation", [Parent, TracksRelation], "track_relation", /relation/],
];

test.each(refused)("initialize() refuses a track option naming %s, before creating anything", async (_what, entities, table, message) => {
  const ds = registerLargeObjects(makeDataSource({ entities, synchronize: true }));
  let caught: unknown;
  try {
    await ds.initialize();
  } catch (err) {
    caught = err;
  }
  expect(isLargeObjectError(caught, "ERR_LO_INVALID_TRACK")).toBe(true);
  expect((caught as Error).message).toMatch(message);
  expect(ds.isInitialized).toBe(false);
  expect(await tableExists(table)).toBe(false);
});

test("bigint or int8 sizes and varchar, char(64) or text digests are accepted", async () => {
  const ds = await registerLargeObjects(makeDataSource({ entities: [Good], synchronize: true })).initialize();
  try {
    const saved = await ds.getRepository(Good).save({ content: "abc", other: "abc" });
    expect(saved.size).toBe("3");
    expect(saved.digest).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(saved.textDigest).toBe(saved.digest);
  } finally {
    await ds.destroy();
  }
});

test("the decorator refuses a malformed track option at once", () => {
  const attempts: [object, RegExp][] = [
    [{}, /size, sha256 or both/],
    [{ size: "x", sha256: "x" }, /same property/],
    [{ size: "content" }, /itself/],
    [{ md5: "x" }, /unknown key/],
    [{ size: "" }, /must name a property/],
  ];
  for (const [track, message] of attempts) {
    let caught: unknown;
    try {
      class Declared {
        @LargeObjectColumn({ track } as never) content!: LargeObjectValue;
      }
      void Declared;
    } catch (err) {
      caught = err;
    }
    expect(isLargeObjectError(caught, "ERR_LO_INVALID_TRACK")).toBe(true);
    expect((caught as Error).message).toMatch(message);
  }
});
