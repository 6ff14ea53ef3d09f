import type { TransactionScope } from "./transaction-scope";

/**
 * The compression method the library's writes ask the server to use for the pages of large objects
 * (`default_toast_compression` for their transaction). Unset or empty: lz4, where the server was
 * built with it. Set it (per database, role or session) to `pglz` to keep the server's default.
 */
export const TOAST_COMPRESSION_SETTING = "typeorm_large_object.toast_compression";

/**
 * A SELECT-list step that sets `default_toast_compression` until the end of the transaction.
 *
 * The server tries to compress every 2 KiB page of a large object as it stores it. With the
 * built-in pglz that cost about 30 % of a backend's CPU in a 64 MiB write of incompressible bytes
 * (perf, AMD EPYC host), where lz4 gives up on them at once: writes took 965 instead of 1,320 ms.
 */
const SET_COMPRESSION =
  `pg_catalog.set_config('default_toast_compression', ` +
  `COALESCE(NULLIF(pg_catalog.current_setting('${TOAST_COMPRESSION_SETTING}', true), ''), 'lz4'), true)`;

/** Whether each connection's server offers lz4 (a build option), asked once per connection. */
const offersLz4 = new WeakMap<object, Promise<boolean>>();

/**
 * The step that chooses the compression of a write's pages, or undefined where the server has no
 * lz4 (its default, pglz, then stays).
 */
export async function compressionStep(scope: TransactionScope): Promise<string | undefined> {
  let known = offersLz4.get(scope.client);
  if (known === undefined) {
    known = scope
      .query<{ lz4: boolean }>(
        "SELECT 'lz4' = ANY (enumvals) AS lz4 FROM pg_catalog.pg_settings WHERE name = 'default_toast_compression'",
      )
      .then((rows) => rows[0]?.lz4 === true);
    offersLz4.set(scope.client, known);
    known.catch(() => offersLz4.delete(scope.client));
  }
  return (await known) ? SET_COMPRESSION : undefined;
}

/** `SELECT lowrite($1, $2)`, after the given steps (run once per statement, before the write). */
export function lowriteAfter(steps: (string | undefined)[]): string {
  const before = steps.filter((s): s is string => s !== undefined);
  return before.length === 0
    ? "SELECT lowrite($1, $2)"
    : `SELECT lowrite($1, $2) FROM (SELECT ${before.join(", ")} OFFSET 0) AS before_write`;
}
