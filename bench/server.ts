import { chmodSync, mkdirSync, mkdtempSync, rmSync, statfsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { prepareSchema } from "./methods";

/** Runs `task` on a connection of its own. */
export async function withClient<T>(url: string, task: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await task(client);
  } finally {
    await client.end();
  }
}

/** A database of its own for the run, dropped at the end; the given one when we may not create one. */
async function benchDatabase(url: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `typeorm_large_object_bench_${process.pid}`;
  try {
    await withClient(url, (c) => c.query(`CREATE DATABASE "${name}"`));
  } catch (err) {
    console.log(`(using the database of DATABASE_URL as is: CREATE DATABASE failed: ${(err as Error).message})`);
    return { url, drop: async () => undefined };
  }
  const u = new URL(url);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    drop: () => withClient(url, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

async function serverInfo(url: string): Promise<{ version: string; local: boolean; fileAccess: string | undefined }> {
  return withClient(url, async (c) => {
    const version = (await c.query<{ server_version: string }>("SHOW server_version")).rows[0]!.server_version;
    const host = new URL(url).hostname;
    const local = ["127.0.0.1", "localhost", "::1", "[::1]", ""].includes(host);
    const rights = await c.query<{ ok: boolean }>(
      "SELECT rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER') AND pg_has_role(current_user, 'pg_write_server_files', 'MEMBER') AS ok FROM pg_roles WHERE rolname = current_user",
    );
    let fileAccess: string | undefined;
    if (!local) fileAccess = `the server is not on this machine (${host}), so it cannot read the file this run writes`;
    else if (!rights.rows[0]?.ok) fileAccess = "the role is neither superuser nor in pg_read_server_files/pg_write_server_files";
    return { version, local, fileAccess };
  });
}

const TMPFS_MAGIC = 0x01021994;

/**
 * Where lo_import() reads and lo_export() writes their files: a tmpfs (/dev/shm) when it has room
 * for the content and one export, so that the server's ceiling is its own work and not the disk's
 * (on disk, an lo_export of 512 MiB waits for writeback, and of 64 MiB varied threefold from run to
 * run); the system's temporary directory otherwise.
 */
function serverFilesPlace(largest: number): { dir: string; note: string } {
  const shm = "/dev/shm";
  try {
    const fs = statfsSync(shm);
    const free = fs.bavail * fs.bsize;
    if (fs.type === TMPFS_MAGIC && free >= 2 * largest + 256 * 2 ** 20) return { dir: shm, note: `a file in ${shm} (tmpfs)` };
  } catch {
    // no /dev/shm here: fall through
  }
  return { dir: os.tmpdir(), note: `a file in ${os.tmpdir()} (not a tmpfs with room for it, so lo_export may wait for the disk)` };
}

/** The server of a run: a database of its own, what the role may do there, and where the server's files go. */
export interface BenchServer {
  url: string;
  info: { version: string; local: boolean; fileAccess: string | undefined };
  embedded: boolean;
  /** The directory of lo_import()'s content file, and lo_export()'s directory inside it. */
  files: string;
  exportDir: string;
  /** Where those files are, for the report. */
  serverFiles: string;
  /** Why the ORM methods cannot run, if they cannot. */
  ormReason: string | undefined;
  /** Drops the database, stops an embedded server and removes the files. */
  stop(): Promise<void>;
}

/** Connects to DATABASE_URL (or starts an embedded PostgreSQL) and prepares a run for objects up to `largest` bytes. */
export async function startServer(largest: number): Promise<BenchServer> {
  let embedded: { stop(): Promise<void> } | undefined;
  let baseUrl = process.env.DATABASE_URL;
  let scratch: string | undefined;
  if (baseUrl === undefined || baseUrl === "") {
    const { startEmbeddedPostgres } = await import("../scripts/embedded-postgres");
    scratch = mkdtempSync(path.join(os.tmpdir(), "lo-bench-pg-"));
    const server = await startEmbeddedPostgres({ dataDir: path.join(scratch, "data"), persistent: false });
    embedded = server;
    baseUrl = server.url;
    console.log(`DATABASE_URL is not set: started an embedded PostgreSQL on port ${server.port}`);
  }
  const database = await benchDatabase(baseUrl);
  const url = database.url;
  const info = await serverInfo(url);

  // lo_import()/lo_export() run as the server's OS user (postgres): the file must be readable by it
  // (a 755 directory, a 644 file) and the export directory writable by it.
  const serverFiles = serverFilesPlace(largest);
  const files = mkdtempSync(path.join(serverFiles.dir, "lo-bench-files-"));
  chmodSync(files, 0o755);
  const exportDir = path.join(files, "export");
  mkdirSync(exportDir);
  chmodSync(exportDir, 0o777);

  let ormReason: string | undefined;
  try {
    await prepareSchema(url);
  } catch (err) {
    ormReason = `the ORM layer is not usable: ${(err as Error).message}`;
  }

  return {
    url,
    info,
    embedded: embedded !== undefined,
    files,
    exportDir,
    serverFiles: serverFiles.note,
    ormReason,
    stop: async () => {
      await database.drop();
      await embedded?.stop();
      rmSync(files, { recursive: true, force: true });
      if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
    },
  };
}

/** The CHECKPOINT before each run, on a connection of its own, and what the report says about it. */
export interface Checkpoints {
  settle(): Promise<void>;
  /** How the runs were separated, for the report. */
  note(): string;
  close(): Promise<void>;
}

/**
 * A CHECKPOINT before each run writes out what the previous run left dirty, so that no method is
 * timed while the server flushes another method's pages (reads after big writes suffered most).
 * `spent` is told how long each one took.
 */
export async function openCheckpoints(url: string, spent: (ms: number) => void): Promise<Checkpoints> {
  const admin = new Client({ connectionString: url });
  await admin.connect();
  let checkpoints: string | undefined = "a CHECKPOINT before every run";
  return {
    settle: async () => {
      if (checkpoints === undefined) return;
      const began = Date.now();
      await admin.query("CHECKPOINT").finally(() => spent(Date.now() - began)).catch((err: Error) => {
        checkpoints = undefined;
        console.log(`  (no CHECKPOINT between runs: ${err.message})`);
      });
    },
    note: () => checkpoints ?? "no CHECKPOINT between runs (the role may not)",
    close: () => admin.end(),
  };
}
