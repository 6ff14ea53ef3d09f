import type { DataSource, ObjectLiteral, ValueTransformer } from "typeorm";
import type { ColumnMetadata } from "typeorm/metadata/ColumnMetadata";
import { LargeObjectError } from "../errors";
import { quoteIdentifier, quoteTable } from "../sql";
import type { TransactionScope } from "../connection/transaction-scope";
import { declaredColumnOptions, declaredOptionsOf, largeObjectColumns, type LargeObjectColumnInfo } from "./column";

/** What is known of an object's content: its size in bytes and SHA-256 (lowercase hex), or null where unknown. */
export interface TrackedContent {
  size: number | null;
  sha256: string | null;
}

/** @internal The columns a large-object column's `track` option names, resolved against the metadata. */
export interface TrackedColumns {
  size?: ColumnMetadata;
  sha256?: ColumnMetadata;
}

/** @internal Nothing is known: what a null column, or a write that cannot keep a digest, leaves. */
export const UNKNOWN: TrackedContent = { size: null, sha256: null };

const resolved = new WeakMap<LargeObjectColumnInfo, TrackedColumns | undefined>();

function invalidTrack(info: LargeObjectColumnInfo, why: string): LargeObjectError {
  return new LargeObjectError("ERR_LO_INVALID_TRACK", `@LargeObjectColumn({ track }) of ${info.entity.name}.${info.property}: ${why}`, {
    entity: info.entity.name,
    property: info.property,
  });
}

/** Whether a column's normalized type can hold what `key` tracks. */
function fits(dataSource: DataSource, column: ColumnMetadata, key: "size" | "sha256"): boolean {
  const type = dataSource.driver.normalizeType(column);
  if (key === "size") return type === "bigint";
  const length = column.length === "" ? undefined : Number(column.length);
  if (type === "text") return true;
  if (type === "character varying") return length === undefined || length >= 64;
  return type === "character" && length === 64;
}

function resolve(info: LargeObjectColumnInfo): TrackedColumns | undefined {
  const track = info.options.track;
  if (track === undefined) return undefined;
  const dataSource = info.entity.connection;
  const columns: TrackedColumns = {};
  for (const key of ["size", "sha256"] as const) {
    const name = track[key];
    if (name === undefined) continue;
    const column = info.entity.columns.find((c) => c.propertyName === name && c.embeddedMetadata === undefined);
    if (column === undefined) throw invalidTrack(info, `track.${key} names "${name}", which is no column of the entity`);
    if (column.relationMetadata !== undefined || column.isPrimary || column.isGenerated || column.isVirtual) {
      throw invalidTrack(info, `track.${key} names "${name}", a key, relation, generated or virtual column`);
    }
    if (declaredColumnOptions(column) !== undefined) throw invalidTrack(info, `track.${key} names "${name}", a large-object column`);
    if (!column.isNullable) throw invalidTrack(info, `track.${key} names "${name}", which must be nullable: a write that cannot keep it true sets it to null`);
    if (!fits(dataSource, column, key)) {
      throw invalidTrack(
        info,
        key === "size"
          ? `track.size names "${name}" of type ${String(column.type)}: use a bigint column`
          : `track.sha256 names "${name}" of type ${String(column.type)}: use char(64), varchar (64 or more, or unbounded) or text`,
      );
    }
    columns[key] = column;
  }
  return columns;
}

/** @internal The tracked columns of a large-object column, or undefined when it tracks nothing. */
export function trackedColumnsOf(info: LargeObjectColumnInfo): TrackedColumns | undefined {
  if (info.options.track === undefined) return undefined;
  if (!resolved.has(info)) resolved.set(info, resolve(info));
  return resolved.get(info);
}

/**
 * @internal Checks every `track` option of the data source's entities (ERR_LO_INVALID_TRACK): run
 * once the metadata is built, before anything is synchronized or written.
 */
export function validateTracking(dataSource: DataSource): void {
  const owners = new Map<ColumnMetadata, LargeObjectColumnInfo>();
  for (const info of largeObjectColumns(dataSource)) {
    const columns = trackedColumnsOf(info);
    if (columns === undefined) continue;
    for (const column of [columns.size, columns.sha256]) {
      if (column === undefined) continue;
      const owner = owners.get(column);
      if (owner !== undefined) throw invalidTrack(info, `"${column.propertyName}" is already tracked by ${owner.entity.name}.${owner.property}`);
      owners.set(column, info);
    }
  }
}

/** A value as a load of the column would give it: the driver's text, through the column's transformers. */
function loadedValue(column: ColumnMetadata, value: string | null): unknown {
  const transformer = column.transformer as ValueTransformer | ValueTransformer[] | undefined;
  if (transformer === undefined) return value;
  const list = Array.isArray(transformer) ? transformer : [transformer];
  return list.reduceRight<unknown>((v, t) => t.from(v), value);
}

/** @internal Sets the tracked properties of `entity` (those the column tracks) to `content`. */
export function assignTracked(info: LargeObjectColumnInfo, entity: ObjectLiteral, content: TrackedContent): void {
  const columns = trackedColumnsOf(info);
  if (columns === undefined) return;
  if (columns.size !== undefined) entity[columns.size.propertyName] = loadedValue(columns.size, content.size === null ? null : String(content.size));
  if (columns.sha256 !== undefined) entity[columns.sha256.propertyName] = loadedValue(columns.sha256, content.sha256);
}

/**
 * @internal Stores `content` in the row's tracked columns (the row selected by `row`, a WHERE
 * clause on its primary key), and in the entity, when the column tracks anything.
 */
export async function storeTracked(
  scope: TransactionScope,
  info: LargeObjectColumnInfo,
  row: { sql: string; values: unknown[] },
  entity: ObjectLiteral,
  content: TrackedContent,
): Promise<void> {
  const columns = trackedColumnsOf(info);
  if (columns === undefined) return;
  const values = [...row.values];
  const sets: string[] = [];
  if (columns.size !== undefined) {
    values.push(content.size === null ? null : String(content.size));
    sets.push(`${quoteIdentifier(columns.size.databaseName)} = $${values.length}::bigint`);
  }
  if (columns.sha256 !== undefined) {
    values.push(content.sha256);
    sets.push(`${quoteIdentifier(columns.sha256.databaseName)} = $${values.length}`);
  }
  await scope.query(`UPDATE ${quoteTable(info.entity)} SET ${sets.join(", ")} WHERE ${row.sql}`, values);
  assignTracked(info, entity, content);
}

/** @internal `SET` terms that forget what the row's tracked columns know, or undefined when none are tracked. */
export function forgetTerms(info: LargeObjectColumnInfo): string | undefined {
  const columns = trackedColumnsOf(info);
  if (columns === undefined) return undefined;
  return [columns.size, columns.sha256]
    .filter((c): c is ColumnMetadata => c !== undefined)
    .map((c) => `${quoteIdentifier(c.databaseName)} = NULL`)
    .join(", ");
}

/**
 * @internal Data-modifying CTEs, naming the oid as `$1`, that forget the tracked values of every
 * row holding that object: a raw handle opened for writing may change its content in any way.
 */
export function forgetTrackedSteps(dataSource: DataSource): string[] {
  if (!dataSource.isInitialized) return [];
  return largeObjectColumns(dataSource).flatMap((info, n) => {
    const terms = forgetTerms(info);
    if (terms === undefined) return [];
    return [`forgotten_${n} AS (UPDATE ${quoteTable(info.entity)} SET ${terms} WHERE ${quoteIdentifier(info.column.databaseName)} = $1)`];
  });
}

function knownSize(value: unknown): number | null {
  if (typeof value !== "number" && typeof value !== "string" && typeof value !== "bigint") return null;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

function knownDigest(value: unknown): string | null {
  return typeof value === "string" && /^[0-9a-fA-F]{64}$/.test(value) ? value.toLowerCase() : null;
}

/**
 * The size and SHA-256 that `entity`'s tracked properties hold for its large-object `property`
 * (nulls where the column tracks nothing or nothing is known), as numbers and lowercase hex
 * whatever the columns' types and transformers.
 *
 * @example
 * const { size, sha256 } = trackedContentOf(doc, "attachment");
 */
export function trackedContentOf<T extends ObjectLiteral>(entity: T, property: keyof T & string): TrackedContent {
  const track = declaredTrackOf(entity, property);
  if (track === undefined) return UNKNOWN;
  const values = entity as ObjectLiteral;
  return {
    size: track.size === undefined ? null : knownSize(values[track.size]),
    sha256: track.sha256 === undefined ? null : knownDigest(values[track.sha256]),
  };
}

/** The `track` option declared for `property` on the entity's class, or on the entity it was saved as. */
function declaredTrackOf(entity: ObjectLiteral, property: string): { size?: string; sha256?: string } | undefined {
  if (entity === null || typeof entity !== "object") {
    throw new LargeObjectError("ERR_LO_INVALID_ARGUMENT", "trackedContentOf() needs an entity");
  }
  const options = declaredOptionsOf(entity, property);
  if (options === undefined) {
    throw new LargeObjectError("ERR_LO_NOT_DECORATED", `${property} is not a @LargeObjectColumn() of this entity (load it, or pass what save() returned)`, {
      property,
    });
  }
  return options.track;
}

/** @internal What `info`'s tracked properties of `entity` hold: {@link trackedContentOf} for a resolved column. */
export function trackedContentIn(info: LargeObjectColumnInfo, entity: ObjectLiteral): TrackedContent {
  const columns = trackedColumnsOf(info);
  if (columns === undefined) return UNKNOWN;
  return {
    size: columns.size === undefined ? null : knownSize(entity[columns.size.propertyName]),
    sha256: columns.sha256 === undefined ? null : knownDigest(entity[columns.sha256.propertyName]),
  };
}
