import type { TransactionScope } from "../connection/transaction-scope";

// The compression of the pages the library's writes store: every statement that stores content
// (lowrite, lo_from_bytea) runs this step first.

/**
 * The compression method the library's writes ask the server to use for the pages of large objects
 * (`default_toast_compression` for their transaction). Unset or empty: lz4, where the server was
 * built with it. Set it (per database, role or session) to `pglz` to keep the server's default.
 */
export const TOAST_COMPRESSION_SETTING = "typeorm_large_object.toast_compression";

/**
 * A SELECT-list step that sets `default_toast_compression` until the end of the transaction: the
 * server compresses every 2 KiB page it stores, and pglz spends far more CPU on incompressible
 * bytes than lz4, which gives up on them at once.
 */
const SET_COMPRESSION =
  `pg_catalog.set_config('default_toast_compression', ` +
  `COALESCE(NULLIF(pg_catalog.current_setting('${TOAST_COMPRESSION_SETTING}', true), ''), 'lz4'), true)`;

/** Whether each connection's server offers lz4 (a build option), asked once per connection. */
const offersLz4 = new WeakMap<object, Promise<boolean>>();

/**
 * The step that chooses the compression of a write's pages, or undefined where the server has no
 * lz4 (its default, pglz, then stays).
 * @internal
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

/**
 * A FROM item that runs `steps` (SELECT-list expressions) once, before the statement makes any of
 * its rows: OFFSET 0 keeps it a subquery of its own. Undefined when there are none.
 * @internal
 */
export function stepsItem(steps: (string | undefined)[]): string | undefined {
  const before = steps.filter((s): s is string => s !== undefined);
  return before.length === 0 ? undefined : `(SELECT ${before.join(", ")} OFFSET 0) AS before_write`;
}

/** @internal `select` (a SELECT without FROM) run after `steps`. */
export function afterSteps(select: string, steps: (string | undefined)[]): string {
  const item = stepsItem(steps);
  return item === undefined ? select : `${select} FROM ${item}`;
}
