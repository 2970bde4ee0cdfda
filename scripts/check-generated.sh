#!/usr/bin/env bash
# Fails when generated/ is not exactly what kontiki-codegen makes from idl/ now: the Rust and
# OpenAPI files (`generate`), the AsyncAPI documents in generated/asyncapi/ (`asyncapi`) and the
# Python package under generated/python (`python`).
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
    generate idl/*.kontiki --out generated --lib "${mode[@]}" ||
  ! cargo run --quiet --locked -p kontiki-codegen -- \
    asyncapi idl/*.kontiki --out generated "${mode[@]}"; then
  if [[ ${#mode[@]} -gt 0 ]]; then
    echo "check-generated: generated/ is stale; run scripts/check-generated.sh --fix and commit the result" >&2
  fi
  exit 1
fi

# Each example folder builds on its own, so it holds the contracts it imports as copies
# (idl/<name>.kontiki is a link to the one real file). The copies must not drift.
for copy in examples/*/*.kontiki; do
  canon="idl/$(basename "$copy")"
  [[ "$(readlink -f "$canon")" == "$(readlink -f "$copy")" ]] && continue
  if ! cmp -s "$copy" "$canon"; then
    if [[ ${#mode[@]} -eq 0 ]]; then
      cp "$canon" "$copy"
      echo "check-generated: copied $canon to $copy"
    else
      echo "check-generated: $copy differs from $canon; run scripts/check-generated.sh --fix" >&2
      exit 1
    fi
  fi
done
if ! cargo run --quiet --locked -p kontiki-codegen -- \
    python idl/*.kontiki --out generated/python/kontiki_generated "${mode[@]}"; then
  if [[ ${#mode[@]} -gt 0 ]]; then
    echo "check-generated: generated/python is stale; run scripts/check-generated.sh --fix and commit the result" >&2
  fi
  exit 1
fi
