#!/usr/bin/env python3
"""One build of kontiki-rt/examples/http_demo.rs, kontiki-rs against bare axum in short
alternating wrk runs: many pairs of a few seconds or less, so that what drifts on a shared
machine (other load, the host's steal time) moves both sides of a pair alike.

    python3 scripts/bench/http_alt.py target/release/examples/http_demo [SECS] [PAIRS] [ROUTE] [--aa]

SECS per wrk run (default 1), PAIRS pairs (default 30), ROUTE `health` or `item` (default
health). The order alternates every pair. Prints the median and quartiles of the per-pair
ratios (requests/s and p50, kontiki-rs / bare axum). `HTTP_DEMO_METRICS=off` in the
environment serves without metrics.

`--aa` adds the A/A control to the same run: http_demo serves the bare axum routes on a third
port too, each round runs the three servers in turn (the order rotating through all six), and
control / bare axum is printed beside kontiki-rs / bare axum: what the method reads when both
sides are the same code.
"""

import importlib.util
import re
import signal
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
spec = importlib.util.spec_from_file_location("bench_run", HERE / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

ROUTES = {key: (path, script) for key, _, path, script in run.HTTP_ROUTES}


def wrk(url, secs, script):
    cmd = ["wrk", "-t2", "-c50", f"-d{secs}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(cmd + [url], capture_output=True, text=True).stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    lat = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M)
    if not rps or not lat or "Non-2xx" in out:
        run.die(f"wrk against {url} failed:\n{out}")
    return float(rps.group(1)), float(lat.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[lat.group(2)]


def main():
    args = [a for a in sys.argv[1:] if a != "--aa"]
    control = len(args) < len(sys.argv) - 1
    if not args:
        sys.exit(__doc__)
    exe = args[0]
    secs = args[1] if len(args) > 1 else "1"
    pairs = int(args[2]) if len(args) > 2 else 30
    route = args[3] if len(args) > 3 else "health"
    if route not in ROUTES:
        sys.exit(f"http_alt.py: ROUTE is one of {', '.join(ROUTES)}")
    path, script = ROUTES[route]
    proc, demo = run.start_http_demo(exe)
    orders = run.http_orders(control)
    ratios = {name: ([], []) for name in orders[0] if name != "bare axum"}
    try:
        for i in range(pairs):
            res = {name: wrk(demo[name] + path, secs, script) for name in orders[i % len(orders)]}
            for name, (rps, p50) in ratios.items():
                rps.append(res[name][0] / res["bare axum"][0])
                p50.append(res[name][1] / res["bare axum"][1])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)

    def q(xs):
        first, median, third = statistics.quantiles(xs, n=4)
        return f"{statistics.median(xs):.3f} (quartiles {first:.3f}–{third:.3f})"

    rounds = "rounds" if control else "pairs"
    print(f"{route}, {pairs} {rounds} of {secs} s, load average now {run.load()}:")
    for name, (rps, p50) in ratios.items():
        print(f"  {name} / bare axum: requests/s {q(rps)}, p50 {q(p50)}")


if __name__ == "__main__":
    main()
