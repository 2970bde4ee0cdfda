#!/usr/bin/env python3
"""Two or more builds of kontiki-rt/examples/http_demo.rs measured in one window, with the HTTP
section of `make bench` (scripts/bench/run.py: wrk per route and contender, kontiki-rs / bare
axum paired in each round): a before/after comparison whose load is the same for both.

    python3 scripts/bench/http_pair.py 7 before=/tmp/http_demo.before after=target/release/examples/http_demo

Each build runs as its own process, both started before the first round; the builds' order
alternates between rounds. Prints each build's ratios (medians of the per-round ratios) and
writes the per-round figures to target/bench/http_pair.json. BENCH_QUICK=1 takes 1 s per wrk
run instead of 4 s.
"""

import importlib.util
import json
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)


def main():
    if len(sys.argv) < 3 or not all("=" in a for a in sys.argv[2:]):
        sys.exit(__doc__)
    rounds = int(sys.argv[1])
    exes = dict(a.split("=", 1) for a in sys.argv[2:])
    res = {name: [] for name in exes}
    demos = {}
    try:
        for name, exe in exes.items():
            demos[name] = run.start_http_demo(exe)
        for rnd in range(1, rounds + 1):
            order = list(exes) if rnd % 2 else list(exes)[::-1]
            for name in order:
                run.log(f"round {rnd}/{rounds}: {name}")
                res[name].append(run.http_round(demos[name][1], rnd, control=False))
    finally:
        for p, _ in demos.values():
            p.send_signal(signal.SIGINT)
            p.wait(timeout=15)
    run.OUT.mkdir(parents=True, exist_ok=True)
    (run.OUT / "http_pair.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"{rounds} rounds, load average now {run.load()}\n")
    print("| build | route | kontiki-rs / bare axum: requests/s | p50 | kontiki-rs req/s | bare axum req/s |")
    print("|---|---|---:|---:|---:|---:|")
    for name in exes:
        for key, label, _, _ in run.HTTP_ROUTES:
            rs = [r[key] for r in res[name]]
            print(f"| {name} | {label} "
                  f"| {run.ratio(run.paired(rs, 'kontiki-rs', 'bare axum', 'per_s'))} "
                  f"| {run.ratio(run.paired(rs, 'kontiki-rs', 'bare axum', 'p50_us'))} "
                  f"| {run.fmt(run.med([r['kontiki-rs']['per_s'] for r in rs]))} "
                  f"| {run.fmt(run.med([r['bare axum']['per_s'] for r in rs]))} |")


if __name__ == "__main__":
    main()
