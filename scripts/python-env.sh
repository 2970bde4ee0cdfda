#!/usr/bin/env bash
# Create (or reuse) the Python venv used by the kontiki-rs interop tests.
#
#   scripts/python-env.sh            -> prints the venv's python path as the LAST stdout line
#
# Venv location: ${KONTIKI_PY_VENV:-<repo>/target/py-venv}
# Requirements:  kontiki-rt/tests/py/requirements.txt (kontiki==2.3.2, kontiki-tui==2.1.2, ...)
# Needs only `python3` with the venv module and pip (Debian: python3-venv).
# Idempotent: a stamp file holds the sha256 of the requirements; when it matches, nothing runs.
# All logs go to stderr.
set -euo pipefail

log() { printf 'python-env: %s\n' "$*" >&2; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${KONTIKI_PY_VENV:-$repo/target/py-venv}"
req="$repo/kontiki-rt/tests/py/requirements.txt"
py_bin="${PYTHON3:-python3}"

if [ ! -f "$req" ]; then
    log "requirements file missing: $req"
    exit 1
fi

hash_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        "$py_bin" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

want="$(hash_of "$req")"
stamp="$venv/.kontiki-requirements.sha256"

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "$venv/bin/python"
    exit 0
fi

if ! command -v "$py_bin" >/dev/null 2>&1; then
    log "python3 not found. Install it (Debian/Ubuntu: apt-get install python3 python3-venv python3-pip)."
    exit 1
fi
if ! "$py_bin" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ver="$("$py_bin" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || echo 3)"
    log "'$py_bin -m venv' is not usable (the venv/ensurepip modules are missing)."
    log "Install it: apt-get install python3-venv   (or python${ver}-venv)"
    exit 1
fi

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    log "creating venv at $venv"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! "$py_bin" -m venv "$venv" >&2; then
        log "'$py_bin -m venv' failed. Install it: apt-get install python3-venv"
        rm -rf "$venv"
        exit 1
    fi
fi

rm -f "$stamp"
log "installing $(grep -cv '^\s*\(#\|$\)' "$req") requirements from $req"
"$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$req" >&2

# Sanity: the packages the rig relies on import.
"$venv/bin/python" - >&2 <<'PY'
import importlib.metadata as md
for name, want in (("kontiki", "2.3.2"), ("kontiki-tui", "2.1.2")):
    got = md.version(name)
    assert got == want, f"{name} {got} != {want}"
import aio_pika, aiormq, pamqp, openapi_spec_validator, kontiki.messaging  # noqa: F401
print("python-env: kontiki", md.version("kontiki"), "aio-pika", md.version("aio-pika"),
      "aiormq", md.version("aiormq"), "pamqp", md.version("pamqp"))
PY

echo "$want" > "$stamp"
echo "$venv/bin/python"
