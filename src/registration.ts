import type { DataSource, MixedList } from "typeorm";
import { notRegistered } from "./errors";
import { dataSourceOf } from "./connection/source";
import { setWriteOpenStep } from "./handle/large-object";
import { recordsTable } from "./orm/column-objects";
import { LargeObjectRecord } from "./orm/records";
import { LargeObjectSubscriber } from "./orm/subscriber";
import { forgetTrackedSteps, validateTracking } from "./orm/tracking";
import { syncLargeObjectTriggers } from "./cleanup/trigger-sync";

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
    throw notRegistered("registerLargeObjects() came after initialize()");
  }
  registered.add(dataSource);
  const types = dataSource.driver.supportedDataTypes as string[];
  if (!types.includes("oid")) types.push("oid");
  Object.assign(dataSource.options, {
    entities: withItem(dataSource.options.entities, LargeObjectRecord, "LargeObjectRecord"),
    subscribers: withItem(dataSource.options.subscribers, LargeObjectSubscriber, "LargeObjectSubscriber"),
  });
  // A write through a raw handle may change an object's content: a staged object's record, and the
  // tracked columns of a row holding it, forget its size and digest, so none is ever stale.
  setWriteOpenStep(dataSource, () =>
    [
      `forgotten AS (UPDATE ${recordsTable(dataSource)} SET size = NULL, sha256 = NULL WHERE oid = $1 AND staged AND size IS NOT NULL)`,
      ...forgetTrackedSteps(dataSource),
    ].join(", "),
  );
  // The track options are checked as soon as the metadata exists, before anything is synchronized;
  // initialize() closes the data source again when this throws.
  const built = dataSource as unknown as { buildMetadatas(): Promise<void> };
  const buildMetadatas = built.buildMetadatas.bind(dataSource);
  built.buildMetadatas = async (): Promise<void> => {
    await buildMetadatas();
    validateTracking(dataSource);
  };
  const synchronize = dataSource.synchronize.bind(dataSource);
  dataSource.synchronize = async (dropBeforeSync?: boolean): Promise<void> => {
    await synchronize(dropBeforeSync);
    await syncLargeObjectTriggers(dataSource);
  };
  return dataSource;
}
