#!/usr/bin/env bash
# Load check of kontiki-rt's HTTP layer against a bare axum handler, in one run:
#
#   scripts/http-bench.sh                 (DURATION=10s CONNECTIONS=50 THREADS=2 by default)
#
# Builds the `http_demo` example in release mode and starts it with two ports: the kontiki-rt
# service (GET /api/v1/health through HttpRoute: flow scope, flow_id header, tracing span,
# JSON response) and, in the same process, a bare axum `GET /api/v1/health` returning the same
# JSON. Runs wrk against each (bare first, then kontiki-rt, then both again) and prints the
# requests/s and the ratio kontiki-rt / bare axum. A benchmark, not a test: the CI test run
# does not call it. Needs `wrk` (Debian, as root: apt-get install -y wrk).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-50}"
THREADS="${THREADS:-2}"

if ! command -v wrk >/dev/null 2>&1; then
  echo "http-bench: wrk is not installed. Install it (Debian, as root):" >&2
  echo "  apt-get update && apt-get install -y wrk" >&2
  exit 1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
cargo build -q --release -p kontiki-rt --example http_demo
DEMO="$CARGO_TARGET_DIR/release/examples/http_demo"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
BARE_PORT=$(free_port)
LOG=$(mktemp)
RUST_LOG=warn "$DEMO" "$PORT" "$BARE_PORT" >"$LOG" 2>&1 &
DEMO_PID=$!
cleanup() {
  kill "$DEMO_PID" 2>/dev/null || true
  wait "$DEMO_PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT
for _ in $(seq 300); do
  grep -q '^bare-axum http://' "$LOG" && break
  if ! kill -0 "$DEMO_PID" 2>/dev/null; then cat "$LOG" >&2; exit 1; fi
  sleep 0.1
done
KONTIKI="http://127.0.0.1:$PORT/api/v1/health"
BARE="http://127.0.0.1:$BARE_PORT/api/v1/health"
curl -fsS -D - "$KONTIKI" | grep -qi '^flow_id:' || { echo "http-bench: no flow_id header from $KONTIKI" >&2; exit 1; }

# Prints the requests/s of one wrk run (after a short warm-up).
rps() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$1" >/dev/null
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$1")
  echo "$out" >&2
  if echo "$out" | grep -q 'Non-2xx'; then echo "http-bench: non-2xx answers from $1" >&2; exit 1; fi
  echo "$out" | awk '/^Requests\/sec:/ {print $2}'
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency <url>   ($(nproc) cores, server and wrk share them)"
declare -a B K
for round in 1 2; do
  echo "-- round $round: bare axum $BARE" >&2
  B+=("$(rps "$BARE")")
  echo "-- round $round: kontiki-rt $KONTIKI" >&2
  K+=("$(rps "$KONTIKI")")
done
python3 - "${B[@]}" "${K[@]}" <<'PY'
import sys
b = [float(x) for x in sys.argv[1:3]]
k = [float(x) for x in sys.argv[3:5]]
mb, mk = sum(b) / 2, sum(k) / 2
print(f"bare axum   : {b[0]:>10.0f} {b[1]:>10.0f}  req/s  (mean {mb:.0f})")
print(f"kontiki-rt  : {k[0]:>10.0f} {k[1]:>10.0f}  req/s  (mean {mk:.0f})")
print(f"ratio kontiki-rt / bare axum: {mk / mb:.2f}")
PY
