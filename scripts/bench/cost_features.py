#!/usr/bin/env python3
"""Which of kontiki-rs's switchable features make its CPU per operation higher than raw
lapin's (issue 22 item 4): one build of the rpc and events benches, counted in one run by
`cost.py`'s method (callgrind, marginal cost between COST_N1 and COST_N2 operations, one-time
`OnceCell` work taken out, median of COST_REPEAT, default 3).

Rows: raw lapin; kontiki-rs as configured by default; with metrics off
(`KONTIKI_BENCH_METRICS=off`); for RPC also with the redelivery dedup cache off
(`KONTIKI_BENCH_DEDUP=off`) and with both off. The events bench has no dedup switch.

    python3 scripts/bench/cost_features.py target/release/deps/rpc-… target/release/deps/events-…

(the executables `cargo bench -p kontiki-rt --bench rpc --bench events --no-run` prints). Needs
valgrind and the broker at KONTIKI_AMQP_URL. Prints a table; takes about 6 minutes.
"""

import datetime
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("COST_REPEAT", "3")
spec = importlib.util.spec_from_file_location("cost", Path(__file__).resolve().parent / "cost.py")
cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cost)

METRICS_OFF = {"KONTIKI_BENCH_METRICS": "off"}
DEDUP_OFF = {"KONTIKI_BENCH_DEDUP": "off"}
CONFIGS = {
    "rpc": [("default", {}), ("metrics off", METRICS_OFF), ("dedup cache off", DEDUP_OFF),
            ("both off", {**METRICS_OFF, **DEDUP_OFF})],
    "events": [("default", {}), ("metrics off", METRICS_OFF)],
}
LABELS = {"rpc": "RPC call, c=1", "events": "event, publish + handle"}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    cost.OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for kind, exe in zip(("rpc", "events"), sys.argv[1:]):
        raw = cost.per_op(exe, kind, {}, raw=True)
        rows.append((LABELS[kind], "raw lapin", raw, None))
        for name, env in CONFIGS[kind]:
            rows.append((LABELS[kind], f"kontiki-rs, {name}", cost.per_op(exe, kind, env),
                         raw))
    ended = datetime.datetime.now(datetime.timezone.utc)
    print(f"cost_features.py, COST_REPEAT={cost.REPEAT}, N1={cost.N1}, N2={cost.N2}, "
          f"{started:%Y-%m-%d %H:%M}–{ended:%H:%M} UTC")
    print()
    print("| operation | contender | instructions | / raw lapin |")
    print("|---|---|---:|---:|")
    for op, name, count, raw in rows:
        ratio = f"{count / raw:.3f}×" if raw else ""
        print(f"| {op} | {name} | {count:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
