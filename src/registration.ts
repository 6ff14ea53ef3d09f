import type { DataSource, MixedList } from "typeorm";
import { LargeObjectError } from "./errors";
import { dataSourceOf } from "./transaction-scope";
import { LargeObjectRecord } from "./records";
import { LargeObjectSubscriber } from "./subscriber";
import { syncLargeObjectTriggers } from "./triggers";

const registered = new WeakSet<DataSource>();

function withItem<T>(list: MixedList<T> | undefined, item: T, key: string): MixedList<T> {
  if (list === undefined) return [item];
  if (Array.isArray(list)) return list.includes(item) ? list : [...list, item];
  return Object.values(list).includes(item) ? list : { ...list, [key]: item };
}

/**
 * Prepares a PostgreSQL data source for large-object columns; call it before `initialize()`. It
 * makes `oid` a known column type, adds the subscriber and the record table's entity, and has
 * `synchronize()` install the unlink triggers. Put it in the TypeORM CLI's data-source file too, so
 * that `migration:generate` sees the same schema.
 *
 * @example
 * const dataSource = registerLargeObjects(new DataSource({ type: "postgres", url, entities: [Document] }));
 * await dataSource.initialize();
 */
export function registerLargeObjects(dataSource: DataSource): DataSource {
  dataSourceOf(dataSource);
  if (registered.has(dataSource)) return dataSource;
  if (dataSource.isInitialized) {
    throw new LargeObjectError(
      "ERR_LO_NOT_REGISTERED",
      "registerLargeObjects(dataSource) must be called before dataSource.initialize()",
    );
  }
  registered.add(dataSource);
  const types = dataSource.driver.supportedDataTypes as string[];
  if (!types.includes("oid")) types.push("oid");
  Object.assign(dataSource.options, {
    entities: withItem(dataSource.options.entities, LargeObjectRecord, "LargeObjectRecord"),
    subscribers: withItem(dataSource.options.subscribers, LargeObjectSubscriber, "LargeObjectSubscriber"),
  });
  const synchronize = dataSource.synchronize.bind(dataSource);
  dataSource.synchronize = async (dropBeforeSync?: boolean): Promise<void> => {
    await synchronize(dropBeforeSync);
    await syncLargeObjectTriggers(dataSource);
  };
  return dataSource;
}
