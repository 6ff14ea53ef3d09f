import { parseArguments } from "../../src/cli/arguments";
import { EXIT } from "../../src/cli/main";
import { formatBytes } from "../../src/cli/output";
import { DEFAULT_GRACE_MS } from "../../src";

test("sweep is a dry run unless --execute or --yes", () => {
  expect(parseArguments(["sweep", "-d", "ds.js"])).toMatchObject({ command: "sweep", dataSource: "ds.js", execute: false });
  expect(parseArguments(["sweep", "--dataSource=ds.ts", "--execute"]).execute).toBe(true);
  expect(parseArguments(["sweep", "--dataSource", "ds.ts", "--yes"]).execute).toBe(true);
  expect(parseArguments(["sweep", "-d", "ds.ts", "--dry-run"]).execute).toBe(false);
  expect(() => parseArguments(["sweep", "--dry-run", "--execute"])).toThrow("contradict");
});

test("durations, batch size and scope are parsed and checked", () => {
  expect(parseArguments(["sweep"]).graceMs).toBe(DEFAULT_GRACE_MS);
  expect(parseArguments(["sweep", "--grace", "0"]).graceMs).toBe(0);
  expect(parseArguments(["sweep", "--grace", "90s"]).graceMs).toBe(90_000);
  expect(parseArguments(["sweep", "--grace=30m"]).graceMs).toBe(1_800_000);
  expect(parseArguments(["sweep", "--grace", "7d"]).graceMs).toBe(7 * 86_400_000);
  expect(() => parseArguments(["sweep", "--grace", "soon"])).toThrow("not a duration");
  expect(parseArguments(["sweep", "--batch-size", "250"]).batchSize).toBe(250);
  expect(() => parseArguments(["sweep", "--batch-size", "0"])).toThrow("positive integer");
  expect(parseArguments(["sweep", "--scope", "all"]).scope).toBe("all");
  expect(() => parseArguments(["sweep", "--scope", "most"])).toThrow('"recorded" or "all"');
  expect(() => parseArguments(["sweep", "--frobnicate"])).toThrow("unknown option");
  expect(() => parseArguments(["sweep", "-d"])).toThrow("needs a value");
});

test("positional arguments after the command are kept (the migration path)", () => {
  expect(parseArguments(["migration:triggers", "src/migrations/LoTriggers", "-d", "ds.ts"])).toMatchObject({
    command: "migration:triggers",
    positional: ["src/migrations/LoTriggers"],
  });
});

test("exit codes are distinct and bytes read as people write them", () => {
  expect(new Set(Object.values(EXIT)).size).toBe(Object.keys(EXIT).length);
  expect(formatBytes(999)).toBe("999 B");
  expect(formatBytes(1500)).toBe("1.5 kB");
  expect(formatBytes(12_300_000)).toBe("12.3 MB");
});
