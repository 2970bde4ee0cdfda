#!/usr/bin/env python3
"""probe: a generic Python Kontiki 2.3.2 client driven by JSON lines.

Run:  <venv>/bin/python kontiki-rt/tests/py/probe.py --url AMQP_URL [--client-name probe]

It uses a standalone `Messenger(amqp_url=URL, standalone=True, client_name="probe")` (protocol
§12), prints `READY` once connected, then reads one JSON command per stdin line and writes one
JSON result per line on stdout (flushed). Commands run one at a time, in order. Each command
runs in a fresh contextvars context, so a `flow_id` given to one command does NOT stick to the
next ones (Kontiki's standalone clients would otherwise reuse it, protocol §4 / §11 #6).
Logs go to stderr. EOF on stdin or {"op":"quit"} stops it (exit code 0).

See README.md for the command set.
"""

import argparse
import asyncio
import base64
import contextvars
import datetime as _dt
import decimal
import json
import sys
import time
import traceback
import uuid

from kontiki.messaging import (
    Messenger,
    RpcClientError,
    RpcServerError,
    RpcTimeoutError,
)
from kontiki.messaging.rpc import RpcReturn

# -----------------------------------------------------------------------------
# JSON in: tagged values become Python objects


def decode_in(value):
    """Turn tagged JSON from a command into Python values.

    {"__bytes__": true, "data": b64}  -> bytes      (Kontiki's own wire form for bytes)
    {"__bytearray__": b64}            -> bytearray  (an AMQP `x` header value)
    {"__datetime__": iso}             -> datetime
    {"__date__": iso}                 -> date
    {"__uuid__": str}                 -> UUID
    {"__tuple__": [...]}              -> tuple
    {"__float__": x}                  -> float (e.g. 1.0 that JSON tools print as 1)
    {"__decimal__": "1.5"}            -> Decimal (AMQP `D` header value)
    """
    if isinstance(value, list):
        return [decode_in(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("__bytes__") is True and "data" in value:
        return base64.b64decode(value["data"])
    if len(value) == 1:
        (key, inner), = value.items()
        if key == "__bytearray__":
            return bytearray(base64.b64decode(inner))
        if key == "__datetime__":
            return _dt.datetime.fromisoformat(inner)
        if key == "__date__":
            return _dt.date.fromisoformat(inner)
        if key == "__uuid__":
            return uuid.UUID(inner)
        if key == "__tuple__":
            return tuple(decode_in(v) for v in inner)
        if key == "__float__":
            return float(inner)
        if key == "__decimal__":
            return decimal.Decimal(str(inner))
    return {k: decode_in(v) for k, v in value.items()}


# -----------------------------------------------------------------------------
# JSON out: Python results become JSON, with a recursive Python type map


def encode_out(value):
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": True, "data": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, RpcReturn):
        return {
            "__rpcreturn__": True,
            "success": value.success,
            "result": encode_out(value.result),
            "message": value.message,
            "error_type": value.error_type.name,
            "error_code": value.error_code,
        }
    if isinstance(value, dict):
        return {str(k): encode_out(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_out(v) for v in value]
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def type_map(value):
    """dict -> {k: map}, list/tuple -> [map], anything else -> its Python type name."""
    if isinstance(value, dict):
        return {str(k): type_map(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [type_map(v) for v in value]
    if isinstance(value, RpcReturn):
        return "RpcReturn"
    return type(value).__name__


# -----------------------------------------------------------------------------


class Probe:
    def __init__(self, url, client_name):
        self.messenger = Messenger(amqp_url=url, standalone=True, client_name=client_name)
        self.sessions = {}
        self._next_session = 0

    async def start(self):
        await self.messenger.start()

    async def stop(self):
        await self.messenger.stop()

    async def op_call(self, cmd):
        kwargs = decode_in(cmd.get("kwargs") or {})
        args = decode_in(cmd.get("args") or [])
        extra = decode_in(cmd.get("extra_headers")) if cmd.get("extra_headers") else None
        timeout = cmd.get("timeout")
        # Standalone Messengers always use a 10 s timeout (Messenger._rpc_timeout, set in
        # Messenger._setup). Commands run one at a time, so overriding it per call is safe.
        saved = self.messenger._rpc_timeout
        if timeout is not None:
            self.messenger._rpc_timeout = float(timeout)
        try:
            result = await self.messenger.call(
                cmd["service"],
                cmd["method"],
                *args,
                extra_headers=extra,
                flow_id=cmd.get("flow_id"),
                instance_id=cmd.get("instance_id"),
                **kwargs,
            )
        finally:
            self.messenger._rpc_timeout = saved
        return {
            "ok": True,
            "result": encode_out(result),
            "py_type": type(result).__name__ if not isinstance(result, RpcReturn) else "RpcReturn",
            "types": type_map(result),
        }

    async def op_publish(self, cmd):
        extra = decode_in(cmd.get("extra_headers")) if cmd.get("extra_headers") else None
        await self.messenger.publish(
            cmd["event"],
            decode_in(cmd.get("payload")),
            reply_to=cmd.get("reply_to"),
            extra_headers=extra,
            flow_id=cmd.get("flow_id"),
        )
        return {"ok": True}

    async def op_open_session(self, cmd):
        saved = self.messenger._rpc_timeout
        if cmd.get("timeout") is not None:
            self.messenger._rpc_timeout = float(cmd["timeout"])
        try:
            session = await self.messenger.open_session(cmd["service"])
        finally:
            self.messenger._rpc_timeout = saved
        self._next_session += 1
        handle = f"s{self._next_session}"
        self.sessions[handle] = session
        return {
            "ok": True,
            "session": handle,
            "instance_id": session.instance_id,
            "session_id": session.session_id,
        }

    async def op_session_publish(self, cmd):
        session = self.sessions.get(cmd["session"])
        if session is None:
            raise KeyError(f"unknown session handle {cmd['session']!r}")
        extra = decode_in(cmd.get("extra_headers")) if cmd.get("extra_headers") else None
        await session.publish(
            cmd["event"],
            decode_in(cmd.get("payload")),
            extra_headers=extra,
            flow_id=cmd.get("flow_id"),
        )
        return {"ok": True}

    async def op_ping(self, cmd):
        return {
            "ok": True,
            "service_name": self.messenger.service_name,
            "instance_id": self.messenger.instance_id,
        }

    async def handle(self, cmd):
        op = cmd.get("op")
        fn = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if fn is None:
            return {"ok": False, "error": "other", "code": None,
                    "message": f"unknown op {op!r}", "exc_type": "ValueError"}
        started = time.monotonic()
        try:
            out = await fn(cmd)
        except RpcTimeoutError as e:
            out = self._err("timeout", e)
        except RpcClientError as e:
            out = self._err("client", e)
        except RpcServerError as e:
            out = self._err("server", e)
        except Exception as e:  # noqa: BLE001 - reported to the test
            print(traceback.format_exc(), file=sys.stderr, flush=True)
            out = {"ok": False, "error": "other", "code": None, "message": str(e),
                   "exc_type": type(e).__name__}
        out["elapsed"] = round(time.monotonic() - started, 3)
        return out

    @staticmethod
    def _err(kind, e):
        return {"ok": False, "error": kind, "code": e.code, "message": e.message,
                "exc_type": type(e).__name__, "str": str(e)}


def emit(obj):
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


async def main_async(args):
    probe = Probe(args.url, args.client_name)
    await probe.start()
    emit_ready = f"READY {probe.messenger.service_name} {probe.messenger.instance_id}"
    sys.stdout.write(emit_ready + "\n")
    sys.stdout.flush()

    loop = asyncio.get_running_loop()
    stdin = sys.stdin.buffer
    try:
        while True:
            # A thread read works for pipes, files and ttys alike.
            line = await loop.run_in_executor(None, stdin.readline)
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            try:
                cmd = json.loads(line)
                if not isinstance(cmd, dict):
                    raise ValueError("a command must be a JSON object")
            except ValueError as e:
                emit({"ok": False, "error": "other", "code": None,
                      "message": f"bad command: {e}", "exc_type": "ValueError"})
                continue
            if cmd.get("op") == "quit":
                emit({"ok": True, "id": cmd.get("id")} if "id" in cmd else {"ok": True})
                break
            # A fresh context per command: no flow id leaks from one command to the next.
            task = loop.create_task(probe.handle(cmd), context=contextvars.Context())
            out = await task
            if "id" in cmd:
                out["id"] = cmd["id"]
            emit(out)
    finally:
        await probe.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="AMQP URL, e.g. amqp://guest:guest@127.0.0.1:5672/vhost")
    ap.add_argument("--client-name", default="probe",
                    help="standalone client name (service_name header = kontiki-standalone-<name>)")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
