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
for dep in typeorm pg reflect-metadata @types/node @types/pg typescript; do
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

cat > esm.mjs <<'JS'
import { LargeObject, LargeObjectError } from "typeorm-large-object";
import { createRequire } from "node:module";
const cjs = createRequire(import.meta.url)("typeorm-large-object");
if (LargeObject !== cjs.LargeObject) throw new Error("import and require load two copies");
if (!(new LargeObjectError("ERR_LO_NULL", "x") instanceof cjs.LargeObjectError)) throw new Error("instanceof across entries");
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
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "commonjs", "strict": true, "experimentalDecorators": true,
  "emitDecoratorMetadata": true, "esModuleInterop": true, "skipLibCheck": false, "types": ["node"], "outDir": "out" } }
JSON
node "$root/node_modules/typescript/bin/tsc" -p tsconfig.json
echo "types: a strict consumer compiles against the shipped declarations (skipLibCheck off)"
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
