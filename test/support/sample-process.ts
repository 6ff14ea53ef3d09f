import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { databaseUrl } from "./database";
import { tcpProxy, type TcpProxy } from "./raw-http";
import { within } from "./streams";

const root = path.resolve(__dirname, "../..");

/** A script of the project run with tsx in a process of its own, once it said it was ready. */
export interface ScriptProcess {
  /** The match of `ready` in what the script printed. */
  ready: RegExpExecArray;
  /** Ends the process (SIGTERM) and waits for its exit. */
  stop(): Promise<void>;
}

/**
 * Runs `script` (relative to the project root) with tsx, as `npm run sample` does, and waits up to
 * `timeoutMs` for its standard output to match `ready`; a process that exits or stays silent
 * fails the start with what it printed, and is killed. `echo` copies its standard error here.
 */
export async function startScript(
  script: string,
  options: { args?: string[]; env?: NodeJS.ProcessEnv; ready: RegExp; what: string; timeoutMs: number; echo?: boolean },
): Promise<ScriptProcess> {
  const loader = ["--require", path.join(root, "node_modules/tsx/dist/preflight.cjs"), "--import", pathToFileURL(path.join(root, "node_modules/tsx/dist/loader.mjs")).href];
  const child: ChildProcess = spawn(process.execPath, [...loader, path.join(root, script), ...(options.args ?? [])], {
    cwd: root,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (options.echo) process.stderr.write(chunk);
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const ready = new Promise<RegExpExecArray>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      out += chunk.toString();
      const line = options.ready.exec(out);
      if (line) resolve(line);
    });
    child.on("exit", () => reject(new Error(`${options.what} exited: ${output}`)));
  });
  try {
    return {
      ready: await within(options.timeoutMs, ready, `${options.what}'s start`),
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
  const app = await startScript("sample-app/src/main.ts", {
    env: { ...process.env, ...env, DATABASE_URL: databaseUrl(), PORT: "0" },
    ready: /^Sample app: (\S+)$/m,
    what: "the sample app",
    timeoutMs: 30_000,
  });
  return { url: app.ready[1]!, stop: () => app.stop() };
}

/**
 * A TCP proxy in front of `target` that passes what clients send at about `bytesPerSecond` per
 * connection (answers go back at full speed), as a slow uplink does.
 */
export function throttlingProxy(target: string, bytesPerSecond: number): Promise<TcpProxy> {
  return tcpProxy(target, (chunk, client, upstream) => {
    upstream.write(chunk);
    client.pause();
    setTimeout(() => client.resume(), (1000 * chunk.length) / bytesPerSecond);
  });
}
