import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A node:http server in the test process, on a free port of 127.0.0.1. */
export interface TestServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Starts a server whose handler errors become 599 answers (so a test sees them instead of a hang). */
export async function startServer(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<TestServer> {
  return listen(
    createServer((req, res) => {
      handler(req, res).catch((err: unknown) => {
        if (!res.headersSent) {
          res.statusCode = 599;
          res.end(String(err));
        } else res.destroy();
      });
    }),
  );
}

/** Puts a server (one made around a framework's app, say) on a free port of 127.0.0.1. */
export async function listen(server: Server): Promise<TestServer> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Request headers with Cache-Control: max-age=0 added, as a browser revalidating its cache sends
 * them: fetch (undici) otherwise adds no-cache to a conditional request, an end-to-end reload that
 * is always answered in full.
 */
export function revalidate(headers: Record<string, string>): Record<string, string> {
  return { "Cache-Control": "max-age=0", ...headers };
}

/** sha256 in hex. */
export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Runs curl (asynchronously: the server runs in this process) and returns its exit code and
 * output. Its standard input is closed, so nothing waits on it.
 */
export function curl(args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile("curl", ["-sS", ...args], { encoding: "buffer", maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : -1;
      resolve({ code, stdout, stderr: stderr.toString() });
    });
    child.stdin?.end();
  });
}

/** Parses the headers curl prints with `-D -` (the last response's). */
export function curlHeaders(text: string): { status: number; headers: Map<string, string> } {
  const blocks = text.split(/\r\n\r\n/).filter((b) => b.startsWith("HTTP/"));
  const last = blocks[blocks.length - 1] ?? "";
  const lines = last.split("\r\n");
  const status = Number(lines[0]?.split(" ")[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  return { status, headers };
}

/** Waits until `check` holds (polling), or fails after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 5000, what = "the condition"): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`${what} did not hold within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A folder of files for clients such as curl to send or write, made before a file's tests. */
export interface TempFiles {
  /** Where a file of that name goes in the folder. */
  path(name: string): string;
  /** Writes the bytes to a file of that name and returns its path. */
  write(name: string, bytes: Buffer): Promise<string>;
}

/** Gives a test file a fresh temporary folder (its name starting with `prefix`), removed after the last test. */
export function useTempFiles(prefix: string): TempFiles {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  const path = (name: string): string => {
    if (dir === undefined) throw new Error("the temporary folder is made before the first test");
    return join(dir, name);
  };
  return {
    path,
    async write(name, bytes) {
      await writeFile(path(name), bytes);
      return path(name);
    },
  };
}
