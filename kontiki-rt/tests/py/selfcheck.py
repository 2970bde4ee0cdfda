#!/usr/bin/env python3
"""Python <-> Python self-check of the interop rig (proto_svc.py, probe.py, tap.py).

Run through selfcheck.sh (which makes the venv and a private vhost), or directly:
    <venv>/bin/python kontiki-rt/tests/py/selfcheck.py --url amqp://guest:guest@127.0.0.1:5672/VHOST

Starts tap.py, proto_svc.py (unique service name) and probe.py as subprocesses, waits for their
READY lines, drives every RPC / event / session through the probe, checks the results, the
recorded deliveries and the tap dump, runs experiments.py, then stops everything.
Exit code 0 = all checks passed. No sleeps are used for synchronisation: every wait is on a
line, a reply, or a polled condition with a deadline.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable

FAILURES = []
PASSES = 0


def check(name, cond, detail=None):
    global PASSES
    if cond:
        PASSES += 1
        print(f"ok   {name}", flush=True)
    else:
        FAILURES.append(name)
        extra = "" if detail is None else f": {json.dumps(detail, default=repr)[:1500]}"
        print(f"FAIL {name}{extra}", flush=True)


class Proc:
    def __init__(self, name, argv, stdin=True):
        self.name = name
        self.argv = argv
        self.stdin = stdin
        self.proc = None
        self.lines = []  # stdout lines after READY (tap)
        self.ready = None
        self._new_line = asyncio.Event()
        self._reader = None
        self.stderr_path = os.path.join(tempfile.gettempdir(), f"selfcheck-{name}-{os.getpid()}.err")

    async def start(self, timeout=30.0):
        self._stderr = open(self.stderr_path, "wb")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE if self.stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._stderr,
            limit=16 * 1024 * 1024,
        )
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.name}: no READY within {timeout}s (see {self.stderr_path})")
        line = line.decode().strip()
        if not line.startswith("READY"):
            raise RuntimeError(f"{self.name}: expected READY, got {line!r} (see {self.stderr_path})")
        self.ready = line.split()
        return self.ready

    def collect(self):
        async def run():
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(json.loads(line))
                self._new_line.set()

        self._reader = asyncio.ensure_future(run())

    async def wait_for(self, pred, timeout=10.0):
        """Wait until some collected line satisfies pred; returns the matches."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [m for m in self.lines if pred(m)]
            left = deadline - loop.time()
            if found or left <= 0:
                return found
            self._new_line.clear()
            try:
                await asyncio.wait_for(self._new_line.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def request(self, cmd, timeout=60.0):
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.name} closed its stdout (see {self.stderr_path})")
        return json.loads(line)

    async def stop(self, timeout=15.0):
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        try:
            self.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader:
            await asyncio.wait_for(self._reader, 5)
        return self.proc.returncode


async def failed_queue_count(url, name, want, timeout):
    """Poll (passive declare) a queue's ready count until it reaches `want` or the deadline."""
    import aio_pika

    conn = await aio_pika.connect(url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        count = None
        while loop.time() < deadline:
            ch = await conn.channel()
            q = await ch.declare_queue(name, passive=True)
            count = q.declaration_result.message_count
            await ch.close()
            if count >= want:
                break
            await asyncio.sleep(0.1)  # polling a condition with a deadline, not a sync sleep
        return count
    finally:
        await conn.close()


async def run_checks(url, keep_logs):
    svc = f"proto-svc-{uuid.uuid4().hex[:8]}"
    cfg_dir = tempfile.mkdtemp(prefix="selfcheck-")
    cfg = os.path.join(cfg_dir, "svc.yaml")
    with open(cfg, "w") as f:
        f.write(
            "kontiki:\n"
            f"  service_name: {svc}\n"
            "  amqp:\n"
            f"    url: {url}\n"
            "  heartbeat:\n"
            "    interval: 2\n"
            "  registration:\n"
            "    delay: 1\n"
            "    disable: true\n"
            "  shutdown:\n"
            "    grace_seconds: 2\n"
        )

    tap = Proc("tap", [PY, os.path.join(HERE, "tap.py"), "--url", url, "--exit-on-stdin-eof"])
    service = Proc("proto_svc", [PY, os.path.join(HERE, "proto_svc.py"), "--config", cfg], stdin=False)
    probe = Proc("probe", [PY, os.path.join(HERE, "probe.py"), "--url", url])
    procs = [probe, service, tap]
    try:
        await tap.start()
        tap.collect()
        ready = await service.start()
        check("proto_svc READY line names the service", ready[1] == svc, ready)
        iid = ready[2]
        await probe.start()

        async def call(method, *args, **kw):
            cmd = {"op": "call", "service": svc, "method": method, "args": list(args)}
            cmd.update(kw)
            return await probe.request(cmd)

        # --- RPCs ----------------------------------------------------------------
        r = await call("echo", 1, "a", [1, 2], {"x": None}, kwargs={"k": True},
                       extra_headers={"tenant": "t1"}, flow_id="fixedflow001")
        check("echo result", r.get("ok") and r["result"] == {"args": [1, "a", [1, 2], {"x": None}], "kwargs": {"k": True}}, r)

        r = await call("echo", {"__bytes__": True, "data": "AAE="})
        check("echo bytes round trip", r.get("ok") and r["types"]["args"] == ["bytes"]
              and r["result"]["args"][0] == {"__bytes__": True, "data": "AAE="}, r)

        r = await call("types")
        want = {"dt": "2024-01-02T03:04:05+00:00", "d": "2024-01-02",
                "u": "00000000-0000-0000-0000-000000000001",
                "b": {"__bytes__": True, "data": "AAFoaQ=="}, "t": [1, 2],
                "model": {"name": "x", "qty": 1}, "none": None}
        check("types result", r.get("ok") and r["result"] == want, r)
        check("types python types", r.get("types", {}).get("b") == "bytes"
              and r["types"]["dt"] == "str" and r["types"]["none"] == "NoneType", r)

        r = await call("echo", {"__datetime__": "2024-01-02T03:04:05+00:00"},
                       {"__uuid__": "00000000-0000-0000-0000-000000000001"}, {"__date__": "2024-01-02"})
        check("echo datetime/uuid/date args", r.get("ok") and r["result"]["args"] ==
              ["2024-01-02T03:04:05+00:00", "00000000-0000-0000-0000-000000000001", "2024-01-02"], r)

        r = await call("model_arg", {"name": "a", "qty": 2}, kwargs={"other": {"name": "b"}})
        check("model_arg reconstructs pydantic models", r.get("ok")
              and r["result"] == {"item": {"name": "a", "qty": 2}, "item_type": "Item",
                                  "other": {"name": "b", "qty": 1}, "other_type": "Item"}, r)
        r = await call("model_arg", {"name": "a"})
        check("model_arg optional None", r.get("ok") and r["result"]["other_type"] == "NoneType", r)

        r = await call("client_err")
        check("client error", r.get("error") == "client" and r["code"] == "NOT_FOUND"
              and r["message"] == "no such thing" and r["exc_type"] == "RpcClientError", r)
        r = await call("boom")
        check("server error", r.get("error") == "server" and r["code"] == "INTERNAL_ERROR"
              and r["message"] == "kaboom" and r["exc_type"] == "RpcServerError", r)
        r = await call("ret_none")
        check("ret_none", r.get("ok") and r["result"] is None and r["py_type"] == "NoneType", r)
        r = await call("slow", 3, timeout=1)
        check("timeout", r.get("error") == "timeout" and r["code"] == "RPC_TIMEOUT"
              and 0.9 <= r["elapsed"] < 2.5, r)

        r = await call("hdrs", extra_headers={"tenant": "t1", "num": 5, "flag": True},
                       flow_id="hdrflow00001")
        h = r.get("result") or {}
        check("hdrs sees Kontiki request headers", r.get("ok")
              and h.get("remote_method") == "hdrs" and h.get("rpc_service") == svc
              and h.get("service_name") == "kontiki-standalone-probe"
              and h.get("flow_id") == "hdrflow00001" and h.get("tenant") == "t1"
              and h.get("num") == 5 and h.get("flag") is True
              and "event_type" not in h and "reply_to" not in h, r)

        r = await call("whoami", instance_id=iid)
        check("targeted call (instance_id)", r.get("ok") and r["result"]["instance_id"] == iid, r)
        r = await call("whoami", instance_id=str(uuid.uuid4()), timeout=1)
        check("targeted call to unknown instance times out", r.get("error") == "timeout", r)

        r = await call("chain", flow_id="chainflow001")
        check("chain", r.get("ok") and r["result"] == {"echo": {"args": [1], "kwargs": {}}}, r)

        r = await call("set_degraded", True)
        check("set_degraded", r.get("ok") and r["result"] is True, r)
        await call("set_degraded", False)

        # --- events ----------------------------------------------------------------
        r = await probe.request({"op": "publish", "event": "proto.simple",
                                 "payload": {"hello": "world"}, "extra_headers": {"tenant": "t2"}})
        check("publish", r.get("ok"), r)
        r = await call("wait_received", kwargs={"name": "proto.simple", "count": 1, "timeout": 5})
        recs = r.get("result") or []
        check("proto.simple received with headers", len(recs) == 1
              and recs[0]["payload"] == {"hello": "world"}
              and recs[0]["headers"].get("tenant") == "t2"
              and recs[0]["headers"].get("event_type") == "proto.simple"
              and recs[0]["header_types"].get("reply_to") == "NoneType", r)

        r = await probe.request({"op": "publish", "event": "proto.multi.b",
                                 "payload": {"name": "m", "qty": 3}})
        r = await call("wait_received", kwargs={"name": "proto.multi.b", "timeout": 5})
        recs = r.get("result") or []
        check("multi-type handler gets a pydantic model", len(recs) == 1
              and recs[0]["payload_type"] == "Item" and recs[0]["payload"] == {"name": "m", "qty": 3}, r)

        await probe.request({"op": "publish", "event": "proto.bcast", "payload": [1, 2, 3]})
        r = await call("wait_received", kwargs={"name": "proto.bcast", "timeout": 5})
        recs = r.get("result") or []
        check("broadcast event (list payload)", len(recs) == 1 and recs[0]["payload"] == [1, 2, 3], r)

        await probe.request({"op": "publish", "event": "proto.fail", "payload": {"will": "fail"}})
        r = await call("wait_received", kwargs={"name": "proto.fail", "count": 3, "timeout": 8})
        recs = r.get("result") or []
        check("failing competing event delivered max_attempts (3) times", len(recs) == 3, len(recs))
        count = await failed_queue_count(url, f"{svc}.proto.fail.failed", want=1, timeout=8)
        check("failed message dead-lettered to {svc}.proto.fail.failed", count == 1, count)

        # --- sessions --------------------------------------------------------------
        s = await probe.request({"op": "open_session", "service": svc})
        check("open_session", s.get("ok") and s["instance_id"] == iid and len(s["session_id"]) == 36, s)
        r = await probe.request({"op": "session_publish", "session": s.get("session"),
                                 "event": "proto.sess", "payload": {"in": "session"},
                                 "extra_headers": {"x": "y"}})
        check("session_publish", r.get("ok"), r)
        r = await call("wait_received", kwargs={"name": "proto.sess", "timeout": 5})
        recs = r.get("result") or []
        check("session event received", len(recs) == 1
              and recs[0]["headers"].get("session_id") == s.get("session_id")
              and recs[0]["headers"].get("event_type") == f"proto.sess.{iid}"
              and recs[0]["headers"].get("x") == "y", r)

        r = await probe.request({"op": "call", "service": svc, "method": "echo",
                                 "extra_headers": {"flow_id": "x"}})
        check("reserved extra header rejected client-side", r.get("error") == "other"
              and r["exc_type"] == "ValueError", r)

        # --- recording ---------------------------------------------------------------
        r = await call("received", kwargs={"kind": "rpc", "name": "echo"})
        recs = r.get("result") or []
        check("received() lists rpc deliveries with headers", len(recs) >= 4
              and recs[0]["payload"]["args"] == [1, "a", [1, 2], {"x": None}]
              and recs[0]["headers"]["flow_id"] == "fixedflow001", recs[:1])
        r = await call("clear_received")
        check("clear_received", r.get("ok") and r["result"] > 0, r)
        r = await call("received")
        check("received() empty after clear", r.get("ok") and r["result"] == [], r)

        # --- tap -----------------------------------------------------------------------
        def is_rpc(m, key):
            return m["exchange"] == "rpc_exchange" and m["routing_key"] == key

        found = await tap.wait_for(lambda m: is_rpc(m, f"{svc}.echo")
                                   and (m["headers"] or {}).get("flow_id", {}).get("value") == "fixedflow001")
        ok = bool(found)
        if ok:
            m = found[0]
            ok = (m["header_types"].get("service_name") == "S" and m["header_types"].get("tenant") == "S"
                  and m["properties"].get("delivery_mode") == 2 and "correlation_id" in m["properties"]
                  and m["properties"].get("reply_to", "").startswith("amq_")
                  and "event_type" not in m["headers"]
                  and m["body_json"] == {"args": [1, "a", [1, 2], {"x": None}], "kwargs": {"k": True}})
        check("tap: RPC request properties, typed headers, body", ok, found[:1])

        found = await tap.wait_for(lambda m: is_rpc(m, f"{svc}.hdrs"))
        ht = found[0]["header_types"] if found else {}
        check("tap: user extras keep their AMQP types", ht.get("num") == "b" and ht.get("flag") == "t"
              and ht.get("tenant") == "S", ht)

        found = await tap.wait_for(lambda m: is_rpc(m, f"{svc}.whoami.{iid}"))
        check("tap: targeted routing key", bool(found))

        found = await tap.wait_for(lambda m: is_rpc(m, f"{svc}.___kontiki__internal_session_open__"))
        check("tap: session-open RPC request", bool(found) and found[0]["body_json"] == {"args": [], "kwargs": {}}, found[:1])

        found = await tap.wait_for(lambda m: m["exchange"] == "event_exchange"
                                   and m["routing_key"] == f"proto.sess.{iid}")
        ok = bool(found) and found[0]["header_types"].get("session_id") == "S" \
            and found[0]["headers"]["event_type"]["value"] == f"proto.sess.{iid}"
        check("tap: session event routing key and session_id header", ok, found[:1])

        found = await tap.wait_for(lambda m: m["exchange"] == "event_exchange" and m["routing_key"] == "proto.simple")
        ok = bool(found) and found[0]["header_types"].get("reply_to") == "V" \
            and found[0]["properties"].get("delivery_mode") == 2 \
            and "correlation_id" not in found[0]["properties"]
        check("tap: event reply_to header is void, persistent", ok, found[:1])

        chain_req = await tap.wait_for(lambda m: is_rpc(m, f"{svc}.chain"))
        chained = await tap.wait_for(lambda m: m["routing_key"] == "proto.chained")
        inner = await tap.wait_for(lambda m: is_rpc(m, f"{svc}.echo")
                                   and (m["headers"] or {}).get("operation", {}).get("value") == "chain")
        ok = bool(chain_req and chained and inner)
        if ok:
            hop = chain_req[0]["headers"]["hop_id"]["value"]

            def hv(m, k):
                return (m["headers"].get(k) or {}).get("value")

            ok = all(hv(m, "flow_id") == "chainflow001" and hv(m, "parent_hop_id") == hop
                     and hv(m, "entrypoint") == "rpc" and hv(m, "operation") == "chain"
                     and hv(m, "hop_id") != hop for m in (chained[0], inner[0]))
        check("tap: flow/hop headers inside a handler", ok, [chain_req[:1], chained[:1], inner[:1]])

        # --- experiments (direct reply-to, mandatory, header types) ----------------
        exp = await asyncio.create_subprocess_exec(
            PY, os.path.join(HERE, "experiments.py"), "--url", url, "--service", svc,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await asyncio.wait_for(exp.communicate(), 60)
        for line in out.decode().splitlines():
            res = json.loads(line)
            check(f"experiment {res['experiment']}", res["ok"], res)
        check("experiments.py exit code", exp.returncode == 0, exp.returncode)

        r = await probe.request({"op": "quit"})
        check("probe quit", r.get("ok"), r)
        rc = await asyncio.wait_for(probe.proc.wait(), 10)
        check("probe exits 0", rc == 0, rc)
    finally:
        for p in procs:
            try:
                await p.stop()
            except Exception as e:  # noqa: BLE001
                print(f"warning: stopping {p.name}: {e}", file=sys.stderr)
        if FAILURES or keep_logs:
            for p in procs:
                print(f"--- {p.name} stderr: {p.stderr_path}", file=sys.stderr)
        else:
            for p in procs:
                try:
                    os.unlink(p.stderr_path)
                except OSError:
                    pass
    check("proto_svc stops on SIGTERM", service.proc.returncode is not None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    started = time.monotonic()
    try:
        asyncio.run(run_checks(args.url, args.keep_logs))
    except Exception as e:  # noqa: BLE001
        FAILURES.append(f"exception: {e!r}")
        print(f"FAIL exception: {e!r}", flush=True)
    print(f"selfcheck took {time.monotonic() - started:.1f}s", flush=True)
    print(f"selfcheck: {PASSES} passed, {len(FAILURES)} failed", flush=True)
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
