import { Column, type ColumnOptions, type DataSource, type EntityMetadata } from "typeorm";
import type { ColumnMetadata } from "typeorm/metadata/ColumnMetadata";
import { LargeObjectError, notRegistered } from "../errors";
import type { LargeObjectContent } from "../handle/content";

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
  /**
   * Other properties of the entity that the library keeps equal to the object's size (a nullable
   * `bigint` column) and SHA-256 (a nullable `char(64)`, `varchar` or `text` column, lowercase hex),
   * written in the same transaction as every write through the entity; null where a write could
   * not keep them true.
   */
  track?: LargeObjectTrackOptions;
}

/** The properties {@link LargeObjectColumnOptions.track} names; either may be given alone. */
export interface LargeObjectTrackOptions {
  /** The property holding the object's size in bytes. */
  size?: string;
  /** The property holding the SHA-256 of the object's content, as 64 lowercase hex digits. */
  sha256?: string;
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
    if (options.track !== undefined) checkTrackShape(options.track, propertyKey);
    column(target, propertyKey);
    const owner = target.constructor;
    let properties = declared.get(owner);
    if (properties === undefined) declared.set(owner, (properties = new Map()));
    properties.set(propertyKey, { ...options, ...(options.track === undefined ? {} : { track: { ...options.track } }) });
  };
}

/** What the decorator can check of `track` before the entity's other columns exist. */
function checkTrackShape(track: LargeObjectTrackOptions, property: string): void {
  const fail = (why: string): never => {
    throw new LargeObjectError("ERR_LO_INVALID_TRACK", `@LargeObjectColumn({ track }) of ${property}: ${why}`, { property });
  };
  if (track === null || typeof track !== "object") fail("track must be an object { size?, sha256? }");
  for (const key of Object.keys(track)) if (key !== "size" && key !== "sha256") fail(`unknown key "${key}" (use size and sha256)`);
  for (const key of ["size", "sha256"] as const) {
    const name: unknown = track[key];
    if (name === undefined) continue;
    if (typeof name !== "string" || name === "") fail(`track.${key} must name a property`);
    if (name === property) fail(`track.${key} names the large-object property itself`);
  }
  if (track.size === undefined && track.sha256 === undefined) fail("name size, sha256 or both");
  if (track.size !== undefined && track.size === track.sha256) fail("size and sha256 name the same property");
}

/** @internal A large-object column of an entity, resolved against the data source's metadata. */
export interface LargeObjectColumnInfo {
  entity: EntityMetadata;
  column: ColumnMetadata;
  property: string;
  options: LargeObjectColumnOptions;
}

function optionsFor(column: ColumnMetadata): LargeObjectColumnOptions | undefined {
  if (column.embeddedMetadata !== undefined) return undefined;
  return declaredOn(column.target, column.propertyName);
}

function declaredOn(target: unknown, property: string): LargeObjectColumnOptions | undefined {
  if (typeof target !== "function") return undefined;
  // Walk up the class chain: a column may be declared on an abstract base class.
  for (let cls: unknown = target; typeof cls === "function" && cls !== Function.prototype; cls = Object.getPrototypeOf(cls)) {
    const options = declared.get(cls as Function)?.get(property);
    if (options !== undefined) return options;
  }
  return undefined;
}

/** @internal The options a column was declared with, when it is a large-object column. */
export function declaredColumnOptions(column: ColumnMetadata): LargeObjectColumnOptions | undefined {
  return optionsFor(column);
}

/**
 * @internal The options `property` was declared with on the value's class, or on the entity a
 * plain object was saved as; undefined when neither is known.
 */
export function declaredOptionsOf(value: object, property: string): LargeObjectColumnOptions | undefined {
  const tagged = entityTags.get(value);
  if (tagged !== undefined) return declaredOn(tagged.target, property);
  return declaredOn(Object.getPrototypeOf(value)?.constructor, property);
}

const columnCache = new WeakMap<EntityMetadata, LargeObjectColumnInfo[]>();

/** @internal The large-object columns of one entity (empty when it has none). */
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

/** @internal Every large-object column of every entity of the data source. */
export function largeObjectColumns(dataSource: DataSource): LargeObjectColumnInfo[] {
  return dataSource.entityMetadatas.flatMap((entity) => largeObjectColumnsOf(entity));
}

/**
 * @internal ERR_LO_NOT_REGISTERED unless registerLargeObjects() prepared the data source. Checked by
 * the `oid` type it adds, which holds whichever copy of this package registered it.
 */
export function assertRegistered(dataSource: DataSource): void {
  if (!(dataSource.driver.supportedDataTypes as readonly string[]).includes("oid")) {
    throw notRegistered("this data source was not prepared for large-object columns");
  }
}

/** @internal The large-object column behind `value.property`, or ERR_LO_NOT_DECORATED. */
export function findLargeObjectColumn(dataSource: DataSource, value: object, property: string): LargeObjectColumnInfo {
  assertRegistered(dataSource);
  const entity = entityMetadataOf(dataSource, value, property);
  const info = largeObjectColumnsOf(entity).find((c) => c.property === property);
  if (info === undefined) {
    throw new LargeObjectError("ERR_LO_NOT_DECORATED", `${entity.name}.${property} is not a @LargeObjectColumn()`, {
      entity: entity.name,
      property,
    });
  }
  return info;
}

const entityTags = new WeakMap<object, EntityMetadata>();

/** @internal Remembers which entity a plain object was saved as, so the repository can find its columns. */
export function tagEntity(value: object, entity: EntityMetadata): void {
  entityTags.set(value, entity);
}

/** @internal The entity metadata of a saved or loaded object: its class, or what it was saved as. */
export function entityMetadataOf(dataSource: DataSource, value: object, property: string): EntityMetadata {
  const tagged = entityTags.get(value);
  if (tagged !== undefined && tagged.connection === dataSource) return tagged;
  const cls: unknown = Object.getPrototypeOf(value)?.constructor;
  if (typeof cls === "function" && cls !== Object) {
    if (dataSource.hasMetadata(cls)) return dataSource.getMetadata(cls);
    throw new LargeObjectError("ERR_LO_NOT_DECORATED", `${cls.name} is not an entity of this data source`, {
      entity: cls.name,
      property,
    });
  }
  // A plain object that never went through save(): accept it when one entity alone has this property.
  const candidates = dataSource.entityMetadatas.filter((e) => largeObjectColumnsOf(e).some((c) => c.property === property));
  if (candidates.length === 1) return candidates[0]!;
  throw new LargeObjectError(
    "ERR_LO_NOT_DECORATED",
    candidates.length === 0
      ? `no entity of this data source has a @LargeObjectColumn() named "${property}"`
      : `cannot tell which entity this plain object is (${candidates.map((c) => c.name).join(", ")} all have "${property}"): pass an entity instance`,
    { property },
  );
}

/**
 * The oid a large-object property holds once saved or loaded, typed as a number; ERR_LO_NULL when
 * it is null, ERR_LO_INVALID_VALUE when it still holds content that was never saved.
 *
 * @example
 * const oid = oidOf(doc.attachment);
 */
export function oidOf(value: LargeObjectValue | undefined): number {
  if (typeof value === "number") return value;
  if (value === null || value === undefined) throw new LargeObjectError("ERR_LO_NULL", "the large-object property is null");
  throw new LargeObjectError("ERR_LO_INVALID_VALUE", "the large-object property holds content that has not been saved yet");
}
