import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";

// The error table of docs/errors.md and the LargeObjectErrorCode union must list the same codes,
// both ways, and every code the sources use must be declared.
const root = path.resolve(__dirname, "../..");

function documentedCodes(): string[] {
  const page = readFileSync(path.join(root, "docs/errors.md"), "utf8");
  const table = page.split("\n").filter((line) => line.startsWith("| `ERR_LO_"));
  return table.map((line) => /^\| `(ERR_LO_[A-Z_]+)` \|/.exec(line)![1]!);
}

/** Every .ts file under src/, in any folder. */
function listSources(dir = path.join(root, "src")): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return listSources(full);
    return entry.isFile() && entry.name.endsWith(".ts") ? [full] : [];
  });
}

/** The codes of one exported union type, which exactly one source file declares. */
function unionCodes(name: string): string[] {
  const pattern = new RegExp(`export type ${name} =([^;]+);`);
  const unions = listSources().flatMap((file) => {
    const match = pattern.exec(readFileSync(file, "utf8"));
    return match === null ? [] : [match[1]!];
  });
  expect(unions).toHaveLength(1);
  return [...unions[0]!.matchAll(/"(ERR_LO_[A-Z_]+)"/g)].map((m) => m[1]!);
}

/** The core's codes and the HTTP layer's refusals. */
function declaredCodes(): string[] {
  const core = unionCodes("LargeObjectErrorCode");
  expect(core.length).toBeGreaterThan(10);
  const http = unionCodes("LargeObjectHttpErrorCode");
  expect(http.length).toBeGreaterThan(0);
  return [...core, ...http];
}

test("docs/errors.md's error table lists exactly the declared codes, each once", () => {
  const documented = documentedCodes();
  const declared = declaredCodes();
  expect(declared.length).toBeGreaterThan(10);
  expect(new Set(documented).size).toBe(documented.length);
  expect([...documented].sort()).toEqual([...declared].sort());
});

test("every code the sources use is declared", () => {
  const sources = listSources();
  expect(sources.length).toBeGreaterThan(10);
  const used = new Set<string>();
  for (const file of sources) {
    // A code ends in a letter: "ERR_LO_HTTP_" is a prefix tested with startsWith, not a code.
    for (const m of readFileSync(file, "utf8").matchAll(/"(ERR_LO_[A-Z_]*[A-Z])"/g)) used.add(m[1]!);
  }
  expect(used.size).toBeGreaterThan(10);
  const declared = new Set(declaredCodes());
  expect([...used].filter((code) => !declared.has(code))).toEqual([]);
});
