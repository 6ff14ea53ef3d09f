import type { EntityMetadata } from "typeorm";

/** Quotes an SQL identifier: double quotes, with inner double quotes doubled. */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The quoted, schema-qualified name of an entity's table. */
export function quoteTable(entity: EntityMetadata): string {
  const schema = entity.schema ?? (entity.connection.options as { schema?: string }).schema;
  const table = quoteIdentifier(entity.tableName);
  return schema ? `${quoteIdentifier(schema)}.${table}` : table;
}
