#!/usr/bin/env bash
# Screenshot of the Swagger UI a kontiki-rt service serves, in headless Chromium:
#
#   scripts/swagger-screenshot.sh            -> target/swagger.png
#
# Starts the `http_demo` example (no broker needed) on a free port, opens
# /api/v1/docs/swagger with Chromium, writes target/swagger.png, stops the demo.
# Chromium runs with background networking off: the page must render from the
# service's own (vendored) assets.
#
# NOT part of the CI test run (scripts/test.sh): CI cannot rely on Chromium being
# installed. Needs Debian's `chromium` (as root: apt-get install -y chromium).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/target/swagger.png"

CHROMIUM=""
for c in chromium chromium-browser google-chrome; do
  if command -v "$c" >/dev/null 2>&1; then CHROMIUM=$(command -v "$c"); break; fi
done
if [[ -z "$CHROMIUM" ]]; then
  echo "swagger-screenshot: chromium is not installed. Install it (Debian, as root):" >&2
  echo "  apt-get update && apt-get install -y chromium" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build -q -p kontiki-rt --example http_demo
DEMO="$CARGO_TARGET_DIR/debug/examples/http_demo"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp)
PROFILE=$(mktemp -d)
"$DEMO" "$PORT" >"$LOG" 2>&1 &
DEMO_PID=$!
cleanup() {
  kill "$DEMO_PID" 2>/dev/null || true
  wait "$DEMO_PID" 2>/dev/null || true
  rm -rf "$PROFILE" "$LOG"
}
trap cleanup EXIT

# Wait (at most 30 s) until the demo says where it listens.
for _ in $(seq 300); do
  grep -q '^kontiki-rt http://' "$LOG" && break
  if ! kill -0 "$DEMO_PID" 2>/dev/null; then cat "$LOG" >&2; exit 1; fi
  sleep 0.1
done
BASE=$(grep -m1 '^kontiki-rt http://' "$LOG" | cut -d' ' -f2)
[[ -n "$BASE" ]] || { echo "swagger-screenshot: the demo did not start:" >&2; cat "$LOG" >&2; exit 1; }
URL="$BASE/api/v1/docs/swagger"
echo "swagger-screenshot: $URL"

mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
# --virtual-time-budget lets the page's scripts fetch the document and render before the shot.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run \
  --user-data-dir="$PROFILE" --hide-scrollbars --virtual-time-budget=10000 \
  --screenshot="$OUT" --window-size=1280,900 "$URL" >/dev/null 2>&1 || true
if [[ ! -s "$OUT" ]]; then
  echo "swagger-screenshot: chromium wrote no screenshot" >&2
  exit 1
fi
echo "swagger-screenshot: wrote $OUT"
