import { Column, Entity, PrimaryColumn, type ColumnOptions } from "typeorm";

/** Name of the table that records every large object this library's columns create. */
export const RECORDS_TABLE = "typeorm_large_objects";

/**
 * One row per large object created through a `@LargeObjectColumn()`, written in the same statement
 * as the object itself. The orphan sweep only ever considers objects listed here (unless told
 * otherwise), so it cannot touch large objects that other code owns.
 */
@Entity({ name: RECORDS_TABLE })
export class LargeObjectRecord {
  @PrimaryColumn({ type: "oid" as ColumnOptions["type"] })
  oid!: number;

  /** The column the object was created for, as `schema.table.column` (a staged object: its label). */
  @Column({ type: "text", name: "created_for" })
  createdFor!: string;

  /** When the grace period of the sweep starts; renewed by `touchStagedObject()`. */
  @Column({ type: "timestamptz", name: "created_at", default: () => "now()" })
  createdAt!: Date;

  /** Whether the object is staged: created for no row yet, waiting to be adopted by one. */
  @Column({ type: "boolean", default: false })
  staged!: boolean;

  /** A staged object's size in bytes as written (int8, so a string when loaded); null when unknown. */
  @Column({ type: "bigint", nullable: true })
  size!: string | null;

  /** A staged object's SHA-256 as 64 hex digits; null once a write may have changed the content. */
  @Column({ type: "text", nullable: true })
  sha256!: string | null;
}
