#!/usr/bin/env bash
# Validates the AsyncAPI document of every service of idl/ with the real AsyncAPI parser
# (@asyncapi/parser, pinned below, installed with npm under target/node/asyncapi): generates
# them afresh into target/asyncapi-check, then fails on any diagnostic of error severity.
#
#   scripts/asyncapi-validate.sh              # idl/*.kontiki
#   scripts/asyncapi-validate.sh FILE.json…   # given documents instead
#
# Needs node (18 or later) and npm; installs nothing else. Run by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PARSER_VERSION=3.6.3
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
NODE_DIR="$TARGET/node/asyncapi"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "asyncapi-validate: $tool is not installed; install Node.js 18 or later (sudo apt-get install -y nodejs npm)" >&2
    exit 1
  fi
done

installed=$(node -p "try { require('$NODE_DIR/node_modules/@asyncapi/parser/package.json').version } catch { '' }" 2>/dev/null || true)
if [[ "$installed" != "$PARSER_VERSION" ]]; then
  echo "asyncapi-validate: installing @asyncapi/parser@$PARSER_VERSION into $NODE_DIR" >&2
  mkdir -p "$NODE_DIR"
  [[ -f "$NODE_DIR/package.json" ]] || echo '{"name":"kontiki-asyncapi-validate","private":true}' > "$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --save-exact --ignore-scripts "@asyncapi/parser@$PARSER_VERSION" >&2)
fi

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  out="$TARGET/asyncapi-check"
  rm -rf "$out"
  cargo run --quiet --locked -p kontiki-codegen -- asyncapi idl/*.kontiki --out "$out"
  files=("$out"/asyncapi/*.json)
  n_services=$(cargo run --quiet --locked -p kontiki-codegen -- check idl/*.kontiki | sed -n 's/.*: \([0-9]*\) services\{0,1\},.*/\1/p')
  if [[ -n "$n_services" && "$n_services" != "${#files[@]}" ]]; then
    echo "asyncapi-validate: idl/ has $n_services services but ${#files[@]} AsyncAPI documents were generated" >&2
    exit 1
  fi
fi
KONTIKI_ASYNCAPI_NODE_DIR="$NODE_DIR" node "$ROOT/scripts/asyncapi-validate.mjs" "${files[@]}"
