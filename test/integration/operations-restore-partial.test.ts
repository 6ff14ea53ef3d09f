import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import type { DataSource } from "typeorm";
import { largeObjectStatus, sweepOrphans } from "../../src";
import { countObjects } from "../support/database";
import { expectGone, expectIntact, saveWithContent } from "../support/cleanup";
import { fillSource, openOn } from "../support/restore";
import { scratchFolder, startScratchServer, type ScratchServer } from "../support/scratch-server";
import { CleanupDoc } from "./fixtures/cleanup";

// Dumps that cannot be complete: --table and --schema carry no large objects (and --table not the
// library's functions), --schema-only no rows. Each restores, and status says what is missing.

let server: ScratchServer;
let folder: string;
const opened: DataSource[] = [];
const root = path.resolve(__dirname, "../..");

beforeAll(async () => {
  server = await startScratchServer();
  folder = scratchFolder();
  await createDatabase("source");
  const ds = await openOn(server, "source", { synchronize: true });
  await fillSource(ds);
  await ds.destroy();
}, 60_000);

afterAll(async () => {
  for (const ds of opened) if (ds.isInitialized) await ds.destroy();
  await server?.destroy();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

function createDatabase(name: string): Promise<unknown> {
  return server.tool("createdb", ["-h", "127.0.0.1", "-p", String(server.port), "-U", "postgres", name]);
}

/** Dumps the source with `dumpArgs` (custom format) and restores it into a fresh database; the restore's error output. */
async function dumpAndRestore(name: string, dumpArgs: string[], restoreArgs: string[] = []): Promise<{ ds: DataSource; errors: string[] }> {
  const file = path.join(folder, `${name}.custom`);
  await server.tool("pg_dump", ["-Fc", ...dumpArgs, "-f", file, server.url("source")]);
  await createDatabase(name);
  const errors = await server.tool("pg_restore", [...restoreArgs, "-d", server.url(name), file]).then(
    () => [],
    (err: { stderr?: string }) => (err.stderr ?? "").split("\n").filter((l) => l.includes("error:")),
  );
  const ds = await openOn(server, name);
  opened.push(ds);
  return { ds, errors };
}

function cli(args: string[], url: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((done, fail) => {
    const child = spawn(path.join(root, "node_modules/.bin/tsx"), [path.join(root, "src/cli/main.ts"), ...args], {
      cwd: root,
      env: { ...process.env, TLO_CLI_DATABASE_URL: url },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout }));
  });
}

test("a --table dump restored into a fresh database: only its triggers fail, status reports the damage and says what to run", async () => {
  const { ds, errors } = await dumpAndRestore("only_table", ["--table", "cleanup_doc"]);
  // The triggers name functions the dump does not carry: they and their comments are the only errors.
  expect(errors).toHaveLength(6);
  for (const line of errors) {
    expect(line).toMatch(/function public.typeorm_large_object_(row|truncate)_trigger\(\) does not exist|trigger "typeorm_large_object_(deletes|updates|truncate)" .* does not exist/);
  }

  const status = await largeObjectStatus(ds);
  expect(status).toMatchObject({ objects: 0, recorded: 0, orphans: 0 });
  expect(status.danglingReferences).toEqual([{ table: '"public"."cleanup_doc"', column: "file", rows: 4 }]);
  expect(status.problems).toEqual([
    expect.stringMatching(/^the record table "public"."typeorm_large_objects" does not exist: run the migrations/),
    expect.stringMatching(/^3 of the 3 unlink functions are missing in schema "public": call syncLargeObjectTriggers/),
    expect.stringMatching(/^the column table .* does not exist: call syncLargeObjectTriggers/),
    expect.stringMatching(/^1 large-object columns have no unlink triggers \("public"."cleanup_doc"."file"\): call syncLargeObjectTriggers/),
  ]);
  const run = await cli(["status", "-d", "test/integration/fixtures/cli-data-source.ts"], server.url("only_table"));
  expect(run.code).toBe(4);
  expect(run.stdout).toMatch(/Dangling references\s+4 /);
  expect(run.stdout).toContain("Problem: the record table");

  // What the lines say to run repairs everything but the lost bytes.
  await ds.synchronize();
  const repaired = await largeObjectStatus(ds);
  expect(repaired.problems).toEqual([]);
  expect(repaired.danglingReferences).toEqual([{ table: '"public"."cleanup_doc"', column: "file", rows: 4 }]);
  await ds.query("DELETE FROM cleanup_doc");
  const [row] = await saveWithContent(ds, CleanupDoc, 1, 2300);
  await ds.query("DELETE FROM cleanup_doc");
  await expectGone(ds, [row!]);
}, 30_000);

test("a --schema dump restores without errors; status counts its dangling references and records of lost objects", async () => {
  // A dump of a named schema creates it: --clean --if-exists replaces the new database's own public.
  const { ds, errors } = await dumpAndRestore("only_schema", ["--schema", "public"], ["--clean", "--if-exists"]);
  expect(errors).toEqual([]);
  const status = await largeObjectStatus(ds);
  expect(status).toMatchObject({ objects: 0, recorded: 0, missingObjects: 4, problems: [] });
  expect(status.danglingReferences).toEqual([
    { table: '"public"."cleanup_doc"', column: "file", rows: 4 },
    { table: '"public"."cleanup_other"', column: "file", rows: 1 },
  ]);
  // Rows naming lost objects delete cleanly (the triggers drop their records), and the sweep
  // clears the orphan's record; the one still referenced from cleanup_other stays.
  await ds.query("DELETE FROM cleanup_doc");
  expect(await sweepOrphans(ds)).toMatchObject({ unlinked: 0, missingRecords: 1 });
  expect(await largeObjectStatus(ds)).toMatchObject({
    missingObjects: 1,
    danglingReferences: [{ table: '"public"."cleanup_other"', column: "file", rows: 1 }],
  });
}, 30_000);

test("a --schema-only dump restores without errors into a database that works at once, with an empty column table", async () => {
  const { ds, errors } = await dumpAndRestore("only_ddl", ["--schema-only"]);
  expect(errors).toEqual([]);
  expect(await ds.query("SELECT count(*)::int AS n FROM typeorm_large_object_columns")).toEqual([{ n: 0 }]);
  expect(await largeObjectStatus(ds)).toMatchObject({ objects: 0, recorded: 0, danglingReferences: [], problems: [] });
  const [shared, alone] = await saveWithContent(ds, CleanupDoc, 2, 2400);
  await ds.query("INSERT INTO cleanup_other (file) VALUES ($1)", [shared!.oid]);
  await ds.query("DELETE FROM cleanup_doc");
  await expectIntact(ds, [shared!]);
  await expectGone(ds, [alone!]);
  await ds.query("DELETE FROM cleanup_other");
  expect(await countObjects(ds)).toBe(0);
}, 30_000);
