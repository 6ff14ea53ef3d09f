import "reflect-metadata";
import { Entity, PrimaryGeneratedColumn } from "typeorm";
import { LargeObjectColumn, type LargeObjectValue } from "../src";

/** The benchmark's entity: one large-object column. Column types are explicit (tsx emits no decorator metadata). */
@Entity({ name: "bench_files" })
export class BenchFile {
  @PrimaryGeneratedColumn({ type: "int" })
  id!: number;

  @LargeObjectColumn()
  file!: LargeObjectValue;
}
