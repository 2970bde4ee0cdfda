#!/usr/bin/env python3
"""tap: dump every message on Kontiki's exchanges, with the AMQP wire type of each header.

Run:  <venv>/bin/python kontiki-rt/tests/py/tap.py --url AMQP_URL [--exchange NAME ...]
                                                 [--key '#'] [--exit-on-stdin-eof]

Declares `event_exchange`, `rpc_exchange`, `registry_admin_exchange` exactly as Kontiki 2.3.2
does (topic, durable=false, auto_delete=false, internal=false, no arguments:
kontiki/messaging/common.py declare_event_exchange / declare_rpc_exchange and
kontiki/registry/common.py declare_registry_admin_exchange, all `channel.declare_exchange(name,
ExchangeType.TOPIC)` with aio-pika defaults), binds one server-named exclusive auto-delete queue
to each with key `#`, consumes it with no-ack, prints `READY <queue>` and then one JSON line per
message (flushed):

  {"exchange": "...", "routing_key": "...", "redelivered": false,
   "properties": {<every basic property that is present, except headers>},
   "headers": null | {"<key>": {"type": "S", "value": ...}, ...},
   "header_types": null | {"<key>": "S", ...},
   "body": "<utf-8 text or base64>", "body_encoding": "utf8" | "base64",
   "body_json": <parsed body, only when the body is JSON>}

Header types are the AMQP 0-9-1 field-value type octets as RabbitMQ/pamqp write them:
S long string, x byte array, V void, t bool, b/B/s/u/I/i/l/L integers, f float, d double,
D decimal, T timestamp, F table, A array. Values: S -> str (or {"__bytes__": true, "data": b64}
if not UTF-8), x -> {"__bytes__": true, "data": b64}, T -> ISO string, D -> string,
F -> {key: {"type", "value"}}, A -> [{"type", "value"}, ...].

The types are read from the raw header frame: the tap wraps pamqp's `table` decoder (used by
pamqp.base.BasicProperties.unmarshal for the `headers` property) so that it also walks the same
bytes and records each value's type octet. aio-pika/aiormq would otherwise only show Python types.
"""

import argparse
import asyncio
import base64
import datetime as _dt
import decimal
import json
import signal
import sys

from pamqp import common as pcommon
from pamqp import decode as pdecode

# -----------------------------------------------------------------------------
# Typed field-table decoding (wire type octet of every value)


def _typed_value(buf):
    tag = buf[0:1]
    if tag == b"F":
        consumed, table = _typed_table(buf[1:])
        return consumed + 1, {"type": "F", "value": table}
    if tag == b"A":
        length = pcommon.Struct.integer.unpack(buf[1:5])[0]
        offset = 5
        end = 5 + length
        items = []
        while offset < end:
            consumed, item = _typed_value(buf[offset:])
            offset += consumed
            items.append(item)
        return offset, {"type": "A", "value": items}
    decoder = pdecode.TABLE_MAPPING.get(tag)
    if decoder is None:
        raise ValueError(f"unknown field type {tag!r}")
    consumed, value = decoder(buf[1:])
    type_char = "V" if tag == b"\x00" else tag.decode("ascii")
    return consumed + 1, {"type": type_char, "value": _json_value(value)}


def _typed_table(buf):
    length = pcommon.Struct.integer.unpack(buf[0:4])[0]
    offset = 4
    end = 4 + length
    table = {}
    while offset < end:
        key_len = buf[offset]
        offset += 1
        key = bytes(buf[offset:offset + key_len]).decode("utf-8", "replace")
        offset += key_len
        consumed, value = _typed_value(buf[offset:])
        offset += consumed
        table[key] = value
    return end, table


def _json_value(value):
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": True, "data": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


class TypedTable(dict):
    """The dict pamqp would return, plus `.typed` (same keys, {"type", "value"} entries)."""

    typed = None


_orig_table = pdecode.METHODS["table"]


def _table_with_types(value):
    consumed, result = _orig_table(value)
    out = TypedTable(result)
    try:
        out.typed = _typed_table(value)[1]
    except Exception as e:  # never break the consumer over a diagnostic
        out.typed = {"__tap_error__": {"type": "?", "value": repr(e)}}
    return consumed, out


pdecode.METHODS["table"] = _table_with_types

import aiormq  # noqa: E402  (after the patch, although the patch is looked up at call time)

# -----------------------------------------------------------------------------

PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "message_type",
    "user_id",
    "app_id",
    "cluster_id",
)

DEFAULT_EXCHANGES = ("event_exchange", "rpc_exchange", "registry_admin_exchange")


def describe(message):
    props = message.header.properties
    properties = {}
    for name in PROPERTY_NAMES:
        value = getattr(props, name, None)
        if value is None or (name == "cluster_id" and value == ""):
            continue
        properties[name] = _json_value(value)

    headers = props.headers
    typed = None
    if headers is not None:
        typed = getattr(headers, "typed", None)
        if typed is None:  # should not happen; fall back to Python types
            typed = {k: {"type": "py:" + type(v).__name__, "value": _json_value(v)}
                     for k, v in headers.items()}

    body = message.body
    out = {
        "exchange": message.delivery.exchange,
        "routing_key": message.delivery.routing_key,
        "redelivered": bool(getattr(message.delivery, "redelivered", False)),
        "properties": properties,
        "headers": typed,
        "header_types": None if typed is None else {k: v["type"] for k, v in typed.items()},
    }
    try:
        text = body.decode("utf-8")
        out["body"] = text
        out["body_encoding"] = "utf8"
        try:
            out["body_json"] = json.loads(text)
        except ValueError:
            pass
    except UnicodeDecodeError:
        out["body"] = base64.b64encode(body).decode("ascii")
        out["body_encoding"] = "base64"
    return out


def emit_line(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def run(args):
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    connection = await aiormq.connect(args.url)
    channel = await connection.channel()
    declare_ok = await channel.queue_declare("", exclusive=True, auto_delete=True)
    queue = declare_ok.queue
    exchanges = list(DEFAULT_EXCHANGES) + [e for e in args.exchange if e not in DEFAULT_EXCHANGES]
    for name in exchanges:
        # Kontiki's flags: topic, durable=False, auto_delete=False, internal=False, no args.
        await channel.exchange_declare(
            name, exchange_type="topic", durable=False, auto_delete=False, internal=False
        )
        for key in args.key:
            await channel.queue_bind(queue, name, routing_key=key)

    async def on_message(message):
        emit_line(json.dumps(describe(message), ensure_ascii=False))

    # READY before consuming: the queue is bound, so nothing published from now on is missed,
    # and no message (other tests' traffic on the shared broker) can be printed before READY.
    emit_line(f"READY {queue}")
    await channel.basic_consume(queue, on_message, no_ack=True)

    if args.exit_on_stdin_eof:
        async def watch_stdin():
            await loop.run_in_executor(None, sys.stdin.buffer.read)
            stop.set()

        loop.create_task(watch_stdin())

    closed = connection.closing
    done, _ = await asyncio.wait(
        [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(closed)],
        return_when=asyncio.FIRST_COMPLETED,
    )
    if not connection.is_closed:
        await connection.close()


def main():
    ap = argparse.ArgumentParser(description="Kontiki bus tap (JSON lines on stdout)")
    ap.add_argument("--url", required=True)
    ap.add_argument("--exchange", action="append", default=[],
                    help="extra topic exchange to tap (non-durable, like Kontiki's)")
    ap.add_argument("--key", action="append", default=None,
                    help="binding key (repeatable, default '#')")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin reaches EOF (so a crashed parent leaves no tap)")
    args = ap.parse_args()
    if not args.key:
        args.key = ["#"]
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    import os
    os._exit(0)  # the stdin watcher thread may still be blocked in read()


if __name__ == "__main__":
    main()
