import type { DataSource, EntityMetadata } from "typeorm";

/** @internal Quotes an SQL identifier: double quotes, with inner double quotes doubled. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** @internal The quoted `schema.name` of a relation or function in a known schema. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
}

/**
 * @internal The schema an entity's table lives in as TypeORM sees it: the entity's own, else the data
 * source's, else undefined (the server's current schema).
 */
export function schemaOf(dataSource: DataSource, entity?: { schema?: string | undefined }): string | undefined {
  return entity?.schema ?? (dataSource.options as { schema?: string }).schema;
}

/** @internal The quoted, schema-qualified name of an entity's table. */
export function quoteTable(entity: EntityMetadata): string {
  const schema = schemaOf(entity.connection, entity);
  const table = quoteIdentifier(entity.tableName);
  return schema ? `${quoteIdentifier(schema)}.${table}` : table;
}
