/**
 * Uploads and downloads 1 GiB through the sample app running in a child process, and prints that
 * process's resident memory: at rest, at its highest during the upload and the download, and the
 * kernel's high-water mark. Run with `npx tsx sample-app/scripts/memory.ts` (uses DATABASE_URL when
 * set, else the embedded PostgreSQL under sample-app/.data). Not a test: it prints figures.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import path from "node:path";
import { once } from "node:events";

const MiB = 1024 * 1024;
const TOTAL = Number(process.env.MEMORY_BYTES ?? 1024 * MiB);
const root = path.join(__dirname, "..", "..");

function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/** Samples the RSS every 50 ms while `work` runs, and returns its highest value. */
async function peakDuring<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peak: number }> {
  let peak = memoryOf(pid).rss;
  const timer = setInterval(() => (peak = Math.max(peak, memoryOf(pid).rss)), 50);
  try {
    const result = await work();
    return { result, peak: Math.max(peak, memoryOf(pid).rss) };
  } finally {
    clearInterval(timer);
  }
}

function upload(base: string): Promise<{ id: number; sha256: string; expected: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const hash = createHash("sha256");
    const req = request(`${base}/api/documents?name=memory.bin`, {
      method: "POST",
      headers: { "Content-Length": TOTAL, "Content-Type": "application/octet-stream" },
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (res.statusCode !== 201) return reject(new Error(`upload: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString()}`));
        const doc = JSON.parse(Buffer.concat(chunks).toString()) as { id: number; sha256: string };
        resolve({ ...doc, expected: hash.digest("hex"), seconds: (Date.now() - started) / 1000 });
      });
    });
    const piece = Buffer.alloc(MiB);
    for (let i = 0; i < piece.length; i += 1) piece[i] = (i * 7919) & 0xff;
    void (async () => {
      for (let sent = 0, n = 0; sent < TOTAL; n += 1) {
        const chunk = Buffer.from(piece.subarray(0, Math.min(MiB, TOTAL - sent)));
        chunk.writeUInt32LE(n, 0); // every MiB differs, so a misplaced piece changes the digest
        hash.update(chunk);
        sent += chunk.length;
        if (!req.write(chunk)) await once(req, "drain");
      }
      req.end();
    })().catch(reject);
  });
}

function download(url: string): Promise<{ bytes: number; sha256: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    request(url, (res) => {
      const hash = createHash("sha256");
      let bytes = 0;
      res.on("data", (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      res.on("end", () => resolve({ bytes, sha256: hash.digest("hex"), seconds: (Date.now() - started) / 1000 }));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

async function main(): Promise<void> {
  const server = spawn(process.execPath, ["--import", "tsx", path.join(root, "sample-app", "src", "main.ts")], {
    cwd: root,
    env: { ...process.env, PORT: "0", MAX_UPLOAD_BYTES: String(2 * TOTAL) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    const base = await new Promise<string>((resolve, reject) => {
      let out = "";
      server.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        const match = /Sample app: (\S+)/.exec(out);
        if (match) resolve(match[1]!);
      });
      server.once("exit", (code) => reject(new Error(`the server exited (${code}) before listening`)));
    });
    const pid = server.pid!;
    // Warm up the code paths (JIT, pools) before taking the resting figure.
    await download(`${base}/api/documents`);
    const rest = memoryOf(pid).rss;
    const up = await peakDuring(pid, () => upload(base));
    if (up.result.sha256 !== up.result.expected) throw new Error("the stored digest differs from the uploaded bytes");
    const down = await peakDuring(pid, () => download(`${base}/api/documents/${up.result.id}/content`));
    if (down.result.bytes !== TOTAL || down.result.sha256 !== up.result.expected) throw new Error("the download differs from the upload");
    const { hwm } = memoryOf(pid);
    await new Promise<void>((resolve, reject) =>
      request(`${base}/api/documents/${up.result.id}`, { method: "DELETE" }, (res) => (res.resume(), res.on("end", resolve)))
        .on("error", reject)
        .end(),
    );
    console.log(`server RSS at rest:            ${mib(rest)}`);
    console.log(`peak RSS uploading ${mib(TOTAL)}:  ${mib(up.peak)}  (${(TOTAL / MiB / up.result.seconds).toFixed(0)} MiB/s)`);
    console.log(`peak RSS downloading ${mib(TOTAL)}: ${mib(down.peak)}  (${(TOTAL / MiB / down.result.seconds).toFixed(0)} MiB/s)`);
    console.log(`server's RSS high-water mark:  ${mib(hwm)}`);
    console.log("digest and size verified both ways");
  } finally {
    server.kill("SIGTERM");
    await once(server, "exit");
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
