import { DataSource } from "typeorm";
import { registerLargeObjects } from "../../src";
import { saveWithContent, type Stored } from "./cleanup";
import type { ScratchServer } from "./scratch-server";
import { CleanupDoc, CleanupOther } from "../integration/fixtures/cleanup";

/** The entities of the dump-and-restore tests: two tables with a large-object column each. */
export const RESTORE_ENTITIES = [CleanupDoc, CleanupOther];

/** A data source on one of a scratch server's databases; `synchronize` also installs the triggers. */
export async function openOn(server: ScratchServer, database: string, options: { synchronize?: boolean } = {}): Promise<DataSource> {
  const ds = registerLargeObjects(
    new DataSource({ type: "postgres", url: server.url(database), entities: RESTORE_ENTITIES, synchronize: options.synchronize ?? false, poolSize: 3 }),
  );
  return ds.initialize();
}

/** What the source database holds, to be found again after a restore. */
export interface SourceData {
  /** Rows of cleanup_doc saved through the ORM: [shared with a raw row of its table, shared with cleanup_other, alone]. */
  docs: Stored[];
  /** A recorded object nothing references, two days old: the one orphan. */
  orphan: number;
}

/** Fills a source database: three documents, a raw row sharing the first's object, another table sharing the second's, an orphan. */
export async function fillSource(ds: DataSource): Promise<SourceData> {
  const docs = await saveWithContent(ds, CleanupDoc, 3, 2200);
  await ds.query("INSERT INTO cleanup_doc (name, file) VALUES ('copy', $1)", [docs[0]!.oid]);
  await ds.query("INSERT INTO cleanup_other (file) VALUES ($1)", [docs[1]!.oid]);
  const rows: { oid: number }[] = await ds.query(
    `WITH o AS MATERIALIZED (SELECT lo_from_bytea(0, '\\x0102') AS oid)
     INSERT INTO typeorm_large_objects (oid, created_for, created_at) SELECT oid, 'orphan', now() - interval '2 days' FROM o RETURNING oid`,
  );
  return { docs, orphan: rows[0]!.oid };
}
