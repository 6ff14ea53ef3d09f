import type { DataSource, EntitySchema, MixedList } from "typeorm";
import { idleInTransaction, openDataSource, unlinkAll, unlinkThese } from "./database";
import { dropCleanup } from "./cleanup";
import { dropAll, dropSchemas, openOrmDataSource } from "./orm";
import { eventually } from "./http-server";
import { checkedOut } from "./pool";

export type UseDataSourceOptions = Parameters<typeof openDataSource>[0] & {
  /** After each test: no connection checked out and no session idle in a transaction. */
  checkClean?: boolean;
  /**
   * With `checkClean`: how long the connections may take to come back to the pool (a server in the
   * test's process may still be finishing a response the client has already read). None by default.
   */
  settleMs?: number;
  /**
   * When every large object is unlinked: after each test (the default without `orm`), once after
   * the last test (for files whose tests build on what earlier ones left; the default with `orm`),
   * never (the file removes its own), or only the oids of a list the file adds what it creates to
   * (at the end).
   */
  unlink?: "each" | "end" | "none" | number[];
  /**
   * Entities to synchronize on a data source with large objects registered; their tables are
   * dropped at the end. Of the other data-source options only `poolSize` applies then.
   */
  orm?: MixedList<Function | string | EntitySchema>;
  /** Schemas the entities live in, created before the data source opens and dropped at the end. */
  schemas?: string[];
  /** The file installs the clean-up triggers: they and their functions are removed at the end. */
  triggers?: boolean;
  /**
   * A second, plain data source for observing the first from outside its pool (the clean-up checks
   * and the unlinking go through it, so they work while the first one's connections are busy).
   */
  admin?: (admin: DataSource) => void;
  /** Runs after the data sources open, before the first test. */
  setUp?: (ds: DataSource) => Promise<void>;
  /** Removes what the file created besides large objects and entity tables, before the data sources close. */
  tearDown?: (ds: DataSource) => Promise<void>;
};

/**
 * Gives a test file its data source: opened before the tests (handed to `assign`), large objects
 * unlinked after each test (after the clean-up checks, with `checkClean`) or at the end, the
 * entity tables dropped and everything closed at the end.
 */
export function useDataSource(assign: (ds: DataSource) => void, options: UseDataSourceOptions = {}): void {
  const { checkClean = false, settleMs = 0, unlink, orm, schemas, triggers = false, admin: assignAdmin, setUp, tearDown, ...dataSourceOptions } = options;
  const unlinkWhen = unlink ?? (orm ? "end" : "each");
  let ds: DataSource | undefined;
  let admin: DataSource | undefined;
  beforeAll(async () => {
    ds = orm
      ? await openOrmDataSource(orm, { poolSize: dataSourceOptions.poolSize, schemas })
      : await openDataSource(dataSourceOptions);
    assign(ds);
    if (assignAdmin) {
      admin = await openDataSource();
      assignAdmin(admin);
    }
    await setUp?.(ds);
  });
  afterEach(async () => {
    if (ds === undefined) return;
    if (checkClean) {
      if (settleMs > 0) await eventually(() => checkedOut(ds!) === 0, settleMs, "every connection back in the pool");
      expect(checkedOut(ds)).toBe(0);
      expect(await idleInTransaction(admin ?? ds)).toBe(0);
    }
    if (unlinkWhen === "each") await unlinkAll(admin ?? ds);
  });
  afterAll(async () => {
    if (ds?.isInitialized) await tearDown?.(ds);
    if (unlinkWhen === "end" && !orm && ds?.isInitialized) await unlinkAll(admin ?? ds);
    if (Array.isArray(unlinkWhen) && ds?.isInitialized) await unlinkThese(admin ?? ds, unlinkWhen);
    // Dropping the entity tables unlinks every object as well.
    if (orm) await (triggers ? dropCleanup(ds) : dropAll(ds as DataSource));
    else await ds?.destroy();
    await admin?.destroy();
    if (schemas?.length) await dropSchemas(schemas);
  });
}

/**
 * `useDataSource` with a pool of one connection and an observer beside it (handed to `assign`
 * together): a connection the code under test leaks makes the pool's next query wait, and the
 * observer still sees the server.
 */
export function useOneConnection(
  assign: (ds: DataSource, observer: DataSource) => void,
  options: Omit<UseDataSourceOptions, "poolSize" | "admin" | "orm" | "schemas" | "triggers"> = {},
): void {
  let pool: DataSource;
  useDataSource((opened) => (pool = opened), { ...options, poolSize: 1, admin: (observer) => assign(pool, observer) });
}
