#!/usr/bin/env python3
"""Python Kontiki 2.3.2 client of `make bench` (scripts/bench/run.py).

Run:  <venv>/bin/python scripts/bench/py_client.py --url URL --service NAME --server-pid PID
          rpc --concurrency 1,16,64 --calls1 N --callsN N [--warmup N]
          events --events N --publishers P [--warmup N]

A standalone Kontiki `Messenger` calls `NAME.echo(x)` (asyncio tasks, `c` calls in flight) or
publishes `bench.py.ev` events from P concurrent publishers (each `publish` awaits its
confirm; persistent, as Kontiki always publishes), against scripts/bench/py_service.py.
Prints one JSON object per run on stdout: throughput, p50/p99 latency (µs) and CPU µs per
call or event of client (getrusage) + server (/proc/PID/stat utime+stime).
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

from kontiki.messaging import Messenger

EVENT = "bench.py.ev"
TCK = os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 1 :].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def self_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_s(pid):
    return self_cpu_s() + server_cpu_s(pid)


def pct(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values), max(1, -(-len(sorted_values) * p // 1))) - 1
    return sorted_values[int(i)]


async def rpc_run(m, service, c, calls):
    remaining = [calls]
    lat = []
    errors = []

    async def worker():
        while remaining[0] > 0:
            remaining[0] -= 1
            t = time.perf_counter()
            try:
                r = await m.call(service, "echo", 7)
                if r != 7:
                    raise RuntimeError(f"echo returned {r!r}")
                lat.append(time.perf_counter() - t)
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))

    await asyncio.gather(*(worker() for _ in range(c)))
    return lat, errors


async def rpc_mode(args, m):
    levels = [int(x) for x in args.concurrency.split(",")]
    await rpc_run(m, args.service, max(levels), args.warmup)
    for c in levels:
        calls = args.calls1 if c == 1 else args.callsN
        cpu0 = cpu_s(args.server_pid)
        t0 = time.perf_counter()
        lat, errors = await rpc_run(m, args.service, c, calls)
        secs = time.perf_counter() - t0
        cpu = cpu_s(args.server_pid) - cpu0
        lat.sort()
        done = max(len(lat), 1)
        print(
            json.dumps(
                {
                    "kind": "rpc",
                    "concurrency": c,
                    "calls": len(lat),
                    "errors": len(errors),
                    "first_error": errors[0] if errors else None,
                    "secs": secs,
                    "per_s": len(lat) / secs,
                    "p50_us": pct(lat, 0.5) * 1e6 if lat else None,
                    "p99_us": pct(lat, 0.99) * 1e6 if lat else None,
                    "cpu_us_per_op": cpu * 1e6 / done,
                }
            ),
            flush=True,
        )


async def publish_all(m, n, publishers):
    remaining = [n]
    errors = []

    async def publisher():
        while remaining[0] > 0:
            remaining[0] -= 1
            try:
                await m.publish(EVENT, {"i": remaining[0], "t": time.time()})
            except Exception as e:  # noqa: BLE001 - counted and reported
                errors.append(repr(e))

    await asyncio.gather(*(publisher() for _ in range(publishers)))
    return errors


async def events_mode(args, m):
    svc = args.service
    if args.warmup:
        await m.call(svc, "ev_reset")
        await publish_all(m, args.warmup, args.publishers)
        await m.call(svc, "ev_stats", args.warmup, 60)
    await m.call(svc, "ev_reset")
    cpu0 = cpu_s(args.server_pid)
    t0 = time.time()
    errors = await publish_all(m, args.events, args.publishers)
    stats = await m.call(svc, "ev_stats", args.events - len(errors), 120)
    cpu = cpu_s(args.server_pid) - cpu0
    handled = stats["count"]
    secs = (stats["last"] or time.time()) - t0
    print(
        json.dumps(
            {
                "kind": "events",
                "events": handled,
                "errors": len(errors) + max(0, args.events - len(errors) - handled),
                "first_error": errors[0] if errors else None,
                "secs": secs,
                "per_s": handled / secs if secs > 0 else None,
                "p50_us": stats["p50_s"] * 1e6 if stats["p50_s"] is not None else None,
                "p99_us": stats["p99_s"] * 1e6 if stats["p99_s"] is not None else None,
                "cpu_us_per_op": cpu * 1e6 / max(handled, 1),
            }
        ),
        flush=True,
    )


async def main_async(args):
    m = Messenger(amqp_url=args.url, standalone=True, client_name="bench")
    await m.start()
    # Standalone Messengers use a 10 s RPC timeout; allow for a loaded machine.
    m._rpc_timeout = 130.0
    try:
        if args.mode == "rpc":
            await rpc_mode(args, m)
        else:
            await events_mode(args, m)
    finally:
        await m.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    sub = ap.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("rpc")
    r.add_argument("--concurrency", default="1,16,64")
    r.add_argument("--calls1", type=int, default=2000)
    r.add_argument("--callsN", type=int, default=10000)
    r.add_argument("--warmup", type=int, default=200)
    e = sub.add_parser("events")
    e.add_argument("--events", type=int, default=20000)
    e.add_argument("--publishers", type=int, default=64)
    e.add_argument("--warmup", type=int, default=500)
    args = ap.parse_args()
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
