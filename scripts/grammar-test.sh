#!/usr/bin/env bash
# Tests the TextMate grammar of editors/vscode with the engine VS Code uses: vscode-textmate
# and vscode-oniguruma from npm (pinned below, installed under target/node/textmate). Checks
# the expected scopes of editors/vscode/test/sample.kontiki (itself checked and formatted by
# kontiki-codegen first) and that every idl/*.kontiki tokenizes to its end.
#
#   scripts/grammar-test.sh
#
# Needs node (18 or later) and npm. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TEXTMATE_VERSION=9.3.2
ONIGURUMA_VERSION=2.0.1
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NODE_DIR="$TARGET/node/textmate"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "grammar-test: $tool is not installed; install Node.js 18 or later (sudo apt-get install -y nodejs npm)" >&2
    exit 1
  fi
done

version() {
  node -p "try { require('$NODE_DIR/node_modules/$1/package.json').version } catch { '' }" 2>/dev/null || true
}
if [[ "$(version vscode-textmate)" != "$TEXTMATE_VERSION" || "$(version vscode-oniguruma)" != "$ONIGURUMA_VERSION" ]]; then
  echo "grammar-test: installing vscode-textmate@$TEXTMATE_VERSION vscode-oniguruma@$ONIGURUMA_VERSION into $NODE_DIR" >&2
  mkdir -p "$NODE_DIR"
  [[ -f "$NODE_DIR/package.json" ]] || echo '{"name":"kontiki-grammar-test","private":true}' > "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --save-exact --ignore-scripts \
    "vscode-textmate@$TEXTMATE_VERSION" "vscode-oniguruma@$ONIGURUMA_VERSION" >&2)
fi

# The sample is a real contract.
cargo run --quiet --locked -p kontiki-codegen -- check editors/vscode/test/sample.kontiki >/dev/null
cargo run --quiet --locked -p kontiki-codegen -- fmt --check editors/vscode/test/*.kontiki >/dev/null
KONTIKI_TEXTMATE_NODE_DIR="$NODE_DIR" node "$ROOT/scripts/grammar-test.mjs" idl/*.kontiki editors/vscode/test/*.kontiki kontiki-idl/tests/fmt/*.kontiki
