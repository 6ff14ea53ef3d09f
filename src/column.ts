import { Column, type ColumnOptions, type DataSource, type EntityMetadata } from "typeorm";
import type { ColumnMetadata } from "typeorm/metadata/ColumnMetadata";
import { LargeObjectError } from "./errors";
import type { LargeObjectContent } from "./content";

/**
 * What a large-object property holds: the object's oid once saved (a number), `null` for none, or,
 * before a save, the content the object should be created from.
 */
export type LargeObjectValue = number | null | LargeObjectContent;

/** Options of {@link LargeObjectColumn}. */
export interface LargeObjectColumnOptions {
  /** The database column name (default: TypeORM's naming strategy). */
  name?: string;
  /** Whether the column accepts NULL (default true). */
  nullable?: boolean;
  /** A comment on the column. */
  comment?: string;
  /** Create an empty object when a row is inserted with `undefined` in the property (default true). */
  createOnInsert?: boolean;
  /** Roles granted privileges on every object this column creates (PostgreSQL has no default privileges for large objects). */
  grant?: { read?: string[]; write?: string[] };
}

const declared = new Map<Function, Map<string, LargeObjectColumnOptions>>();

/**
 * Declares an `oid` column whose large object this library creates, streams and unlinks.
 * Call `registerLargeObjects(dataSource)` before `initialize()`.
 *
 * @example
 * @Entity() class Document {
 *   @PrimaryGeneratedColumn() id!: number;
 *   @LargeObjectColumn() attachment!: LargeObjectValue;
 * }
 */
export function LargeObjectColumn(options: LargeObjectColumnOptions = {}): PropertyDecorator {
  const columnOptions: ColumnOptions = { type: "oid" as ColumnOptions["type"], nullable: options.nullable ?? true };
  if (options.name !== undefined) columnOptions.name = options.name;
  if (options.comment !== undefined) columnOptions.comment = options.comment;
  const column = Column(columnOptions);
  return (target: object, propertyKey: string | symbol) => {
    if (typeof propertyKey !== "string") {
      throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "@LargeObjectColumn() needs a string property name");
    }
    column(target, propertyKey);
    const owner = target.constructor;
    let properties = declared.get(owner);
    if (properties === undefined) declared.set(owner, (properties = new Map()));
    properties.set(propertyKey, { ...options });
  };
}

/** A large-object column of an entity, resolved against the data source's metadata. */
export interface LargeObjectColumnInfo {
  entity: EntityMetadata;
  column: ColumnMetadata;
  property: string;
  options: LargeObjectColumnOptions;
}

function optionsFor(column: ColumnMetadata): LargeObjectColumnOptions | undefined {
  if (column.embeddedMetadata !== undefined) return undefined;
  const target = column.target;
  if (typeof target !== "function") return undefined;
  // Walk up the class chain: a column may be declared on an abstract base class.
  for (let cls: unknown = target; typeof cls === "function" && cls !== Function.prototype; cls = Object.getPrototypeOf(cls)) {
    const options = declared.get(cls as Function)?.get(column.propertyName);
    if (options !== undefined) return options;
  }
  return undefined;
}

const columnCache = new WeakMap<EntityMetadata, LargeObjectColumnInfo[]>();

/** The large-object columns of one entity (empty when it has none). */
export function largeObjectColumnsOf(entity: EntityMetadata): LargeObjectColumnInfo[] {
  let columns = columnCache.get(entity);
  if (columns === undefined) {
    columns = [];
    for (const column of entity.columns) {
      const options = optionsFor(column);
      if (options !== undefined) columns.push({ entity, column, property: column.propertyName, options });
    }
    columnCache.set(entity, columns);
  }
  return columns;
}

/** Every large-object column of every entity of the data source. */
export function largeObjectColumns(dataSource: DataSource): LargeObjectColumnInfo[] {
  return dataSource.entityMetadatas.flatMap((entity) => largeObjectColumnsOf(entity));
}

/** The column behind `entity.property`, or ERR_LO_NOT_DECORATED. */
export function findLargeObjectColumn(dataSource: DataSource, target: Function | string | object, property: string): LargeObjectColumnInfo {
  let entity: EntityMetadata | undefined;
  const lookup = typeof target === "object" ? (target as object).constructor : target;
  if (dataSource.hasMetadata(lookup as Function)) entity = dataSource.getMetadata(lookup as Function);
  if (entity === undefined) {
    const name = typeof lookup === "function" ? lookup.name : String(lookup);
    throw new LargeObjectError("ERR_LO_NOT_DECORATED", `${name} is not an entity of this data source`, { entity: name, property });
  }
  const info = largeObjectColumnsOf(entity).find((c) => c.property === property);
  if (info === undefined) {
    throw new LargeObjectError("ERR_LO_NOT_DECORATED", `${entity.name}.${property} is not a @LargeObjectColumn()`, {
      entity: entity.name,
      property,
    });
  }
  return info;
}
