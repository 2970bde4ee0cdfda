#!/usr/bin/env python3
"""deep_headers: publish messages whose headers nest DEPTH arrays deep (issue 15, item 6).

Run:  <venv>/bin/python kontiki-rt/tests/py/deep_headers.py --url AMQP_URL --service S
          --method M --event E [--registry-key K] [--depth 20000]

With aio-pika (pamqp writes nested lists as AMQP arrays, 5 bytes a level, so 20,000 levels fit
in RabbitMQ's default frame_max of 131,072 bytes), publishes, each with the headers
{"deep": [[...["x"]...]]}:
  1. an RPC request on `rpc_exchange`, routing key `S.M`, body {"args": ["deep"], "kwargs": {}},
     reply_to a server-named exclusive queue (protocol 2.2);
  2. an event on `event_exchange`, routing key E, body {"n": "deep"};
  3. with --registry-key, a message on `registry_admin_exchange` with that routing key and body
     {"service_name": "deep-headers"}.
Then waits up to 30 s for the RPC reply and prints one JSON line {"reply": <reply body>}
(exit 0), or {"reply": null} when none came (exit 1).
"""

import argparse
import asyncio
import json
import sys
import uuid

import aio_pika

# pamqp encodes and aio-pika copies nested headers recursively (Python frames only).
sys.setrecursionlimit(200_000)


def deep_value(depth):
    value = "x"
    for _ in range(depth - 1):
        value = [value]
    return value


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--registry-key")
    parser.add_argument("--depth", type=int, default=20_000)
    args = parser.parse_args()

    headers = {"deep": deep_value(args.depth)}
    conn = await aio_pika.connect(args.url)
    async with conn:
        channel = await conn.channel()
        replies = await channel.declare_queue(exclusive=True, auto_delete=True)
        cid = str(uuid.uuid4())
        got = asyncio.get_running_loop().create_future()

        async def on_reply(message):
            async with message.process():
                if message.correlation_id == cid and not got.done():
                    got.set_result(json.loads(message.body))

        await replies.consume(on_reply)
        rpc = await channel.get_exchange("rpc_exchange", ensure=False)
        await rpc.publish(
            aio_pika.Message(
                body=json.dumps({"args": ["deep"], "kwargs": {}}).encode(),
                headers=headers,
                correlation_id=cid,
                reply_to=replies.name,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=f"{args.service}.{args.method}",
        )
        events = await channel.get_exchange("event_exchange", ensure=False)
        await events.publish(
            aio_pika.Message(body=json.dumps({"n": "deep"}).encode(), headers=headers),
            routing_key=args.event,
        )
        if args.registry_key:
            admin = await channel.get_exchange("registry_admin_exchange", ensure=False)
            await admin.publish(
                aio_pika.Message(
                    body=json.dumps({"service_name": "deep-headers"}).encode(), headers=headers
                ),
                routing_key=args.registry_key,
            )
        try:
            reply = await asyncio.wait_for(got, 30)
        except asyncio.TimeoutError:
            reply = None
    print(json.dumps({"reply": reply}), flush=True)
    return 0 if reply is not None else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
