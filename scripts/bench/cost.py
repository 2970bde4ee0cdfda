#!/usr/bin/env python3
"""Instructions per operation of kontiki-rs with metrics on, metrics off and `otel` built (no
exporter), counted by valgrind's callgrind (issue 17: "<= 3% more CPU per operation").

Wall-clock CPU time on a shared 2-core machine is too noisy for a 3% question, and this
machine's perf has no hardware counters; callgrind counts the instructions a process executes,
whatever else runs. Each contender runs the RPC bench (c=1) and the events bench
(kontiki-rs only, one process holding the client and the service) twice under callgrind, with
N1 and N2 operations after the same warm-up; the marginal cost of one operation is
(Ir(N2) - Ir(N1)) / (N2 - N1), so start-up, connection set-up and warm-up cancel out (and one-time `OnceCell`
initialisations are taken out of each count: see `one_time`). Both the
client side and the service side are counted (they share the process).

    python3 scripts/bench/cost.py            # builds the release benches, prints a table
    COST_N1=200 COST_N2=2200 COST_REPEAT=3 python3 scripts/bench/cost.py

COST_REPEAT (default 1) measures each contender that many times and takes the median: the
count varies a little from run to run with how often the threads park and wake. `make bench`
runs this as its `cost` section. Writes target/bench/cost.md and cost.json. Needs valgrind and
the broker at KONTIKI_AMQP_URL.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "target" / "bench"
N1 = int(os.environ.get("COST_N1", "200"))
N2 = int(os.environ.get("COST_N2", "2200"))
WARMUP = 50
REPEAT = int(os.environ.get("COST_REPEAT", "1"))


def build(features):
    """Builds the rpc and events benches (release) with `features`; returns their copies."""
    args = ["cargo", "bench", "--locked", "-p", "kontiki-rt", "--bench", "rpc", "--bench", "events",
            "--no-run", "--message-format", "json"]
    if features:
        args += ["--features", features]
    out = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    exes = {}
    for line in out.splitlines():
        m = re.search(r'"name":"(rpc|events)".*"executable":"([^"]+)"', line)
        if m and '"kind":["bench"]' in line:
            exes[m.group(1)] = m.group(2)
    if set(exes) != {"rpc", "events"}:
        sys.exit(f"cost.py: could not find the bench executables in cargo's output ({exes})")
    dest = OUT / "cost-bin" / (features or "default")
    dest.mkdir(parents=True, exist_ok=True)
    copies = {}
    for name, exe in exes.items():
        copies[name] = dest / name
        shutil.copy2(exe, copies[name])
    return copies


def instructions(cmd, env):
    """Instructions the command executed, all threads (callgrind's `summary`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "callgrind.out"
        full = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
                "--dump-instr=no", "--collect-jumps=no"] + cmd
        # No exporter: the OTEL_* variables that would ask for one are not passed on.
        base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        run = subprocess.run(full, cwd=ROOT, env={**base, **env}, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"cost.py: {' '.join(cmd)} failed under valgrind:\n{run.stderr[-3000:]}")
        total = None
        for line in out_file.read_text().splitlines():
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
                break
        if total is None:
            sys.exit("cost.py: no summary line in callgrind's output")
        return total - one_time(out_file)


def one_time(out_file):
    """Instructions spent in `OnceCell` initialisations (callgrind_annotate, inclusive): one-time
    set-up that the marginal method would cancel, except that quanta's clock calibration (the
    metrics exporter's, in a `OnceCell`) loops until the clock looks stable, which under valgrind
    takes from 6 to 15 million instructions from one run to the next: 2 to 8 thousand per
    operation of noise over 1,000 operations."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                          str(out_file)], capture_output=True, text=True).stdout
    most = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+.*once_cell::imp::OnceCell<T>::initialize::\{\{closure\}\}", line)
        if m:
            most = max(most, int(m.group(1).replace(",", "")))
    return most


def per_op(exe, kind, env, raw=False):
    """Marginal instructions of one operation (see the module doc); of the bench's raw lapin
    contender when `raw`."""
    json_path = OUT / f"cost-{kind}.json"
    only = "kontiki-rs"
    if raw:
        only = "raw-rs" if kind == "rpc" else "raw-lapin"

    def cmd(n):
        if kind == "rpc":
            return [str(exe), "--rounds", "1", "--no-extras", "--only", only,
                    "--concurrency", "1", "--calls1", str(n), "--warmup", str(WARMUP),
                    "--json", str(json_path)]
        return [str(exe), "--rounds", "1", "--no-extras", "--only", only,
                "--publishers", "1", "--events", str(n), "--warmup", str(WARMUP),
                "--json", str(json_path)]

    costs = []
    for _ in range(REPEAT):
        a = instructions(cmd(N1), env)
        b = instructions(cmd(N2), env)
        costs.append((b - a) / (N2 - N1))
    return sorted(costs)[len(costs) // 2]


def main():
    if not shutil.which("valgrind"):
        sys.exit("cost.py: valgrind is needed (apt-get install valgrind)")
    OUT.mkdir(parents=True, exist_ok=True)
    print("building the benches (release; default features, then with otel)", file=sys.stderr)
    plain = build("")
    traced = build("otel")
    contenders = [
        ("metrics off", plain, {"KONTIKI_BENCH_METRICS": "off"}),
        ("metrics on (default)", plain, {}),
        ("metrics on, otel built, no exporter", traced, {}),
    ]
    rows = []
    for kind in ["rpc", "events"]:
        # Issue 22 item 4: the same operation by the bench's raw lapin contender (same wire
        # settings), the floor kontiki-rs is compared with.
        print(f"{kind}: raw lapin", file=sys.stderr)
        raw = per_op(plain[kind], kind, {}, raw=True)
        base = None
        runs = list(contenders)
        if kind == "rpc":
            # The price of the redelivery cache: with it and metrics off, what is left is the
            # call path itself (flow ids, route checks, timeouts, the header guard).
            runs.append(("metrics and dedup off", plain,
                         {"KONTIKI_BENCH_METRICS": "off", "KONTIKI_BENCH_DEDUP": "off"}))
        for name, exes, env in runs:
            print(f"{kind}: {name}", file=sys.stderr)
            cost = per_op(exes[kind], kind, env)
            base = cost if base is None else base
            rows.append((kind, name, cost, cost / base, cost / raw))
        rows.append((kind, "raw lapin", raw, raw / base, 1.0))
    lines = [
        f"Instructions per operation (callgrind; marginal cost between {N1} and {N2} "
        f"operations after {WARMUP} warm-up, median of {REPEAT}; client and service in one "
        "process)",
        "",
        "| bench | contender | instructions / op | vs kontiki-rs metrics off | vs raw lapin |",
        "|---|---|---:|---:|---:|",
    ]
    for kind, name, cost, ratio, vs_raw in rows:
        label = "RPC c=1 (per call)" if kind == "rpc" else "events (per event)"
        who = name if name == "raw lapin" else f"kontiki-rs, {name}"
        lines.append(f"| {label} | {who} | {cost:,.0f} | {ratio:.3f}× | {vs_raw:.3f}× |")
    text = "\n".join(lines) + "\n"
    (OUT / "cost.md").write_text(text)
    (OUT / "cost.json").write_text(json.dumps(
        [dict(bench=kind, contender=name, per_op=cost, ratio=ratio, vs_raw=vs_raw)
         for kind, name, cost, ratio, vs_raw in rows], indent=1))
    print(text)


if __name__ == "__main__":
    main()
