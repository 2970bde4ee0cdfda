// Validates AsyncAPI documents with the real AsyncAPI parser (@asyncapi/parser, installed by
// scripts/asyncapi-validate.sh under target/node/asyncapi): exits 1 when any document has a
// diagnostic of error severity, and prints every diagnostic (errors, warnings, hints).
//
//   node scripts/asyncapi-validate.mjs generated/asyncapi/*.json
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const nodeDir = process.env.KONTIKI_ASYNCAPI_NODE_DIR;
if (!nodeDir) {
  console.error("asyncapi-validate: set KONTIKI_ASYNCAPI_NODE_DIR (scripts/asyncapi-validate.sh does)");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeDir), "package.json"));
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");
const version = require("@asyncapi/parser/package.json").version;

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("asyncapi-validate: no files given");
  process.exit(2);
}
const parser = new Parser();
const names = { 0: "error", 1: "warning", 2: "info", 3: "hint" };
let failed = 0;
for (const file of files) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: path.resolve(file) });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? ` at ${d.path.join("/")}` : "";
    console.log(`${file}: ${names[d.severity] ?? d.severity} ${d.code}${where}: ${d.message}`);
  }
  if (errors.length > 0 || document === undefined) {
    failed += 1;
    console.log(`${file}: INVALID (${errors.length} error${errors.length === 1 ? "" : "s"})`);
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()} (${document.channels().length} channels, ${document.operations().length} operations)`);
  }
}
console.log(`asyncapi-validate: @asyncapi/parser ${version}: ${files.length - failed} of ${files.length} documents valid`);
process.exit(failed === 0 ? 0 : 1);
