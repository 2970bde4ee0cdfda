#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for development and the failover tests.
#
#   scripts/cluster.sh up              # start kontiki-c1..c3 and join them into one cluster
#   scripts/cluster.sh status          # one line per node: name, amqp:// URL, running or down
#   scripts/cluster.sh urls            # the three AMQP URLs, comma-separated (KONTIKI_AMQP_URL)
#   scripts/cluster.sh stop-node N     # stop node N (1-3): its Erlang VM exits
#   scripts/cluster.sh start-node N    # start node N again; it rejoins the cluster
#   scripts/cluster.sh down            # stop every node and delete the cluster's data
#
# The nodes run from the Debian rabbitmq-server package (installed when it may be, as the test
# command does), on loopback only: node kontiki-cN@localhost listens for AMQP on 127.0.0.1
# port CLUSTER_BASE_PORT+N (default 5680+N: 5681, 5682, 5683), its Erlang distribution on that
# port + 20000, with data and logs under target/cluster/cN and no plugins. They share the
# Debian package's Erlang cookie, so `rabbitmqctl -n kontiki-c1@localhost ...` reaches them.
# Neither the shared broker (5672) nor the fault-injection node (5673) is touched.
#
# Kontiki declares its RPC request queues as plain durable queues, which are classic queues
# living on one node: while that node is down they cannot be used or declared again. `up`
# therefore makes them survive a node (docs/cluster.md, "What survives what"), as
# CLUSTER_RPC_HA says:
#   quorum (default)  vhost / gets `default_queue_type` quorum (recreated while it holds no
#                     queue): every durable queue declared without `x-queue-type`, as Kontiki
#                     declares its RPC queues, is a quorum queue replicated on the 3 nodes
#   mirror            a policy `kontiki-ha` mirrors every classic queue on all nodes
#                     (ha-mode all, ha-sync-mode automatic; RabbitMQ 3.x only, removed in 4.0)
#   off               neither: RPC queues stay on one node (to show what goes wrong)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/broker.sh
source "$ROOT/scripts/broker.sh"
export PATH="$PATH:/usr/sbin:/sbin"

CLUSTER_BASE_PORT="${CLUSTER_BASE_PORT:-5680}"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/target/cluster}"
CLUSTER_RPC_HA="${CLUSTER_RPC_HA:-quorum}"
NODES=(1 2 3)

cluster_log() { printf 'cluster: %s\n' "$*" >&2; }
node_name() { printf 'kontiki-c%s@localhost' "$1"; }
node_port() { printf '%s' "$((CLUSTER_BASE_PORT + $1))"; }
node_url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f' "$(node_port "$1")"; }
node_ctl() { local n="$1"; shift; broker_sudo timeout 60 rabbitmqctl -n "$(node_name "$n")" "$@"; }
node_answers() { KONTIKI_AMQP_URL="$(node_url "$1")" broker_answers; }
node_running() { node_ctl "$1" -q await_startup --timeout 2 >/dev/null 2>&1; }

check_node_arg() {
  [[ "${1:-}" =~ ^[123]$ ]] || { cluster_log "a node number is 1, 2 or 3, not '${1:-}'"; exit 2; }
}

ensure_server() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    broker_install || { cluster_log "rabbitmq-server is not installed: sudo apt-get install rabbitmq-server"; return 1; }
  fi
  if ! broker_can_admin; then
    cluster_log "starting RabbitMQ nodes needs root (or password-less sudo): the Debian rabbitmq-server runs as user rabbitmq"
    return 1
  fi
}

# Starts node N detached (a no-op when it runs) and waits until it serves AMQP.
start_node() {
  local n="$1" dir="$CLUSTER_DIR/c$1" port
  port="$(node_port "$n")"
  if node_running "$n" && node_answers "$n"; then
    return 0
  fi
  mkdir -p "$dir/mnesia" "$dir/log"
  printf 'listeners.tcp.local = 127.0.0.1:%s\nloopback_users = none\n' "$port" > "$dir/rabbitmq.conf"
  printf '[].\n' > "$dir/enabled_plugins"
  broker_sudo chown -R rabbitmq:rabbitmq "$CLUSTER_DIR" 2>/dev/null || true
  broker_sudo env RABBITMQ_NODENAME="$(node_name "$n")" RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_DIST_PORT="$((port + 20000))" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
    rabbitmq-server -detached >/dev/null 2>&1 || { cluster_log "node $n did not start (logs: $dir/log)"; return 1; }
  local deadline=$((SECONDS + BROKER_START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if node_ctl "$n" -q await_startup --timeout 30 >/dev/null 2>&1 && node_answers "$n"; then
      return 0
    fi
    sleep 1
  done
  cluster_log "node $n did not answer on 127.0.0.1:$port within ${BROKER_START_TIMEOUT}s (logs: $dir/log)"
  return 1
}

# Node N's Erlang VM, from its pid file: the process `stop` must see gone.
node_pid() { broker_sudo cat "$CLUSTER_DIR/c$1/pid" 2>/dev/null; }

stop_node() {
  local n="$1" pid
  pid="$(node_pid "$n")"
  node_ctl "$n" -q stop >/dev/null 2>&1 || true
  if [[ -n "$pid" ]]; then
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { cluster_log "node $n (pid $pid) did not stop; killing it"; broker_sudo kill -9 "$pid"; }
  fi
  return 0
}

cluster_up() {
  ensure_server || return 1
  local start=$SECONDS n
  for n in "${NODES[@]}"; do
    start_node "$n" || return 1
  done
  for n in 2 3; do
    if node_ctl "$n" -q cluster_status --formatter json 2>/dev/null | grep -q "$(node_name 1)"; then
      continue
    fi
    node_ctl "$n" -q stop_app >/dev/null &&
      node_ctl "$n" -q join_cluster "$(node_name 1)" >/dev/null &&
      node_ctl "$n" -q start_app >/dev/null || { cluster_log "node $n could not join $(node_name 1)"; return 1; }
  done
  local running
  running=$(node_ctl 1 -q cluster_status --formatter json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))')
  if [[ "$running" != "3" ]]; then
    cluster_log "the cluster has $running running nodes, not 3"
    return 1
  fi
  apply_rpc_ha || return 1
  cluster_log "3 nodes up and clustered in $((SECONDS - start))s (RPC queues: $CLUSTER_RPC_HA)"
  cluster_status
}

# Makes the RPC queues survive a node, as CLUSTER_RPC_HA says (see the header).
apply_rpc_ha() {
  local dqt queues
  dqt=$(node_ctl 1 -q list_vhosts name default_queue_type | awk -F'\t' '$1 == "/" { print $2 }')
  case "$CLUSTER_RPC_HA" in
    quorum)
      node_ctl 1 -q clear_policy kontiki-ha >/dev/null 2>&1
      [[ "$dqt" == quorum ]] && return 0
      # A vhost's default queue type is set when it is created (RabbitMQ 3.10 cannot change
      # it), and a classic queue declared again without a type would then be refused.
      queues=$(node_ctl 1 -q list_queues -p / name | grep -c .)
      if (( queues > 0 )); then
        cluster_log "vhost / holds $queues queues; its default queue type can only change while it is empty: run down, then up"
        return 1
      fi
      node_ctl 1 -q delete_vhost / >/dev/null &&
        node_ctl 1 -q add_vhost / --default-queue-type quorum >/dev/null &&
        node_ctl 1 -q set_permissions -p / guest '.*' '.*' '.*' >/dev/null ||
        { cluster_log "could not recreate vhost / with default queue type quorum"; return 1; }
      ;;
    mirror)
      node_ctl 1 -q set_policy --apply-to queues kontiki-ha '.*' \
        '{"ha-mode":"all","ha-sync-mode":"automatic"}' >/dev/null ||
        { cluster_log "could not set the mirroring policy"; return 1; }
      ;;
    off)
      node_ctl 1 -q clear_policy kontiki-ha >/dev/null 2>&1
      ;;
    *) cluster_log "CLUSTER_RPC_HA is quorum, mirror or off, not '$CLUSTER_RPC_HA'"; return 1 ;;
  esac
  if [[ "$CLUSTER_RPC_HA" != quorum && "$dqt" == quorum ]]; then
    cluster_log "vhost / has default queue type quorum from an earlier up: run down, then up"
    return 1
  fi
}

cluster_status() {
  local n state rc=0
  for n in "${NODES[@]}"; do
    if node_answers "$n"; then state=running; else state=down; rc=1; fi
    printf '%s %s %s\n' "$(node_name "$n")" "$(node_url "$n")" "$state"
  done
  return $rc
}

cluster_urls() {
  local n urls=()
  for n in "${NODES[@]}"; do urls+=("$(node_url "$n")"); done
  (IFS=,; printf '%s\n' "${urls[*]}")
}

cluster_down() {
  local n
  for n in "${NODES[@]}"; do stop_node "$n"; done
  broker_sudo rm -rf "$CLUSTER_DIR"
  for n in "${NODES[@]}"; do
    if node_answers "$n"; then cluster_log "node $n still answers"; return 1; fi
    if command -v ss >/dev/null 2>&1 &&
      ss -Hltn "( sport = :$(node_port "$n") or sport = :$(( $(node_port "$n") + 20000 )) )" | grep -q .; then
      cluster_log "a port of node $n ($(node_port "$n") or $(( $(node_port "$n") + 20000 ))) is still listening"
      return 1
    fi
  done
  cluster_log "down: no node runs, no port of theirs listens, data deleted"
}

case "${1:-}" in
  up) cluster_up ;;
  down) cluster_down ;;
  status) cluster_status ;;
  urls) cluster_urls ;;
  stop-node) check_node_arg "${2:-}"; stop_node "$2" ;;
  start-node) check_node_arg "${2:-}"; ensure_server && start_node "$2" ;;
  *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
