import type { DataSource } from "typeorm";
import { toLargeObjectError } from "../errors";
import { toOid } from "../validation";
import { dataSourceOf, type LargeObjectSource } from "../connection/source";
import { TransactionScope } from "../connection/transaction-scope";
import type { LargeObjectContent } from "../handle/content";
import { ContentDigest, digesting } from "../handle/digest";
import { createRecorded, recordsTable } from "../orm/column-objects";
import { locateRecords } from "./home";
import { referenceColumns, unreferenced } from "./sweep";

/** A large object created and recorded but owned by no row yet. */
export interface StagedLargeObject {
  oid: number;
  /** Bytes written. */
  size: number;
  /** SHA-256 of the content as 64 lowercase hex digits, taken while it was written. */
  sha256: string | null;
}

/** Options of {@link stageLargeObject}. */
export interface StageOptions {
  /** Content to fill the object from (default: none, an empty object). */
  content?: LargeObjectContent;
  /** What the object is for, kept in its record (`created_for`) for people reading the table (default "staged"). */
  label?: string;
}

const DEFAULT_LABEL = "staged";

/**
 * Creates a staged object (empty, or filled from content while computing size and sha256 in the
 * same pass); the sweep removes it after its grace period unless a row adopts it by referencing its
 * oid. Without a transaction on the source, the object, its content and its record commit together.
 *
 * @example
 * const staged = await stageLargeObject(dataSource, { content: req });
 * await dataSource.getRepository(Document).save({ name: "report.pdf", attachment: staged.oid });
 */
export async function stageLargeObject(source: LargeObjectSource, options: StageOptions = {}): Promise<StagedLargeObject> {
  const dataSource = dataSourceOf(source);
  const label = options.label ?? DEFAULT_LABEL;
  const digest = new ContentDigest();
  const content = options.content === undefined ? undefined : digesting(options.content, digest);
  try {
    return await TransactionScope.using(source, { transaction: true }, async (scope) => {
      const oid = await createRecorded(scope, dataSource, label, content);
      const sha256 = digest.hex();
      await scope.query(`UPDATE ${recordsTable(dataSource)} SET staged = true, size = $2, sha256 = $3 WHERE oid = $1`, [
        oid,
        digest.size,
        sha256,
      ]);
      return { oid, size: digest.size, sha256 };
    });
  } catch (err) {
    throw toLargeObjectError(err);
  }
}

/**
 * Renews a staged object's grace period (an upload still receiving); false when it is gone or
 * adopted.
 *
 * @example
 * if (!(await touchStagedObject(dataSource, oid))) throw new Error("the upload has expired");
 */
export async function touchStagedObject(source: LargeObjectSource, oid: number): Promise<boolean> {
  const valid = toOid(oid);
  const dataSource = dataSourceOf(source);
  try {
    return await TransactionScope.using(source, { transaction: false }, async (scope) => {
      const rows = await scope.query<{ oid: number }>(
        `UPDATE ${recordsTable(dataSource)} r SET created_at = pg_catalog.now()
          WHERE r.oid = $1 AND r.staged
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)
          RETURNING r.oid`,
        [valid],
      );
      return rows.length > 0 && !(await referencedAnywhere(dataSource, scope, valid));
    });
  } catch (err) {
    throw toLargeObjectError(err, { oid: valid });
  }
}

/**
 * Unlinks a staged object at once unless a row references it; true when it was removed. An object
 * that is not staged (a column's own, or one this library never made) is left alone.
 *
 * @example
 * await discardStagedObject(dataSource, staged.oid); // the form that carried it was refused
 */
export async function discardStagedObject(source: LargeObjectSource, oid: number): Promise<boolean> {
  const valid = toOid(oid);
  const dataSource = dataSourceOf(source);
  try {
    return await TransactionScope.using(source, { transaction: true }, async (scope) => {
      // Locked as the sweep and adoption lock it: an adoption under way finishes first.
      const locked = await scope.query<{ oid: number }>(
        `SELECT r.oid FROM ${recordsTable(dataSource)} r
          WHERE r.oid = $1 AND r.staged
            AND EXISTS (SELECT 1 FROM pg_catalog.pg_largeobject_metadata m WHERE m.oid = r.oid)
          FOR UPDATE`,
        [valid],
      );
      if (locked.length === 0 || (await referencedAnywhere(dataSource, scope, valid))) return false;
      await scope.query(
        `WITH gone AS (DELETE FROM ${recordsTable(dataSource)} WHERE oid = $1) SELECT pg_catalog.lo_unlink($1)`,
        [valid],
      );
      return true;
    });
  } catch (err) {
    throw toLargeObjectError(err, { oid: valid });
  }
}

/** Whether any oid or lo column of any table references the object: the sweep's own test of life. */
async function referencedAnywhere(dataSource: DataSource, scope: TransactionScope, oid: number): Promise<boolean> {
  const { records, home } = await locateRecords(dataSource, scope);
  const columns = await referenceColumns(scope, records, home);
  // With no oid column anywhere nothing can reference it (and the test would carry no parameter).
  if (columns.length === 0) return false;
  const rows = await scope.query<{ free: boolean }>(`SELECT ${unreferenced(columns, "$1::oid")} AS free`, [oid]);
  return rows[0]!.free !== true;
}
