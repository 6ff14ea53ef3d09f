import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { DataSource } from "typeorm";
import { countObjects, databaseUrl } from "../support/database";
import { expectIntact, saveWithContent } from "../support/cleanup";
import { CLEANUP_ENTITIES, CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

const root = resolve(__dirname, "../..");
const tsx = join(root, "node_modules/.bin/tsx");
const dataSourceFile = "test/integration/fixtures/cli-data-source.ts";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(tsx, [join(root, "src/cli/main.ts"), ...args], {
      cwd: root,
      env: { ...process.env, TLO_CLI_DATABASE_URL: databaseUrl(), ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: CLEANUP_ENTITIES, triggers: true });

async function makeOrphans(n: number): Promise<void> {
  await ds.query(
    `WITH created AS MATERIALIZED (SELECT lo_from_bytea(0, '\\x0102') AS oid FROM generate_series(1, $1))
     INSERT INTO typeorm_large_objects (oid, created_for, created_at) SELECT oid, 'x', now() - interval '2 days' FROM created`,
    [n],
  );
}

test("status and a dry-run sweep exit 0 when there is nothing to do", async () => {
  const live = await saveWithContent(ds, CleanupDoc, 2, 1300);
  const status = await cli(["status", "--dataSource", dataSourceFile]);
  expect(status.stderr).toBe("");
  expect(status.code).toBe(0);
  expect(status.stdout).toMatch(/Large objects\s+2\s/);
  const sweep = await cli(["sweep", "-d", dataSourceFile]);
  expect(sweep.code).toBe(0);
  expect(sweep.stdout).toContain("Dry run: 0 orphans");
  await expectIntact(ds, live);
});

test("with orphans, status and the default (dry-run) sweep exit 4 and change nothing; --execute unlinks them and exits 0", async () => {
  await makeOrphans(30);
  const before = await countObjects(ds);
  const status = await cli(["status", "--dataSource", dataSourceFile, "--json"]);
  expect(status.code).toBe(4);
  expect(JSON.parse(status.stdout)).toMatchObject({ command: "status", orphans: 30, recorded: before, withoutRecord: 0 });

  const dry = await cli(["sweep", "--dataSource", dataSourceFile, "--batch-size", "10"]);
  expect(dry.code).toBe(4);
  expect(dry.stdout).toContain("Dry run: 30 orphans (60 B)");
  expect(dry.stdout).toContain("--execute");
  // Not a terminal: plain progress lines, no bar.
  expect(dry.stderr).toMatch(/^sweep \(dry run\): \d+ of 30 orphans checked/m);
  expect(dry.stderr).not.toContain("\r");
  expect(await countObjects(ds)).toBe(before);

  const run = await cli(["sweep", "--dataSource", dataSourceFile, "--execute", "--json", "--batch-size", "10"]);
  expect(run.code).toBe(0);
  expect(run.stderr).toBe("");
  expect(JSON.parse(run.stdout)).toMatchObject({ command: "sweep", dryRun: false, orphans: 30, unlinked: 30, bytesFreed: 60, batches: 3 });
  expect(await countObjects(ds)).toBe(before - 30);
});

test("--grace narrows or widens the grace period", async () => {
  await ds.query(
    `INSERT INTO typeorm_large_objects (oid, created_for, created_at) SELECT lo_from_bytea(0, '\\x01'), 'x', now() - interval '10 minutes'`,
  );
  expect((await cli(["sweep", "-d", dataSourceFile, "--yes"])).stdout).toContain("Unlinked 0 orphans");
  const run = await cli(["sweep", "-d", dataSourceFile, "--yes", "--grace", "5m", "--json"]);
  expect(JSON.parse(run.stdout)).toMatchObject({ unlinked: 1 });
});

test("bad arguments exit 2; a missing file or an unreachable database exits 3", async () => {
  for (const args of [[], ["frobnicate", "-d", dataSourceFile], ["sweep"], ["sweep", "-d", dataSourceFile, "--scope", "most"], ["sweep", "-d", dataSourceFile, "--dry-run", "--execute"], ["sweep", "-d", dataSourceFile, "--grace", "soon"]]) {
    const run = await cli(args);
    expect({ args, code: run.code }).toEqual({ args, code: 2 });
    expect(run.stderr).toContain("Usage: typeorm-large-object");
  }
  const missing = await cli(["status", "-d", "no/such/file.js"]);
  expect(missing.code).toBe(3);
  expect(missing.stderr).toContain("cannot load");
  const unreachable = await cli(["status", "-d", dataSourceFile, "--json"], { TLO_CLI_DATABASE_URL: "postgres://postgres@127.0.0.1:1/none" });
  expect(unreachable.code).toBe(3);
  expect(JSON.parse(unreachable.stdout).error.message).toContain("cannot initialize");
});

test("migration:triggers writes a migration with the statements for the current columns", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tlo-migration-"));
  try {
    const run = await cli(["migration:triggers", join(dir, "LargeObjectTriggers"), "-d", dataSourceFile]);
    expect(run.code).toBe(0);
    const [file] = readdirSync(dir);
    expect(file).toMatch(/^\d+-LargeObjectTriggers\.ts$/);
    const source = readFileSync(join(dir, file!), "utf8");
    expect(source).toMatch(/export class LargeObjectTriggers\d+ implements MigrationInterface/);
    expect(source).toContain("CREATE TRIGGER \\\"typeorm_large_object_deletes\\\" AFTER DELETE ON \\\"public\\\".\\\"cleanup_doc\\\"");
    expect(source).toContain("CREATE TRIGGER \\\"typeorm_large_object_updates\\\" AFTER UPDATE ON \\\"public\\\".\\\"cleanup_doc\\\"");
    expect(source).toContain("DROP TRIGGER IF EXISTS");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
