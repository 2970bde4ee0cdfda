#!/usr/bin/env bash
# Start, stop and check the local RabbitMQ that kontiki-rs tests and examples use.
#
#   scripts/broker.sh ensure   # make sure a broker answers at KONTIKI_AMQP_URL (start or install one)
#   scripts/broker.sh start    # start the installed rabbitmq-server, detached
#   scripts/broker.sh stop     # stop it
#   scripts/broker.sh status   # say whether a broker answers at KONTIKI_AMQP_URL
#   scripts/broker.sh faults-start  # start the fault-injection suite's own RabbitMQ node
#   scripts/broker.sh faults-stop   # stop it
#   scripts/broker.sh faults-url    # print its AMQP URL
#   scripts/broker.sh crash-start   # start the crash/alarm node of the suite (port 5676)
#   scripts/broker.sh crash-stop    # stop it
#
# The fault-injection suite (faults/, `make faults`) restarts its broker and closes every
# connection on it, so it gets a node of its own: RABBITMQ_NODENAME kontiki-faults@localhost
# (FAULTS_NODE), AMQP port 5673 (FAULTS_PORT), distribution port FAULTS_PORT + 20000, data and
# logs under target/faults-broker, no plugins. The node uses the Debian package's Erlang cookie,
# so `rabbitmqctl -n kontiki-faults@localhost ...` reaches it.
#
# The scenarios that kill -9 the broker's Erlang VM or raise its resource alarms use a second
# node, kontiki-faults-crash@localhost (CRASH_NODE) on port 5676 (CRASH_PORT), data under
# target/faults-crash-broker; its VM's pid is in that directory's `pid` file.
#
# The script can also be sourced; it then defines the functions below without running anything.
set -uo pipefail

KONTIKI_AMQP_URL="${KONTIKI_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
BROKER_START_TIMEOUT="${BROKER_START_TIMEOUT:-90}"

broker_log() { printf 'broker: %s\n' "$*" >&2; }

# Prints "host port" parsed from KONTIKI_AMQP_URL.
broker_endpoint() {
  local rest hostport host port scheme
  scheme="${KONTIKI_AMQP_URL%%://*}"
  rest="${KONTIKI_AMQP_URL#*://}"
  rest="${rest%%/*}"
  hostport="${rest##*@}"
  if [[ "$hostport" == \[* ]]; then
    host="${hostport%%]*}"; host="${host#[}"
    port="${hostport##*]:}"; [[ "$port" == "$hostport" ]] && port=""
  else
    host="${hostport%%:*}"
    port="${hostport##*:}"; [[ "$port" == "$hostport" ]] && port=""
  fi
  if [[ -z "$port" ]]; then
    if [[ "$scheme" == "amqps" ]]; then port=5671; else port=5672; fi
  fi
  printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# True when something at the URL's host:port answers the AMQP protocol header.
broker_answers() {
  local host port reply
  read -r host port < <(broker_endpoint)
  reply=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "AMQP\x00\x00\x09\x01" >&3
    head -c 4 <&3' "$host" "$port" 2>/dev/null | tr -d '\0' | head -c 1) || return 1
  # A broker answers the header with a Connection.Start method frame (frame type 1).
  [[ -n "$reply" ]] || return 1
  return 0
}

broker_is_local() {
  local host port
  read -r host port < <(broker_endpoint)
  [[ "$host" == "127.0.0.1" || "$host" == "localhost" || "$host" == "::1" ]]
}

broker_can_admin() { [[ "$(id -u)" == "0" ]] || sudo -n true 2>/dev/null; }

broker_sudo() { if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo -n "$@"; fi; }

broker_start() {
  if ! command -v rabbitmq-server >/dev/null 2>&1 && [[ ! -x /usr/sbin/rabbitmq-server ]]; then
    broker_log "rabbitmq-server is not installed"
    return 1
  fi
  if ! broker_can_admin; then
    broker_log "starting rabbitmq-server needs root (or password-less sudo)"
    return 1
  fi
  export PATH="$PATH:/usr/sbin:/sbin"
  if broker_sudo timeout 20 rabbitmqctl -q status >/dev/null 2>&1; then
    broker_log "rabbitmq-server is already running"
  else
    broker_log "starting rabbitmq-server (detached)"
    broker_sudo rabbitmq-server -detached || return 1
  fi
  broker_log "waiting for it (at most ${BROKER_START_TIMEOUT}s)"
  # `rabbitmqctl await_startup` fails at once while the Erlang node is not registered yet (the
  # first second after -detached), so poll: the node first, then the AMQP port.
  local deadline=$((SECONDS + BROKER_START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if broker_sudo timeout 30 rabbitmqctl -q await_startup --timeout 30 >/dev/null 2>&1 && broker_answers; then
      return 0
    fi
    sleep 1
  done
  broker_log "rabbitmq-server did not finish starting within ${BROKER_START_TIMEOUT}s"
  return 1
}

broker_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    broker_log "apt-get is not available, cannot install rabbitmq-server"
    return 1
  fi
  if ! broker_can_admin; then
    broker_log "installing rabbitmq-server needs root (or password-less sudo)"
    return 1
  fi
  broker_log "installing the Debian package rabbitmq-server"
  broker_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    && broker_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
}

broker_fail_message() {
  local host port
  read -r host port < <(broker_endpoint)
  cat >&2 <<MSG
broker: no RabbitMQ answers at ${host}:${port} (KONTIKI_AMQP_URL=${KONTIKI_AMQP_URL}).
broker: the tests need a real broker and do not skip without one. Fix it with one of:
broker:   sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
broker:   sudo rabbitmq-server -detached            (when it is installed but stopped)
broker:   export KONTIKI_AMQP_URL=amqp://USER:PASS@HOST:PORT/VHOST   (a broker that answers)
MSG
}

# Makes sure a broker answers: uses a running one, else starts, else installs and starts.
broker_ensure() {
  if broker_answers; then
    broker_log "RabbitMQ answers at $(broker_endpoint | tr ' ' ':')"
    return 0
  fi
  if broker_is_local; then
    if command -v rabbitmq-server >/dev/null 2>&1 || [[ -x /usr/sbin/rabbitmq-server ]]; then
      broker_start || true
    elif broker_install; then
      broker_start || true
    fi
  fi
  if broker_answers; then
    broker_log "RabbitMQ answers at $(broker_endpoint | tr ' ' ':')"
    return 0
  fi
  broker_fail_message
  return 1
}

broker_stop() {
  export PATH="$PATH:/usr/sbin:/sbin"
  broker_sudo rabbitmqctl -q stop
}

broker_status() {
  if broker_answers; then
    echo "RabbitMQ answers at $(broker_endpoint | tr ' ' ':')"
  else
    echo "no RabbitMQ answers at $(broker_endpoint | tr ' ' ':')"
    return 1
  fi
}

FAULTS_NODE="${FAULTS_NODE:-kontiki-faults@localhost}"
FAULTS_PORT="${FAULTS_PORT:-5673}"

faults_url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f\n' "$FAULTS_PORT"; }

faults_ctl() { broker_sudo timeout 60 rabbitmqctl -n "$FAULTS_NODE" "$@"; }

faults_answers() { KONTIKI_AMQP_URL="$(faults_url)" broker_answers; }

# Starts the suite's own node (a no-op when it already answers) and waits until it serves AMQP.
faults_start() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    broker_log "rabbitmq-server is not installed; the fault-injection suite runs a RabbitMQ node of its own."
    broker_log "install it with: sudo apt-get install rabbitmq-server"
    return 1
  fi
  if ! broker_can_admin; then
    broker_log "starting the faults node needs root (or password-less sudo): the Debian rabbitmq-server runs as user rabbitmq"
    return 1
  fi
  if faults_ctl -q await_startup --timeout 5 >/dev/null 2>&1 && faults_answers; then
    broker_log "faults node $FAULTS_NODE already answers at 127.0.0.1:$FAULTS_PORT"
    return 0
  fi
  local root base
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  base="${FAULTS_BROKER_DIR:-$root/target/faults-broker}"
  mkdir -p "$base/mnesia" "$base/log"
  printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$FAULTS_PORT" > "$base/rabbitmq.conf"
  printf '[].\n' > "$base/enabled_plugins"
  broker_sudo chown -R rabbitmq:rabbitmq "$base" 2>/dev/null || true
  broker_log "starting faults node $FAULTS_NODE on 127.0.0.1:$FAULTS_PORT (data in $base)"
  broker_sudo env RABBITMQ_NODENAME="$FAULTS_NODE" RABBITMQ_NODE_PORT="$FAULTS_PORT" \
    RABBITMQ_DIST_PORT="$((FAULTS_PORT + 20000))" RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins" RABBITMQ_MNESIA_BASE="$base/mnesia" \
    RABBITMQ_LOG_BASE="$base/log" RABBITMQ_PID_FILE="$base/pid" \
    rabbitmq-server -detached || return 1
  local deadline=$((SECONDS + BROKER_START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if faults_ctl -q await_startup --timeout 30 >/dev/null 2>&1 && faults_answers; then
      broker_log "faults node answers at 127.0.0.1:$FAULTS_PORT"
      return 0
    fi
    sleep 1
  done
  broker_log "faults node $FAULTS_NODE did not start within ${BROKER_START_TIMEOUT}s; see $base/log"
  return 1
}

faults_stop() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if faults_ctl -q status >/dev/null 2>&1; then
    faults_ctl -q stop
  else
    broker_log "faults node $FAULTS_NODE is not running"
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-ensure}" in
    ensure) broker_ensure ;;
    start) broker_start ;;
    stop) broker_stop ;;
    status) broker_status ;;
    faults-start) faults_start ;;
    faults-stop) faults_stop ;;
    faults-url) faults_url ;;
    crash-start|crash-stop)
      FAULTS_PORT="${CRASH_PORT:-5676}"
      FAULTS_NODE="${CRASH_NODE:-kontiki-faults-crash@localhost}"
      FAULTS_BROKER_DIR="${CRASH_BROKER_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/faults-crash-broker}"
      if [[ "$1" == crash-start ]]; then faults_start; else faults_stop; fi ;;
    *) echo "usage: $0 ensure|start|stop|status|faults-start|faults-stop|faults-url|crash-start|crash-stop" >&2; exit 2 ;;
  esac
fi
