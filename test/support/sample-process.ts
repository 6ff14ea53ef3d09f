import { spawn, type ChildProcess } from "node:child_process";
import { connect, createServer, type Socket } from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { databaseUrl } from "./database";
import { within } from "./streams";

const root = path.resolve(__dirname, "../..");

/** The sample app as `npm run sample` runs it (tsx, resumable uploads mounted), in a process of its own. */
export interface SampleProcess {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts sample-app/src/main.ts on this worker's test database and a free port; `env` adds to the
 * app's variables. The test's own data source should have made the schema first.
 */
export async function startSampleProcess(env: Record<string, string> = {}): Promise<SampleProcess> {
  const loader = ["--require", path.join(root, "node_modules/tsx/dist/preflight.cjs"), "--import", pathToFileURL(path.join(root, "node_modules/tsx/dist/loader.mjs")).href];
  const child: ChildProcess = spawn(process.execPath, [...loader, path.join(root, "sample-app/src/main.ts")], {
    cwd: root,
    env: { ...process.env, ...env, DATABASE_URL: databaseUrl(), PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const line = /^Sample app: (\S+)$/m.exec(output);
      if (line) resolve(line[1]!);
    });
    child.on("exit", () => reject(new Error(`the sample app exited: ${output}`)));
  });
  try {
    return {
      url: await within(30_000, ready, "the sample app's start"),
      async stop() {
        child.kill("SIGTERM");
        await exited;
      },
    };
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}

/**
 * A TCP proxy in front of `target` that passes what clients send at about `bytesPerSecond` per
 * connection (answers go back at full speed), as a slow uplink does.
 */
export async function throttlingProxy(target: string, bytesPerSecond: number): Promise<{ url: string; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    sockets.add(client).add(upstream);
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      client.pause();
      setTimeout(() => client.resume(), (1000 * chunk.length) / bytesPerSecond);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const cut = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", cut);
    upstream.on("close", cut);
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
