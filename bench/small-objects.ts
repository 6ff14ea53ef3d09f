/**
 * The small and medium objects of the benchmark: the batch method that creates many objects at
 * once, and the report's section that sets every path of the library beside the server's own for
 * objects of 1 MiB and less, and for batches of 1 KiB objects.
 */
import { DataSource } from "typeorm";
import { LargeObject } from "../src";
import { contentBuffer } from "./data";
import { formatSize } from "./data";
import type { Method } from "./methods";
import { median, pairedRatio, type Row } from "./stats";

/** Objects of this size or less are timed many to a run: one alone takes well under a millisecond of the server's. */
export const TINY_OBJECT = 256 * 1024;
export const OBJECTS_PER_TINY_RUN = 32;

/** Methods of many small objects that the main list does not have. */
export const SMALL_OBJECT_METHODS: Method[] = [
  {
    id: "lo-create-together",
    label: "this library: LargeObject.create of 1 KiB objects, one transaction, all at once (Promise.all)",
    kind: "batch",
    async open(ctx) {
      const ds = await new DataSource({ type: "postgres", url: ctx.url, poolSize: 2, logging: false }).initialize();
      const payload = contentBuffer(1024);
      return {
        async run() {
          const oids = await ds.transaction((manager) =>
            Promise.all(Array.from({ length: ctx.count }, () => LargeObject.create(manager.queryRunner!, { data: payload }))),
          );
          return { oids };
        },
        async after(outcome) {
          await ds.query("SELECT lo_unlink(oid) FROM pg_largeobject_metadata WHERE oid = ANY($1::oid[])", [outcome.oids ?? []]);
          return undefined;
        },
        close: () => ds.destroy(),
      };
    },
  },
  {
    id: "round-trip-batch",
    label: "one awaited SELECT 1 per object, one transaction (the round-trip bound)",
    kind: "batch",
    async open(ctx) {
      const ds = await new DataSource({ type: "postgres", url: ctx.url, poolSize: 2, logging: false }).initialize();
      return {
        async run() {
          await ds.transaction(async (manager) => {
            for (let i = 0; i < ctx.count; i++) await manager.query("SELECT 1");
          });
          return {};
        },
        after: async () => undefined,
        close: () => ds.destroy(),
      };
    },
  },
];

/** The paths of the library measured against the server's own, per operation. */
const STREAMS = {
  write: { server: "server-import", floor: "client-floor-write", ours: ["lo-handle-write", "lo-repo-write", "lo-save-write"] },
  read: { server: "server-export", floor: "client-floor-read", ours: ["lo-handle-read", "lo-repo-read"] },
} as const;

/** The bound each batch of the library is held to, and the target ratio. */
const BATCHES = [
  { ours: "lo-save-batch", bound: "typeorm-save-batch", target: 0.85 },
  { ours: "lo-create-batch", bound: "server-create-batch", target: 0.5 },
  { ours: "lo-create-batch", bound: "round-trip-batch", target: undefined },
  { ours: "lo-create-together", bound: "server-create-batch", target: 0.5 },
] as const;

/** The target ratio to the server's own path for objects of `size`, if there is one. */
function targetFor(size: number): number | undefined {
  if (size === 1024 * 1024) return 0.9;
  if (size === 64 * 1024) return 0.8;
  return undefined;
}

const ratioText = (r: ReturnType<typeof pairedRatio>): string =>
  r === undefined ? "n/a" : `${r.median.toFixed(2)}x (${r.min.toFixed(2)}-${r.max.toFixed(2)})`;

/**
 * Two steps done one after the other, round by round: the rate of doing both (1 / (1/a + 1/b)).
 */
function serialBound(a: Row | undefined, b: Row | undefined): Row | undefined {
  if (a?.perRun === undefined || b?.perRun === undefined || a.error !== undefined || b.error !== undefined) return undefined;
  const perRun = a.perRun.map((x, i) => {
    const y = b.perRun![i];
    return x === undefined || y === undefined ? undefined : 1 / (1 / x + 1 / y);
  });
  const known = perRun.filter((x): x is number => x !== undefined);
  if (known.length === 0) return undefined;
  return {
    method: "serial-bound",
    label: "the server creating the objects in one statement, then TypeORM alone inserting the rows, one after the other",
    kind: "batch",
    size: a.size,
    median: median(known),
    runs: known.length,
    perRun,
    maxRss: 0,
    verified: "not checked",
  };
}

/** The section "Small and medium objects" of bench/results/latest.md. */
export function smallObjectsSection(rows: Row[], sizes: number[]): string[] {
  const find = (method: string, size: number): Row | undefined => rows.find((r) => r.method === method && r.size === size);
  const lines = [
    "## Small and medium objects",
    "",
    "Objects of 1 MiB and less, warm process, each object created and committed (writes) or opened and its transaction ended (reads) on its own; " +
      "the server's own path for the same bytes is `lo_import` / `lo_export`, which moves no byte between client and server. " +
      "The client's floor is the least any client can do for the same bytes: one statement, its own transaction, the bytes as one binary parameter or one binary COPY. " +
      "Ratios are medians of the ratios taken round by round; the targets are set against the server's own path.",
    "",
    "| size | op | this library | objects/s | vs the server's own | vs the client's floor | target | met |",
    "|---|---|---|---:|---:|---:|---:|---|",
  ];
  for (const size of sizes.filter((s) => s <= 1024 * 1024)) {
    const target = targetFor(size);
    for (const op of ["write", "read"] as const) {
      const server = find(STREAMS[op].server, size);
      const floor = find(STREAMS[op].floor, size);
      const perSecond = (row: Row): string => ((row.median! * 1e6) / size).toFixed(0);
      if (server?.median !== undefined) {
        lines.push(`| ${formatSize(size)} | ${op} | (the server: ${STREAMS[op].server === "server-import" ? "lo_import" : "lo_export"}) | ${perSecond(server)} | 1.00x | | | |`);
      }
      if (floor?.median !== undefined) {
        lines.push(`| ${formatSize(size)} | ${op} | (${floor.label}) | ${perSecond(floor)} | ${ratioText(pairedRatio(floor, server))} | 1.00x | | |`);
      }
      for (const id of STREAMS[op].ours) {
        const row = find(id, size);
        if (row?.median === undefined) continue;
        const ratio = pairedRatio(row, server);
        const met = target === undefined || ratio === undefined ? "-" : ratio.median >= target ? "yes" : "**no**";
        lines.push(
          `| ${formatSize(size)} | ${op} | ${row.label.replace("this library: ", "")} | ${perSecond(row)} | ${ratioText(ratio)} | ${ratioText(pairedRatio(row, floor))} | ${target === undefined ? "" : `${target}x`} | ${met} |`,
        );
      }
    }
  }
  lines.push("", "| batch of 1 KiB objects | objects/s | bound | vs the bound | target | met |", "|---|---:|---|---:|---:|---|");
  const batchLine = (row: Row, other: Row, target: number | undefined): string => {
    const ratio = pairedRatio(row, other);
    const met = ratio === undefined || target === undefined ? "-" : ratio.median >= target ? "yes" : "**no**";
    const bound = `${other.label.replace(/ \(the (bound|ceiling|round-trip bound)\)$/, "")}: ${other.median!.toFixed(0)}/s`;
    return `| ${row.label.replace("this library: ", "")} | ${row.median!.toFixed(0)} | ${bound} | ${ratioText(ratio)} | ${target === undefined ? "" : `${target}x`} | ${met} |`;
  };
  for (const { ours, bound, target } of BATCHES) {
    const row = find(ours, 1024);
    const other = find(bound, 1024);
    if (row?.median === undefined || other?.median === undefined) continue;
    lines.push(batchLine(row, other, target));
  }
  // save([...]) with objects does the work of both bounds in one transaction, the objects before
  // the rows that hold their oids: the two taken one after the other bound it from above.
  const both = serialBound(find("server-create-batch", 1024), find("typeorm-save-batch", 1024));
  const save = find("lo-save-batch", 1024);
  if (both !== undefined && save?.median !== undefined) lines.push(batchLine(save, both, undefined));
  const ours = rows.filter((r) => r.method.startsWith("lo-") && (r.kind === "read" || r.kind === "write") && r.maxRss > 0 && r.error === undefined);
  if (ours.length > 0) {
    const bySize = sizes.map((size) => {
      const at = ours.filter((r) => r.size === size).map((r) => r.maxRss / 2 ** 20);
      return at.length === 0 ? undefined : `${formatSize(size)}: ${Math.max(...at).toFixed(0)}`;
    });
    const highest = Math.max(...ours.map((r) => r.maxRss / 2 ** 20));
    lines.push(
      "",
      `Peak RSS of this library's streams, highest per size (MiB): ${bySize.filter((x) => x !== undefined).join(", ")}; target <= 100 MiB: ${highest <= 100 ? "met" : "**not met**"}.`,
    );
  }
  lines.push("");
  return lines;
}
