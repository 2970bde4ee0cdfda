#!/usr/bin/env bash
# The kontiki-rs tour: makes sure a RabbitMQ answers (starts or installs one when it may), then
# runs two services and a client in one program and prints what happened.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin:/usr/sbin:/sbin"
bash scripts/broker.sh ensure
exec cargo run --quiet -p kontiki-rt --example quickstart
