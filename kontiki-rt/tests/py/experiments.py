#!/usr/bin/env python3
"""Experiments behind FINDINGS.md, run against a live proto_svc.py.

Run:  <venv>/bin/python kontiki-rt/tests/py/experiments.py --url AMQP_URL --service NAME

Prints one JSON object per experiment on stdout and exits non-zero if an expectation fails:

  direct_reply_to   raw aio-pika client, reply_to = amq.rabbitmq.reply-to (consumed no-ack)
  mandatory         does a standalone Messenger publish with mandatory=true (basic.return)?
  header_types      what an include_headers handler sees for S (valid / invalid UTF-8) and x
  byte_flow_id      a flow_id header sent as a byte array (x): what Kontiki propagates
"""

import argparse
import asyncio
import json
import struct
import sys
import uuid

import aio_pika
from pamqp import encode as pencode

from kontiki.messaging import Messenger, RpcTimeoutError

# Let the raw client send a *long string* (S) whose bytes are not valid UTF-8: pamqp only
# encodes str as S (and refuses bytes), so map `bytes` to S with the raw bytes.
_orig_encode_table_value = pencode.encode_table_value


def _encode_table_value(value):
    if isinstance(value, bytes):
        return b"S" + struct.pack(">I", len(value)) + value
    return _orig_encode_table_value(value)


pencode.encode_table_value = _encode_table_value

FAILED = []


def report(name, ok, **data):
    data = {"experiment": name, "ok": bool(ok), **data}
    print(json.dumps(data, default=repr, ensure_ascii=False), flush=True)
    if not ok:
        FAILED.append(name)


async def raw_call(channel, exchange, routing_key, body, headers=None, reply_to=None,
                   cid=None, timeout=5.0, replies=None):
    cid = cid or str(uuid.uuid4())
    await exchange.publish(
        aio_pika.Message(
            body=json.dumps(body).encode(),
            correlation_id=cid,
            reply_to=reply_to,
            headers=headers or {},
            delivery_mode=2,
        ),
        routing_key=routing_key,
    )
    return await asyncio.wait_for(replies[cid], timeout)


async def direct_reply_to(url, service):
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()  # no confirms needed; same channel publishes and consumes
        rpc_ex = await ch.declare_exchange("rpc_exchange", aio_pika.ExchangeType.TOPIC)
        loop = asyncio.get_running_loop()
        replies = {}
        seen = []

        class FutureMap(dict):
            def __missing__(self, key):
                fut = loop.create_future()
                self[key] = fut
                return fut

        replies = FutureMap()

        async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage):
            seen.append(msg)
            fut = replies[msg.correlation_id]
            if not fut.done():
                fut.set_result(msg)

        # Direct reply-to: consume the pseudo-queue in no-ack mode *before* publishing.
        pseudo = await ch.get_queue("amq.rabbitmq.reply-to", ensure=False)
        await pseudo.consume(on_reply, no_ack=True)

        results = {}
        for method, args, kwargs in (
            ("echo", [1, "a"], {"k": True}),
            ("client_err", [], {}),
            ("boom", [], {}),
            ("ret_none", [], {}),
            ("___kontiki__internal_session_open__", [], {}),
        ):
            msg = await raw_call(
                ch, rpc_ex, f"{service}.{method}", {"args": args, "kwargs": kwargs},
                headers={"flow_id": "drtflow00001"}, reply_to="amq.rabbitmq.reply-to",
                replies=replies,
            )
            results[method] = {
                "routing_key": msg.routing_key,
                "exchange": msg.exchange,
                "correlation_id": msg.correlation_id,
                "delivery_mode": msg.delivery_mode,
                "headers": msg.headers,
                "body": json.loads(msg.body),
            }
        echo = results["echo"]["body"]
        ok = (
            echo.get("__rpcreturn__") is True
            and echo["result"] == {"args": [1, "a"], "kwargs": {"k": True}}
            and results["client_err"]["body"]["error_code"] == "NOT_FOUND"
            and results["boom"]["body"]["error_code"] == "INTERNAL_ERROR"
            and results["ret_none"]["body"]["success"] is True
            and len(results["___kontiki__internal_session_open__"]["body"]["result"]) == 2
            and all(r["routing_key"].startswith("amq.rabbitmq.reply-to.") for r in results.values())
        )
        report("direct_reply_to", ok, replies=results)
    finally:
        await conn.close()


async def mandatory(url, service):
    """Publish through Messenger.call / Messenger.publish to exchanges with no bindings.

    The tap (or a registry) binds `#` on rpc_exchange/event_exchange, which would make every
    message routable; so the Messenger gets private, unbound exchanges instead. The publish
    code path (aio_pika Exchange.publish with its defaults) is the one Messenger uses."""
    suffix = uuid.uuid4().hex[:8]
    m = Messenger(amqp_url=url, standalone=True, client_name="experiments",
                  event_exchange=f"exp-unbound-events-{suffix}")
    await m.start()
    try:
        m.rpc_exchange = await m.channel.declare_exchange(
            f"exp-unbound-rpc-{suffix}", aio_pika.ExchangeType.TOPIC, auto_delete=True)
        returned = []
        # aio-pika routes basic.return to the channel's return callbacks.
        m.channel.return_callbacks.add(lambda *a: returned.append(a[-1]))
        m._rpc_timeout = 1.0
        timed_out = False
        try:
            await m.call(f"nonexistent-{suffix}", "foo")
        except RpcTimeoutError:
            timed_out = True
        rpc_returned = len(returned)
        publish_result = await m.publish("nobody.listens", {"x": 1})
        ev_returned = len(returned) - rpc_returned
        report(
            "mandatory",
            timed_out and rpc_returned == 1 and ev_returned == 1,
            rpc_timed_out=timed_out,
            rpc_returned=rpc_returned,
            event_returned=ev_returned,
            publish_result=publish_result,
            returned=[{"routing_key": r.routing_key, "exchange": r.exchange}
                      for r in returned],
        )
        await m.channel.exchange_delete(f"exp-unbound-events-{suffix}")
        await m.channel.exchange_delete(f"exp-unbound-rpc-{suffix}")
    finally:
        await m.stop()


async def header_types(url, service):
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()
        rpc_ex = await ch.declare_exchange("rpc_exchange", aio_pika.ExchangeType.TOPIC)
        cbq = await ch.declare_queue(exclusive=True, auto_delete=True)
        loop = asyncio.get_running_loop()
        replies = {}

        class FutureMap(dict):
            def __missing__(self, key):
                fut = loop.create_future()
                self[key] = fut
                return fut

        replies = FutureMap()

        async def on_reply(msg):
            async with msg.process():
                replies[msg.correlation_id].set_result(msg)

        await cbq.consume(on_reply)
        headers = {
            "s_utf8": "héllo",                 # S, valid UTF-8
            "s_bad": b"\xff\xferaw",           # S, invalid UTF-8 (patched encoder)
            "x_bytes": bytearray(b"\x00\x01hi"),  # x, byte array
            "x_text": bytearray(b"plain"),     # x, but valid UTF-8 text
            "flow_id": "hdrflow00001",
        }
        msg = await raw_call(ch, rpc_ex, f"{service}.hdrs", {"args": [], "kwargs": {}},
                             headers=headers, reply_to=cbq.name, replies=replies)
        reply = json.loads(msg.body)
        rec = await raw_call(ch, rpc_ex, f"{service}.received",
                             {"args": [], "kwargs": {"name": "hdrs"}},
                             reply_to=cbq.name, replies=replies)
        records = json.loads(rec.body)["result"]
        types = records[-1]["header_types"] if records else {}
        ok = (
            types.get("s_utf8") == "str"
            and types.get("s_bad") == "bytes"
            and types.get("x_bytes") == "bytearray"
            and types.get("x_text") == "bytearray"
        )
        report("header_types", ok, handler_header_types=types, hdrs_reply=reply["result"])
    finally:
        await conn.close()


async def byte_flow_id(url, service):
    """flow_id sent as x (bytearray): what Kontiki writes on the messages it sends on."""
    conn = await aio_pika.connect(url)
    try:
        ch = await conn.channel()
        rpc_ex = await ch.declare_exchange("rpc_exchange", aio_pika.ExchangeType.TOPIC)
        ev_ex = await ch.declare_exchange("event_exchange", aio_pika.ExchangeType.TOPIC)
        tapq = await ch.declare_queue(exclusive=True, auto_delete=True)
        await tapq.bind(ev_ex, routing_key="proto.chained")
        cbq = await ch.declare_queue(exclusive=True, auto_delete=True)
        loop = asyncio.get_running_loop()

        class FutureMap(dict):
            def __missing__(self, key):
                fut = loop.create_future()
                self[key] = fut
                return fut

        replies = FutureMap()

        async def on_reply(msg):
            async with msg.process():
                replies[msg.correlation_id].set_result(msg)

        await cbq.consume(on_reply)
        msg = await raw_call(ch, rpc_ex, f"{service}.chain", {"args": [], "kwargs": {}},
                             headers={"flow_id": bytearray(b"byteflow0001")},
                             reply_to=cbq.name, replies=replies)
        reply = json.loads(msg.body)
        chained = await tapq.get(timeout=5, fail=False)
        for _ in range(100):
            if chained is not None:
                break
            await asyncio.sleep(0.02)
            chained = await tapq.get(timeout=5, fail=False)
        flow = chained.headers.get("flow_id") if chained else None
        report("byte_flow_id", chained is not None,
               chain_reply_success=reply.get("success"),
               chain_reply_message=reply.get("message"),
               chained_flow_id=repr(flow), chained_flow_id_type=type(flow).__name__)
        if chained:
            await chained.ack()
    finally:
        await conn.close()


async def main_async(args):
    await direct_reply_to(args.url, args.service)
    await mandatory(args.url, args.service)
    await header_types(args.url, args.service)
    await byte_flow_id(args.url, args.service)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--service", required=True)
    args = ap.parse_args()
    asyncio.run(main_async(args))
    if FAILED:
        print(f"FAILED: {', '.join(FAILED)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
