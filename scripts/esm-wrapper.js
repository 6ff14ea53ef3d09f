// Writes dist/index.mjs: an ES module entry that re-exports the CommonJS build, so that
// `import` and `require` share one copy of every class (instanceof works across both).
const fs = require("node:fs");
const path = require("node:path");
const dist = path.join(__dirname, "..", "dist");
const names = Object.keys(require(path.join(dist, "index.js"))).filter((n) => n !== "__esModule");
const body = [
  'import cjs from "./index.js";',
  `export const { ${names.join(", ")} } = cjs;`,
  "",
].join("\n");
fs.writeFileSync(path.join(dist, "index.mjs"), body);
fs.writeFileSync(path.join(dist, "index.d.mts"), 'export * from "./index.js";\n');
