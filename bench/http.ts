/**
 * The HTTP and tus rows: each server in a process of its own (its peak RSS is its own, and it does
 * not share an event loop with the client), the client and the direct library path in another,
 * ratios taken round by round.
 */
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { BUILD, CHILD_TIMEOUT_MS, RESULTS, ROOT } from "./children";
import { contentHash, formatSize } from "./data";
import type { ClientJob, JobResult } from "./http-worker";
import { median } from "./stats";

const MIB = 2 ** 20;
const WORKER = (): string => path.join(BUILD, "bench", "http-worker.js");

/** One figure of a pair measured in the same rounds: the library's helper against the direct path. */
export interface PairFigures {
  /** MB/s of each timed round. */
  helper: number[];
  direct: number[];
  /** helper / direct, round by round. */
  ratios: number[];
  verified: boolean;
}

export interface HttpFigures {
  size: number;
  upload: PairFigures;
  /** sendLargeObject against the read stream consumed in the client's process, without HTTP. */
  download: PairFigures;
  /** sendLargeObject against the read stream piped to a plain node:http response: the same HTTP, no helper. */
  downloadPiped: PairFigures;
  /** The piped response against the read stream without HTTP: what HTTP itself costs. */
  pipedVsDirect: PairFigures;
  /** 1 MiB files: requests/s by clients at once, and the server's peak RSS after each. */
  many: { clients: number; uploadPerSecond: number; downloadPerSecond: number; serverRss: number }[];
  manySize: number;
  /** The server's peak RSS over the whole phase. */
  serverRss: number;
}

export interface TusFigures {
  size: number;
  chunkSize: number;
  pair: PairFigures;
  /** The tus server's peak RSS after each round. */
  serverRss: number[];
}

/** A server child: `ready <port>` on its output. */
async function startServer(role: "server" | "tus-server", url: string, profile: boolean): Promise<{ port: number; stop(): Promise<void> }> {
  const nodeArgs = profile ? ["--cpu-prof", `--cpu-prof-dir=${path.join(RESULTS, "profiles")}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, WORKER(), role, url], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)\n/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => reject(new Error(`the ${role} exited: ${err.trim().split("\n").slice(-3).join(" ")}`)));
  });
  return {
    port,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
      if (err.trim() !== "") console.log(`  (${role} said: ${err.trim().split("\n").slice(-2).join(" ")})`);
    },
  };
}

/** The client child, one job at a time. */
class Client {
  private readonly child: ChildProcess;
  private pending: ((v: JobResult | { error: string }) => void) | undefined;
  readonly ready: Promise<void>;
  private readonly exited: Promise<void>;

  constructor(url: string, ports: { http?: number; tus?: number }) {
    this.child = spawn(process.execPath, [WORKER(), "client", url, JSON.stringify(ports)], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.exited = new Promise((resolve) => this.child.on("close", () => resolve()));
    this.ready = new Promise((resolve, reject) => {
      this.child.on("message", (m: { ready?: true; result?: JobResult; error?: string }) => {
        if (m.ready) resolve();
        else this.pending?.(m.error !== undefined ? { error: m.error } : m.result!);
      });
      void this.exited.then(() => {
        reject(new Error("the client exited"));
        this.pending?.({ error: "the client exited" });
      });
    });
  }

  async run(job: ClientJob): Promise<JobResult> {
    const answer = await new Promise<JobResult | { error: string }>((resolve) => {
      const timer = setTimeout(() => this.child.kill("SIGKILL"), CHILD_TIMEOUT_MS);
      this.pending = (v) => {
        clearTimeout(timer);
        this.pending = undefined;
        resolve(v);
      };
      this.child.send({ job });
    });
    if ("error" in answer) throw new Error(`${job.op}: ${answer.error}`);
    return answer;
  }

  async close(): Promise<void> {
    if (this.child.connected) this.child.send({ close: true });
    await this.exited;
  }
}

/**
 * Runs each of `names` once per round, rotating which goes first, after one untimed round that
 * checks the bytes of each; `between` comes before each run. Answers the seconds of each timed run.
 */
async function rotatingRounds<N extends string>(
  rounds: number,
  names: readonly N[],
  expected: string,
  run: (which: N, verify: boolean) => Promise<JobResult>,
  between: () => Promise<void>,
): Promise<{ seconds: Record<N, number[]>; verified: boolean }> {
  const seconds = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<N, number[]>;
  let verified = true;
  for (let round = 0; round <= rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]!);
    for (const which of order) {
      await between();
      const r = await run(which, round === 0);
      if (round === 0) {
        if (r.hash !== expected) {
          verified = false;
          console.log(`  ${which}: bytes differ (${r.hash ?? "no hash"})`);
        }
      } else seconds[which].push(r.seconds!);
    }
  }
  return { seconds, verified };
}

/** The figures of `helper` against `direct` out of the same rounds. */
function pairOf(size: number, helper: number[], direct: number[], verified: boolean): PairFigures {
  const mbps = (s: number): number => size / 1e6 / s;
  return { helper: helper.map(mbps), direct: direct.map(mbps), ratios: helper.map((s, i) => direct[i]! / s), verified };
}

/** Runs `helper` and `direct` once per round in alternating order (see {@link rotatingRounds}). */
async function pairRounds(
  rounds: number,
  size: number,
  expected: string,
  run: (which: "helper" | "direct", verify: boolean) => Promise<JobResult>,
  between: () => Promise<void>,
): Promise<PairFigures> {
  const { seconds, verified } = await rotatingRounds(rounds, ["helper", "direct"] as const, expected, run, between);
  return pairOf(size, seconds.helper, seconds.direct, verified);
}

function pairLine(name: string, p: PairFigures): string {
  return `${name}: helper ${median(p.helper).toFixed(0)} MB/s, direct ${median(p.direct).toFixed(0)} MB/s, ratio ${median(p.ratios).toFixed(2)}x (rounds ${p.ratios.map((r) => r.toFixed(2)).join(", ")})${p.verified ? "" : ", BYTES DIFFER"}`;
}

/** The HTTP rows: 64 MiB up and down against the direct streams, then 1 MiB files by 1 and 8 clients. */
export async function benchHttp(url: string, settle: () => Promise<void>, quick: boolean, profile = false): Promise<HttpFigures> {
  const size = quick ? 16 * MIB : 64 * MIB;
  const manySize = MIB;
  const rounds = quick ? 2 : 4;
  const server = await startServer("server", url, profile);
  const client = new Client(url, { http: server.port });
  try {
    await client.ready;
    const rss = async (): Promise<number> => (await client.run({ op: "rss", port: server.port })).rss!;
    // Small files first, so that the peak RSS after each step is that step's.
    const many: HttpFigures["many"] = [];
    for (const clients of [1, 8]) {
      const small = (await client.run({ op: "fixture", size: manySize })).id!;
      const perClient = Math.max(4, Math.round((quick ? 32 : 96) / clients));
      await settle();
      const up = await client.run({ op: "http-many", kind: "upload", clients, perClient, size: manySize });
      await settle();
      const down = await client.run({ op: "http-many", kind: "download", clients, perClient, size: manySize, id: small });
      const total = clients * perClient;
      many.push({ clients, uploadPerSecond: total / up.seconds!, downloadPerSecond: total / down.seconds!, serverRss: await rss() });
      const last = many[many.length - 1]!;
      console.log(
        `  ${formatSize(manySize)} files, ${clients} client${clients > 1 ? "s" : ""}: upload ${last.uploadPerSecond.toFixed(0)}/s, download ${last.downloadPerSecond.toFixed(0)}/s, server peak RSS ${(last.serverRss / MIB).toFixed(0)} MiB`,
      );
      await client.run({ op: "clear" });
    }
    const expected = await contentHash(size);
    const clearAfter = async (): Promise<void> => {
      await client.run({ op: "clear" });
      await settle();
    };
    const upload = await pairRounds(rounds, size, expected, (which, verify) => client.run({ op: which === "helper" ? "http-upload" : "direct-write", size, verify }), clearAfter);
    console.log(`  ${formatSize(size)} ${pairLine("upload", upload)}`);
    const fixture = (await client.run({ op: "fixture", size })).id!;
    const ops = { helper: "http-download", piped: "piped-download", direct: "direct-read" } as const;
    const reads = await rotatingRounds(rounds, ["helper", "piped", "direct"] as const, expected, (which, verify) => client.run({ op: ops[which], id: fixture, verify }), settle);
    const download = pairOf(size, reads.seconds.helper, reads.seconds.direct, reads.verified);
    const downloadPiped = pairOf(size, reads.seconds.helper, reads.seconds.piped, reads.verified);
    const pipedVsDirect = pairOf(size, reads.seconds.piped, reads.seconds.direct, reads.verified);
    console.log(`  ${formatSize(size)} ${pairLine("download", download)}`);
    console.log(`  ${formatSize(size)} ${pairLine("download vs a piped node:http response", downloadPiped)}`);
    console.log(`  ${formatSize(size)} ${pairLine("piped node:http response vs direct", pipedVsDirect)}`);
    const serverRss = await rss();
    console.log(`  server peak RSS over the phase ${(serverRss / MIB).toFixed(0)} MiB`);
    await client.run({ op: "clear" });
    return { size, upload, download, downloadPiped, pipedVsDirect, many, manySize, serverRss };
  } finally {
    await client.close();
    await server.stop();
  }
}

/** The tus row: 256 MiB through tus-js-client in 8 MiB chunks against a plain write stream. */
export async function benchTus(url: string, settle: () => Promise<void>, quick: boolean, profile = false): Promise<TusFigures> {
  const size = quick ? 64 * MIB : 256 * MIB;
  const chunkSize = 8 * MIB;
  const rounds = quick ? 2 : 3;
  const server = await startServer("tus-server", url, profile);
  const client = new Client(url, { tus: server.port });
  const serverRss: number[] = [];
  try {
    await client.ready;
    const expected = await contentHash(size);
    const pair = await pairRounds(
      rounds,
      size,
      expected,
      async (which, verify) => {
        const r = await client.run({ op: which === "helper" ? "tus-upload" : "plain-write", size, chunkSize, verify });
        if (which === "helper") serverRss.push((await client.run({ op: "rss", port: server.port })).rss!);
        return r;
      },
      async () => {
        await client.run({ op: "clear" });
        await settle();
      },
    );
    console.log(`  ${formatSize(size)} in ${formatSize(chunkSize)} chunks ${pairLine("tus", pair)}`);
    console.log(`  tus server peak RSS after each round: ${serverRss.map((r) => (r / MIB).toFixed(0)).join(", ")} MiB`);
    await client.run({ op: "clear" });
    return { size, chunkSize, pair, serverRss };
  } finally {
    await client.close();
    await server.stop();
  }
}

/** The report's section of these rows. */
export function renderHttpMarkdown(http: HttpFigures | string | undefined, tus: TusFigures | string | undefined): string {
  const lines: string[] = [];
  const ratio = (p: PairFigures): string => `${median(p.ratios).toFixed(2)}x (${Math.min(...p.ratios).toFixed(2)}-${Math.max(...p.ratios).toFixed(2)})${p.verified ? "" : ", bytes differ"}`;
  if (http !== undefined) {
    lines.push("## HTTP helpers against the direct streams", "");
    if (typeof http === "string") lines.push(`failed: ${http}`, "");
    else {
      lines.push(
        `Server on node:http in a process of its own; client and direct streams in another; ${http.upload.ratios.length} rounds, ratios round by round (median, range).`,
        "",
        "| row | helper MB/s | direct MB/s | helper / direct |",
        "|---|---|---|---|",
        `| upload ${formatSize(http.size)}: receiveLargeObject vs repository write stream | ${median(http.upload.helper).toFixed(0)} | ${median(http.upload.direct).toFixed(0)} | ${ratio(http.upload)} |`,
        `| download ${formatSize(http.size)}: sendLargeObject vs repository read stream | ${median(http.download.helper).toFixed(0)} | ${median(http.download.direct).toFixed(0)} | ${ratio(http.download)} |`,
        `| download ${formatSize(http.size)}: sendLargeObject vs the read stream piped to a node:http response | ${median(http.downloadPiped.helper).toFixed(0)} | ${median(http.downloadPiped.direct).toFixed(0)} | ${ratio(http.downloadPiped)} |`,
        `| download ${formatSize(http.size)}: the piped node:http response vs the read stream without HTTP | ${median(http.pipedVsDirect.helper).toFixed(0)} | ${median(http.pipedVsDirect.direct).toFixed(0)} | ${ratio(http.pipedVsDirect)} |`,
        "",
        `| ${formatSize(http.manySize)} files | uploads/s | downloads/s | server peak RSS |`,
        "|---|---|---|---|",
        ...http.many.map((m) => `| ${m.clients} client${m.clients > 1 ? "s" : ""} at once | ${m.uploadPerSecond.toFixed(0)} | ${m.downloadPerSecond.toFixed(0)} | ${(m.serverRss / MIB).toFixed(0)} MiB |`),
        "",
        `Server peak RSS over the whole phase (${formatSize(http.size)} rows included): ${(http.serverRss / MIB).toFixed(0)} MiB.`,
        "",
      );
    }
  }
  if (tus !== undefined) {
    lines.push("## tus upload against a plain write stream", "");
    if (typeof tus === "string") lines.push(`failed: ${tus}`, "");
    else {
      lines.push(
        "| row | tus MB/s | plain MB/s | tus / plain | tus server peak RSS |",
        "|---|---|---|---|---|",
        `| ${formatSize(tus.size)} in ${formatSize(tus.chunkSize)} chunks (tus-js-client, @tus/server, LargeObjectTusStore) | ${median(tus.pair.helper).toFixed(0)} | ${median(tus.pair.direct).toFixed(0)} | ${ratio(tus.pair)} | ${tus.serverRss.map((r) => (r / MIB).toFixed(0)).join(", ")} MiB |`,
        "",
      );
    }
  }
  return lines.join("\n");
}
