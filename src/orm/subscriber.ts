import { EventSubscriber, type EntitySubscriberInterface, type InsertEvent, type ObjectLiteral, type UpdateEvent } from "typeorm";
import { LargeObjectError } from "../errors";
import { toOid } from "../validation";
import type { TransactionScope } from "../connection/transaction-scope";
import { isContent } from "../handle/content";
import { largeObjectColumnsOf, tagEntity, type LargeObjectColumnInfo } from "./column";
import { adoptForColumn, createForColumn, runnerScope } from "./column-objects";
import { ContentDigest } from "../handle/digest";
import { assignTracked, trackedColumnsOf, UNKNOWN } from "./tracking";

/**
 * Creates large objects for `@LargeObjectColumn()` properties when rows are inserted or updated,
 * inside the row's own transaction. Unlinking is left to the database triggers that
 * `registerLargeObjects` installs, so every delete path, ORM or not, is handled in one place.
 *
 * @example
 * new DataSource({ ..., subscribers: [LargeObjectSubscriber] }); // registerLargeObjects() adds it for you
 */
@EventSubscriber()
export class LargeObjectSubscriber implements EntitySubscriberInterface<ObjectLiteral> {
  async beforeInsert(event: InsertEvent<ObjectLiteral>): Promise<void> {
    const columns = largeObjectColumnsOf(event.metadata);
    const entity = event.entity as ObjectLiteral | undefined;
    if (columns.length === 0 || entity === undefined || entity === null) return;
    tagEntity(entity, event.metadata);
    forgetNulled(columns, entity);
    const work = columns.filter((c) => {
      const value: unknown = entity[c.property];
      return value !== null && (value !== undefined || c.options.createOnInsert !== false);
    });
    if (work.length === 0) return;
    const scope = await runnerScope(event.queryRunner);
    await Promise.all(work.map((c) => this.apply(scope, c, entity, { old: undefined, updateWithoutRow: false })));
  }

  async beforeUpdate(event: UpdateEvent<ObjectLiteral>): Promise<void> {
    const columns = largeObjectColumnsOf(event.metadata);
    const entity = event.entity;
    if (columns.length === 0 || entity === undefined || entity === null) return;
    tagEntity(entity, event.metadata);
    const old = event.databaseEntity as ObjectLiteral | undefined;
    forgetNulled(columns, entity);
    const work = columns.filter((c) => {
      const value: unknown = entity[c.property];
      if (value === undefined || value === null) return false;
      return isContent(value) || old === undefined || value !== old[c.property];
    });
    if (work.length === 0) return;
    const scope = await runnerScope(event.queryRunner);
    // update() and query-builder updates carry no old row: an oid there may be the row's own, so
    // only its existence is checked (the triggers still never unlink a shared object).
    await Promise.all(work.map((c) => this.apply(scope, c, entity, { old, updateWithoutRow: old === undefined })));
  }

  /** Turns the property's value into an oid: new content becomes a new object, an oid is adopted. */
  private async apply(
    scope: TransactionScope,
    info: LargeObjectColumnInfo,
    entity: ObjectLiteral,
    { old, updateWithoutRow }: { old: ObjectLiteral | undefined; updateWithoutRow: boolean },
  ): Promise<void> {
    const value: unknown = entity[info.property];
    const tracked = trackedColumnsOf(info) !== undefined;
    if (value === undefined || isContent(value)) {
      // The digest is taken as the bytes stream to the server; an empty object's is that of no bytes.
      const digest = tracked ? new ContentDigest() : undefined;
      entity[info.property] = await createForColumn(scope, info, value, digest);
      if (digest !== undefined) assignTracked(info, entity, { size: digest.size, sha256: digest.hex() });
      return;
    }
    if (typeof value === "number" || typeof value === "bigint" || typeof value === "string") {
      const oid = toOid(value);
      if (old === undefined || old[info.property] !== oid) {
        const known = await adoptForColumn(scope, info, oid, { checkOwner: !updateWithoutRow, measure: tracked });
        if (known !== undefined) assignTracked(info, entity, known);
      }
      entity[info.property] = oid;
      return;
    }
    throw new LargeObjectError(
      "ERR_LO_INVALID_VALUE",
      `${info.entity.name}.${info.property} must be an oid, null, or content (Buffer, Uint8Array, string, Readable, async iterable), got ${typeof value}`,
      { entity: info.entity.name, property: info.property },
    );
  }
}

/** A column set to null holds no object: its tracked properties become null with it. */
function forgetNulled(columns: LargeObjectColumnInfo[], entity: ObjectLiteral): void {
  for (const c of columns) if (entity[c.property] === null) assignTracked(c, entity, UNKNOWN);
}
