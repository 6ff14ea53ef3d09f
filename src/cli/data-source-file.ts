import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { DataSource } from "typeorm";
import { isDataSource } from "../connection/source";
import { REGISTRATION_HINT } from "../errors";
import { UsageError } from "./arguments";

/** @internal The data-source file could not be loaded or initialized: the CLI exits 3. */
export class DataSourceError extends Error {}

/** require() for files named at run time (the data source, the TypeScript loader). */
const load = createRequire(__filename);
const importModule = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<unknown>;

/** How a `.ts` data-source file gets loaded: each has its limits, said when loading or initializing fails. */
type TypeScriptLoader = "present" | "ts-node" | "tsx" | "node";

/** The major version of the `typescript` package the project resolves, if it has one. */
function typeScriptMajor(paths: string[]): number | undefined {
  for (const start of paths) {
    for (let dir = start; ; dir = dirname(dir)) {
      const manifest = join(dir, "node_modules", "typescript", "package.json");
      if (existsSync(manifest)) {
        const version = (JSON.parse(readFileSync(manifest, "utf8")) as { version?: unknown }).version;
        return typeof version === "string" ? Number.parseInt(version, 10) : undefined;
      }
      if (dirname(dir) === dir) break;
    }
  }
  return undefined;
}

/** Node's own type stripping (on by default from Node 22.18 and 23.6): it cannot run decorators. */
function nodeStripsTypes(): boolean {
  return Boolean((process.features as { typescript?: unknown }).typescript);
}

/**
 * Lets require() load TypeScript. ts-node first while the project's TypeScript is older than 7 (it
 * emits the decorator metadata TypeORM reads for columns without an explicit type; it cannot drive
 * TypeScript 7, which has no JavaScript compiler API), else tsx (esbuild emits no such metadata),
 * else Node's own type stripping where it is on.
 */
function registerTypeScript(file: string, from: string): TypeScriptLoader {
  // Already loadable: the CLI itself runs under a TypeScript loader.
  if (load.extensions[".ts"] !== undefined && !nodeStripsTypes()) return "present";
  const paths = [from, process.cwd(), __dirname];
  const find = (request: string): string | undefined => {
    try {
      return load.resolve(request, { paths });
    } catch {
      return undefined;
    }
  };
  const major = typeScriptMajor(paths);
  const tsNode = find("ts-node/register");
  if (tsNode !== undefined && major !== undefined && major < 7) {
    load(tsNode);
    return "ts-node";
  }
  // tsx's require hook also turns ES-module syntax into CommonJS, so "type": "module" projects load too.
  const tsx = find("tsx/cjs/api");
  if (tsx !== undefined) {
    (load(tsx) as { register: () => unknown }).register();
    return "tsx";
  }
  if (nodeStripsTypes()) return "node";
  const why =
    tsNode === undefined
      ? "no TypeScript loader found"
      : major === undefined
        ? "ts-node finds no typescript package"
        : `ts-node cannot run TypeScript ${major}`;
  throw new DataSourceError(
    `cannot load ${file}: ${why}; install tsx in the project (npm i -D tsx), or compile the data-source file and pass the .js file`,
  );
}

/** @internal What to do about an error of loading or initializing the data source, when TypeORM's message does not say. */
export function dataSourceHint(err: unknown, loader: TypeScriptLoader | undefined): string | undefined {
  const name = (err as { name?: unknown } | null)?.name;
  const message = err instanceof Error ? err.message : String(err);
  if (name === "DataTypeNotSupportedError" && message.includes('"oid"')) return REGISTRATION_HINT;
  if (name === "ColumnTypeUndefinedError" && loader === "tsx") {
    return "tsx emits no decorator metadata: give such columns an explicit type (@Column(\"text\")), or compile the data-source file with tsc and pass the .js file";
  }
  if (err instanceof SyntaxError && loader === "node") {
    return "Node's type stripping cannot run decorators: install tsx in the project (npm i -D tsx), or compile the data-source file and pass the .js file";
  }
  return undefined;
}

function withHint(err: unknown, loader: TypeScriptLoader | undefined): string {
  const message = err instanceof Error ? err.message : String(err);
  const hint = dataSourceHint(err, loader);
  return hint === undefined ? message : `${message}; ${hint}`;
}

/** @internal Loads a data-source file the way the TypeORM CLI does: its default export, or its one DataSource export. */
export async function loadDataSource(file: string): Promise<{ dataSource: DataSource; loader: TypeScriptLoader | undefined }> {
  const path = resolve(process.cwd(), file);
  const ext = extname(path);
  const loader = [".ts", ".mts", ".cts"].includes(ext) ? registerTypeScript(file, dirname(path)) : undefined;
  let loaded: unknown;
  try {
    loaded = load(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code !== "ERR_REQUIRE_ESM" && code !== "ERR_REQUIRE_ASYNC_MODULE") {
      // Decorators run as the file loads, so a column without a type fails here, not in initialize().
      throw new DataSourceError(`cannot load ${file}: ${withHint(err, loader)}`);
    }
    loaded = await importModule(pathToFileURL(path).href);
  }
  const exports = (loaded ?? {}) as Record<string, unknown>;
  const candidates: unknown[] = [exports.default, (exports.default as Record<string, unknown> | undefined)?.default, exports];
  for (const candidate of candidates) if (isDataSource(candidate)) return { dataSource: candidate, loader };
  const named = Object.entries(exports).filter(([, v]) => isDataSource(v));
  if (named.length === 1) return { dataSource: named[0]![1] as DataSource, loader };
  throw new DataSourceError(
    named.length === 0
      ? `${file} exports no DataSource (export it as default or as a named export)`
      : `${file} exports several DataSources (${named.map(([k]) => k).join(", ")}): export the one to use as default`,
  );
}

/** @internal Loads and initializes the data source of `--dataSource`, never changing the schema. */
export async function connect(file: string | undefined): Promise<DataSource> {
  if (file === undefined) throw new UsageError("--dataSource <file> is required");
  const { dataSource, loader } = await loadDataSource(file);
  if (!dataSource.isInitialized) {
    // As the TypeORM CLI does: never let a maintenance command change the schema.
    dataSource.setOptions({ synchronize: false, migrationsRun: false, dropSchema: false, logging: false });
    try {
      await dataSource.initialize();
    } catch (err) {
      throw new DataSourceError(`cannot initialize the data source: ${withHint(err, loader)}`);
    }
  }
  return dataSource;
}
