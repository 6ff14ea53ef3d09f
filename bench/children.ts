import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import type { WorkerReport } from "./worker";

export const ROOT = path.resolve(__dirname, "..");
export const RESULTS = path.join(__dirname, "results");
export const CHILD_TIMEOUT_MS = 10 * 60 * 1000;
/**
 * Children run compiled JavaScript on plain node: a TypeScript loader in the child would add about
 * 30 MiB of its own to every peak RSS. Inside node_modules so that the build resolves packages.
 */
export const BUILD = path.join(ROOT, "node_modules", ".cache", "typeorm-large-object-bench");

/** Compiles the worker (and the library) for the children. */
export function compileWorker(): void {
  rmSync(BUILD, { recursive: true, force: true });
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(__dirname, "tsconfig.json"), "--outDir", BUILD], {
    cwd: ROOT,
    stdio: "inherit",
  });
}

/** A child that does its one job and exits (the baseline, the fixture, the sweep), killed after `timeoutMs`. */
export function runChild(args: string[], timeoutMs = CHILD_TIMEOUT_MS): Promise<WorkerReport> {
  const nodeArgs: string[] = [];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeArgs, path.join(BUILD, "bench", "worker.js"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const line = out.split("\n").find((l) => l.startsWith("@@bench "));
      if (line !== undefined) resolve(JSON.parse(line.slice(8)) as WorkerReport);
      else {
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        resolve({ method: args[0]!, size: 0, seconds: [], verified: "not checked", maxRss: 0, error: `${why}: ${err.trim().split("\n").slice(-3).join(" ")}` });
      }
    });
  });
}

/** A method's child process, asked for one run at a time. */
export class MethodChild {
  private readonly child: ChildProcess;
  private out = "";
  private err = "";
  private readonly exited: Promise<void>;
  private pending: { resolve(v: RunResult): void } | undefined;
  readonly ready: Promise<string | undefined>;

  constructor(args: string[], profile: boolean) {
    const nodeArgs: string[] = [];
    if (profile) nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${path.join(RESULTS, "profiles")}`);
    this.child = spawn(process.execPath, [...nodeArgs, path.join(BUILD, "bench", "worker.js"), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    this.child.stdout!.on("data", (d: Buffer) => (this.out += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) => this.child.on("close", () => resolve()));
    this.ready = new Promise((resolve) => {
      this.child.on("message", (message: { ready?: true; result?: { seconds: number; verified: boolean | "not checked" }; error?: string }) => {
        if (message.ready) resolve(undefined);
        else this.pending?.resolve(message.error !== undefined ? { error: message.error } : message.result!);
      });
      void this.exited.then(() => {
        const failure = this.report()?.error ?? `exited: ${this.err.trim().split("\n").slice(-3).join(" ")}`;
        resolve(failure);
        this.pending?.resolve({ error: failure });
      });
    });
  }

  /** One run of `objects` objects; a run that takes longer than the child limit kills the child. */
  run(verify: boolean, objects: number): Promise<RunResult> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
      this.pending = {
        resolve: (v) => {
          clearTimeout(timer);
          this.pending = undefined;
          resolve(v);
        },
      };
      this.child.send({ run: { verify, objects } });
    });
  }

  /** Closes the method and returns the child's own report (its peak RSS). */
  async close(): Promise<WorkerReport | undefined> {
    if (this.child.connected) this.child.send({ close: true });
    await this.exited;
    return this.report();
  }

  private report(): WorkerReport | undefined {
    const line = this.out.split("\n").find((l) => l.startsWith("@@bench "));
    return line === undefined ? undefined : (JSON.parse(line.slice(8)) as WorkerReport);
  }
}

export type RunResult = { seconds: number; verified: boolean | "not checked" } | { error: string };
