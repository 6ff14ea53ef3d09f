import "reflect-metadata";
import type { DataSource, EntitySchema, MixedList } from "typeorm";
import { registerLargeObjects } from "../../src";
import { makeDataSource } from "./database";

/** An initialised data source with large objects registered and the schema synchronized. */
export async function openOrmDataSource(
  entities: MixedList<Function | string | EntitySchema>,
  options: { poolSize?: number; schemas?: string[] } = {},
): Promise<DataSource> {
  if (options.schemas?.length) {
    const admin = makeDataSource();
    await admin.initialize();
    for (const schema of options.schemas) await admin.query(`CREATE SCHEMA IF NOT EXISTS "${schema.replace(/"/g, '""')}"`);
    await admin.destroy();
  }
  const ds = registerLargeObjects(
    makeDataSource({ entities, synchronize: true, dropSchema: false, ...(options.poolSize ? { poolSize: options.poolSize } : {}) }),
  );
  return ds.initialize();
}

/** Drops the tables of the given entities (and their triggers) and unlinks every object. */
export async function dropAll(ds: DataSource): Promise<void> {
  if (!ds?.isInitialized) return;
  for (const entity of ds.entityMetadatas) {
    await ds.query(`DROP TABLE IF EXISTS ${entity.schema ? `"${entity.schema}".` : ""}"${entity.tableName}" CASCADE`);
  }
  await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata");
  await ds.destroy();
}
