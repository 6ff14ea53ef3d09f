import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import ts from "typescript";

// Every ```ts block of README.md and docs/*.md is type-checked against the sources, so an example
// cannot drift from the API it shows. Each block is a module of its own that imports
// "typeorm-large-object" as a user would; the import is mapped to src/index.ts (and the tus
// entry to src/tus/index.ts).
const root = path.resolve(__dirname, "../..");
const VIRTUAL_DIR = path.join(root, ".docs-blocks");

/**
 * Names the examples may use without declaring them, as the pages say: the entity and data source
 * of the README's quick start, a saved document, and the usual Node and TypeORM objects.
 */
const PRELUDE = `
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DataSource, QueryRunner } from "typeorm";
import type { LargeObjectValue } from "typeorm-large-object";
declare global {
  class Document {
    id: number;
    name: string;
    attachment: LargeObjectValue;
  }
  const dataSource: DataSource;
  const doc: Document;
  const queryRunner: QueryRunner;
  const oid: number;
  const req: IncomingMessage;
  const res: ServerResponse;
}
export {};
`;

interface Block {
  /** The page, relative to the repository root. */
  page: string;
  /** Line of the page where the block's code starts (1-based). */
  line: number;
  code: string;
}

/** The ```ts blocks of a Markdown text. */
function tsBlocks(page: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  const lines = markdown.split("\n");
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^```(ts|typescript)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end += 1;
    if (end === lines.length) throw new Error(`${page}:${i + 1}: unclosed code block`);
    blocks.push({ page, line: start + 1, code: lines.slice(start, end).join("\n") });
    i = end;
  }
  return blocks;
}

function docPages(): string[] {
  const docs = readdirSync(path.join(root, "docs"))
    .filter((name) => name.endsWith(".md"))
    .map((name) => `docs/${name}`);
  return ["README.md", ...docs.sort()];
}

function compilerOptions(): ts.CompilerOptions {
  const config = ts.readConfigFile(path.join(root, "tsconfig.json"), (file) => ts.sys.readFile(file));
  if (config.error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, "\n"));
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, root);
  return {
    ...parsed.options,
    // Examples use top-level await, as an ES module of a user's project would.
    module: ts.ModuleKind.ES2022,
    moduleDetection: ts.ModuleDetectionKind.Force,
    baseUrl: root,
    paths: {
      "typeorm-large-object": ["src/index.ts"],
      "typeorm-large-object/http": ["src/http/index.ts"],
      "typeorm-large-object/tus": ["src/tus/index.ts"],
    },
    noEmit: true,
    declaration: false,
    sourceMap: false,
    // Examples may declare things only to show them.
    noUnusedLocals: false,
    noUnusedParameters: false,
  };
}

interface Problem {
  where: string;
  message: string;
}

/** Type-checks the blocks in one program and returns every diagnostic, placed on its page's line. */
function check(blocks: Block[]): Problem[] {
  const files = new Map<string, { block: Block | undefined; text: string }>();
  files.set(path.join(VIRTUAL_DIR, "prelude.ts"), { block: undefined, text: PRELUDE });
  blocks.forEach((block, n) => {
    const name = `${block.page.replace(/[^A-Za-z0-9]/g, "_")}_${n}.ts`;
    files.set(path.join(VIRTUAL_DIR, name), { block, text: block.code });
  });
  const options = compilerOptions();
  const host = ts.createCompilerHost(options, true);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (file) => files.has(path.resolve(file)) || fileExists(file);
  host.readFile = (file) => files.get(path.resolve(file))?.text ?? readFile(file);
  host.getSourceFile = (file, language, onError, shouldCreate) => {
    const virtual = files.get(path.resolve(file));
    if (virtual !== undefined) return ts.createSourceFile(file, virtual.text, language, true, ts.ScriptKind.TS);
    return getSourceFile(file, language, onError, shouldCreate);
  };
  const program = ts.createProgram([...files.keys()], options, host);
  const problems: Problem[] = [];
  const diagnostics = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()];
  for (const file of files.keys()) {
    const source = program.getSourceFile(file);
    if (source === undefined) throw new Error(`${file} was not compiled`);
    diagnostics.push(...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source));
  }
  for (const d of diagnostics) {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    const virtual = d.file === undefined ? undefined : files.get(path.resolve(d.file.fileName));
    if (d.file === undefined || d.start === undefined) {
      problems.push({ where: "(program)", message });
    } else if (virtual?.block === undefined) {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      problems.push({ where: `${path.relative(root, d.file.fileName)}:${line + 1}`, message });
    } else {
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      problems.push({ where: `${virtual.block.page}:${virtual.block.line + line}`, message });
    }
  }
  return problems;
}

/** A block with a type error, checked beside the real ones: the checker must report it. */
const BROKEN: Block = {
  page: "(a deliberately broken example)",
  line: 1,
  code: `import { LargeObject } from "typeorm-large-object";\nconst size: string = await LargeObject.create(dataSource);\n`,
};

describe("the code blocks of the docs", () => {
  const blocks = docPages().flatMap((page) => tsBlocks(page, readFileSync(path.join(root, page), "utf8")));
  let problems: Problem[];

  beforeAll(() => {
    problems = check([...blocks, BROKEN]);
  });

  test("the README and the pages have blocks to check", () => {
    expect(blocks.filter((b) => b.page === "README.md").length).toBeGreaterThan(0);
    expect(blocks.length).toBeGreaterThan(20);
  });

  test("the framework recipes are among the checked blocks, with their imports resolved from node_modules", () => {
    const importing = (module: string): number => blocks.filter((b) => b.page === "docs/http.md" && b.code.includes(`from "${module}"`)).length;
    for (const module of ["express", "multer", "fastify", "@nestjs/common", "@nestjs/core", "@nestjs/platform-express"]) {
      expect(importing(module) > 0 ? module : `no block of docs/http.md imports ${module}`).toBe(module);
    }
    expect(problems.filter((p) => /Cannot find module/.test(p.message))).toEqual([]);
  });

  test("every ts block type-checks against the sources", () => {
    const real = problems.filter((p) => !p.where.startsWith(BROKEN.page));
    expect(real.map((p) => `${p.where}: ${p.message}`)).toEqual([]);
  });

  test("a block with a type error is reported, on its own line", () => {
    const broken = problems.filter((p) => p.where.startsWith(BROKEN.page));
    expect(broken.map((p) => p.where)).toEqual([`${BROKEN.page}:2`]);
    expect(broken[0]!.message).toMatch(/'number' is not assignable to type 'string'/);
  });
});
