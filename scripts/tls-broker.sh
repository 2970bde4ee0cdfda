#!/usr/bin/env bash
# A RabbitMQ node of its own with a TLS (amqps) listener, for the TLS tests.
#
#   scripts/tls-broker.sh start   # make the certificates (once) and start the node
#   scripts/tls-broker.sh stop    # stop the node
#   scripts/tls-broker.sh url     # print its amqps URL (server verification: host localhost)
#   scripts/tls-broker.sh env     # print KONTIKI_TLS_* variables for the tests (eval it)
#   scripts/tls-broker.sh certs   # only make the certificates
#   scripts/tls-broker.sh check   # prove the TLS set-up with openssl s_client (see tls_check)
#
# Everything lives under target/tls-broker/ (TLS_BROKER_DIR):
#   certs/ca.pem, ca.key          a private CA (the one the tests trust)
#   certs/server.pem, server.key  the broker's certificate, signed by the CA, for DNS:localhost only
#                                 (so amqps://127.0.0.1:5675 is the wrong-host-name case)
#   certs/client.pem, client.key  a client certificate (CN=kontiki-client), signed by the CA
#   certs/other-ca.pem            a CA that signed nothing the broker uses (the wrong-CA case)
#   certs/other-client.pem, .key  a client certificate signed by the other CA (refused by the broker)
#
# The node: RABBITMQ_NODENAME kontiki-tls@localhost (TLS_NODE), plain AMQP on 127.0.0.1:5674
# (TLS_PLAIN_PORT, for rabbitmqctl-free setup checks), amqps on 127.0.0.1:5675 (TLS_PORT),
# distribution port 25674 (plain port + 20000). TLS options: verify_peer, so a client
# certificate that is presented must chain to the private CA; fail_if_no_peer_cert is false by
# default so one node serves both the server-verification tests (no client certificate) and the
# mutual-TLS tests (TLS_REQUIRE_CLIENT_CERT=1 makes it true). Same user as the shared broker:
# guest/guest with loopback_users = none. Needs openssl, rabbitmq-server and root or
# password-less sudo (the Debian rabbitmq-server runs as user rabbitmq).
#
# The script can also be sourced; it then defines the functions below without running anything.
set -uo pipefail

TLS_NODE="${TLS_NODE:-kontiki-tls@localhost}"
TLS_PLAIN_PORT="${TLS_PLAIN_PORT:-5674}"
TLS_PORT="${TLS_PORT:-5675}"
TLS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TLS_BROKER_DIR="${TLS_BROKER_DIR:-$TLS_ROOT/target/tls-broker}"
TLS_CERTS="$TLS_BROKER_DIR/certs"
TLS_START_TIMEOUT="${TLS_START_TIMEOUT:-90}"

tls_log() { printf 'tls-broker: %s\n' "$*" >&2; }

tls_sudo() { if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo -n "$@"; fi; }

tls_ctl() { tls_sudo timeout 60 rabbitmqctl -n "$TLS_NODE" "$@"; }

tls_url() { printf 'amqps://guest:guest@localhost:%s/%%2f\n' "$TLS_PORT"; }

tls_env() {
  printf 'export KONTIKI_TLS_AMQP_URL=%q\n' "$(tls_url)"
  printf 'export KONTIKI_TLS_PLAIN_URL=%q\n' "amqp://guest:guest@127.0.0.1:$TLS_PLAIN_PORT/%2f"
  printf 'export KONTIKI_TLS_CERTS=%q\n' "$TLS_CERTS"
}

# Signs $1.csr with CA $2 (file prefix) into $1.pem, with the extensions file $3.
tls_sign() {
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -out "$1.pem" -days 3650 -sha256 -extfile "$3" >/dev/null 2>&1
}

# Makes the CAs and certificates once (kept while ca.pem exists).
tls_certs() {
  if ! command -v openssl >/dev/null 2>&1; then
    tls_log "openssl is not installed: sudo apt-get install openssl"
    return 1
  fi
  if [[ -s "$TLS_CERTS/ca.pem" && -s "$TLS_CERTS/other-client.pem" ]]; then
    return 0
  fi
  mkdir -p "$TLS_CERTS"
  (
    set -e
    cd "$TLS_CERTS"
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca.key" -out "$ca.pem" -days 3650 \
        -subj "/CN=kontiki test $ca" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
    done
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n' > server.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > client.ext
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" >/dev/null 2>&1
    tls_sign server ca server.ext
    openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=kontiki-client" >/dev/null 2>&1
    tls_sign client ca client.ext
    openssl req -newkey rsa:2048 -nodes -keyout other-client.key -out other-client.csr -subj "/CN=kontiki-client" >/dev/null 2>&1
    tls_sign other-client other-ca client.ext
    rm -f ./*.csr ./*.srl
    openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
  ) || { tls_log "could not make the certificates in $TLS_CERTS"; return 1; }
  tls_log "certificates made in $TLS_CERTS"
}

# True when the amqps listener completes a handshake that verifies against the private CA.
tls_answers() {
  timeout 5 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost \
    -CAfile "$TLS_CERTS/ca.pem" -verify_return_error -verify_hostname localhost </dev/null >/dev/null 2>&1
}

tls_start() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    tls_log "rabbitmq-server is not installed; the TLS tests run a RabbitMQ node of their own."
    tls_log "install it with: sudo apt-get install rabbitmq-server"
    return 1
  fi
  if [[ "$(id -u)" != "0" ]] && ! sudo -n true 2>/dev/null; then
    tls_log "starting the TLS node needs root (or password-less sudo): rabbitmq-server runs as user rabbitmq"
    return 1
  fi
  tls_certs || return 1
  if tls_ctl -q await_startup --timeout 5 >/dev/null 2>&1; then
    if tls_answers; then
      tls_log "TLS node $TLS_NODE already answers at localhost:$TLS_PORT"
      return 0
    fi
    # Running, but its certificates are not this checkout's: another checkout's node holds the
    # name and the ports. Starting a second one would only wait for ports it cannot take.
    local other
    other=$(tls_ctl -q eval 'os:getenv("RABBITMQ_MNESIA_BASE").' 2>/dev/null | tr -d '"')
    tls_log "TLS node $TLS_NODE already runs, but not with this checkout's certificates ($TLS_CERTS):"
    tls_log "it is another checkout's node (data in ${other:-an unknown directory}); stop it with"
    tls_log "  sudo rabbitmqctl -n $TLS_NODE stop   (or scripts/tls-broker.sh stop in that checkout)"
    return 1
  fi
  local fail_if_no_cert=false
  [[ "${TLS_REQUIRE_CLIENT_CERT:-0}" == "1" ]] && fail_if_no_cert=true
  mkdir -p "$TLS_BROKER_DIR/mnesia" "$TLS_BROKER_DIR/log"
  cat > "$TLS_BROKER_DIR/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:$TLS_PLAIN_PORT
listeners.ssl.local = 127.0.0.1:$TLS_PORT
ssl_options.cacertfile = $TLS_CERTS/ca.pem
ssl_options.certfile = $TLS_CERTS/server.pem
ssl_options.keyfile = $TLS_CERTS/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = $fail_if_no_cert
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
loopback_users = none
CONF
  printf '[].\n' > "$TLS_BROKER_DIR/enabled_plugins"
  tls_sudo chown -R rabbitmq:rabbitmq "$TLS_BROKER_DIR" 2>/dev/null || true
  # The test user reads the certificates too (the keys are test-only, made for this node).
  chmod -R a+rX "$TLS_BROKER_DIR" 2>/dev/null || tls_sudo chmod -R a+rX "$TLS_BROKER_DIR" || true
  tls_log "starting TLS node $TLS_NODE: amqps on 127.0.0.1:$TLS_PORT, plain on 127.0.0.1:$TLS_PLAIN_PORT (data in $TLS_BROKER_DIR)"
  tls_sudo env RABBITMQ_NODENAME="$TLS_NODE" RABBITMQ_NODE_PORT="$TLS_PLAIN_PORT" \
    RABBITMQ_DIST_PORT="$((TLS_PLAIN_PORT + 20000))" RABBITMQ_CONFIG_FILE="$TLS_BROKER_DIR/rabbitmq.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$TLS_BROKER_DIR/enabled_plugins" RABBITMQ_MNESIA_BASE="$TLS_BROKER_DIR/mnesia" \
    RABBITMQ_LOG_BASE="$TLS_BROKER_DIR/log" RABBITMQ_PID_FILE="$TLS_BROKER_DIR/pid" \
    rabbitmq-server -detached || return 1
  local deadline=$((SECONDS + TLS_START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if tls_ctl -q await_startup --timeout 30 >/dev/null 2>&1 && tls_answers; then
      tls_log "TLS node answers at localhost:$TLS_PORT (verified against $TLS_CERTS/ca.pem)"
      return 0
    fi
    sleep 1
  done
  tls_log "TLS node $TLS_NODE did not start within ${TLS_START_TIMEOUT}s; see $TLS_BROKER_DIR/log"
  return 1
}

# Proves the node's TLS set-up with openssl alone (the Rust TLS tests build on it): the private
# CA verifies the server for host name localhost; another CA and the host 127.0.0.1 (not in the
# certificate) fail verification; a client certificate from the private CA is accepted and one
# from another CA is refused by the broker.
tls_check() {
  local c="$TLS_CERTS" failed=0 out
  s_client() {
    timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -servername localhost "$@" </dev/null 2>&1
  }
  expect() {
    local want="$1" what="$2"; shift 2
    if s_client "$@" >/dev/null; then got=ok; else got=fail; fi
    if [[ "$got" == "$want" ]]; then tls_log "ok: $what"; else tls_log "FAILED: $what (handshake $got)"; failed=1; fi
  }
  expect ok "server verified against the private CA for host localhost" \
    -CAfile "$c/ca.pem" -verify_return_error -verify_hostname localhost
  expect fail "server refused when trusting another CA" \
    -CAfile "$c/other-ca.pem" -verify_return_error
  expect fail "server refused for host 127.0.0.1 (not in its certificate)" \
    -CAfile "$c/ca.pem" -verify_return_error -verify_ip 127.0.0.1
  # TLS 1.3 sends the broker's verdict on a client certificate after the handshake: write the
  # AMQP header and read the reply (Connection.Start, or an alert).
  out=$( (printf 'AMQP\0\0\x09\x01'; sleep 2) | timeout 10 openssl s_client -quiet \
    -connect "127.0.0.1:$TLS_PORT" -CAfile "$c/ca.pem" -cert "$c/client.pem" -key "$c/client.key" 2>&1 | head -c 4000 | tr -d '\0')
  # Connection.Start lists the broker's SASL mechanisms (PLAIN among them).
  if [[ "$out" == *"PLAIN"* ]]; then tls_log "ok: client certificate from the private CA accepted (Connection.Start read)"
  else tls_log "FAILED: client certificate from the private CA: no Connection.Start"; failed=1; fi
  out=$( (printf 'AMQP\0\0\x09\x01'; sleep 2) | timeout 10 openssl s_client -quiet \
    -connect "127.0.0.1:$TLS_PORT" -CAfile "$c/ca.pem" -cert "$c/other-client.pem" -key "$c/other-client.key" 2>&1 | head -c 4000 | tr -d '\0')
  if [[ "$out" == *"unknown ca"* ]]; then tls_log "ok: client certificate from another CA refused (unknown ca)"
  else tls_log "FAILED: client certificate from another CA was not refused"; failed=1; fi
  return "$failed"
}

tls_stop() {
  export PATH="$PATH:/usr/sbin:/sbin"
  if tls_ctl -q status >/dev/null 2>&1; then
    tls_ctl -q stop
  else
    tls_log "TLS node $TLS_NODE is not running"
  fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    start) tls_start ;;
    stop) tls_stop ;;
    url) tls_url ;;
    env) tls_env ;;
    certs) tls_certs ;;
    check) tls_check ;;
    *) echo "usage: $0 start|stop|url|env|certs|check" >&2; exit 2 ;;
  esac
fi
