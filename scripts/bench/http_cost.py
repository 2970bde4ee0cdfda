#!/usr/bin/env python3
"""Instructions per HTTP request of a kontiki-rt route and of the same handler as a bare axum
route, counted by valgrind's callgrind (issue 22 item 1, the load-independent side of
`make bench`'s HTTP section).

kontiki-rt/examples/http_demo.rs runs once under callgrind, serving both contenders (two ports,
one process). After a warm-up the counters are zeroed; then, for each route and contender, one
keep-alive connection sends N1 requests, one after the other, and callgrind dumps its counters
(`callgrind_control --dump`), then N2 requests and another dump. The marginal cost of one
request is (Ir(N2) - Ir(N1)) / (N2 - N1), so what each dump carries besides the requests (the
timer wheel, the connection's set-up) cancels out. Server only: the client is this script.

    python3 scripts/bench/http_cost.py                 # builds the release example first
    HTTP_COST_EXE=/tmp/http_demo.old python3 scripts/bench/http_cost.py   # a copy of another build
    HTTP_COST_N1=500 HTTP_COST_N2=2500 python3 scripts/bench/http_cost.py

Prints a table; the dumps stay in target/bench/http-cost/ (`callgrind_annotate --inclusive=yes
target/bench/http-cost/callgrind.out.<pid>.<n>` shows where one of them went; the dumps are
numbered in the order route, contender, N1 then N2 as printed). Needs valgrind; no broker
(http_demo disables AMQP).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "bench" / "http-cost"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
N1 = int(os.environ.get("HTTP_COST_N1", "500"))
N2 = int(os.environ.get("HTTP_COST_N2", "2500"))
WARMUP = 200
BODY = b'{"name": "widget", "qty": 3}'
# (key, method, path, body): the routes of `make bench`'s HTTP section, and one more.
ROUTES = [
    ("health", "GET", "/api/v1/health", None),
    ("item", "POST", "/api/v1/items/42", BODY),
    # The item route registered with `HttpRoute::with_fn`, as generated code does (bare axum
    # serves the same handler there).
    ("item (with_fn)", "POST", "/api/v1/fn-items/42", BODY),
]
CONTENDERS = ["kontiki-rs", "bare axum"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def send(port, method, path, body, n):
    """`n` requests on one keep-alive connection, each answered before the next is sent."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"} if body else {}
    for _ in range(n):
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        res.read()
        if res.status != 200:
            sys.exit(f"http_cost.py: {method} {path} on port {port} answered {res.status}")
    conn.close()


def dump(pid):
    """Dumps callgrind's counters (and zeroes them); returns the dump's instruction count."""
    before = set(OUT.glob(f"callgrind.out.{pid}.*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        new = set(OUT.glob(f"callgrind.out.{pid}.*")) - before
        if new:
            path = new.pop()
            # The file is written before its totals line: wait for it.
            for _ in range(600):
                m = re.search(r"^summary: (\d+)", path.read_text(errors="replace"), re.M)
                if m:
                    return int(m.group(1)), path.name
                time.sleep(0.1)
        time.sleep(0.1)
    sys.exit("http_cost.py: callgrind wrote no dump")


def main():
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (Debian, as root: apt-get install -y valgrind)")
    exe = os.environ.get("HTTP_COST_EXE")
    if not exe:
        subprocess.run(["cargo", "build", "--release", "-p", "kontiki-rt", "--example",
                        "http_demo"], cwd=ROOT, check=True)
        exe = str(TARGET / "release" / "examples" / "http_demo")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    ports = {"kontiki-rs": free_port(), "bare axum": free_port()}
    p = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--dump-instr=no", "--compress-strings=no",
         f"--callgrind-out-file={OUT}/callgrind.out.%p",
         exe, str(ports["kontiki-rs"]), str(ports["bare axum"])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "RUST_LOG": "warn"})
    rows = []
    try:
        while True:
            line = p.stdout.readline()
            if not line:
                sys.exit("http_cost.py: http_demo exited before it was ready")
            if line.startswith("bare-axum http://"):
                break
        for _, method, path, body in ROUTES:
            for name in CONTENDERS:
                send(ports[name], method, path, body, WARMUP)
        dump(p.pid)
        for key, method, path, body in ROUTES:
            for name in CONTENDERS:
                counts = []
                for n in (N1, N2):
                    send(ports[name], method, path, body, n)
                    counts.append(dump(p.pid))
                per = (counts[1][0] - counts[0][0]) / (N2 - N1)
                rows.append(dict(route=key, request=f"{method} {path}", contender=name,
                                 ir_n1=counts[0][0], ir_n2=counts[1][0], ir_per_request=per,
                                 dumps=[counts[0][1], counts[1][1]]))
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    print(f"Instructions per request (callgrind, {exe}, N1={N1} N2={N2}, one keep-alive "
          "connection, c=1):\n")
    print("| route | contender | instructions/request | kontiki-rs / bare axum |")
    print("|---|---|---:|---:|")
    for key, method, path, _ in ROUTES:
        per = {r["contender"]: r["ir_per_request"] for r in rows if r["route"] == key}
        for name in CONTENDERS:
            ratio = per["kontiki-rs"] / per["bare axum"] if name == "kontiki-rs" else None
            print(f"| `{method} {path}` | {name} | {per[name]:,.0f} | "
                  f"{'' if ratio is None else f'{ratio:.3f}×'} |")
    (OUT / "http_cost.json").write_text(json.dumps(rows, indent=1) + "\n")
    for r in rows:
        print(f"\n{r['contender']} {r['request']}: dumps {', '.join(r['dumps'])}", end="")
    print()


if __name__ == "__main__":
    main()
