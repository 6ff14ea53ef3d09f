#!/usr/bin/env bash
# Tests the package as shipped: packs it, installs the tarball into a scratch project (peer
# dependencies come from this repository's node_modules), then imports it through require and
# import, type-checks a consumer, and round-trips an object against DATABASE_URL when one is set.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$root"
tarball="$(npm pack --silent --pack-destination "$scratch" 2>/dev/null | tail -n 1)"
mkdir -p "$scratch/app/node_modules"
tar -xzf "$scratch/$tarball" -C "$scratch"
mv "$scratch/package" "$scratch/app/node_modules/typeorm-large-object"
for dep in typeorm pg reflect-metadata @types/node @types/pg typescript @tus/server; do
  mkdir -p "$(dirname "$scratch/app/node_modules/$dep")"
  ln -s "$root/node_modules/$dep" "$scratch/app/node_modules/$dep"
done
# pg and typeorm resolve their own dependencies from the repository's node_modules.
export NODE_PATH="$root/node_modules"
cd "$scratch/app"
echo '{ "name": "consumer", "private": true }' > package.json

unexpected="$(tar -tzf "$scratch/$tarball" | grep -v '^package/\(dist/\|package.json\|README.md\|LICENSE\)' || true)"
[ -z "$unexpected" ] || { echo "unexpected files in the package: $unexpected"; exit 1; }

node -e '
const lo = require("typeorm-large-object");
for (const name of ["LargeObject", "LargeObjectError", "LargeObjectColumn", "LargeObjectRepository", "registerLargeObjects", "sweepOrphans"]) {
  if (typeof lo[name] !== "function") throw new Error("require: missing export " + name);
}
console.log("require: " + Object.keys(lo).length + " exports");'

# The tus entry loads beside the main one and shares its classes.
node -e '
const tus = require("typeorm-large-object/tus");
if (typeof tus.LargeObjectTusStore !== "function") throw new Error("require: missing tus export LargeObjectTusStore");
console.log("require tus: " + Object.keys(tus).length + " exports");'

# The http entry loads without any web framework: multer, Express, Fastify and NestJS are the
# application's (resolvable here through NODE_PATH, so what matters is that none gets loaded).
node -e '
const frameworks = () => Object.keys(require.cache).filter((f) => /[\\/]node_modules[\\/](multer|express|fastify|@nestjs)[\\/]/.test(f));
require("typeorm-large-object");
if (frameworks().length) throw new Error("the main entry loaded " + frameworks()[0]);
const http = require("typeorm-large-object/http");
for (const name of ["sendLargeObject", "receiveLargeObject", "largeObjectStorage", "isLargeObjectFile", "httpStatusOf"]) {
  if (typeof http[name] !== "function") throw new Error("require: missing http export " + name);
}
if (frameworks().length) throw new Error("the http entry loaded " + frameworks()[0]);
console.log("require http: " + Object.keys(http).length + " exports, no web framework loaded");'

# The command-line entry that package.json's "bin" names must exist in the package and run.
bin="$(node -p 'require("typeorm-large-object/package.json").bin["typeorm-large-object"]')"
node "node_modules/typeorm-large-object/$bin" --help > /dev/null
echo "bin: $bin prints its usage"

cat > esm.mjs <<'JS'
import { LargeObject, LargeObjectError } from "typeorm-large-object";
import { createRequire } from "node:module";
const cjs = createRequire(import.meta.url)("typeorm-large-object");
if (LargeObject !== cjs.LargeObject) throw new Error("import and require load two copies");
if (!(new LargeObjectError("ERR_LO_NULL", "x") instanceof cjs.LargeObjectError)) throw new Error("instanceof across entries");
const http = await import("typeorm-large-object/http");
if (http.largeObjectStorage !== createRequire(import.meta.url)("typeorm-large-object/http").largeObjectStorage) throw new Error("http: import and require load two copies");
const tus = await import("typeorm-large-object/tus");
if (tus.LargeObjectTusStore !== createRequire(import.meta.url)("typeorm-large-object/tus").LargeObjectTusStore) throw new Error("tus: import and require load two copies");
console.log("import: one copy of every class");
JS
node esm.mjs

cat > consumer.ts <<'TS'
import "reflect-metadata";
import { DataSource, Entity, PrimaryGeneratedColumn } from "typeorm";
import { LargeObject, LargeObjectColumn, LargeObjectRepository, registerLargeObjects, type LargeObjectValue } from "typeorm-large-object";

@Entity() class Doc { @PrimaryGeneratedColumn() id!: number; @LargeObjectColumn() file!: LargeObjectValue; }

export async function main(url: string): Promise<void> {
  const ds = registerLargeObjects(new DataSource({ type: "postgres", url, entities: [Doc], synchronize: true }));
  await ds.initialize();
  try {
    const doc = await ds.getRepository(Doc).save({ file: "shipped" });
    const text = (await new LargeObjectRepository(ds.manager).read(doc, "file")).toString();
    if (text !== "shipped") throw new Error(`read back ${text}`);
    await ds.getRepository(Doc).remove(doc);
    const oid = await LargeObject.create(ds, { data: "x" });
    await LargeObject.unlink(ds, oid);
    console.log("round trip through the installed package: ok");
  } finally {
    await ds.query('DROP TABLE IF EXISTS "doc"');
    await ds.destroy();
  }
}
if (process.env.CHECK_DATABASE_URL) main(process.env.CHECK_DATABASE_URL).catch((e) => { console.error(e); process.exit(1); });
TS
# The http entry's declarations stand without any framework's types (no @types/multer here).
cat > http-consumer.ts <<'TS'
import type { DataSource } from "typeorm";
import { httpStatusOf, isLargeObjectFile, largeObjectStorage, type LargeObjectStorageEngine } from "typeorm-large-object/http";
export const storage = (source: DataSource): LargeObjectStorageEngine => largeObjectStorage({ source, maxBytes: 1024, label: "check" });
export const oidOfFile = (file: unknown): number | undefined => (isLargeObjectFile(file) ? file.oid : undefined);
export const status: number = httpStatusOf(new Error("x"));
TS
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "commonjs", "strict": true, "experimentalDecorators": true,
  "emitDecoratorMetadata": true, "esModuleInterop": true, "skipLibCheck": false, "types": ["node"], "outDir": "out" } }
JSON
node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json
echo "types: strict consumers of the main and http entries compile against the shipped declarations (skipLibCheck off)"
# @tus/server's own declarations need the types of bun, Deno and Cloudflare (through srvx), so the
# tus entry's consumer skips the check of library declarations.
cat > tus-consumer.ts <<'TS'
import { Server } from "@tus/server";
import type { DataSource } from "typeorm";
import { LargeObjectTusStore } from "typeorm-large-object/tus";
export const tusServer = (source: DataSource): Server => new Server({ path: "/files", datastore: new LargeObjectTusStore({ source }) });
TS
node "$root/node_modules/typescript/bin/tsc" --strict --skipLibCheck --module commonjs --target ES2022 --types node --noEmit tus-consumer.ts
echo "types: a consumer of the tus entry compiles (through typesVersions for node10 resolution)"
# Runs one statement on DATABASE_URL (through the repository's pg; the machine may have no psql).
admin() {
  node -e '
    const { Client } = require("pg");
    const c = new Client({ connectionString: process.argv[1] });
    c.connect().then(() => c.query(process.argv[2])).then(() => c.end(), (e) => { console.error(e.message); process.exit(1); });
  ' "$DATABASE_URL" "$1"
}

if [ -n "${DATABASE_URL:-}" ]; then
  # A database of its own, so the check leaves nothing behind in the one it was given.
  db="tlo_package_check_$$"
  admin "CREATE DATABASE \"$db\""
  check_url="$(node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; console.log(u.toString())' "$DATABASE_URL" "$db")"
  status=0
  CHECK_DATABASE_URL="$check_url" node out/consumer.js || status=$?
  admin "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
  exit "$status"
fi
