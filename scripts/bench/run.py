#!/usr/bin/env python3
"""`make bench`: kontiki-rs against raw lapin and Python Kontiki 2.3.2, side by side in one run.

Run:  make bench            (or: python3 scripts/bench/run.py)

Environment:
  BENCH_RUNS=5         paired rounds; every figure is the median over the rounds, and every
                       ratio the median of the per-round ratios
  BENCH_QUICK=1        tiny sizes (development on a busy machine; figures not meaningful)
  BENCH_ONLY=rpc,events,payload,broadcast,idle,http,cluster,codegen,compile,cost   run a subset
                       (`cost` is left out with BENCH_QUICK unless named)
  BENCH_COMPILE_RUNS   rounds of the `compile` section (default: BENCH_RUNS, at most 3)
  BENCH_COMPILE_BASELINE=tonic|none   the `compile` section's baseline (default tonic, none
                       with BENCH_QUICK)
  KONTIKI_AMQP_URL     the broker (default amqp://guest:guest@127.0.0.1:5672/%2f)
  BENCH_SINGLE_URL     the single broker node the cluster section compares with (default
                       KONTIKI_AMQP_URL; `none` leaves that row out and the report says so)
  KONTIKI_PY           the Python with kontiki==2.3.2 (default: scripts/python-env.sh)
  CARGO_TARGET_DIR     where cargo builds (default target/)
  BENCH_PROFILE=bench  the cargo profile (`dev` only to try the harness: debug figures)

Each round runs, in order: RPC (kontiki-rt/benches/rpc.rs with `kontiki-rs` and `raw-rs`, then
the Python client against the Python service; the order of Rust and Python alternates every
round), events (kontiki-rt/benches/events.rs with `kontiki-rs` and `raw-lapin`, and the Python
pair), idle footprint (kontiki-rt/examples/idle_service.rs in both modes and
scripts/bench/py_service.py idle), HTTP (wrk against kontiki-rt/examples/http_demo.rs:
`GET /api/v1/health` and `POST /api/v1/items/{id}` with a JSON body, each as a kontiki-rt route
and as a bare axum handler in the same process), and
scale-out (kontiki-rt/examples/cluster_bench.rs: 1 replica on the single broker of
KONTIKI_AMQP_URL, then 1, 2 and 4 replicas on the three-node cluster of scripts/cluster.sh,
started for the run when it is not up and taken down after; one load process each). The
IDL/codegen benchmarks run once at the end (they take their own medians), the compile time of
generated code has rounds of its own (scripts/bench/compile_time.py: `cargo check` and `cargo
build --release` of the crate generated from the 5,000-line benchmark contract, of a crate that
implements it, of the tonic + prost equivalents and of generated/), then the `cost`
section: scripts/bench/cost.py counts instructions per RPC call and per event under callgrind
with metrics off, on, and with `otel` built (COST_REPEAT=3, median). Everything is built with
the `bench` profile (release + line tables).

Prints a markdown report (machine, command, tables, targets) and writes it to
target/bench/report.md, with the raw figures in target/bench/report.json.
"""

import datetime
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import compile_time

ROOT = Path(__file__).resolve().parents[2]
URL = os.environ.get("KONTIKI_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RUNS = int(os.environ.get("BENCH_RUNS", "2" if QUICK else "5"))
ONLY = set(filter(None, os.environ.get(
    "BENCH_ONLY", "rpc,events,payload,broadcast,idle,http,cluster,codegen,compile"
    + ("" if QUICK else ",cost")
).split(",")))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
OUT = ROOT / "target" / "bench"
PROFILE = os.environ.get("BENCH_PROFILE", "bench")
COMPILE_RUNS = int(os.environ.get("BENCH_COMPILE_RUNS", str(min(RUNS, 3))))
CONCURRENCY = [1, 16, 64]
# kontiki-rs with `kontiki.metrics.enabled: false` (the metrics-cost comparison).
METRICS_OFF = "kontiki-rs, metrics off"

if QUICK:
    SIZES = dict(rs_calls1=200, rs_callsN=1000, py_calls1=100, py_callsN=500, warmup=50,
                 payload_calls={65536: (100, 300), 1048576: (20, 40)},
                 broadcast_events=200,
                 events=1000, ev_warmup=100, idle_s=0.5, http_s=1,
                 cluster_calls=200, cluster_events=300)
else:
    SIZES = dict(rs_calls1=3000, rs_callsN=10000, py_calls1=1000, py_callsN=5000, warmup=300,
                 # Calls at c=1 and at PAYLOAD_C, per payload size.
                 payload_calls={65536: (1000, 4000), 1048576: (150, 400)},
                 # Events published per round to BROADCAST_K consumers (each handles every one).
                 broadcast_events=2500,
                 events=20000, ev_warmup=500, idle_s=2.0, http_s=4,
                 cluster_calls=5000, cluster_events=10000)
# Large messages: RPC whose argument and result are strings of these sizes, at c=1 and this.
PAYLOAD_C = 16
# Fan-out: broadcast events to this many instances (kontiki-rs) or consumers (raw lapin).
BROADCAST_K = 8
# Scale-out: replicas on the cluster, and the load's concurrency (calls and publishers).
CLUSTER_REPLICAS = [1, 2, 4]
CLUSTER_C = 16
SINGLE = "single node"
SINGLE_URL = os.environ.get("BENCH_SINGLE_URL", URL)
# The `compile` section (compile_time.Section), once main has made it.
COMPILE = None


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def redact(url):
    return re.sub(r"://[^@/]*@", "://***@", url)


# ----------------------------------------------------------------------------------------------
# Build


def cargo_build(args):
    """Builds with `cargo build --profile PROFILE ARGS`; returns {target name: executable}."""
    cmd = ["cargo", "build", "--profile", PROFILE, "--message-format=json-render-diagnostics"] + args
    log(" ".join(cmd))
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0:
        die(f"build failed: {' '.join(cmd)}")
    exes = {}
    for line in p.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            exes[msg["target"]["name"]] = msg["executable"]
    return exes


def python_exe():
    py = os.environ.get("KONTIKI_PY")
    if py:
        return py
    p = subprocess.run(["bash", "scripts/python-env.sh"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        die("no Python with kontiki 2.3.2: set KONTIKI_PY or run scripts/python-env.sh")
    return p.stdout.strip().splitlines()[-1]


# ----------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child that prints READY on stdout once it is ready."""

    def __init__(self, argv, env=None, ready_timeout=60.0):
        self.t_spawn = time.perf_counter()
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.err,
                                  env={**os.environ, **(env or {})}, text=True)
        line = ""
        # readline blocks until the child prints READY or exits (EOF): no polling needed.
        # A watchdog kills a child that does neither within ready_timeout.
        timer = _Watchdog(self.p, ready_timeout)
        while True:
            line = self.p.stdout.readline()
            if not line or line.startswith("READY"):
                break
        timer.cancel()
        self.ready_line = line.strip()
        self.ready_s = time.perf_counter() - self.t_spawn
        if not line:
            self.err.seek(0)
            tail = self.err.read().decode(errors="replace")[-3000:]
            die(f"{argv[0]} {' '.join(argv[1:3])} exited before READY:\n{tail}")

    @property
    def pid(self):
        return self.p.pid

    def status(self):
        out = {}
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    out[k] = int(v.split()[0]) * 1024
        return out

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class _Watchdog:
    def __init__(self, proc, timeout):
        import threading

        self.t = threading.Timer(timeout, lambda: proc.poll() is None and proc.kill())
        self.t.daemon = True
        self.t.start()

    def cancel(self):
        self.t.cancel()


def run_json(argv, what, env=None):
    """Runs a command (with `env` added to the environment); returns its stdout. Dies with its
    stderr when it fails."""
    p = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env={**os.environ, **(env or {})})
    if p.returncode != 0:
        die(f"{what} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return p.stdout


def py_config(name, path):
    Path(path).write_text(
        "kontiki:\n"
        f"  service_name: {name}\n"
        "  amqp:\n"
        f"    url: \"{URL}\"\n"
        "  registration:\n"
        "    disable: true\n"
        "  shutdown:\n"
        "    grace_seconds: 1\n"
    )


# ----------------------------------------------------------------------------------------------
# Contenders, one round each


def rpc_round(exes, py, py_svc, tmp, rnd):
    """{(contender, c): {per_s, p50_us, p99_us, cpu_us_per_op}} for one round."""
    out = {}

    def rust():
        path = Path(tmp) / "rpc.json"
        run_json([exes["rpc"], "--rounds", "1", "--no-extras", "--only", "kontiki-rs,raw-rs",
                  "--concurrency", ",".join(map(str, CONCURRENCY)),
                  "--calls1", str(SIZES["rs_calls1"]), "--callsN", str(SIZES["rs_callsN"]),
                  "--warmup", str(SIZES["warmup"]), "--json", str(path)], "rpc bench")
        for r in json.loads(path.read_text())["results"]:
            name = {"kontiki-rs": "kontiki-rs", "raw-rs": "raw lapin"}[r["contender"]]
            out[(name, r["concurrency"])] = dict(
                per_s=r["calls_per_s"], p50_us=r["p50_us"], p99_us=r["p99_us"],
                cpu_us_per_op=r["cpu_us_per_call"], errors=r["errors"])
        # The same service with `kontiki.metrics.enabled: false`, in a process of its own.
        run_json([exes["rpc"], "--rounds", "1", "--no-extras", "--only", "kontiki-rs",
                  "--concurrency", ",".join(map(str, CONCURRENCY)),
                  "--calls1", str(SIZES["rs_calls1"]), "--callsN", str(SIZES["rs_callsN"]),
                  "--warmup", str(SIZES["warmup"]), "--json", str(path)], "rpc bench (metrics off)",
                 env={"KONTIKI_BENCH_METRICS": "off"})
        for r in json.loads(path.read_text())["results"]:
            out[(METRICS_OFF, r["concurrency"])] = dict(
                per_s=r["calls_per_s"], p50_us=r["p50_us"], p99_us=r["p99_us"],
                cpu_us_per_op=r["cpu_us_per_call"], errors=r["errors"])

    def python():
        text = run_json([py, "scripts/bench/py_client.py", "--url", URL, "--service", py_svc[0],
                         "--server-pid", str(py_svc[1].pid), "rpc",
                         "--concurrency", ",".join(map(str, CONCURRENCY)),
                         "--calls1", str(SIZES["py_calls1"]), "--callsN", str(SIZES["py_callsN"]),
                         "--warmup", str(SIZES["warmup"])], "Python rpc client")
        for line in text.splitlines():
            r = json.loads(line)
            out[("Python Kontiki", r["concurrency"])] = r

    for f in ((rust, python) if rnd % 2 else (python, rust)):
        f()
    return out


def payload_round(exes, tmp):
    """{(contender, bytes, c): {per_s, p50_us, p99_us, cpu_us_per_op}}: kontiki-rs and raw lapin
    calling echo with a large string (issue 22, item 5)."""
    out = {}
    path = Path(tmp) / "payload.json"
    for size, (calls1, calls_n) in SIZES["payload_calls"].items():
        run_json([exes["rpc"], "--rounds", "1", "--no-extras", "--only", "kontiki-rs,raw-rs",
                  "--payload", str(size), "--concurrency", f"1,{PAYLOAD_C}",
                  "--calls1", str(calls1), "--callsN", str(calls_n),
                  "--warmup", str(max(calls1 // 10, 5)), "--json", str(path)],
                 f"rpc bench, {size} B payload")
        for r in json.loads(path.read_text())["results"]:
            name = {"kontiki-rs": "kontiki-rs", "raw-rs": "raw lapin"}[r["contender"]]
            out[(name, size, r["concurrency"])] = dict(
                per_s=r["calls_per_s"], p50_us=r["p50_us"], p99_us=r["p99_us"],
                cpu_us_per_op=r["cpu_us_per_call"], errors=r["errors"])
    return out


def broadcast_round(exes, tmp):
    """{contender: {per_s, p50_us, p99_us, cpu_us_per_op}}: kontiki-rs with BROADCAST_K instances
    of a service with a broadcast handler against BROADCAST_K raw lapin consumers, each with an
    exclusive queue (issue 22, item 5); per_s counts handled deliveries (K per event)."""
    out = {}
    path = Path(tmp) / "broadcast.json"
    run_json([exes["events"], "--rounds", "1", "--no-extras", "--only", "kontiki-rs,raw-lapin",
              "--broadcast", str(BROADCAST_K), "--events", str(SIZES["broadcast_events"]),
              "--warmup", str(max(SIZES["broadcast_events"] // 10, 10)), "--json", str(path)],
             f"events bench, broadcast to {BROADCAST_K}")
    for r in json.loads(path.read_text())["results"]:
        name = {"kontiki-rs": "kontiki-rs", "raw-lapin": "raw lapin"}[r["contender"]]
        out[name] = dict(per_s=r["events_per_s"], p50_us=r["p50_us"], p99_us=r["p99_us"],
                         cpu_us_per_op=r["cpu_us_per_event"], errors=r["errors"])
    return out


def events_round(exes, py, py_svc, tmp, rnd):
    out = {}

    def rust():
        path = Path(tmp) / "events.json"
        run_json([exes["events"], "--rounds", "1", "--no-extras", "--only", "kontiki-rs,raw-lapin",
                  "--events", str(SIZES["events"]), "--warmup", str(SIZES["ev_warmup"]),
                  "--json", str(path)], "events bench")
        for r in json.loads(path.read_text())["results"]:
            name = {"kontiki-rs": "kontiki-rs", "raw-lapin": "raw lapin"}[r["contender"]]
            out[name] = dict(per_s=r["events_per_s"], p50_us=r["p50_us"], p99_us=r["p99_us"],
                             cpu_us_per_op=r["cpu_us_per_event"], errors=r["errors"])
        run_json([exes["events"], "--rounds", "1", "--no-extras", "--only", "kontiki-rs",
                  "--events", str(SIZES["events"]), "--warmup", str(SIZES["ev_warmup"]),
                  "--json", str(path)], "events bench (metrics off)",
                 env={"KONTIKI_BENCH_METRICS": "off"})
        for r in json.loads(path.read_text())["results"]:
            out[METRICS_OFF] = dict(per_s=r["events_per_s"], p50_us=r["p50_us"],
                                    p99_us=r["p99_us"], cpu_us_per_op=r["cpu_us_per_event"],
                                    errors=r["errors"])

    def python():
        text = run_json([py, "scripts/bench/py_client.py", "--url", URL, "--service", py_svc[0],
                         "--server-pid", str(py_svc[1].pid), "events",
                         "--events", str(SIZES["events"]), "--publishers", "64",
                         "--warmup", str(SIZES["ev_warmup"])], "Python events client")
        out["Python Kontiki"] = json.loads(text.splitlines()[-1])

    for f in ((rust, python) if rnd % 2 else (python, rust)):
        f()
    return out


def idle_round(exes, py, tmp, rnd):
    out = {}
    env = {"RUST_LOG": "warn"}
    contenders = [
        ("kontiki-rs", lambda: Proc([exes["idle_service"], "kontiki-rs", "bench-idle-rs"], env)),
        ("raw lapin", lambda: Proc([exes["idle_service"], "raw-lapin", "bench-idle-raw"], env)),
        ("Python Kontiki", lambda: Proc([py, "scripts/bench/py_service.py", "idle", "--config",
                                         str(Path(tmp) / "idle-py.yaml")])),
    ]
    py_config("bench-idle-py", Path(tmp) / "idle-py.yaml")
    if rnd % 2 == 0:
        contenders.reverse()
    for name, start in contenders:
        p = start()
        try:
            # Idle on purpose: the figure is the footprint after SIZES["idle_s"] of nothing.
            time.sleep(SIZES["idle_s"])
            st = p.status()
        finally:
            p.stop()
        out[name] = dict(ready_ms=p.ready_s * 1e3, rss=st.get("VmRSS"), hwm=st.get("VmHWM"))
    return out


def wrk_rps(url, script=None):
    secs = SIZES["http_s"]
    cmd = ["wrk", "-t2", "-c50", f"-d{secs}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    p = subprocess.run(cmd + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0 or "Non-2xx" in p.stdout:
        die(f"wrk against {url} failed:\n{p.stdout}{p.stderr}")
    m = re.search(r"^Requests/sec:\s+([\d.]+)", p.stdout, re.M)
    lat = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", p.stdout, re.M)
    p50 = None
    if lat:
        p50 = float(lat.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[lat.group(2)]
    return dict(per_s=float(m.group(1)), p50_us=p50)


# The routes of the HTTP section: (key, what the report calls it, path, wrk script or None).
# Each is served by http_demo on both ports, as a kontiki-rt HttpRoute and as a bare axum
# handler doing the same work.
HTTP_ROUTES = [
    ("health", "`GET /api/v1/health`", "/api/v1/health", None),
    ("item", "`POST /api/v1/items/{id}` (JSON body)",
     "/api/v1/items/42", ROOT / "scripts" / "bench" / "wrk_post_item.lua"),
]
# The control is bare axum again, on a port of its own: control / bare axum is what the method
# reads when both sides are the same code, in the same run as kontiki-rs / bare axum.
HTTP_CONTENDERS = ["kontiki-rs", "bare axum", "bare axum (control)"]
HTTP_ORDERS = list(itertools.permutations(HTTP_CONTENDERS))


def http_orders(control=True):
    """The orders the HTTP contenders run in, one per round in turn: all six of the three, or,
    without the control, kontiki-rs and bare axum alternating."""
    return HTTP_ORDERS if control else [HTTP_CONTENDERS[:2], HTTP_CONTENDERS[1::-1]]


def http_round(demo, rnd, control=True):
    """{route key: {contender: figures}}, the contenders in round `rnd`'s order (`http_orders`)."""
    orders = http_orders(control)
    out = {}
    for key, _, path, script in HTTP_ROUTES:
        order = orders[rnd % len(orders)]
        out[key] = {name: wrk_rps(demo[name] + path, script) for name in order}
    return out


def start_http_demo(exe):
    import socket

    def free_port():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    port, bare, control = free_port(), free_port(), free_port()
    p = subprocess.Popen([exe, str(port), str(bare), str(control)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env={**os.environ, "RUST_LOG": "warn"}, text=True)
    watchdog = _Watchdog(p, 30)
    while True:
        line = p.stdout.readline()
        if not line or line.startswith("bare-axum http://"):
            break
    watchdog.cancel()
    if not line:
        die("http_demo exited before it was ready")
    return p, {"kontiki-rs": f"http://127.0.0.1:{port}", "bare axum": f"http://127.0.0.1:{bare}",
               "bare axum (control)": f"http://127.0.0.1:{control}"}


def cluster_script(*args):
    """Runs scripts/cluster.sh ARGS; returns its stdout, dies with its stderr on failure."""
    p = subprocess.run(["bash", "scripts/cluster.sh", *args], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        die(f"scripts/cluster.sh {' '.join(args)} failed (the cluster section needs the Debian "
            f"rabbitmq-server and root or password-less sudo; leave `cluster` out of BENCH_ONLY "
            f"to run without it):\n{p.stderr[-3000:]}")
    return p.stdout


def cluster_start():
    """Starts the three-node cluster unless it runs; returns (its URL list, started by us)."""
    up = subprocess.run(["bash", "scripts/cluster.sh", "status"], cwd=ROOT,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    if not up:
        log("starting the three-node cluster (scripts/cluster.sh up)")
    cluster_script("up")
    return cluster_script("urls").strip(), not up


def placement(iids):
    """`c1 c1 c3`: the node each replica's connections are on (rabbitmqctl list_connections)."""
    p = subprocess.run(["rabbitmqctl", "-q", "-n", "kontiki-c1@localhost", "list_connections",
                        "pid", "client_properties"], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    nodes = []
    for iid in iids:
        found = re.search(r"<kontiki-c(\d)@[^\n]*" + re.escape(iid), p.stdout)
        nodes.append(f"c{found.group(1)}" if found else "?")
    return " ".join(nodes)


def cluster_round(exes, urls, rnd):
    """{(broker, replicas): {calls_per_s, events_per_s, ...}} for one round: 1 replica on the
    single broker, then 1, 2, 4 on the cluster (the order alternates every round)."""
    out = {}
    configs = [("cluster", urls, n) for n in CLUSTER_REPLICAS]
    if SINGLE_URL != "none":
        configs.insert(0, (SINGLE, SINGLE_URL, 1))
    if rnd % 2 == 0:
        configs.reverse()
    for broker, url, n in configs:
        # Fixed names: the queues are reused by the next round and run.
        name = f"bench-scale-{'single' if broker == SINGLE else 'cluster'}-{n}"
        env = {"KONTIKI_AMQP_URL": url, "RUST_LOG": "warn"}
        replicas = []
        try:
            for _ in range(n):
                replicas.append(Proc([exes["cluster_bench"], "serve", name], env))
            iids = [r.ready_line.split()[1] for r in replicas]
            where = placement(iids) if broker == "cluster" else "-"
            text = run_json([exes["cluster_bench"], "load", name, ",".join(iids),
                             "--calls", str(SIZES["cluster_calls"]),
                             "--concurrency", str(CLUSTER_C),
                             "--events", str(SIZES["cluster_events"]),
                             "--publishers", str(CLUSTER_C)], f"cluster load ({broker}, {n})",
                            env=env)
        finally:
            for r in replicas:
                r.stop()
        r = json.loads(text.splitlines()[-1])
        r["placement"] = where
        out[(broker, n)] = r
    return out


# ----------------------------------------------------------------------------------------------
# Report


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def ratio(v):
    # Three decimals: a ratio of 0.897 must not print as a met "0.90×" target.
    return "–" if v is None else f"{v:.3f}×"


def paired(rounds, a, b, field):
    """Median of the per-round ratios a/b of one field."""
    rs = []
    for r in rounds:
        if a in r and b in r and r[a].get(field) and r[b].get(field):
            rs.append(r[a][field] / r[b][field])
    return med(rs)


def load():
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def machine():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1048576:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    rustc = subprocess.run(["rustc", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True).stdout.strip()
    return dict(cpu=f"{os.cpu_count()} × {cpu}{mem}", kernel=platform.release(), rustc=rustc,
                commit=commit)


def report(res, meta):
    L = []
    w = L.append
    w(f"Command: `make bench` (BENCH_RUNS={RUNS}{', BENCH_QUICK=1' if QUICK else ''}"
      f"{'' if PROFILE == 'bench' else ', BENCH_PROFILE=' + PROFILE}), "
      f"{meta['started']} → {meta['finished']} UTC, commit {meta['machine']['commit']}.")
    w(f"Machine: {meta['machine']['cpu']}, Linux {meta['machine']['kernel']}, "
      f"{meta['machine']['rustc']}, RabbitMQ on the same machine ({redact(URL)}); "
      f"load average {meta['load_before']} before, {meta['load_after']} after.")
    w(f"Figures are medians of {RUNS} rounds; ratios are medians of the per-round ratios "
      "(contenders paired in the same round). CPU is utime+stime of client + server processes "
      "per call/event (broker not included).")
    w("")
    if "rpc" in res:
        rounds = res["rpc"]
        w("### RPC round trips (`echo(x) -> x`)")
        w("")
        w("| c | contender | calls/s | p50 µs | p99 µs | CPU µs/call |")
        w("|---:|---|---:|---:|---:|---:|")
        for c in CONCURRENCY:
            for name in ("kontiki-rs", METRICS_OFF, "raw lapin", "Python Kontiki"):
                k = (name, c)
                g = lambda f: med([r[k][f] for r in rounds if k in r])  # noqa: E731
                w(f"| {c} | {name} | {fmt(g('per_s'))} | {fmt(g('p50_us'))} | "
                  f"{fmt(g('p99_us'))} | {fmt(g('cpu_us_per_op'), 1)} |")
        w("")
        w("| c | kontiki-rs / raw lapin: calls/s | p50 | CPU/call | kontiki-rs / Python: calls/s | p50 | CPU/call |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        for c in CONCURRENCY:
            rs, raw, pyk = ("kontiki-rs", c), ("raw lapin", c), ("Python Kontiki", c)
            w(f"| {c} | {ratio(paired(rounds, rs, raw, 'per_s'))} | "
              f"{ratio(paired(rounds, rs, raw, 'p50_us'))} | "
              f"{ratio(paired(rounds, rs, raw, 'cpu_us_per_op'))} | "
              f"{ratio(paired(rounds, rs, pyk, 'per_s'))} | "
              f"{ratio(paired(rounds, rs, pyk, 'p50_us'))} | "
              f"{ratio(paired(rounds, rs, pyk, 'cpu_us_per_op'))} |")
        w("")
        w("Metrics cost (kontiki-rs with metrics on / with `kontiki.metrics.enabled: false`, "
          "each in a process of its own, same round):")
        w("")
        w("| c | calls/s | p50 | CPU/call |")
        w("|---:|---:|---:|---:|")
        for c in CONCURRENCY:
            on, off = ("kontiki-rs", c), (METRICS_OFF, c)
            w(f"| {c} | {ratio(paired(rounds, on, off, 'per_s'))} | "
              f"{ratio(paired(rounds, on, off, 'p50_us'))} | "
              f"{ratio(paired(rounds, on, off, 'cpu_us_per_op'))} |")
        w("")
    if "events" in res:
        rounds = res["events"]
        w(f"### Events (publish → handle, {SIZES['events']:,} events, 64 publishers, persistent, "
          "confirms awaited, prefetch 10)")
        w("")
        w("| contender | events/s | p50 µs | p99 µs | CPU µs/event |")
        w("|---|---:|---:|---:|---:|")
        for name in ("kontiki-rs", METRICS_OFF, "raw lapin", "Python Kontiki"):
            g = lambda f: med([r[name][f] for r in rounds if name in r])  # noqa: E731
            w(f"| {name} | {fmt(g('per_s'))} | {fmt(g('p50_us'))} | {fmt(g('p99_us'))} | "
              f"{fmt(g('cpu_us_per_op'), 1)} |")
        w("")
        w("| ratio | events/s | p50 | CPU/event |")
        w("|---|---:|---:|---:|")
        for b in (METRICS_OFF, "raw lapin", "Python Kontiki"):
            w(f"| kontiki-rs / {b} | {ratio(paired(rounds, 'kontiki-rs', b, 'per_s'))} | "
              f"{ratio(paired(rounds, 'kontiki-rs', b, 'p50_us'))} | "
              f"{ratio(paired(rounds, 'kontiki-rs', b, 'cpu_us_per_op'))} |")
        w("")
    if "idle" in res:
        rounds = res["idle"]
        w("### Idle service with 5 RPC entrypoints (ready = spawn → `READY` line, printed once "
          f"every consumer is consuming; RSS after {SIZES['idle_s']:g} s idle; registration off)")
        w("")
        w("| contender | ready ms | VmRSS MiB | VmHWM MiB |")
        w("|---|---:|---:|---:|")
        for name in ("kontiki-rs", "raw lapin", "Python Kontiki"):
            g = lambda f: med([r[name][f] for r in rounds if name in r])  # noqa: E731
            mib = lambda v: None if v is None else v / 1048576  # noqa: E731
            w(f"| {name} | {fmt(g('ready_ms'), 1)} | {fmt(mib(g('rss')), 1)} | "
              f"{fmt(mib(g('hwm')), 1)} |")
        w("")
    if "http" in res:
        w(f"### HTTP (wrk -t2 -c50 -d{SIZES['http_s']}s per route and contender, server and wrk "
          "on the same cores; kontiki-rt/examples/http_demo.rs, all three contenders in one process; "
          "the POST body is `{\"name\": \"widget\", \"qty\": 3}`)")
        w("")
        w("| route | contender | requests/s | p50 µs |")
        w("|---|---|---:|---:|")
        for key, label, _, _ in HTTP_ROUTES:
            rounds = [r[key] for r in res["http"] if key in r]
            for name in HTTP_CONTENDERS:
                g = lambda f: med([r[name][f] for r in rounds if name in r])  # noqa: E731
                w(f"| {label} | {name} | {fmt(g('per_s'))} | {fmt(g('p50_us'))} |")
        w("")
        w("| route | kontiki-rs / bare axum: requests/s | p50 | control / bare axum: "
          "requests/s | p50 |")
        w("|---|---:|---:|---:|---:|")
        for key, label, _, _ in HTTP_ROUTES:
            rounds = [r[key] for r in res["http"] if key in r]
            w(f"| {label} | {ratio(paired(rounds, 'kontiki-rs', 'bare axum', 'per_s'))} "
              f"| {ratio(paired(rounds, 'kontiki-rs', 'bare axum', 'p50_us'))} "
              f"| {ratio(paired(rounds, 'bare axum (control)', 'bare axum', 'per_s'))} "
              f"| {ratio(paired(rounds, 'bare axum (control)', 'bare axum', 'p50_us'))} |")
        w("")
        w("The control is bare axum again on a third port: how far the method reads from 1.00× "
          "when both sides are the same code.")
        w("")
    if "cluster" in res:
        rounds = res["cluster"]
        w(f"### Scale-out on the three-node cluster ({SIZES['cluster_calls']:,} `echo` calls from "
          f"{CLUSTER_C} tasks, then {SIZES['cluster_events']:,} events from {CLUSTER_C} publishers "
          "until all handled; one load process, replicas each a process)")
        w("")
        w("| broker | replicas | calls/s | / single node | / 1 replica on the cluster | events/s "
          "| / single node | / 1 replica on the cluster | replica nodes (last round) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        base, one = (SINGLE, 1), ("cluster", 1)
        keys = [("cluster", n) for n in CLUSTER_REPLICAS]
        if SINGLE_URL != "none":
            keys.insert(0, base)
        for key in keys:
            g = lambda f: med([r[key][f] for r in rounds if key in r])  # noqa: E731
            last = next((r[key]["placement"] for r in reversed(rounds) if key in r), "–")
            w(f"| {key[0]} | {key[1]} | {fmt(g('calls_per_s'))} | "
              f"{ratio(paired(rounds, key, base, 'calls_per_s'))} | "
              f"{ratio(paired(rounds, key, one, 'calls_per_s'))} | {fmt(g('events_per_s'))} | "
              f"{ratio(paired(rounds, key, base, 'events_per_s'))} | "
              f"{ratio(paired(rounds, key, one, 'events_per_s'))} | {last} |")
        errors = sum(r[k]["call_errors"] + r[k]["publish_errors"] for r in rounds for k in r)
        w("")
        single = ("not measured (BENCH_SINGLE_URL=none)" if SINGLE_URL == "none"
                  else f"{redact(SINGLE_URL)}")
        w(f"Errors (calls and publishes) over all rounds: {errors}. The single node: {single}; the "
          "cluster is scripts/cluster.sh (RPC queues are quorum queues there, docs/cluster.md), "
          "all on this machine.")
        w("")
    if "payload" in res:
        r = res["payload"]
        w(f"### Large RPC messages (argument and result each a string of the size; c=1 and "
          f"c={PAYLOAD_C})")
        w("")
        w("| size | c | kontiki-rs calls/s | raw lapin calls/s | ratio | p50 kontiki-rs / raw | "
          "CPU/call kontiki-rs / raw |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for size in SIZES["payload_calls"]:
            for c in (1, PAYLOAD_C):
                a, b = ("kontiki-rs", size, c), ("raw lapin", size, c)
                w(f"| {size // 1024:,} KiB | {c} | {fmt(med([x[a]['per_s'] for x in r if a in x]))} "
                  f"| {fmt(med([x[b]['per_s'] for x in r if b in x]))} "
                  f"| {ratio(paired(r, a, b, 'per_s'))} | {ratio(paired(r, a, b, 'p50_us'))} "
                  f"| {ratio(paired(r, a, b, 'cpu_us_per_op'))} |")
        w("")
    if "broadcast" in res:
        r = res["broadcast"]
        a, b = "kontiki-rs", "raw lapin"
        w(f"### Broadcast to {BROADCAST_K} ({SIZES['broadcast_events']:,} events a round, 64 "
          f"publishers, each event handled by all {BROADCAST_K}; deliveries/s)")
        w("")
        w("| kontiki-rs deliveries/s | raw lapin deliveries/s | ratio | p50 kontiki-rs / raw | "
          "CPU/delivery kontiki-rs / raw |")
        w("|---:|---:|---:|---:|---:|")
        w(f"| {fmt(med([x[a]['per_s'] for x in r if a in x]))} "
          f"| {fmt(med([x[b]['per_s'] for x in r if b in x]))} "
          f"| {ratio(paired(r, a, b, 'per_s'))} | {ratio(paired(r, a, b, 'p50_us'))} "
          f"| {ratio(paired(r, a, b, 'cpu_us_per_op'))} |")
        w("")
    if "compile" in res:
        t_compile = COMPILE.report(res["compile"], w, med, fmt, ratio, paired)
    if "codegen" in res:
        w("### Codegen (5,000-line IDL file)")
        w("")
        for line in res["codegen"]:
            w(f"* {line}")
        w("")
    if "cost" in res:
        w("### CPU per operation in instructions (callgrind, scripts/bench/cost.py)")
        w("")
        w((OUT / "cost.md").read_text())
    # Targets of issue 10 (and issue 17's metrics cost, issue 22's HTTP routes and compile time)
    t = []
    if "compile" in res:
        t.extend(t_compile)
    if "payload" in res:
        for size in SIZES["payload_calls"]:
            for c in (1, PAYLOAD_C):
                v = paired(res["payload"], ("kontiki-rs", size, c), ("raw lapin", size, c), "per_s")
                t.append((f"RPC {size // 1024:,} KiB c={c} throughput kontiki-rs / raw lapin",
                          "≥ 0.90×", ratio(v), v is not None and v >= 0.9))
    if "broadcast" in res:
        v = paired(res["broadcast"], "kontiki-rs", "raw lapin", "per_s")
        t.append((f"broadcast to {BROADCAST_K} throughput kontiki-rs / raw lapin", "≥ 0.90×",
                  ratio(v), v is not None and v >= 0.9))
    for row in res.get("cost", []):
        what = "RPC c=1" if row["bench"] == "rpc" else "events"
        if row["contender"] not in ("metrics off", "raw lapin"):
            t.append((f"{what} instructions/op, {row['contender']} / metrics off", "≤ 1.03×",
                      f"{row['ratio']:.3f}×", 0 < row["ratio"] <= 1.03))
        if row["contender"] == "metrics on (default)" and "vs_raw" in row:
            t.append((f"{what} instructions/op, kontiki-rs / raw lapin (issue 22 item 4)",
                      "≤ 1.03×", f"{row['vs_raw']:.3f}×", 0 < row["vs_raw"] <= 1.03))
    if "rpc" in res:
        r = res["rpc"]
        for c in CONCURRENCY:
            v = paired(r, ("kontiki-rs", c), ("raw lapin", c), "per_s")
            t.append((f"RPC c={c} throughput kontiki-rs / raw lapin", "≥ 0.90×", ratio(v), v is not None and v >= 0.9))
            v = paired(r, ("kontiki-rs", c), ("raw lapin", c), "p50_us")
            t.append((f"RPC c={c} p50 kontiki-rs / raw lapin", "≤ 1.10×", ratio(v), v is not None and v <= 1.1))
        v = paired(r, ("kontiki-rs", 64), ("Python Kontiki", 64), "per_s")
        t.append(("RPC c=64 throughput kontiki-rs / Python", "≥ 6×", ratio(v), v is not None and v >= 6))
    if "events" in res:
        r = res["events"]
        v = paired(r, "kontiki-rs", "raw lapin", "per_s")
        t.append(("events throughput kontiki-rs / raw lapin", "≥ 0.90×", ratio(v), v is not None and v >= 0.9))
        v = paired(r, "kontiki-rs", "raw lapin", "p50_us")
        t.append(("events p50 kontiki-rs / raw lapin", "≤ 1.10×", ratio(v), v is not None and v <= 1.1))
        v = paired(r, "kontiki-rs", "Python Kontiki", "per_s")
        t.append(("events throughput kontiki-rs / Python", "≥ 3.2×", ratio(v), v is not None and v >= 3.2))
    for key, label, _, _ in HTTP_ROUTES if "http" in res else []:
        rounds = [r[key] for r in res["http"] if key in r]
        v = paired(rounds, "kontiki-rs", "bare axum", "per_s")
        t.append((f"HTTP {label.split(' (')[0]} requests/s kontiki-rs / bare axum", "≥ 0.95×",
                  ratio(v), v is not None and v >= 0.95))
        v = paired(rounds, "kontiki-rs", "bare axum", "p50_us")
        t.append((f"HTTP {label.split(' (')[0]} p50 kontiki-rs / bare axum", "≤ 1.15×",
                  ratio(v), v is not None and v <= 1.15))
    if "idle" in res:
        v = med([r["kontiki-rs"]["ready_ms"] for r in res["idle"]])
        t.append(("kontiki-rs ready after spawn", "≤ 50 ms", f"{fmt(v, 1)} ms", v is not None and v <= 50))
        v = med([r["kontiki-rs"]["rss"] for r in res["idle"]])
        v = None if v is None else v / 1048576
        t.append(("kontiki-rs idle RSS", "≤ 18 MiB", f"{fmt(v, 1)} MiB", v is not None and v <= 18))
    if t:
        w("### Targets")
        w("")
        w("| target | wanted | measured | met |")
        w("|---|---|---:|---|")
        for name, want, got, ok in t:
            w(f"| {name} | {want} | {got} | {'yes' if ok else '**no**'} |")
        w("")
    return "\n".join(L)


# ----------------------------------------------------------------------------------------------


def main():
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load()
    py = python_exe() if ONLY & {"rpc", "events", "idle"} else None
    exes = {}
    if ONLY & {"rpc", "events", "payload", "broadcast", "idle", "http", "cluster"}:
        exes.update(cargo_build(["-p", "kontiki-rt", "--bench", "rpc", "--bench", "events",
                                 "--example", "idle_service", "--example", "http_demo",
                                 "--example", "cluster_bench"]))
    if "codegen" in ONLY:
        exes.update(cargo_build(["-p", "kontiki-idl", "--bench", "parse", "--bench", "toolchain"]))
        exes.update(cargo_build(["-p", "kontiki-codegen", "--bench", "generate"]))
    if "compile" in ONLY:
        exes.update(cargo_build(["-p", "kontiki-codegen", "--bench", "generate",
                                 "--bin", "kontiki-codegen"]))
    if "cost" in ONLY and not shutil.which("valgrind"):
        die("valgrind is not installed (Debian, as root: apt-get install -y valgrind), or leave "
            "`cost` out of BENCH_ONLY")
    if "http" in ONLY and not shutil.which("wrk"):
        die("wrk is not installed (Debian, as root: apt-get install -y wrk), or leave `http` out "
            "of BENCH_ONLY")
    OUT.mkdir(parents=True, exist_ok=True)
    res = {k: [] for k in ("rpc", "events", "payload", "broadcast", "idle", "http", "cluster")
           if k in ONLY}
    cluster_urls, cluster_ours = cluster_start() if "cluster" in ONLY else (None, False)
    with tempfile.TemporaryDirectory(prefix="kontiki-bench-") as tmp:
        py_svc = None
        demo = None
        try:
            if ONLY & {"rpc", "events"}:
                # A fixed name: its queues (durable, like any Kontiki service's) are reused by
                # the next run instead of piling up on the broker.
                name = "bench-py"
                py_config(name, Path(tmp) / "py.yaml")
                py_svc = (name, Proc([py, "scripts/bench/py_service.py", "bench", "--config",
                                      str(Path(tmp) / "py.yaml")]))
            if "http" in ONLY:
                demo = start_http_demo(exes["http_demo"])
            for rnd in range(1, RUNS + 1):
                if "rpc" in ONLY:
                    log(f"round {rnd}/{RUNS}: rpc")
                    res["rpc"].append(rpc_round(exes, py, py_svc, tmp, rnd))
                if "events" in ONLY:
                    log(f"round {rnd}/{RUNS}: events")
                    res["events"].append(events_round(exes, py, py_svc, tmp, rnd))
                if "payload" in ONLY:
                    log(f"round {rnd}/{RUNS}: payload (64 KiB and 1 MiB RPC)")
                    res["payload"].append(payload_round(exes, tmp))
                if "broadcast" in ONLY:
                    log(f"round {rnd}/{RUNS}: broadcast to {BROADCAST_K}")
                    res["broadcast"].append(broadcast_round(exes, tmp))
                if "idle" in ONLY:
                    log(f"round {rnd}/{RUNS}: idle")
                    res["idle"].append(idle_round(exes, py, tmp, rnd))
                if "http" in ONLY:
                    log(f"round {rnd}/{RUNS}: http")
                    res["http"].append(http_round(demo[1], rnd))
                if "cluster" in ONLY:
                    log(f"round {rnd}/{RUNS}: cluster (scale-out)")
                    res["cluster"].append(cluster_round(exes, cluster_urls, rnd))
        finally:
            if cluster_ours:
                log("taking the cluster down (scripts/cluster.sh down)")
                cluster_script("down")
            if py_svc:
                py_svc[1].stop()
            if demo:
                demo[0].send_signal(signal.SIGINT)
                demo[0].wait(timeout=15)
    if "compile" in ONLY:
        global COMPILE
        COMPILE = compile_time.Section(ROOT, TARGET, OUT, QUICK, exes, log, die)
        log(f"compile: writing the crates ({COMPILE.lines}-line contract)")
        COMPILE.prepare()
        COMPILE.warm()
        res["compile"] = []
        for rnd in range(1, COMPILE_RUNS + 1):
            log(f"compile round {rnd}/{COMPILE_RUNS}: cargo {' and '.join(COMPILE.modes)}")
            res["compile"].append(COMPILE.round(rnd))
    if "codegen" in ONLY:
        log("codegen")
        # parse: two lines, the file as generated, then with its cron expressions distinct.
        res["codegen"] = [*run_json([exes["parse"]], "IDL parse bench").strip().splitlines()[-2:],
                          run_json([exes["generate"]], "codegen bench").strip().splitlines()[-1],
                          # Two lines: fmt and lint, then breaking.
                          *run_json([exes["toolchain"]], "fmt/lint/breaking bench").strip().splitlines()[-2:]]
    if "cost" in ONLY:
        log("cost (callgrind: instructions per operation, metrics off / on / otel built)")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench" / "cost.py")], cwd=ROOT,
                       check=True, env={"COST_REPEAT": "3", **os.environ, "KONTIKI_AMQP_URL": URL})
        res["cost"] = json.loads((OUT / "cost.json").read_text())
    meta = dict(
        started=started.strftime("%Y-%m-%d %H:%M"),
        finished=datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M"),
        load_before=load_before,
        load_after=load(),
        machine=machine(),
        sizes=SIZES,
        runs=RUNS,
    )
    text = report(res, meta)
    print(text)
    (OUT / "report.md").write_text(text + "\n")

    def keyed(x):
        if isinstance(x, dict):
            def name(k):
                if not isinstance(k, tuple):
                    return k
                return f"{k[0]} {k[1]} B c={k[2]}" if len(k) == 3 else " c=".join(map(str, k))
            return {name(k): keyed(v) for k, v in x.items()}
        if isinstance(x, list):
            return [keyed(v) for v in x]
        return x

    if "compile" in res:
        res["compile"] = [{" / ".join(k): v for k, v in r.items()} for r in res["compile"]]
        res["compile_sizes"] = COMPILE.summary()
    (OUT / "report.json").write_text(json.dumps({"meta": meta, "results": keyed(res)}, indent=1) + "\n")
    log(f"written {OUT / 'report.md'} and {OUT / 'report.json'}")


if __name__ == "__main__":
    main()
