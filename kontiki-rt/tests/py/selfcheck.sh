#!/usr/bin/env bash
# Python <-> Python self-check of the interop rig against a live RabbitMQ.
#
#   kontiki-rt/tests/py/selfcheck.sh [--keep-logs]
#
# 1. scripts/python-env.sh (venv with kontiki==2.3.2 ...)
# 2. a private vhost kontiki-py-check-<pid> (rabbitmqctl add_vhost + set_permissions guest),
#    deleted again on exit; or, with KONTIKI_PY_CHECK_URL set, that URL as is (no rabbitmqctl).
# 3. selfcheck.py: tap.py + proto_svc.py + probe.py + experiments.py, all checks.
# Exit 0 only if every check passed. Broker: KONTIKI_AMQP_URL (default
# amqp://guest:guest@127.0.0.1:5672/%2f); its vhost part is replaced by the private vhost.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
log() { printf 'selfcheck: %s\n' "$*" >&2; }

py="$("$repo/scripts/python-env.sh" | tail -n 1)"

vhost=""
cleanup() {
    if [ -n "$vhost" ]; then
        rabbitmqctl delete_vhost "$vhost" >/dev/null 2>&1 || log "could not delete vhost $vhost"
    fi
}
trap cleanup EXIT

if [ -n "${KONTIKI_PY_CHECK_URL:-}" ]; then
    url="$KONTIKI_PY_CHECK_URL"
else
    base="${KONTIKI_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
    scheme="${base%%://*}"
    rest="${base#*://}"
    authority="${rest%%/*}"
    if ! command -v rabbitmqctl >/dev/null 2>&1; then
        log "rabbitmqctl not found: set KONTIKI_PY_CHECK_URL to an AMQP URL with a scratch vhost"
        exit 2
    fi
    vhost="kontiki-py-check-$$"
    user="${authority%@*}"; user="${user%%:*}"
    [ "$user" = "$authority" ] && user=guest
    log "creating vhost $vhost"
    rabbitmqctl add_vhost "$vhost" >/dev/null
    rabbitmqctl set_permissions -p "$vhost" "$user" ".*" ".*" ".*" >/dev/null
    url="$scheme://$authority/$vhost"
fi

log "broker $url"
"$py" "$here/selfcheck.py" --url "$url" "$@"
