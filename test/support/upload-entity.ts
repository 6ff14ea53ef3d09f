import { Column, Entity, PrimaryGeneratedColumn } from "typeorm";
import { LargeObjectColumn, type LargeObjectValue } from "../../src";

/** An entity with explicit column types, so a child process run by tsx (no decorator metadata) can load it. */
@Entity({ name: "reliability_upload" })
export class Upload {
  @PrimaryGeneratedColumn({ type: "int" }) id!: number;
  @Column({ type: "text", default: "" }) name!: string;
  @LargeObjectColumn() content!: LargeObjectValue;
}
