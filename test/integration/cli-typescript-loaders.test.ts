import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import type { DataSource } from "typeorm";
import { databaseUrl } from "../support/database";
import { CleanupDoc } from "./fixtures/cleanup";
import { useDataSource } from "../support/use-data-source";

/**
 * The CLI as shipped, in a user's project whose TypeScript is 7 (what `npm install typescript`
 * gives), with tsx and ts-node installed from the registry: which loader reads a `.ts` data-source
 * file, and the one line it prints when none can.
 */
const run = promisify(execFile);
const root = resolve(__dirname, "../..");
const scratch = mkdtempSync(join(tmpdir(), "tlo-cli-ts7-"));
const app = join(scratch, "app");
const modules = join(app, "node_modules");
const cliPath = join(modules, "typeorm-large-object/dist/cli/main.js");

const FILES: Record<string, string> = {
  "package.json": JSON.stringify({ name: "app", private: true }),
  "tsconfig.json": JSON.stringify({
    compilerOptions: { target: "ES2022", module: "commonjs", strict: true, experimentalDecorators: true, emitDecoratorMetadata: true },
  }),
  "src/doc.ts": `import { Column, Entity, PrimaryGeneratedColumn } from "typeorm";
import { LargeObjectColumn, type LargeObjectValue } from "typeorm-large-object";

@Entity({ name: "cleanup_doc" })
export class Doc {
  @PrimaryGeneratedColumn() id!: number;
  @Column({ type: "text", default: "" }) name!: string;
  @LargeObjectColumn() file!: LargeObjectValue;
}
`,
  // A column whose type TypeORM takes from the emitted decorator metadata.
  "src/note.ts": `import { Column, Entity, PrimaryGeneratedColumn } from "typeorm";

@Entity({ name: "cli_ts_note" })
export class Note {
  @PrimaryGeneratedColumn() id!: number;
  @Column() title!: string;
}
`,
  "data-source.ts": `import "reflect-metadata";
import { DataSource } from "typeorm";
import { registerLargeObjects } from "typeorm-large-object";
import { Doc } from "./src/doc";

export default registerLargeObjects(new DataSource({ type: "postgres", url: process.env.TLO_CLI_DATABASE_URL, entities: [Doc] }));
`,
  "implicit-types.ts": `import "reflect-metadata";
import { DataSource } from "typeorm";
import { registerLargeObjects } from "typeorm-large-object";
import { Doc } from "./src/doc";
import { Note } from "./src/note";

export default registerLargeObjects(new DataSource({ type: "postgres", url: process.env.TLO_CLI_DATABASE_URL, entities: [Doc, Note] }));
`,
  "unregistered.ts": `import "reflect-metadata";
import { DataSource } from "typeorm";
import { Doc } from "./src/doc";

export const dataSource = new DataSource({ type: "postgres", url: process.env.TLO_CLI_DATABASE_URL, entities: [Doc] });
`,
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(file: string, env: Record<string, string> = {}): Promise<Run> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliPath, "status", "--dataSource", file], {
      cwd: app,
      env: { ...process.env, TLO_CLI_DATABASE_URL: databaseUrl(), ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failed.code !== "number") throw err;
    return { code: failed.code, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

/** Runs `task` with the given packages moved out of the project's node_modules. */
async function without<T>(packages: string[], task: () => Promise<T>): Promise<T> {
  for (const name of packages) renameSync(join(modules, name), join(scratch, `hidden-${name}`));
  try {
    return await task();
  } finally {
    for (const name of packages) renameSync(join(scratch, `hidden-${name}`), join(modules, name));
  }
}

let ds: DataSource;
useDataSource((opened) => (ds = opened), { orm: [CleanupDoc] });

beforeAll(async () => {
  for (const [name, text] of Object.entries(FILES)) {
    mkdirSync(dirname(join(app, name)), { recursive: true });
    writeFileSync(join(app, name), text);
  }
  const pkg = join(scratch, "package");
  // The registry's packages, and this package compiled as `npm run build` does (files: dist).
  await Promise.all([
    run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "typescript@7.0.2", "tsx@4.23.15", "ts-node@10.9.2"], { cwd: app }),
    run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json"), "--outDir", join(pkg, "dist")]),
  ]);
  copyFileSync(join(root, "package.json"), join(pkg, "package.json"));
  renameSync(pkg, join(modules, "typeorm-large-object"));
  // Peer dependencies: the versions this repository tests with.
  for (const name of ["typeorm", "pg", "reflect-metadata"]) symlinkSync(join(root, "node_modules", name), join(modules, name));
}, 180_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

test("with TypeScript 7, status loads the .ts data-source file through tsx", async () => {
  await ds.getRepository(CleanupDoc).save({ name: "a", file: "content" });
  const status = await cli("data-source.ts");
  expect(status).toMatchObject({ code: 0, stderr: "" });
  expect(status.stdout).toMatch(/Large objects\s+1\s/);
});

test("a column typed only by decorator metadata, which tsx does not emit, gets a hint", async () => {
  const status = await cli("implicit-types.ts");
  expect(status.code).toBe(3);
  expect(status.stderr.trim().split("\n")).toHaveLength(1);
  expect(status.stderr).toContain("cannot load implicit-types.ts: Column type for Note#title is not defined");
  expect(status.stderr).toContain('tsx emits no decorator metadata: give such columns an explicit type (@Column("text"))');
});

test("a data source without registerLargeObjects() gets the call to add and where", async () => {
  const status = await cli("unregistered.ts");
  expect(status.code).toBe(3);
  expect(status.stderr.trim().split("\n")).toHaveLength(1);
  expect(status.stderr).toContain('Data type "oid" in "Doc.file" is not supported');
  expect(status.stderr).toContain(
    "call registerLargeObjects(dataSource) before dataSource.initialize() (in NestJS, inside TypeOrmModule's dataSourceFactory)",
  );
});

test("with ts-node but no tsx, TypeScript 7 fails in one line that says what to install", async () => {
  const status = await without(["tsx"], () => cli("data-source.ts"));
  expect(status).toMatchObject({ code: 3, stdout: "" });
  expect(status.stderr).toBe(
    "typeorm-large-object status: cannot load data-source.ts: ts-node cannot run TypeScript 7; install tsx in the project (npm i -D tsx), or compile the data-source file and pass the .js file\n",
  );
});

test("with no loader at all, the line says what to install", async () => {
  const status = await without(["tsx", "ts-node"], () => cli("data-source.ts"));
  expect(status).toMatchObject({ code: 3, stdout: "" });
  expect(status.stderr).toContain("cannot load data-source.ts: no TypeScript loader found; install tsx in the project (npm i -D tsx)");
});

test("with TypeScript 5, ts-node comes first and emits the metadata a column without a type needs", async () => {
  const typescript7 = join(scratch, "typescript-7");
  renameSync(join(modules, "typescript"), typescript7);
  symlinkSync(join(root, "node_modules/typescript"), join(modules, "typescript"));
  try {
    // Without its type check, which takes most of the time and plays no part in loading.
    const status = await cli("implicit-types.ts", { TS_NODE_TRANSPILE_ONLY: "true" });
    expect(status).toMatchObject({ code: 0, stderr: "" });
    expect(status.stdout).toMatch(/Large objects\s+\d+\s/);
  } finally {
    rmSync(join(modules, "typescript"));
    renameSync(typescript7, join(modules, "typescript"));
  }
});
