#!/usr/bin/env python3
"""A Python Kontiki 2.3.2 replica of faults-svc's `on_tick` for the fault-injection suite.

Run:  <venv>/bin/python faults/py/replica.py --config FILE

Environment: FAULTS_TICK (the event type, required), FAULTS_RECORD (the file every handled
tick's `n` is appended to, one line each, with one os.write on an O_APPEND descriptor before
the delivery is acked), FAULTS_HANDLE_MS (delay per event, default 0).

It declares the same competing queue as the Rust faults-svc (`{svc}.on_tick.queue`, quorum,
max_attempts 3), so the two compete for one queue. stdout carries exactly one line,
`READY <service_name> <instance_id>`, once every consumer consumes; logs go to stderr.
"""

import asyncio
import os
import sys

from kontiki.delegate import ServiceDelegate
from kontiki.messaging import on_event, rpc
from kontiki.runner.cli import run

TICK = os.environ["FAULTS_TICK"]
HANDLE_MS = int(os.environ.get("FAULTS_HANDLE_MS", "0"))
RECORD_FD = os.open(os.environ["FAULTS_RECORD"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


class _ReadyNotifier(ServiceDelegate):
    async def start(self):
        c = self.container
        sys.stdout.write(f"READY {c.service_name} {c.instance_id}\n")
        sys.stdout.flush()


class Replica:
    name = "faults-svc"  # overridden by kontiki.service_name
    config = None
    zz_ready = _ReadyNotifier()

    @rpc
    async def echo(self, x):
        return x

    @on_event(TICK, max_attempts=3)
    async def on_tick(self, payload):
        n = payload["n"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"payload is not {{'n': u64}}: {payload!r:.80}")
        if HANDLE_MS:
            await asyncio.sleep(HANDLE_MS / 1000)
        os.write(RECORD_FD, f"{n}\n".encode())


if __name__ == "__main__":
    run(Replica, "kontiki-rs fault-injection Python replica", "0.0.1")
