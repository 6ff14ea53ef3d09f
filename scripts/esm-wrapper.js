// Writes an ES module entry beside each CommonJS entry (dist/index.js, dist/http/index.js, dist/tus/index.js): it
// re-exports the CommonJS build, so that `import` and `require` share one copy of every class
// (instanceof works across both).
const fs = require("node:fs");
const path = require("node:path");
const dist = path.join(__dirname, "..", "dist");
for (const entry of ["index", "http/index", "tus/index"]) {
  const names = Object.keys(require(path.join(dist, `${entry}.js`))).filter((n) => n !== "__esModule");
  const body = ['import cjs from "./index.js";', `export const { ${names.join(", ")} } = cjs;`, ""].join("\n");
  fs.writeFileSync(path.join(dist, `${entry}.mjs`), body);
  fs.writeFileSync(path.join(dist, `${entry}.d.mts`), 'export * from "./index.js";\n');
}
