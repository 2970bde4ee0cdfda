// Tokenizes .kontiki files with the TextMate grammar of editors/vscode, using the engine VS Code
// itself uses (vscode-textmate with the Oniguruma WASM build, vscode-oniguruma), and checks:
//   * the grammar file is valid JSON with the scope name package.json declares;
//   * on editors/vscode/test/sample.kontiki, each expected token has its expected scope;
//   * every file given ends with the grammar's rule stack back at the top (no string or
//     block comment runs past its end).
// Run by scripts/grammar-test.sh, which installs the two packages under target/node/textmate.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeDir = process.env.KONTIKI_TEXTMATE_NODE_DIR;
const require = createRequire(path.join(nodeDir, 'package.json'));
const vsctm = require('vscode-textmate');
const oniguruma = require('vscode-oniguruma');

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const ext = path.join(root, 'editors/vscode');
const pkg = JSON.parse(readFileSync(path.join(ext, 'package.json'), 'utf8'));
const grammarPath = path.join(ext, pkg.contributes.grammars[0].path);
const grammarText = readFileSync(grammarPath, 'utf8');
const grammarJson = JSON.parse(grammarText); // throws on invalid JSON
const scopeName = pkg.contributes.grammars[0].scopeName;
if (grammarJson.scopeName !== scopeName) {
  throw new Error(`grammar scopeName ${grammarJson.scopeName} != package.json ${scopeName}`);
}

const wasm = readFileSync(path.join(path.dirname(require.resolve('vscode-oniguruma')), 'onig.wasm')).buffer;
await oniguruma.loadWASM(wasm);
const registry = new vsctm.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (p) => new oniguruma.OnigScanner(p),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async (name) =>
    name === scopeName ? vsctm.parseRawGrammar(grammarText, grammarPath) : null,
});
const grammar = await registry.loadGrammar(scopeName);

function tokenize(text) {
  let stack = vsctm.INITIAL;
  const out = [];
  text.split('\n').forEach((line, i) => {
    const r = grammar.tokenizeLine(line, stack);
    for (const t of r.tokens) {
      out.push({ line: i + 1, text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes });
    }
    stack = r.ruleStack;
  });
  return { tokens: out, end: stack };
}

// [line (1-based), token text, scope the token must have]
const expected = [
  [1, '//! A sample for the grammar test: one of each construct.', 'comment.line.documentation.inner.kontiki'],
  [2, 'package', 'keyword.other.package.kontiki'],
  [2, 'sample', 'entity.name.namespace.kontiki'],
  [4, 'import', 'keyword.other.kontiki'],
  [4, 'common.kontiki', 'string.quoted.double.kontiki'],
  [6, '/*', 'comment.block.kontiki'],
  [6, ' A block comment. ', 'comment.block.kontiki'],
  [7, '/// Not found.', 'comment.line.documentation.kontiki'],
  [8, 'error', 'storage.type.error.kontiki'],
  [8, 'NOT_FOUND', 'variable.other.constant.error-code.kontiki'],
  [8, '404', 'constant.numeric.integer.kontiki'],
  [11, 'type', 'storage.type.alias.kontiki'],
  [11, 'ItemId', 'entity.name.type.alias.kontiki'],
  [11, 'uuid', 'support.type.primitive.kontiki'],
  [14, 'struct', 'storage.type.struct.kontiki'],
  [14, 'Point', 'entity.name.type.kontiki'],
  [16, 'x', 'variable.other.member.kontiki'],
  [16, 'i32', 'support.type.primitive.kontiki'],
  [16, '-5', 'constant.numeric.integer.kontiki'],
  [18, 'map', 'support.type.container.kontiki'],
  [18, 'list', 'support.type.container.kontiki'],
  [18, '?', 'keyword.operator.optional.kontiki'],
  [20, 'type', 'variable.other.member.kontiki'],
  [20, '\\"', 'constant.character.escape.kontiki'],
  [22, 'common', 'entity.name.namespace.kontiki'],
  [22, 'Origin', 'entity.name.type.kontiki'],
  [24, 'true', 'constant.language.kontiki'],
  [28, 'enum', 'storage.type.enum.kontiki'],
  [28, 'Kind', 'entity.name.type.kontiki'],
  [36, 'event', 'storage.type.event.kontiki'],
  [36, 'item.created', 'entity.name.event.kontiki'],
  [39, 'service', 'storage.type.service.kontiki'],
  [39, 'Items', 'entity.name.type.kontiki'],
  [42, 'header', 'keyword.other.kontiki'],
  [45, 'rpc', 'keyword.other.rpc.kontiki'],
  [45, 'get', 'entity.name.function.kontiki'],
  [45, 'u32', 'support.type.primitive.kontiki'],
  [45, '->', 'keyword.operator.arrow.kontiki'],
  [45, 'raises', 'keyword.other.kontiki'],
  [45, 'NOT_FOUND', 'variable.other.constant.error-code.kontiki'],
  [47, 'emits', 'keyword.other.emits.kontiki'],
  [47, 'item.created', 'entity.name.event.kontiki'],
  [50, 'on_event', 'keyword.other.on_event.kontiki'],
  [50, 'on_created', 'entity.name.function.kontiki'],
  [52, 'kontiki:allow', 'keyword.other.directive.allow.kontiki'],
  [52, 'unversioned-route', 'entity.name.tag.lint-rule.kontiki'],
  [54, 'http', 'keyword.other.http.kontiki'],
  [54, 'fetch', 'entity.name.function.kontiki'],
  [54, 'GET', 'keyword.other.http-method.kontiki'],
  [54, '{id}', 'variable.parameter.path.kontiki'],
  [54, 'query', 'keyword.other.kontiki'],
  [57, 'task', 'keyword.other.task.kontiki'],
  [57, 'every', 'keyword.other.kontiki'],
  [57, '30s', 'constant.numeric.duration.kontiki'],
  [60, 'cron', 'keyword.other.kontiki'],
  [60, '0 3 * * *', 'string.quoted.double.kontiki'],
];

let failures = 0;
const sample = path.join(ext, 'test/sample.kontiki');
const { tokens } = tokenize(readFileSync(sample, 'utf8'));
for (const [line, text, scope] of expected) {
  const found = tokens.filter((t) => t.line === line && t.text === text);
  if (!found.some((t) => t.scopes.includes(scope))) {
    failures++;
    const got = found.map((t) => t.scopes.join(' ')).join(' | ') || 'no such token';
    console.error(`grammar-test: ${path.relative(root, sample)}:${line}: \`${text}\` should have ${scope}; got ${got}`);
  }
}

// The end-of-file check can fail: an unterminated string leaves the stack deeper.
const topDepth = tokenize('package p;\n').end.depth;
if (tokenize('package p;\nerror E = "open\n').end.depth <= topDepth) {
  failures++;
  console.error('grammar-test: an unterminated string does not show in the rule stack');
}
const files = process.argv.slice(2);
for (const f of files) {
  const { end } = tokenize(readFileSync(f, 'utf8'));
  if (end.depth !== topDepth) {
    failures++;
    console.error(`grammar-test: ${f}: a string or block comment runs past the end of the file (rule stack depth ${end.depth})`);
  }
}

if (failures > 0) {
  console.error(`grammar-test: ${failures} failure(s)`);
  process.exit(1);
}
console.log(`grammar-test: ok: ${expected.length} scopes on the sample, ${files.length} files tokenized to the end`);
