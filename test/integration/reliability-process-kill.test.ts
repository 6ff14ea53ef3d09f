import { spawn } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { DataSource } from "typeorm";
import { databaseUrl, idleInTransaction } from "../support/database";
import { objectDigests, victimName, waitForNoBackend } from "../support/faults";
import { within } from "../support/streams";
import { Upload } from "../support/upload-entity";
import { useDataSource } from "../support/use-data-source";

// The process that uploads is killed with SIGKILL mid-upload: PostgreSQL rolls its transaction
// back when the socket closes, so neither the row nor the object of that upload survives.
const root = path.resolve(__dirname, "../..");
let owner: DataSource;
let admin: DataSource;

useDataSource((opened) => (owner = opened), { orm: [Upload], admin: (opened) => (admin = opened) });

async function snapshot(): Promise<unknown> {
  return {
    rows: await admin.query("SELECT id, name, content FROM reliability_upload ORDER BY id"),
    records: await admin.query("SELECT oid FROM typeorm_large_objects ORDER BY oid"),
    objects: [...(await objectDigests(admin)).entries()],
  };
}

/** Starts the uploader, waits until its upload is in flight, SIGKILLs it, and waits for the server to notice. */
async function killMidUpload(how: "save" | "stream", id?: number): Promise<void> {
  const app = victimName(`kill_${how}`);
  // tsx's loader in this very process: the tsx command would run the script in a child of its own,
  // which a SIGKILL of the command leaves running.
  const loader = ["--require", path.join(root, "node_modules/tsx/dist/preflight.cjs"), "--import", pathToFileURL(path.join(root, "node_modules/tsx/dist/loader.mjs")).href];
  const args = [...loader, path.join(root, "test/support/slow-upload.ts"), databaseUrl(), app, how, String(id ?? "")];
  const child = spawn(process.execPath, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  const uploading = new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (chunk: Buffer) => (chunk.toString().includes("uploading") ? resolve() : undefined));
    child.on("exit", () => reject(new Error(`the uploader exited before uploading: ${stderr}`)));
  });
  try {
    await within(20_000, uploading, "the child's upload");
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  // The upload really is in flight, inside a transaction.
  const busy: { state: string }[] = await admin.query(
    "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
    [app],
  );
  expect(busy.map((s) => s.state)).toEqual([expect.stringMatching(/^(idle in transaction|active)$/)]);
  child.kill("SIGKILL");
  expect(await exited).toBe("SIGKILL");
  await waitForNoBackend(admin, app);
}

test("SIGKILL during save() of an entity with a slow stream: no row, no object, no record", async () => {
  const before = await snapshot();
  await killMidUpload("save");
  expect(await snapshot()).toEqual(before);
  expect(await idleInTransaction(admin)).toBe(0);
}, 30_000);

test("SIGKILL during a repository write stream into a null column: the column stays null, no object", async () => {
  const row = await owner.getRepository(Upload).save({ name: "target", content: null });
  const before = await snapshot();
  await killMidUpload("stream", row.id);
  expect(await snapshot()).toEqual(before);
  expect((await owner.getRepository(Upload).findOneByOrFail({ id: row.id })).content).toBeNull();
}, 30_000);
