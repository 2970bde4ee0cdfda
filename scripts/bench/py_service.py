#!/usr/bin/env python3
"""Python Kontiki 2.3.2 contender of `make bench` (scripts/bench/run.py).

Run:  <venv>/bin/python scripts/bench/py_service.py bench|idle --config FILE

* `bench`: RPC `echo(x) -> x`, a competing event handler on `bench.py.ev` that records the
  publish -> handle latency (payload `{"i": n, "t": unix time of the publish}`), and the RPCs
  `ev_reset()` and `ev_stats(n, timeout)` the client uses to read the figures.
* `idle`: five RPCs `m1` ... `m5`, nothing else (the idle footprint contender).

Like kontiki-rt/tests/py/proto_svc.py it runs through Kontiki's own CLI entry point and prints
`READY` on stdout once every consumer is consuming; logs go to stderr.
"""

import asyncio
import sys
import time

from kontiki.delegate import ServiceDelegate
from kontiki.messaging import Messenger, on_event, rpc
from kontiki.runner.cli import run

EVENT = "bench.py.ev"


class _ReadyNotifier(ServiceDelegate):
    """Its start() runs after every consumer is consuming (see proto_svc.py)."""

    async def start(self):
        sys.stdout.write("READY\n")
        sys.stdout.flush()


class _Stats:
    def __init__(self):
        self.reset()

    def reset(self):
        self.count = 0
        self.latencies = []
        self.first = None
        self.last = None
        self.changed = asyncio.Event()

    def record(self, payload):
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.count += 1
        try:
            self.latencies.append(now - float(payload["t"]))
        except (KeyError, TypeError, ValueError):
            pass
        self.changed.set()


STATS = _Stats()


def _pct(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values), max(1, int(-(-len(sorted_values) * p // 1)))) - 1
    return sorted_values[i]


class BenchService:
    name = "bench-py"  # overridden by kontiki.service_name
    config = None
    messenger = Messenger()
    zz_ready = _ReadyNotifier()

    @rpc
    async def echo(self, x):
        return x

    @on_event(EVENT)
    async def on_ev(self, payload):
        STATS.record(payload)

    @rpc
    async def ev_reset(self):
        STATS.reset()
        return True

    @rpc
    async def ev_stats(self, n, timeout=120.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        while STATS.count < int(n):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            STATS.changed.clear()
            try:
                await asyncio.wait_for(STATS.changed.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                break
        lat = sorted(STATS.latencies)
        return {
            "count": STATS.count,
            "first": STATS.first,
            "last": STATS.last,
            "p50_s": _pct(lat, 0.50),
            "p99_s": _pct(lat, 0.99),
        }


class IdleService:
    name = "bench-idle-py"  # overridden by kontiki.service_name
    config = None
    messenger = Messenger()
    zz_ready = _ReadyNotifier()

    @rpc
    async def m1(self, x):
        return x

    @rpc
    async def m2(self, x):
        return x

    @rpc
    async def m3(self, x):
        return x

    @rpc
    async def m4(self, x):
        return x

    @rpc
    async def m5(self, x):
        return x


def main():
    kinds = {"bench": BenchService, "idle": IdleService}
    if len(sys.argv) < 2 or sys.argv[1] not in kinds:
        sys.stderr.write("usage: py_service.py bench|idle --config FILE\n")
        sys.exit(2)
    cls = kinds[sys.argv[1]]
    sys.argv = [sys.argv[0]] + sys.argv[2:]
    run(cls, "kontiki-rs benchmark contender", "0.0.0")


if __name__ == "__main__":
    main()
