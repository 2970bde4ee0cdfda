#!/usr/bin/env python3
"""proto-svc: the baseline Python Kontiki 2.3.2 service of kontiki-protocol.md §12.

Run:  <venv>/bin/python kontiki-rt/tests/py/proto_svc.py --config FILE [--config F2] [--version V]

It is started through kontiki's own CLI entry point (`kontiki.runner.cli.run`, which calls
`kontiki.runner.runner.run_service`), exactly like a real Kontiki application.

stdout carries exactly one line, `READY <service_name> <instance_id>`, printed once every
consumer is consuming (see `_ReadyNotifier`); all logging goes to stderr.

Every RPC and event it receives is recorded (payload + headers + Python types), see the RPCs
`received`, `wait_received`, `clear_received`.
"""

import asyncio
import base64
import datetime as _dt
import decimal
import os
import sys
import uuid

from pydantic import BaseModel

from kontiki.delegate import ServiceDelegate
from kontiki.messaging import Messenger, on_event, rpc, rpc_error
from kontiki.registry import degraded_on
from kontiki.runner.cli import run
from kontiki.task.task import task

# -----------------------------------------------------------------------------
# Models


class Item(BaseModel):
    name: str
    qty: int = 1


# -----------------------------------------------------------------------------
# Recording of every delivery (module global: inside @rpc handlers `self` is the
# ServiceContainer, not the service instance, see protocol §3.1).


def json_safe(value):
    """Make AMQP header values JSON-encodable by Kontiki's serializer.

    bytes/bytearray -> {"__bytes__": true, "data": b64} (Kontiki's own bytes encoding),
    Decimal -> str, datetime -> isoformat, containers recursively."""
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": True, "data": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def type_map(value):
    """Recursive map of Python type names: dict -> {k: map}, list/tuple -> [map], else name."""
    if isinstance(value, dict):
        return {str(k): type_map(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [type_map(v) for v in value]
    return type(value).__name__


class Recorder:
    def __init__(self):
        self.records = []
        self.changed = asyncio.Event()

    def add(self, kind, name, payload, headers):
        headers = dict(headers) if headers else {}
        self.records.append(
            {
                "kind": kind,
                "name": name,
                "payload": payload,
                "payload_type": type_map(payload),
                "headers": json_safe(headers),
                "header_types": {k: type(v).__name__ for k, v in headers.items()},
                "received_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            }
        )
        self.changed.set()

    def select(self, kind=None, name=None):
        return [
            r
            for r in self.records
            if (kind is None or r["kind"] == kind) and (name is None or r["name"] == name)
        ]

    async def wait(self, kind, name, count, timeout):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.select(kind, name)
            remaining = deadline - loop.time()
            if len(found) >= count or remaining <= 0:
                return found
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                pass


RECORDER = Recorder()
STATE = {"degraded": False, "fail_task": False, "ticks": 0}


def _rpc_record(name, args, kwargs, headers):
    RECORDER.add("rpc", name, {"args": list(args), "kwargs": dict(kwargs)}, headers)


# -----------------------------------------------------------------------------
# READY hook.
#
# kontiki.runner.runner.run_service awaits ServiceContainer.setup() (which, with the
# default kontiki.amqp.required=true, runs _setup_amqp(): consumer connect + declares,
# registry register, Consumer.start() = basic.consume on every queue, then Messenger
# delegates connect) and only then ServiceContainer.start(), which calls start() on every
# non-Messenger delegate. So a delegate's start() runs after every consumer is up.


class _ReadyNotifier(ServiceDelegate):
    async def start(self):
        c = self.container
        sys.stdout.write(f"READY {c.service_name} {c.instance_id}\n")
        sys.stdout.flush()


# -----------------------------------------------------------------------------
# The service


class ProtoService:
    name = "proto-svc"  # overridden by kontiki.service_name

    config = None  # ServiceContainer.setup() sets it when the attribute exists
    messenger = Messenger()
    zz_ready = _ReadyNotifier()

    # --- RPC ---------------------------------------------------------------
    # Every RPC takes include_headers=True so that its delivery (with headers) is recorded;
    # `_headers` is keyword-only with a default because Kontiki passes it only when the
    # message has a non-empty header table (protocol §2.6).

    @rpc(include_headers=True)
    async def echo(self, *args, _headers=None, **kwargs):
        _rpc_record("echo", args, kwargs, _headers)
        return {"args": list(args), "kwargs": kwargs}

    @rpc(include_headers=True)
    async def types(self, _headers=None):
        _rpc_record("types", (), {}, _headers)
        return {
            "dt": _dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_dt.timezone.utc),
            "d": _dt.date(2024, 1, 2),
            "u": uuid.UUID(int=1),
            "b": b"\x00\x01hi",
            "t": (1, 2),
            "model": Item(name="x", qty=1),
            "none": None,
        }

    @rpc(include_headers=True)
    async def model_arg(self, item: Item, other: Item | None = None, _headers=None):
        _rpc_record("model_arg", (item,), {"other": other}, _headers)
        return {
            "item": item,
            "item_type": type(item).__name__,
            "other": other,
            "other_type": type(other).__name__,
        }

    @rpc(include_headers=True)
    async def client_err(self, _headers=None):
        _rpc_record("client_err", (), {}, _headers)
        return rpc_error("NOT_FOUND", "no such thing")

    @rpc(include_headers=True)
    async def boom(self, _headers=None):
        _rpc_record("boom", (), {}, _headers)
        raise RuntimeError("kaboom")

    @rpc(include_headers=True)
    async def slow(self, secs, _headers=None):
        _rpc_record("slow", (secs,), {}, _headers)
        await asyncio.sleep(float(secs))
        return secs

    @rpc(include_headers=True)
    async def hdrs(self, _headers=None):
        _rpc_record("hdrs", (), {}, _headers)
        return json_safe(dict(_headers or {}))

    @rpc(include_headers=True)
    async def hdrs_raw(self, _headers=None):
        # Returns the header dict untouched: shows what Kontiki's serializer does with
        # AMQP byte arrays (bytearray is not JSON-encodable for it -> no reply at all).
        _rpc_record("hdrs_raw", (), {}, _headers)
        return dict(_headers or {})

    @rpc(include_headers=True)
    async def ret_none(self, _headers=None):
        _rpc_record("ret_none", (), {}, _headers)
        return None

    @rpc(include_headers=True)
    async def set_degraded(self, flag, _headers=None):
        _rpc_record("set_degraded", (flag,), {}, _headers)
        STATE["degraded"] = bool(flag)
        return STATE["degraded"]

    @rpc(include_headers=True)
    async def set_fail_task(self, flag, _headers=None):
        _rpc_record("set_fail_task", (flag,), {}, _headers)
        STATE["fail_task"] = bool(flag)
        return STATE["fail_task"]

    @rpc(include_headers=True)
    async def chain(self, _headers=None):
        # `self` is the ServiceContainer: delegates are its attributes.
        _rpc_record("chain", (), {}, _headers)
        await self.messenger.publish("proto.chained", {"from": "chain"})
        echoed = await self.messenger.call(self.service_name, "echo", 1)
        return {"echo": echoed}

    # --- test-rig helpers (not recorded) -------------------------------------

    @rpc
    async def received(self, kind=None, name=None):
        return RECORDER.select(kind, name)

    @rpc
    async def wait_received(self, name=None, count=1, timeout=5.0, kind=None):
        """Wait (bounded) until `count` records match; returns the matches found."""
        return await RECORDER.wait(kind, name, int(count), float(timeout))

    @rpc
    async def clear_received(self):
        n = len(RECORDER.records)
        RECORDER.records.clear()
        return n

    @rpc
    async def whoami(self):
        return {
            "service_name": self.service_name,
            "instance_id": str(self.instance_id),
            "pid": os.getpid(),
            "ticks": STATE["ticks"],
        }

    # --- events --------------------------------------------------------------

    @on_event("proto.simple", include_headers=True)
    async def on_simple(self, payload, _headers=None):
        RECORDER.add("event", "proto.simple", payload, _headers)

    @on_event("proto.chained", include_headers=True)
    async def on_chained(self, payload, _headers=None):
        RECORDER.add("event", "proto.chained", payload, _headers)

    @on_event("proto.fail", include_headers=True)
    async def on_fail(self, payload, _headers=None):
        RECORDER.add("event", "proto.fail", payload, _headers)
        raise ValueError("event handler failed")

    @on_event(["proto.multi.a", "proto.multi.b"], include_headers=True, max_attempts=2)
    async def on_multi(self, item: Item, _headers=None):
        name = (_headers or {}).get("event_type") or "proto.multi"
        if isinstance(name, (bytes, bytearray)):
            name = bytes(name).decode("utf-8", "replace")
        RECORDER.add("event", name, item, _headers)

    @on_event("proto.bcast", broadcast=True, include_headers=True)
    async def on_bcast(self, payload, _headers=None):
        RECORDER.add("event", "proto.bcast", payload, _headers)
        if isinstance(payload, dict) and payload.get("fail"):
            raise ValueError("broadcast handler failed")

    @on_event("proto.sess", in_session=True, include_headers=True)
    async def on_sess(self, payload, _headers=None):
        RECORDER.add("event", "proto.sess", payload, _headers)

    # --- task / degraded -----------------------------------------------------

    @task(interval=4)
    async def tick(self):
        STATE["ticks"] += 1
        if STATE["fail_task"]:
            raise RuntimeError("task failed")

    @degraded_on
    def is_degraded(self):
        # Called without await by HeartbeatPublisher._evaluate_degraded: must be sync.
        if STATE["degraded"]:
            return True, "manual degrade"
        return False, None


# -----------------------------------------------------------------------------


def main():
    # kontiki.runner.cli.run() only knows --config; take an optional --version out first
    # (the service version reported to the registry, default 9.9.9 as in the protocol study).
    version = "9.9.9"
    argv = sys.argv[1:]
    rest = []
    i = 0
    while i < len(argv):
        if argv[i] == "--version" and i + 1 < len(argv):
            version = argv[i + 1]
            i += 2
            continue
        if argv[i].startswith("--version="):
            version = argv[i].split("=", 1)[1]
            i += 1
            continue
        rest.append(argv[i])
        i += 1
    sys.argv = [sys.argv[0]] + rest
    run(ProtoService, "Kontiki interop baseline service (proto-svc)", version)


if __name__ == "__main__":
    main()
