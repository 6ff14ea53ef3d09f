import type { DataSource } from "typeorm";
import { idleInTransaction, openDataSource, unlinkAll } from "./database";
import { checkedOut } from "./pool";

type Options = Parameters<typeof openDataSource>[0] & {
  /** After each test: no connection checked out and no session idle in a transaction. */
  checkClean?: boolean;
};

/**
 * Gives a test file its data source: opened before the tests (handed to `assign`), every large
 * object unlinked after each test (after the clean-up checks, with `checkClean`), closed at the end.
 */
export function useDataSource(assign: (ds: DataSource) => void, options: Options = {}): void {
  const { checkClean = false, ...dataSourceOptions } = options;
  let ds: DataSource | undefined;
  beforeAll(async () => {
    ds = await openDataSource(dataSourceOptions);
    assign(ds);
  });
  afterEach(async () => {
    if (ds === undefined) return;
    if (checkClean) {
      expect(checkedOut(ds)).toBe(0);
      expect(await idleInTransaction(ds)).toBe(0);
    }
    await unlinkAll(ds);
  });
  afterAll(async () => {
    await ds?.destroy();
  });
}
