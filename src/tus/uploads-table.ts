import type { DataSource } from "typeorm";
import { qualified } from "../sql";
import type { TransactionScope } from "../connection/transaction-scope";
import { resolveHome } from "../cleanup/home";

/** Name of the table that holds one row per unfinished tus upload. */
export const TUS_UPLOADS_TABLE = "typeorm_large_object_tus_uploads";

/** @internal One upload's row as the store reads it. */
export interface UploadRow {
  id: string;
  oid: number;
  /** The declared `Upload-Length`, null while it is deferred. */
  length: number | null;
  /** Bytes committed so far: the object's size and the upload's offset. */
  offset: number;
  metadata: Record<string, string | null> | null;
  /** When the last piece was committed (or the upload created): expiry counts from here. */
  touchedAt: Date;
}

/** @internal The columns of {@link UploadRow}, as a select list of the table aliased `u`. */
export const UPLOAD_COLUMNS = `u."id", u."oid", u."length", u."offset", u."metadata", u."touched_at" AS "touchedAt"`;

/** @internal A row from the driver: int8 columns arrive as strings. */
export function toUploadRow(raw: Record<string, unknown>): UploadRow {
  return {
    id: String(raw.id),
    oid: Number(raw.oid),
    length: raw.length === null || raw.length === undefined ? null : Number(raw.length),
    offset: Number(raw.offset),
    metadata: (raw.metadata ?? null) as Record<string, string | null> | null,
    touchedAt: raw.touchedAt instanceof Date ? raw.touchedAt : new Date(String(raw.touchedAt)),
  };
}

/**
 * The table's quoted, qualified name, created when missing. It lives beside the record table. The
 * object's oid is kept as int8, not `oid`: the row must not count as a reference, so that the
 * orphan sweep removes an idle upload's staged object after its grace period like any other.
 * @internal
 */
export async function ensureUploadsTable(dataSource: DataSource, scope: TransactionScope): Promise<string> {
  const { home } = await resolveHome(dataSource, scope);
  const table = qualified(home, TUS_UPLOADS_TABLE);
  const exists = await scope.query<{ found: boolean }>("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS found", [table]);
  if (exists[0]!.found) return table;
  try {
    await scope.query(
      `CREATE TABLE IF NOT EXISTS ${table} (
         "id" text PRIMARY KEY,
         "oid" int8 NOT NULL,
         "length" int8 CHECK ("length" >= 0),
         "offset" int8 NOT NULL DEFAULT 0 CHECK ("offset" >= 0 AND ("length" IS NULL OR "offset" <= "length")),
         "metadata" jsonb,
         "created_at" timestamptz NOT NULL DEFAULT pg_catalog.now(),
         "touched_at" timestamptz NOT NULL DEFAULT pg_catalog.now()
       )`,
    );
  } catch (err) {
    // Two processes creating it at once: the loser's catalog insert collides with the winner's.
    const state = (err as { code?: unknown }).code;
    if (state !== "23505" && state !== "42P07") throw err;
  }
  return table;
}
