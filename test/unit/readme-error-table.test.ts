import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";

// The README's error table and the LargeObjectErrorCode union must list the same codes, both ways.
const root = path.resolve(__dirname, "../..");

function readmeCodes(): string[] {
  const readme = readFileSync(path.join(root, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("\n## Errors"));
  const table = section.split("\n").filter((line) => line.startsWith("| `ERR_LO_"));
  return table.map((line) => /^\| `(ERR_LO_[A-Z_]+)` \|/.exec(line)![1]!);
}

function sourceCodes(): string[] {
  const source = readFileSync(path.join(root, "src/errors.ts"), "utf8");
  const union = /export type LargeObjectErrorCode =([^;]+);/.exec(source)![1]!;
  return [...union.matchAll(/"(ERR_LO_[A-Z_]+)"/g)].map((m) => m[1]!);
}

test("the README's error table lists exactly the codes of src/errors.ts, each once", () => {
  const documented = readmeCodes();
  const declared = sourceCodes();
  expect(declared.length).toBeGreaterThan(10);
  expect(new Set(documented).size).toBe(documented.length);
  expect([...documented].sort()).toEqual([...declared].sort());
});

test("every code the sources throw is declared", () => {
  const thrown = new Set<string>();
  for (const file of listSources()) {
    for (const m of readFileSync(file, "utf8").matchAll(/"(ERR_LO_[A-Z_]+)"/g)) thrown.add(m[1]!);
  }
  const declared = new Set(sourceCodes());
  expect([...thrown].filter((code) => !declared.has(code))).toEqual([]);
});

function listSources(): string[] {
  const dir = path.join(root, "src");
  return readdirSync(dir)
    .filter((name) => name.endsWith(".ts"))
    .map((name) => path.join(dir, name));
}
