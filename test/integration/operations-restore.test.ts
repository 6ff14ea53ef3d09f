import { rmSync } from "node:fs";
import path from "node:path";
import type { DataSource } from "typeorm";
import { largeObjectStatus, sweepOrphans } from "../../src";
import { objectBytes, objectExists } from "../support/database";
import { expectGone, expectIntact } from "../support/cleanup";
import { fillSource, openOn, type SourceData } from "../support/restore";
import { scratchFolder, startScratchServer, type ScratchServer } from "../support/scratch-server";

// A full dump restored in every format and mode gives a database that works at once: no sync of
// the triggers, no repair. The source and target databases share one scratch server, so the
// client tools always match the server's version.

let server: ScratchServer;
let folder: string;
let source: SourceData;
const opened: DataSource[] = [];

beforeAll(async () => {
  server = await startScratchServer();
  folder = scratchFolder();
  await server.tool("createdb", ["-h", "127.0.0.1", "-p", String(server.port), "-U", "postgres", "source"]);
  const ds = await openOn(server, "source", { synchronize: true });
  source = await fillSource(ds);
  await ds.destroy();
  const url = server.url("source");
  await server.tool("pg_dump", ["-Fc", "-f", path.join(folder, "dump.custom"), url]);
  await server.tool("pg_dump", ["-Fd", "-f", path.join(folder, "dump.dir"), url]);
  await server.tool("pg_dump", ["-Fp", "-f", path.join(folder, "dump.sql"), url]);
}, 60_000);

afterAll(async () => {
  for (const ds of opened) if (ds.isInitialized) await ds.destroy();
  await server?.destroy();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

let targets = 0;
/** A fresh database restored by `restore(url)`; the tool must exit 0. */
async function restored(restore: (url: string) => Promise<unknown>): Promise<DataSource> {
  const name = `target_${(targets += 1)}`;
  await server.tool("createdb", ["-h", "127.0.0.1", "-p", String(server.port), "-U", "postgres", name]);
  await restore(server.url(name));
  const ds = await openOn(server, name);
  opened.push(ds);
  return ds;
}

const restores: [string, (url: string) => Promise<unknown>][] = [
  ["custom", (url) => server.tool("pg_restore", ["--exit-on-error", "-d", url, path.join(folder, "dump.custom")])],
  ["custom, --single-transaction", (url) => server.tool("pg_restore", ["--single-transaction", "-d", url, path.join(folder, "dump.custom")])],
  ["directory, -j 2", (url) => server.tool("pg_restore", ["--exit-on-error", "-j", "2", "-d", url, path.join(folder, "dump.dir")])],
  ["directory, --single-transaction", (url) => server.tool("pg_restore", ["--single-transaction", "-d", url, path.join(folder, "dump.dir")])],
  ["plain", (url) => server.tool("psql", ["-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", path.join(folder, "dump.sql")])],
  ["plain, --single-transaction", (url) => server.tool("psql", ["-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", path.join(folder, "dump.sql")])],
];

test.each(restores)("a full dump restored (%s) works at once: bytes, status, shared references, deletes, sweep", async (_mode, restore) => {
  const ds = await restored(restore);
  const [shared, sharedElsewhere, alone] = source.docs as [SourceData["docs"][0], SourceData["docs"][0], SourceData["docs"][0]];
  await expectIntact(ds, source.docs);
  expect((await objectBytes(ds, source.orphan)).equals(Buffer.from([1, 2]))).toBe(true);
  const columns: unknown[] = await ds.query(`SELECT "schema", "table", "column" FROM typeorm_large_object_columns ORDER BY 2`);
  expect(columns).toEqual([
    { schema: "public", table: "cleanup_doc", column: "file" },
    { schema: "public", table: "cleanup_other", column: "file" },
  ]);

  const status = await largeObjectStatus(ds);
  expect(status).toMatchObject({ objects: 4, recorded: 4, orphans: 1, missingObjects: 0, danglingReferences: [], problems: [] });

  // The raw row of the same table and the row of the other table keep their objects.
  await ds.query("DELETE FROM cleanup_doc WHERE id = $1", [shared.id]);
  await ds.query("DELETE FROM cleanup_doc WHERE id = $1", [sharedElsewhere.id]);
  await expectIntact(ds, [shared, sharedElsewhere]);
  await ds.query("DELETE FROM cleanup_doc WHERE id = $1", [alone.id]);
  await expectGone(ds, [alone]);
  await ds.query("DELETE FROM cleanup_doc WHERE name = 'copy'");
  await expectGone(ds, [shared]);

  const swept = await sweepOrphans(ds);
  expect(swept).toMatchObject({ orphans: 1, unlinked: 1, skipped: 0 });
  expect(await objectExists(ds, source.orphan)).toBe(false);
  await expectIntact(ds, [sharedElsewhere]);
  expect(await largeObjectStatus(ds)).toMatchObject({ objects: 1, orphans: 0, danglingReferences: [], problems: [] });
});
