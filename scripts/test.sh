#!/usr/bin/env bash
# The one command that passes the kontiki-rs tests on a fresh machine:
#
#   scripts/test.sh
#
# 1. makes sure a RabbitMQ answers at KONTIKI_AMQP_URL (starts or installs one when it may);
# 2. runs cargo fmt --check, clippy -D warnings, the tests and rustdoc -D warnings;
# 3. checks that generated/ is fresh and that its AsyncAPI documents pass the AsyncAPI parser;
# 4. runs the interop tests against the real Python Kontiki (a venv under target/);
# 5. runs cargo deny (scripts/deny.sh) and starts a TLS RabbitMQ node of its own
#    (scripts/tls-broker.sh, amqps on localhost:5675) for the TLS tests, stopped at the end
#    (kontiki-rt/tests/tls.rs starts a second one requiring client certificates, on 5685);
# 6. prints a summary and exits non-zero on any failure.
#
# Tests that restart or disturb the broker live in test binaries named `disrupt_*`; they run
# after all others, one at a time. The fault-injection suite (faults/, package kontiki-faults)
# runs last at CI scale, one scenario at a time, on a RabbitMQ node of its own
# (scripts/broker.sh faults-start, port 5673), which is stopped afterwards; its scenarios 13
# and 14 and the bench smoke's scale-out section use the three-node cluster of
# scripts/cluster.sh (ports 5681-5683), started before the bench smoke and taken down at the
# end (a step checks that no node process or port is left).
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
export KONTIKI_AMQP_URL="${KONTIKI_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"
LOG_DIR="$ROOT/target/test-logs"
mkdir -p "$LOG_DIR"

# shellcheck source=scripts/broker.sh
source "$ROOT/scripts/broker.sh"
# shellcheck source=scripts/tools.sh
source "$ROOT/scripts/tools.sh"

declare -a STEP_NAMES=() STEP_RESULTS=() STEP_SECONDS=()
FAILED=0

step() {
  local name="$1"; shift
  local start=$SECONDS rc
  printf '\n==> %s\n' "$name"
  "$@"
  rc=$?
  STEP_NAMES+=("$name")
  STEP_SECONDS+=("$((SECONDS - start))")
  if [[ $rc -eq 0 ]]; then STEP_RESULTS+=("ok"); else STEP_RESULTS+=("FAILED (exit $rc)"); FAILED=1; fi
  return $rc
}

summary() {
  printf '\n==> summary\n'
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-34s %-16s %4ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
  done
  # The test runners' own closing lines, last, so the output ends with them.
  if [[ -s "$LOG_DIR/summary-lines" ]]; then
    printf '\n'
    cat "$LOG_DIR/summary-lines"
  fi
}

have_nextest() { cargo nextest --version >/dev/null 2>&1; }

# Runs tests with nextest (or cargo test), keeping its closing summary line for the end.
# run_tests with the broker-restart tests pointed at the fault-injection node (port 5673).
run_tests_on_faults_node() {
  KONTIKI_AMQP_URL="$(bash "$ROOT/scripts/broker.sh" faults-url)" \
    KONTIKI_RABBITMQCTL_NODE="${FAULTS_NODE:-kontiki-faults@localhost}" run_tests "$@"
}

run_tests() {
  local log="$1"; shift
  local rc
  if have_nextest; then
    cargo nextest run --no-fail-fast "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    grep -E '^\s*Summary \[' "$log" | tail -n 1 | sed 's/^ *//' >> "$LOG_DIR/summary-lines"
  else
    cargo test --no-fail-fast "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    grep -E '^test result:' "$log" | tail -n 1 >> "$LOG_DIR/summary-lines"
  fi
  return "$rc"
}

: > "$LOG_DIR/summary-lines"

step "broker (RabbitMQ answers)" broker_ensure || { summary; exit 1; }

# A vhost of its own per run, when the broker is local and we may administer it: every queue a
# test leaves behind goes away with it. KONTIKI_TEST_VHOST=0 (or an explicit non-default
# KONTIKI_AMQP_URL) uses the URL as given.
make_test_vhost() {
  local vhost="kontiki-test-$$"
  broker_sudo timeout 60 rabbitmqctl -q add_vhost "$vhost" >/dev/null 2>&1 || return 1
  broker_sudo timeout 60 rabbitmqctl -q set_permissions -p "$vhost" guest ".*" ".*" ".*" >/dev/null 2>&1 || return 1
  TEST_VHOST="$vhost"
  # Bounded: a broker that stopped answering must not hold the run past its budget (a CI run
  # once printed its summary and then hung here until it was killed).
  trap 'broker_sudo timeout 120 rabbitmqctl -q delete_vhost "$TEST_VHOST" >/dev/null 2>&1 || echo "test.sh: could not delete vhost $TEST_VHOST (broker did not answer within 120 s)"' EXIT
  export KONTIKI_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$vhost"
  echo "test.sh: using vhost $vhost (deleted at exit)"
}
if [[ "${KONTIKI_TEST_VHOST:-1}" != "0" && "$KONTIKI_AMQP_URL" == "amqp://guest:guest@127.0.0.1:5672/%2f" ]] \
  && broker_is_local && broker_can_admin; then
  make_test_vhost || echo "test.sh: could not create a test vhost; using $KONTIKI_AMQP_URL"
fi
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
step "rustdoc -D warnings" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# kontiki-rt's features: the crate builds without any, and with each optional one alone.
step "kontiki-rt without default features" cargo check -p kontiki-rt --no-default-features --locked
step "kontiki-rt each feature alone (http, metrics, swagger-ui, cli, memory, testing, otel)" bash -c \
  'for f in http metrics swagger-ui cli memory testing otel; do
     cargo check -q -p kontiki-rt --no-default-features --features "$f" --locked || { echo "feature $f alone does not build"; exit 1; }
   done'
# The kontiki CLI is a client: it builds without kontiki-rt's server features.
step "kontiki-cli without kontiki-rt's HTTP server" bash -c \
  '! cargo tree -q -p kontiki-cli -e normal --locked --prefix none | grep -qE "^(axum|utoipa-swagger-ui|metrics-exporter-prometheus) "'
# kontiki-rt's files import each other one way only (docs/ARCHITECTURE.md).
step "kontiki-rt module layers" python3 "$ROOT/scripts/check-module-cycles.py" kontiki-rt/src \
  --layers config,error,transport,observe,clients,handler,entrypoints,service,cli,testing

if [[ -x "$ROOT/scripts/check-generated.sh" ]]; then
  step "generated/ is fresh" "$ROOT/scripts/check-generated.sh"
fi

# The AsyncAPI document of every service of idl/, checked by the real AsyncAPI parser
# (@asyncapi/parser from npm, installed under target/node/asyncapi).
step "AsyncAPI documents valid (@asyncapi/parser)" "$ROOT/scripts/asyncapi-validate.sh"

# The TextMate grammar of editors/vscode, tokenized by vscode-textmate + vscode-oniguruma (npm,
# installed under target/node/textmate): expected scopes on a sample, every idl/ file to its end.
step "TextMate grammar (vscode-textmate)" "$ROOT/scripts/grammar-test.sh"

# Contracts in idl/ stay formatted and lint-clean (kontiki-idl/tests/{fmt,lint}.rs check the
# same through the library; this runs the CLI users run).
step "idl/ formatted (kontiki-codegen fmt --check)" bash -c "cd '$ROOT' && cargo run --quiet --locked -p kontiki-codegen -- fmt --check idl/*.kontiki"
step "idl/ lint-clean (kontiki-codegen lint --deny-warnings)" bash -c "cd '$ROOT' && cargo run --quiet --locked -p kontiki-codegen -- lint --deny-warnings idl/*.kontiki"

# The interop tests find the venv through KONTIKI_PY; make it once here.
if [[ -x "$ROOT/scripts/python-env.sh" ]]; then
  if step "python venv (kontiki==2.3.2)" bash -c "'$ROOT/scripts/python-env.sh' > '$LOG_DIR/python-env.out'"; then
    KONTIKI_PY=$(tail -n 1 "$LOG_DIR/python-env.out")
    export KONTIKI_PY
  fi
fi
# The Python package generated from idl/ (and the interop scripts built on it) type-check
# strictly; the cache stays under target/.
if [[ -n "${KONTIKI_PY:-}" ]]; then
  step "generated/python: mypy --strict" bash -c "cd '$ROOT' && MYPYPATH=generated/python '$KONTIKI_PY' -m mypy --strict --cache-dir target/mypy-cache generated/python/kontiki_generated examples/tests/py"
fi
# pyright (the npm package, pinned, installed once under target/) in strict mode over the package.
if [[ -n "${KONTIKI_PY:-}" ]]; then
  if command -v npm >/dev/null 2>&1; then
    step "generated/python: pyright strict" bash -c "cd '$ROOT' &&
      { [[ -x target/pyright/node_modules/.bin/pyright ]] ||
        npm install --silent --no-audit --no-fund --prefix target/pyright pyright@1.1.414; } &&
      target/pyright/node_modules/.bin/pyright -p generated/python --pythonpath '$KONTIKI_PY'"
  else
    echo "test.sh: npm not found; pyright over generated/python not run (mypy --strict was)"
  fi
fi

# Supply chain: licences, duplicates, bans and sources always; advisories when the RustSec
# advisory database can be fetched (scripts/deny.sh says which ran and why).
step "cargo deny (supply chain)" bash "$ROOT/scripts/deny.sh"

# The TLS node (scripts/tls-broker.sh: a private CA, amqps on localhost:5675) for the TLS tests,
# proved with openssl first; stopped at the end. KONTIKI_TLS_* tell the tests where it is.
if step "TLS broker node (amqps :5675)" bash "$ROOT/scripts/tls-broker.sh" start; then
  step "TLS handshakes (CA, host name, client certificates)" bash "$ROOT/scripts/tls-broker.sh" check
  eval "$(bash "$ROOT/scripts/tls-broker.sh" env)"
fi
# promtool (Debian's prometheus package) validates the /metrics exposition in the tests.
step "promtool (metrics exposition checks)" ensure_apt_tool promtool prometheus

# The workspace's minimum Rust version (Cargo.toml `rust-version`): the generated-code compile
# tests (kontiki-codegen/tests/compile_anywhere.rs) build the runtime and generated code with it.
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)
step "Rust $MSRV toolchain (MSRV)" ensure_rust_toolchain "$MSRV"

# One line on the shared broker's health (sockets against their limit, alarms, free disk), and
# on a failed step the connections still open in the test vhost by client name: a broker that
# stops answering mid-run (sockets used up, an alarm) then shows in the log, not only as
# timeouts in the tests that came after.
broker_health() {
  broker_is_local && broker_can_admin || return 0
  local status
  status=$(broker_sudo timeout 30 rabbitmqctl -q status 2>&1) || {
    echo "test.sh: shared broker: rabbitmqctl status did not answer within 30 s"
    return 0
  }
  printf 'test.sh: shared broker: %s; %s; alarms: %s; %s\n' \
    "$(grep -m1 -E '^Sockets:' <<<"$status")" \
    "$(grep -m1 -E '^Connection count:' <<<"$status")" \
    "$(awk '/Alarms/ {on=1; next} on && /\033\[1m|^[A-Z][a-z ]+$/ {exit} on && NF' <<<"$status" | tr '\n' ' ')" \
    "$(grep -m1 -E '^Free disk space:' <<<"$status")"
  if [[ "${1:-}" == "--connections" && -n "${TEST_VHOST:-}" ]]; then
    echo "test.sh: connections open in $TEST_VHOST, by client name (most first):"
    broker_sudo timeout 30 rabbitmqctl -q list_connections -p "$TEST_VHOST" client_properties 2>/dev/null \
      | grep -o '{"connection_name",longstr,<<"[^"]*' | sed 's/.*<<"//; s/ [0-9a-f-]\{20,\}.*//' \
      | sort | uniq -c | sort -rn | head -n 20
  fi
}

# The example binaries the example tests run, built here with the same command their test
# library runs once per test process (examples/tests/src/lib.rs, `example_bin`): built inside
# a test, a cold build on 2 cores can outlast nextest's 3-minute limit for that test.
examples_build() {
  local args=(-p quickstart -p example-client) e
  for e in $(sed -n '/^pub const EXAMPLES/,/^];/p' "$ROOT/examples/tests/src/lib.rs" | grep -o '"[a-z0-9-]*"' | tr -d '"'); do
    args+=(-p "$e")
  done
  (cd "$ROOT" && cargo build --quiet --locked "${args[@]}")
}
step "example binaries (built before the tests that run them)" examples_build

if have_nextest; then
  broker_health
  step "tests" run_tests "$LOG_DIR/tests.log" --workspace --locked \
    -E 'not binary(/^disrupt_/) and not package(kontiki-faults)' || broker_health --connections
  broker_health
  # They restart their broker: give them the fault-injection node, never the shared broker.
  if cargo nextest list --workspace --locked -E 'binary(/^disrupt_/)' 2>/dev/null | grep -q .; then
    step "fault-injection broker node" bash "$ROOT/scripts/broker.sh" faults-start
    step "broker-disrupting tests (serial, own node)" run_tests_on_faults_node "$LOG_DIR/disrupt.log" --workspace --locked \
      -E 'binary(/^disrupt_/)' --test-threads 1
  fi
else
  echo "test.sh: cargo-nextest not found; using cargo test (install it with: cargo install cargo-nextest --locked)"
  step "tests" run_tests "$LOG_DIR/tests.log" --workspace --exclude kontiki-faults --locked -- --skip disrupt_ --skip registry
  # A registry is one service name (`ServiceRegistry`) per vhost, and cargo test runs a binary's
  # tests in one process (one vhost): tests with `registry` in their name take turns, as the
  # nextest group `registry` (.config/nextest.toml) makes them.
  step "registry tests (one at a time)" run_tests "$LOG_DIR/registry.log" --workspace --exclude kontiki-faults --locked -- registry --skip disrupt_ --test-threads 1
  for f in */tests/disrupt_*.rs; do
    [[ -e "$f" ]] || continue
    crate="${f%%/*}"; name=$(basename "$f" .rs)
    bash "$ROOT/scripts/broker.sh" faults-start
    step "$name (serial, own node)" run_tests_on_faults_node "$LOG_DIR/$name.log" -p "$crate" --locked --test "$name" -- --test-threads 1
  done
fi

# OpenTelemetry traces: kontiki-rt's `otel` feature is off in the workspace build above, so its
# tests (required-features = otel) run here: one trace across HTTP, RPC and event in two
# services exported to an OTLP receiver in the test, and traced Rust beside Python Kontiki.
# (run_tests takes the same arguments with nextest and with cargo test.)
step "otel traces (kontiki-rt --features otel)" run_tests "$LOG_DIR/otel.log" -p kontiki-rt --features otel --locked \
  --test otel_traces --test otel_interop

# The benchmark harness of `make bench`, as a smoke test so it cannot rot: tiny sizes, one
# round, the dev profile (its build is the tests' build). No figure is asserted; the report
# lands in target/bench/report.md as with `make bench`.
bench_smoke() {
  ensure_apt_tool wrk wrk || return 1
  BENCH_QUICK=1 BENCH_RUNS=1 BENCH_PROFILE=dev python3 "$ROOT/scripts/bench/run.py" \
    > "$LOG_DIR/bench-smoke.out" 2> "$LOG_DIR/bench-smoke.err" || {
    tail -n 30 "$LOG_DIR/bench-smoke.err"
    return 1
  }
  tail -n 1 "$LOG_DIR/bench-smoke.err"
}
# The three-node cluster for the bench smoke's scale-out section and the fault suite's
# scenarios 13 and 14 (started once for both; the fault suite takes it down).
step "three-node RabbitMQ cluster (scripts/cluster.sh up)" bash "$ROOT/scripts/cluster.sh" up
step "bench harness smoke (BENCH_QUICK=1)" bench_smoke
# `cargo install --path` of kontiki, kontiki-codegen and kontiki-registry from a fresh clone.
step "cargo install --path (fresh clone, three binaries)" bash "$ROOT/scripts/install-check.sh"
# The Dockerfiles of the registry and of compute-api: built with a Docker daemon, else linted.
step "Dockerfiles (built, or linted without a Docker daemon)" bash "$ROOT/scripts/dockerfile-check.sh"

# The fault-injection suite at CI scale (`make faults` runs it at full scale).
if have_nextest; then
  step "fault-injection suite (CI scale)" run_tests "$LOG_DIR/faults.log" -p kontiki-faults --locked --test-threads 1
else
  step "fault-injection suite (CI scale)" run_tests "$LOG_DIR/faults.log" -p kontiki-faults --locked -- --test-threads 1
fi
bash "$ROOT/scripts/broker.sh" faults-stop >/dev/null 2>&1 || true
# Normally down already (the fault suite's cluster test takes it down); checks no node is left.
step "three-node cluster down (no node, no port left)" bash "$ROOT/scripts/cluster.sh" down
bash "$ROOT/scripts/tls-broker.sh" stop >/dev/null 2>&1 || true
# The node requiring client certificates that kontiki-rt/tests/tls.rs starts and stops itself
# (stopped here too in case the test was killed before it could).
TLS_NODE=kontiki-tls-mtls@localhost bash "$ROOT/scripts/tls-broker.sh" stop >/dev/null 2>&1 || true
bash "$ROOT/scripts/broker.sh" crash-stop >/dev/null 2>&1 || true

summary
exit "$FAILED"
