#!/usr/bin/env bash
# Supply-chain checks with cargo-deny and the checked-in deny.toml:
#
#   scripts/deny.sh
#
# licences, duplicate and banned crates and sources always; advisories (the RustSec database)
# when the database can be had: fetched from GitHub when github.com answers, else a copy
# fetched earlier (~/.cargo/advisory-dbs) is used as it is, else the advisories check is left
# out and the script says so and why (it then still fails on any other finding).
# Installs cargo-deny with `cargo install cargo-deny --locked` when it is missing
# (KONTIKI_NO_INSTALL=1: fail instead, saying how to install it).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
ADVISORY_DB_URL="https://github.com/RustSec/advisory-db"

if ! cargo deny --version >/dev/null 2>&1; then
  if [[ "${KONTIKI_NO_INSTALL:-0}" == "1" ]]; then
    echo "deny: cargo-deny is not installed: cargo install cargo-deny --locked" >&2
    exit 1
  fi
  echo "deny: installing cargo-deny (cargo install cargo-deny --locked)"
  if ! cargo install cargo-deny --locked; then
    echo "deny: could not install cargo-deny; install it by hand: cargo install cargo-deny --locked" >&2
    exit 1
  fi
fi
cargo deny --version

if timeout 20 git ls-remote --heads "$ADVISORY_DB_URL" >/dev/null 2>&1; then
  echo "deny: $ADVISORY_DB_URL answers: all checks, advisories included"
  exec cargo deny --all-features check
fi
if compgen -G "$HOME/.cargo/advisory-dbs/*/crates" >/dev/null; then
  echo "deny: $ADVISORY_DB_URL does not answer; advisories from the copy in ~/.cargo/advisory-dbs (not refreshed)"
  exec cargo deny --all-features check --disable-fetch
fi
echo "deny: ADVISORIES NOT CHECKED: $ADVISORY_DB_URL cannot be fetched from this machine"
echo "deny: ($(timeout 20 git ls-remote --heads "$ADVISORY_DB_URL" 2>&1 | head -n 1))"
echo "deny: and no earlier copy is in ~/.cargo/advisory-dbs; checking licences, bans and sources"
exec cargo deny --all-features check bans licenses sources
