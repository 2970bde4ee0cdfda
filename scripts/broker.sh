#!/usr/bin/env bash
# Start, stop and check the local RabbitMQ that kontiki-rs tests and examples use.
#
#   scripts/broker.sh ensure   # make sure a broker answers at KONTIKI_AMQP_URL (start or install one)
#   scripts/broker.sh start    # start the installed rabbitmq-server, detached
#   scripts/broker.sh stop     # stop it
#   scripts/broker.sh status   # say whether a broker answers at KONTIKI_AMQP_URL
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

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-ensure}" in
    ensure) broker_ensure ;;
    start) broker_start ;;
    stop) broker_stop ;;
    status) broker_status ;;
    *) echo "usage: $0 ensure|start|stop|status" >&2; exit 2 ;;
  esac
fi
