#!/usr/bin/env python3
"""Instructions per operation of two or more builds of the rpc and events benches, counted in
one run by `cost.py`'s method (callgrind, marginal cost between COST_N1 and COST_N2
operations, one-time `OnceCell` work taken out, median of COST_REPEAT, default 3), each build
against its own raw lapin contender: a before/after comparison of issue 22 item 4.

    python3 scripts/bench/cost_pair.py \\
        before=/tmp/before/rpc,/tmp/before/events after=target/release/deps/rpc-…,target/release/deps/events-…

(the executables `cargo bench -p kontiki-rt --bench rpc --bench events --no-run` prints). Needs
valgrind and the broker at KONTIKI_AMQP_URL. Prints a table.
"""

import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("COST_REPEAT", "3")
spec = importlib.util.spec_from_file_location("cost", Path(__file__).resolve().parent / "cost.py")
cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cost)


def main():
    if len(sys.argv) < 2 or not all("=" in a and "," in a for a in sys.argv[1:]):
        sys.exit(__doc__)
    builds = {}
    for arg in sys.argv[1:]:
        name, exes = arg.split("=", 1)
        rpc, events = exes.split(",", 1)
        builds[name] = {"rpc": rpc, "events": events}
    rows = []
    for kind in ["rpc", "events"]:
        for name, exes in builds.items():
            k = cost.per_op(exes[kind], kind, {})
            r = cost.per_op(exes[kind], kind, {}, raw=True)
            print(f"{kind} {name}: kontiki-rs {k:,.0f}, raw lapin {r:,.0f}", file=sys.stderr)
            rows.append((kind, name, k, r))
    print(f"Instructions per operation, median of {cost.REPEAT} (N1 = {cost.N1}, N2 = {cost.N2})\n")
    print("| operation | build | kontiki-rs | raw lapin | ratio |")
    print("|---|---|---:|---:|---:|")
    for kind, name, k, r in rows:
        label = "RPC call, c=1" if kind == "rpc" else "event, publish + handle"
        print(f"| {label} | {name} | {k:,.0f} | {r:,.0f} | {k / r:.3f}× |")


if __name__ == "__main__":
    main()
