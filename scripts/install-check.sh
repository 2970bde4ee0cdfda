#!/usr/bin/env bash
# `cargo install --path` of the three binaries from a fresh clone of HEAD, into a root of its
# own, then each installed binary answers --version (and `kontiki` writes completions and a
# man page). Run by scripts/test.sh; `--release` for a release build (default: --debug, which
# reuses the test build's dependencies in target/).
#
#   scripts/install-check.sh [--release]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=(--debug)
[[ "${1:-}" == "--release" ]] && profile=()

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-hardlinks "$ROOT" "$tmp/src"
echo "install-check: fresh clone of $(git -C "$tmp/src" rev-parse --short HEAD)"

for crate in kontiki-cli kontiki-codegen kontiki-registry; do
  CARGO_TARGET_DIR="$ROOT/target" cargo install --quiet --locked "${profile[@]}" \
    --path "$tmp/src/$crate" --root "$tmp/root"
done

bin="$tmp/root/bin"
for b in kontiki kontiki-codegen kontiki-registry; do
  [[ -x "$bin/$b" ]] || { echo "install-check: $b was not installed" >&2; exit 1; }
  printf 'install-check: %s\n' "$("$bin/$b" --version)"
done
"$bin/kontiki" completions bash | grep -q "_kontiki()" \
  || { echo "install-check: kontiki completions bash printed no completion function" >&2; exit 1; }
"$bin/kontiki" man | grep -q '^\.TH' \
  || { echo "install-check: kontiki man printed no man page" >&2; exit 1; }
echo "install-check: kontiki, kontiki-codegen and kontiki-registry installed and run"
