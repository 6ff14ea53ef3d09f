import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../scripts/embedded-postgres";

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL of the test's own, from binaries on the machine: for what the shared test
 * database cannot give (dump and restore with matching client tools, a standby, a server to stop).
 */
export interface ScratchServer {
  /** The folder of the binaries this server runs (pg_dump, pg_restore, ... of the same version). */
  bin: string;
  /** Its data directory. */
  dataDir: string;
  port: number;
  /** A connection URL, to `database` (default `postgres`). */
  url(database?: string): string;
  /** Runs one of the binaries of `bin` (as the server's user when we are root). */
  tool(name: string, args: string[], options?: { input?: string }): Promise<{ stdout: string; stderr: string }>;
  /** Stops the server (`immediate` skips the shutdown checkpoint, as a crash would). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts it again after stop(). */
  start(): Promise<void>;
  /** Stops it if running and removes its files. */
  destroy(): Promise<void>;
}

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Where the machine's PostgreSQL binaries are: the newest /usr/lib/postgresql/N/bin with pg_dump. */
export function machineBinaries(): string | undefined {
  const base = "/usr/lib/postgresql";
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(path.join(base, v, "bin", "pg_dump")) && existsSync(path.join(base, v, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : path.join(base, versions[0], "bin");
}

/** Runs a binary as the server's user: `postgres` when we are root (PostgreSQL refuses root). */
function asServerUser(file: string, args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const [command, argv] = isRoot ? ["runuser", ["-u", "postgres", "--", file, ...args]] : [file, args];
  const child = run(command, argv, { maxBuffer: 64 * 1024 * 1024, env: { ...process.env, PGCONNECT_TIMEOUT: "10" } });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  return child;
}

/** A folder the server's user owns, under the system's temporary folder (reachable by any user). */
function ownedFolder(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  if (isRoot) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  return dir;
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (line === undefined) throw new Error("running as root needs a 'postgres' user to run PostgreSQL as");
  const fields = line.split(":");
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

export interface ScratchOptions {
  /** Binaries to use (default: the machine's, see machineBinaries()). */
  bin?: string;
  /** Extra `-c name=value` settings, e.g. `["wal_level=replica"]`. */
  settings?: string[];
  /** An existing data directory to run instead of a new cluster (a standby made from a base backup). */
  dataDir?: string;
  /** A folder (owned by the server's user) to make the new cluster in, instead of a temporary one; left in place by destroy(). */
  root?: string;
  /** Where the new cluster keeps its WAL (`initdb --waldir`), outside the data directory. */
  walDir?: string;
}

/** Initialises (unless `dataDir` is given) and starts a scratch server on a free port. */
export async function startScratchServer(options: ScratchOptions = {}): Promise<ScratchServer> {
  const bin = options.bin ?? machineBinaries();
  if (bin === undefined) throw new Error("no PostgreSQL binaries under /usr/lib/postgresql/*/bin for a scratch server");
  const root = options.dataDir !== undefined ? path.dirname(options.dataDir) : (options.root ?? ownedFolder("tlo-scratch-"));
  const dataDir = options.dataDir ?? path.join(root, "data");
  const socketDir = path.join(root, `${path.basename(dataDir)}-socket`);
  if (!existsSync(socketDir)) {
    mkdirSync(socketDir, { mode: 0o700 });
    if (isRoot) {
      const { uid, gid } = statSync(root);
      chownSync(socketDir, uid, gid);
    }
  }
  if (options.dataDir === undefined) {
    const walDir = options.walDir === undefined ? [] : ["--waldir", options.walDir];
    await asServerUser(path.join(bin, "initdb"), ["-D", dataDir, ...walDir, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"]);
  }
  const port = await freePort();
  const settings = ["fsync=off", "listen_addresses=127.0.0.1", ...(options.settings ?? [])];
  const serverArgs = ["-p", String(port), "-k", socketDir, ...settings.flatMap((s) => ["-c", s])].join(" ");
  const logFile = path.join(root, `${path.basename(dataDir)}.log`);
  let running = false;
  const server: ScratchServer = {
    bin,
    dataDir,
    port,
    url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`,
    tool: (name, args, toolOptions) => asServerUser(path.join(bin, name), args, toolOptions?.input),
    async start() {
      await asServerUser(path.join(bin, "pg_ctl"), ["-D", dataDir, "-l", logFile, "-w", "-t", "60", "-o", serverArgs, "start"]);
      running = true;
    },
    async stop(mode = "fast") {
      if (!running) return;
      running = false;
      await asServerUser(path.join(bin, "pg_ctl"), ["-D", dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
    },
    async destroy() {
      try {
        await server.stop("immediate");
      } finally {
        if (options.root === undefined) rmSync(root, { recursive: true, force: true });
        if (options.walDir !== undefined) rmSync(options.walDir, { recursive: true, force: true });
      }
    },
  };
  try {
    await server.start();
  } catch (err) {
    if (options.root === undefined) rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return server;
}

/**
 * Makes a hot standby of `primary` (`pg_basebackup -R -X stream`: it streams from the primary and
 * answers read-only queries) and starts it on a free port. The primary needs wal_level replica or
 * above (the default) and a free WAL sender; the pg_hba.conf of initdb lets local replication in.
 */
export async function startStandby(primary: ScratchServer, settings: string[] = []): Promise<ScratchServer> {
  const folder = ownedFolder("tlo-standby-");
  const dataDir = path.join(folder, "data");
  try {
    await primary.tool("pg_basebackup", ["-d", primary.url(), "-D", dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync"]);
    return await startScratchServer({ bin: primary.bin, dataDir, settings: ["hot_standby=on", ...settings] });
  } catch (err) {
    rmSync(folder, { recursive: true, force: true });
    throw err;
  }
}

/** Promotes a standby to a primary and waits until it accepts writes. */
export async function promote(standby: ScratchServer): Promise<void> {
  await standby.tool("pg_ctl", ["-D", standby.dataDir, "-w", "-t", "60", "promote"]);
}

/** Whether this process may mount file systems (a tmpfs of limited size, for a full disk). */
export const canMount = isRoot;

/**
 * Mounts a tmpfs of `sizeMiB` on a new folder owned by the server's user and returns the folder
 * and its unmount (which also removes the folder).
 */
export async function mountTmpfs(sizeMiB: number): Promise<{ dir: string; unmount: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "tlo-tmpfs-"));
  await run("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0700`, "tmpfs", dir]);
  const { uid, gid } = postgresIds();
  chownSync(dir, uid, gid);
  return {
    dir,
    async unmount() {
      await run("umount", [dir]).catch(() => run("umount", ["-l", dir]));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A folder for files the server's user writes (dumps, base backups), removed by the caller. */
export function scratchFolder(prefix = "tlo-files-"): string {
  return ownedFolder(prefix);
}
