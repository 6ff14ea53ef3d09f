import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";

// Every relative link of the README, docs/ and the sample app's README leads somewhere: the file
// exists, and a #fragment names a heading of that file (as GitHub makes its anchors).
const root = path.resolve(__dirname, "../..");
const pages = [
  "README.md",
  "sample-app/README.md",
  ...readdirSync(path.join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`),
];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const heading = fenced ? null : /^#{1,6}\s+(.*)$/.exec(line);
    if (heading === null) continue;
    const base = heading[1]!
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    found.add(count === 0 ? base : `${base}-${count}`);
  }
  return found;
}

function links(markdown: string): string[] {
  const outside = markdown.replace(/```[\s\S]*?```/g, "");
  return [...outside.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z]+:/.test(target));
}

test.each(pages)("every relative link of %s resolves, anchors included", (page) => {
  const broken: string[] = [];
  for (const target of links(readFileSync(path.join(root, page), "utf8"))) {
    const [file, fragment] = target.split("#") as [string, string | undefined];
    const resolved = file === "" ? path.join(root, page) : path.resolve(path.dirname(path.join(root, page)), file);
    if (!existsSync(resolved)) {
      broken.push(`${target}: no such file`);
    } else if (fragment !== undefined && !anchors(readFileSync(resolved, "utf8")).has(fragment)) {
      broken.push(`${target}: no such heading`);
    }
  }
  expect(broken).toEqual([]);
});

test("the README links every page of docs/", () => {
  const readme = links(readFileSync(path.join(root, "README.md"), "utf8")).map((target) => target.split("#")[0]);
  const missing = pages.filter((page) => page.startsWith("docs/") && !readme.includes(page));
  expect(pages.filter((page) => page.startsWith("docs/")).length).toBeGreaterThan(5);
  expect(missing).toEqual([]);
});
