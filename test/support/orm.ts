import "reflect-metadata";
import type { DataSource, EntityManager, EntitySchema, MixedList } from "typeorm";
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

/** Drops schemas (and everything in them) through a data source of its own. */
export async function dropSchemas(schemas: string[]): Promise<void> {
  const admin = await makeDataSource().initialize();
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`);
  await admin.destroy();
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

/** Runs `work` on a runner of its own and returns the SQL text of every statement it sent. */
export async function statementsOf(ds: DataSource, work: (manager: EntityManager) => Promise<unknown>): Promise<string[]> {
  const statements: string[] = [];
  const runner = ds.createQueryRunner();
  const client = (await runner.connect()) as { query: (...args: unknown[]) => unknown };
  const original = client.query.bind(client);
  client.query = (...args: unknown[]) => {
    statements.push(String(typeof args[0] === "string" ? args[0] : (args[0] as { text?: string })?.text));
    return original(...args);
  };
  try {
    await work(runner.manager);
  } finally {
    client.query = original;
    await runner.release();
  }
  return statements;
}
