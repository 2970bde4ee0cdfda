#!/usr/bin/env bash
# Fails when generated/ (the Rust crate and the Python package under generated/python) is not
# exactly what kontiki-codegen makes from idl/ now.
#
#   scripts/check-generated.sh            # check (CI, scripts/test.sh)
#   scripts/check-generated.sh --fix      # regenerate generated/ in place
set -euo pipefail
cd "$(dirname "$0")/.."

mode=(--check)
if [[ "${1:-}" == "--fix" ]]; then
  mode=()
fi
if ! cargo run --quiet --locked -p kontiki-codegen -- \
    generate idl/*.kontiki --out generated --lib "${mode[@]}"; then
  if [[ ${#mode[@]} -gt 0 ]]; then
    echo "check-generated: generated/ is stale; run scripts/check-generated.sh --fix and commit the result" >&2
  fi
  exit 1
fi
if ! cargo run --quiet --locked -p kontiki-codegen -- \
    python idl/*.kontiki --out generated/python/kontiki_generated "${mode[@]}"; then
  if [[ ${#mode[@]} -gt 0 ]]; then
    echo "check-generated: generated/python is stale; run scripts/check-generated.sh --fix and commit the result" >&2
  fi
  exit 1
fi
