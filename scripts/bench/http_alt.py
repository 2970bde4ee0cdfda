#!/usr/bin/env python3
"""One build of kontiki-rt/examples/http_demo.rs, kontiki-rs against bare axum in short
alternating wrk runs: many pairs of a few seconds or less, so that what drifts on a shared
machine (other load, the host's steal time) moves both sides of a pair alike.

    python3 scripts/bench/http_alt.py target/release/examples/http_demo [SECS] [PAIRS] [ROUTE]

SECS per wrk run (default 1), PAIRS pairs (default 30), ROUTE `health` or `item` (default
health). The order alternates every pair. Prints the median and quartiles of the per-pair
ratios (requests/s and p50, kontiki-rs / bare axum). `HTTP_DEMO_METRICS=off` in the
environment serves without metrics.
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
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    exe = sys.argv[1]
    secs = sys.argv[2] if len(sys.argv) > 2 else "1"
    pairs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    route = sys.argv[4] if len(sys.argv) > 4 else "health"
    if route not in ROUTES:
        sys.exit(f"http_alt.py: ROUTE is one of {', '.join(ROUTES)}")
    path, script = ROUTES[route]
    proc, demo = run.start_http_demo(exe)
    rps, p50 = [], []
    try:
        for i in range(pairs):
            order = run.HTTP_CONTENDERS if i % 2 == 0 else run.HTTP_CONTENDERS[::-1]
            res = {name: wrk(demo[name] + path, secs, script) for name in order}
            rps.append(res["kontiki-rs"][0] / res["bare axum"][0])
            p50.append(res["kontiki-rs"][1] / res["bare axum"][1])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)

    def q(xs):
        first, median, third = statistics.quantiles(xs, n=4)
        return f"{statistics.median(xs):.3f} (quartiles {first:.3f}–{third:.3f})"

    print(f"{route}, {pairs} pairs of {secs} s, load average now {run.load()}: "
          f"requests/s {q(rps)}, p50 {q(p50)}")


if __name__ == "__main__":
    main()
