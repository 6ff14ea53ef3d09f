import "reflect-metadata";
import { DataSource } from "typeorm";
// In a project of your own: import { registerLargeObjects } from "typeorm-large-object";
import { registerLargeObjects } from "../../src";
import { Document } from "./document";

/**
 * An initialised data source for the sample app: large objects registered before `initialize()`,
 * and the schema (with the unlink triggers) synchronized, which suits a sample; use migrations in
 * production.
 */
export async function openDataSource(url: string, options: { poolSize?: number } = {}): Promise<DataSource> {
  const dataSource = registerLargeObjects(
    new DataSource({ type: "postgres", url, entities: [Document], synchronize: true, poolSize: options.poolSize ?? 10 }),
  );
  return dataSource.initialize();
}
