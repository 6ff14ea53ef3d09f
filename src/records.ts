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

  /** The column the object was created for, as `schema.table.column`. */
  @Column({ type: "text", name: "created_for" })
  createdFor!: string;

  @Column({ type: "timestamptz", name: "created_at", default: () => "now()" })
  createdAt!: Date;
}
