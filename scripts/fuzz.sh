#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 60) each.
#
#   FUZZ_SECONDS=300 scripts/fuzz.sh            all six targets
#   FUZZ_TARGETS="idl_check config_merge" scripts/fuzz.sh
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`rustup toolchain
# install nightly`; libFuzzer's sanitizer flags are nightly-only). The corpus grows in
# fuzz/corpus/<target>/ (not committed), seeded from fuzz/seeds/<target>/ and
# fuzz/regressions/<target>/. A crash leaves its input in fuzz/artifacts/<target>/ and fails
# the run: fix it, then copy the input into fuzz/regressions/<target>/ so the test suite
# replays it (kontiki-rt/tests/fuzz_props.rs, kontiki-idl/tests/fuzz_no_panic.rs).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
TARGETS="${FUZZ_TARGETS:-idl_check rpc_request event_payload config_merge header_tables registry_body}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 1
fi
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  echo "fuzz: no $TOOLCHAIN toolchain: rustup toolchain install $TOOLCHAIN" >&2
  exit 1
fi
cargo "+$TOOLCHAIN" fuzz build
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  dirs=("corpus/$t" "seeds/$t")
  [ -d "regressions/$t" ] && dirs+=("regressions/$t")
  echo "== fuzz $t for ${SECONDS_EACH}s"
  cargo "+$TOOLCHAIN" fuzz run "$t" "${dirs[@]}" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048
done
echo "fuzz: no crash in $TARGETS (${SECONDS_EACH}s each)"
