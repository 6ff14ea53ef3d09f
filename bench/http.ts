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
  /**
   * CPU seconds of each timed round, of the process doing the library's work (the server's for
   * requests, the client's for the direct streams), and direct / helper round by round.
   */
  helperCpu: number[];
  directCpu: number[];
  cpuRatios: number[];
  verified: boolean;
}

export interface HttpFigures {
  size: number;
  upload: PairFigures;
  /** receiveLargeObject against a plain node:http handler piping the request into the write stream: the same HTTP, no helper. */
  uploadPiped: PairFigures;
  /** The piped request against the write stream without HTTP: what HTTP itself costs. */
  pipedUploadVsDirect: PairFigures;
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
  /** Set when only the upload rows ran (`--only http-upload`): the download rows and `many` are empty. */
  uploadsOnly: boolean;
}

export interface TusFigures {
  size: number;
  chunkSize: number;
  pair: PairFigures;
  /** tus against the same chunks as plain PATCH requests, each piped into a write stream appending to the object. */
  chunked: PairFigures;
  /** The plain chunked requests against the write stream without HTTP. */
  chunkedVsPlain: PairFigures;
  /** @tus/server on a store that keeps only a digest, against the plain write stream: what any store on @tus/server can reach. */
  digestOnlyVsPlain: PairFigures;
  /** tus on this library's store against @tus/server on the digest-only store: the store's own share. */
  tusVsDigestOnly: PairFigures;
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
): Promise<{ seconds: Record<N, number[]>; cpu: Record<N, number[]>; verified: boolean }> {
  const seconds = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<N, number[]>;
  const cpu = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<N, number[]>;
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
      } else {
        seconds[which].push(r.seconds!);
        cpu[which].push(r.cpu ?? NaN);
      }
    }
  }
  return { seconds, cpu, verified };
}

/** The figures of `helper` against `direct` out of the same rounds of {@link rotatingRounds}. */
function pairOf<N extends string>(
  size: number,
  rounds: { seconds: Record<N, number[]>; cpu: Record<N, number[]>; verified: boolean },
  helper: N,
  direct: N,
): PairFigures {
  const mbps = (s: number): number => size / 1e6 / s;
  const [hs, ds, hc, dc] = [rounds.seconds[helper], rounds.seconds[direct], rounds.cpu[helper], rounds.cpu[direct]];
  return {
    helper: hs.map(mbps),
    direct: ds.map(mbps),
    ratios: hs.map((s, i) => ds[i]! / s),
    helperCpu: hc,
    directCpu: dc,
    cpuRatios: hc.map((c, i) => dc[i]! / c),
    verified: rounds.verified,
  };
}

function pairLine(name: string, p: PairFigures): string {
  const cpu = p.cpuRatios.some((r) => !Number.isNaN(r))
    ? `; CPU helper ${median(p.helperCpu).toFixed(2)} s, direct ${median(p.directCpu).toFixed(2)} s, ratio ${median(p.cpuRatios).toFixed(2)}x (rounds ${p.cpuRatios.map((r) => r.toFixed(2)).join(", ")})`
    : "";
  return `${name}: helper ${median(p.helper).toFixed(0)} MB/s, direct ${median(p.direct).toFixed(0)} MB/s, ratio ${median(p.ratios).toFixed(2)}x (rounds ${p.ratios.map((r) => r.toFixed(2)).join(", ")})${cpu}${p.verified ? "" : ", BYTES DIFFER"}`;
}

/** How the HTTP and tus phases run, from the command line. */
export interface HttpOptions {
  quick: boolean;
  profile: boolean;
  /** Timed rounds (default 4 for HTTP and 3 for tus, 2 each with --quick). */
  rounds?: number;
  /** Only the 64 MiB upload rows of the HTTP phase. */
  uploadsOnly?: boolean;
}

/** The HTTP rows: 64 MiB up and down against the direct streams, then 1 MiB files by 1 and 8 clients. */
export async function benchHttp(url: string, settle: () => Promise<void>, options: HttpOptions): Promise<HttpFigures> {
  const { quick, profile } = options;
  const size = quick ? 16 * MIB : 64 * MIB;
  const manySize = MIB;
  const rounds = options.rounds ?? (quick ? 2 : 4);
  const uploadsOnly = options.uploadsOnly === true;
  const server = await startServer("server", url, profile);
  const client = new Client(url, { http: server.port });
  try {
    await client.ready;
    const rss = async (): Promise<number> => (await client.run({ op: "rss", port: server.port })).rss!;
    // Small files first, so that the peak RSS after each step is that step's.
    const many: HttpFigures["many"] = [];
    for (const clients of uploadsOnly ? [] : [1, 8]) {
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
    const writeOps = { helper: "http-upload", piped: "piped-upload", direct: "direct-write" } as const;
    const writes = await rotatingRounds(rounds, ["helper", "piped", "direct"] as const, expected, (which, verify) => client.run({ op: writeOps[which], size, verify }), clearAfter);
    const upload = pairOf(size, writes, "helper", "direct");
    const uploadPiped = pairOf(size, writes, "helper", "piped");
    const pipedUploadVsDirect = pairOf(size, writes, "piped", "direct");
    console.log(`  ${formatSize(size)} ${pairLine("upload", upload)}`);
    console.log(`  ${formatSize(size)} ${pairLine("upload vs a node:http request piped to the write stream", uploadPiped)}`);
    console.log(`  ${formatSize(size)} ${pairLine("piped node:http request vs direct", pipedUploadVsDirect)}`);
    const none: PairFigures = { helper: [], direct: [], ratios: [], helperCpu: [], directCpu: [], cpuRatios: [], verified: true };
    let [download, downloadPiped, pipedVsDirect] = [none, none, none];
    if (!uploadsOnly) {
      const fixture = (await client.run({ op: "fixture", size })).id!;
      const ops = { helper: "http-download", piped: "piped-download", direct: "direct-read" } as const;
      const reads = await rotatingRounds(rounds, ["helper", "piped", "direct"] as const, expected, (which, verify) => client.run({ op: ops[which], id: fixture, verify }), settle);
      download = pairOf(size, reads, "helper", "direct");
      downloadPiped = pairOf(size, reads, "helper", "piped");
      pipedVsDirect = pairOf(size, reads, "piped", "direct");
      console.log(`  ${formatSize(size)} ${pairLine("download", download)}`);
      console.log(`  ${formatSize(size)} ${pairLine("download vs a piped node:http response", downloadPiped)}`);
      console.log(`  ${formatSize(size)} ${pairLine("piped node:http response vs direct", pipedVsDirect)}`);
    }
    const serverRss = await rss();
    console.log(`  server peak RSS over the phase ${(serverRss / MIB).toFixed(0)} MiB`);
    await client.run({ op: "clear" });
    return { size, upload, uploadPiped, pipedUploadVsDirect, download, downloadPiped, pipedVsDirect, many, manySize, serverRss, uploadsOnly };
  } finally {
    await client.close();
    await server.stop();
  }
}

/** The tus row: 256 MiB through tus-js-client in 8 MiB chunks against a plain write stream. */
export async function benchTus(url: string, settle: () => Promise<void>, options: HttpOptions): Promise<TusFigures> {
  const { quick, profile } = options;
  const size = quick ? 64 * MIB : 256 * MIB;
  const chunkSize = 8 * MIB;
  const rounds = options.rounds ?? (quick ? 2 : 3);
  const server = await startServer("tus-server", url, profile);
  const client = new Client(url, { tus: server.port });
  const serverRss: number[] = [];
  try {
    await client.ready;
    const expected = await contentHash(size);
    const ops = { tus: "tus-upload", digestOnly: "tus-digest-upload", chunked: "chunked-upload", plain: "plain-write" } as const;
    const runs = await rotatingRounds(
      rounds,
      ["tus", "digestOnly", "chunked", "plain"] as const,
      expected,
      async (which, verify) => {
        const r = await client.run({ op: ops[which], size, chunkSize, verify });
        if (which === "tus") serverRss.push((await client.run({ op: "rss", port: server.port })).rss!);
        return r;
      },
      async () => {
        await client.run({ op: "clear" });
        await settle();
      },
    );
    const pair = pairOf(size, runs, "tus", "plain");
    const chunked = pairOf(size, runs, "tus", "chunked");
    const chunkedVsPlain = pairOf(size, runs, "chunked", "plain");
    const digestOnlyVsPlain = pairOf(size, runs, "digestOnly", "plain");
    const tusVsDigestOnly = pairOf(size, runs, "tus", "digestOnly");
    console.log(`  ${formatSize(size)} in ${formatSize(chunkSize)} chunks ${pairLine("tus", pair)}`);
    console.log(`  ${formatSize(size)} in ${formatSize(chunkSize)} chunks ${pairLine("tus vs plain PATCH requests piped to write streams", chunked)}`);
    console.log(`  ${formatSize(size)} in ${formatSize(chunkSize)} chunks ${pairLine("plain PATCH requests vs direct", chunkedVsPlain)}`);
    console.log(`  ${formatSize(size)} in ${formatSize(chunkSize)} chunks ${pairLine("@tus/server on a digest-only store vs direct", digestOnlyVsPlain)}`);
    console.log(`  ${formatSize(size)} in ${formatSize(chunkSize)} chunks ${pairLine("tus vs @tus/server on a digest-only store", tusVsDigestOnly)}`);
    console.log(`  tus server peak RSS after each round: ${serverRss.map((r) => (r / MIB).toFixed(0)).join(", ")} MiB`);
    await client.run({ op: "clear" });
    return { size, chunkSize, pair, chunked, chunkedVsPlain, digestOnlyVsPlain, tusVsDigestOnly, serverRss };
  } finally {
    await client.close();
    await server.stop();
  }
}

/** The report's section of these rows. */
export function renderHttpMarkdown(http: HttpFigures | string | undefined, tus: TusFigures | string | undefined): string {
  const lines: string[] = [];
  const range = (r: number[]): string => `${median(r).toFixed(2)}x (${Math.min(...r).toFixed(2)}-${Math.max(...r).toFixed(2)})`;
  const ratio = (p: PairFigures): string => `${range(p.ratios)}${p.verified ? "" : ", bytes differ"}`;
  // Downloads are timed by the client alone: no CPU figure is taken for them.
  const cpu = (p: PairFigures): string =>
    p.cpuRatios.some((r) => !Number.isNaN(r)) ? `${median(p.helperCpu).toFixed(2)} / ${median(p.directCpu).toFixed(2)} | ${range(p.cpuRatios)}` : "- | -";
  const row = (name: string, p: PairFigures): string =>
    `| ${name} | ${median(p.helper).toFixed(0)} | ${median(p.direct).toFixed(0)} | ${ratio(p)} | ${cpu(p)} |`;
  const header = [
    "| row | helper MB/s | direct MB/s | helper / direct | CPU s, helper / direct | CPU direct / helper |",
    "|---|---|---|---|---|---|",
  ];
  if (http !== undefined) {
    lines.push("## HTTP helpers against the direct streams", "");
    if (typeof http === "string") lines.push(`failed: ${http}`, "");
    else {
      const size = formatSize(http.size);
      lines.push(
        `Server on node:http in a process of its own; client and direct streams in another; ${http.upload.ratios.length} rounds, ratios round by round (median, range). CPU is that of the process doing the library's work: the server's for requests, the client's for the direct streams.`,
        "",
        ...header,
        row(`upload ${size}: receiveLargeObject vs repository write stream`, http.upload),
        row(`upload ${size}: receiveLargeObject vs the request piped to a repository write stream`, http.uploadPiped),
        row(`upload ${size}: the piped request vs the write stream without HTTP`, http.pipedUploadVsDirect),
      );
      if (!http.uploadsOnly) {
        lines.push(
          row(`download ${size}: sendLargeObject vs repository read stream`, http.download),
          row(`download ${size}: sendLargeObject vs the read stream piped to a node:http response`, http.downloadPiped),
          row(`download ${size}: the piped node:http response vs the read stream without HTTP`, http.pipedVsDirect),
          "",
          `| ${formatSize(http.manySize)} files | uploads/s | downloads/s | server peak RSS |`,
          "|---|---|---|---|",
          ...http.many.map((m) => `| ${m.clients} client${m.clients > 1 ? "s" : ""} at once | ${m.uploadPerSecond.toFixed(0)} | ${m.downloadPerSecond.toFixed(0)} | ${(m.serverRss / MIB).toFixed(0)} MiB |`),
        );
      }
      lines.push("", `Server peak RSS over the whole phase (${size} rows included): ${(http.serverRss / MIB).toFixed(0)} MiB.`, "");
    }
  }
  if (tus !== undefined) {
    lines.push("## tus upload against a plain write stream", "");
    if (typeof tus === "string") lines.push(`failed: ${tus}`, "");
    else {
      const what = `${formatSize(tus.size)} in ${formatSize(tus.chunkSize)} chunks`;
      lines.push(
        `${tus.pair.ratios.length} rounds; tus is tus-js-client, @tus/server and LargeObjectTusStore; the plain PATCH requests carry the same chunks, each piped into a repository write stream appending to the object; the digest-only store is @tus/server with a store that hashes the bytes and keeps nothing else, in memory.`,
        "",
        ...header,
        row(`${what}: tus vs a plain write stream`, tus.pair),
        row(`${what}: tus vs plain PATCH requests`, tus.chunked),
        row(`${what}: plain PATCH requests vs a plain write stream`, tus.chunkedVsPlain),
        row(`${what}: @tus/server on a store that keeps only a digest vs a plain write stream (what any store can reach)`, tus.digestOnlyVsPlain),
        row(`${what}: tus vs @tus/server on a store that keeps only a digest (the store's own share)`, tus.tusVsDigestOnly),
        "",
        `tus server peak RSS after each round: ${tus.serverRss.map((r) => (r / MIB).toFixed(0)).join(", ")} MiB.`,
        "",
      );
    }
  }
  return lines.join("\n");
}
