#!/usr/bin/env bash
# Tools the test command needs besides cargo: installs a missing one from Debian's packages
# when it may (root or password-less sudo, apt-get present), else fails saying how.
#
#   source scripts/tools.sh; ensure_apt_tool wrk wrk
#
# Sourced by scripts/test.sh; defines functions only.

tools_log() { printf 'tools: %s\n' "$*" >&2; }

tools_sudo() { if [[ "$(id -u)" == "0" ]]; then "$@"; else sudo -n "$@"; fi; }

# ensure_apt_tool COMMAND PACKAGE: true when COMMAND is on PATH, after installing PACKAGE if needed.
ensure_apt_tool() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null 2>&1 && return 0
  if ! command -v apt-get >/dev/null 2>&1 || ! tools_sudo true 2>/dev/null; then
    tools_log "$cmd is not installed; install it with: sudo apt-get install -y $pkg"
    return 1
  fi
  tools_log "installing $pkg (for $cmd)"
  if ! tools_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1; then
    tools_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1
    tools_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null 2>&1 || {
      tools_log "could not install $pkg; install it with: sudo apt-get install -y $pkg"
      return 1
    }
  fi
  command -v "$cmd" >/dev/null 2>&1
}
