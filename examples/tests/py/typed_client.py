#!/usr/bin/env python3
"""Calls Rust services through the generated, typed Python package (generated/python).

Run by examples/tests/tests/python_package.rs with PYTHONPATH=generated/python:

    typed_client.py --url URL --rpc NAME --gateway NAME --compute NAME --heartbeat NAME
                    --billing NAME --proto NAME --session NAME --event-id ID

It prints one JSON object: what each call returned or raised (exception class, code,
message), for the Rust test to check. Nothing is asserted here.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
import time
import uuid
from typing import Any

from kontiki.messaging import Messenger, RpcClientError  # type: ignore[import-untyped]
from kontiki.messaging.publisher.rpc import RpcError  # type: ignore[import-untyped]

from kontiki_generated import (
    api_gateway,
    billing,
    compute,
    heartbeat,
    proto_svc,
    rpc_service,
    session,
)


def outcome(value: Any = None, error: BaseException | None = None) -> dict[str, Any]:
    if error is None:
        return {"ok": True, "type": type(value).__name__, "value": jsonable(value)}
    out: dict[str, Any] = {"ok": False, "class": type(error).__name__}
    if isinstance(error, RpcError):
        out["code"] = error.code
        out["message"] = error.message
        out["is_rpc_client_error"] = isinstance(error, RpcClientError)
    else:
        out["message"] = str(error)
    return out


def jsonable(value: Any) -> Any:
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if isinstance(value, (datetime.date, uuid.UUID)):
        return str(value)
    return value


async def attempt(coro: Any) -> dict[str, Any]:
    try:
        return outcome(await coro)
    except Exception as e:  # noqa: BLE001 - reported to the test
        return outcome(error=e)


async def main() -> None:
    p = argparse.ArgumentParser()
    for name in (
        "url",
        "rpc",
        "gateway",
        "compute",
        "heartbeat",
        "billing",
        "proto",
        "session",
        "event-id",
    ):
        p.add_argument(f"--{name}", required=True)
    a = p.parse_args()
    out: dict[str, Any] = {}
    async with Messenger(
        amqp_url=a.url, standalone=True, client_name="typed-client"
    ) as m:
        rpc = rpc_service.RpcServiceClient(m, a.rpc)
        out["rpc_ok"] = await attempt(rpc.rpc_example("ok"))
        out["rpc_bad"] = await attempt(rpc.rpc_example("bad_input"))
        # `except UserInputError:` works.
        try:
            await rpc.rpc_example("bad_input")
            out["rpc_except"] = "no exception"
        except rpc_service.UserInputError as e:
            out["rpc_except"] = f"caught {type(e).__name__}: {e.message}"

        gateway = api_gateway.ApiGatewayClient(m, a.gateway)
        out["gateway_ok"] = await attempt(gateway.compute("ok"))
        out["gateway_bad"] = await attempt(gateway.compute("bad_input"))

        comp = compute.ComputeApiClient(m, a.compute)
        out["compute"] = await attempt(comp.compute(21))

        hb = heartbeat.HeartbeatServiceClient(m, a.heartbeat)
        out["ping"] = await attempt(hb.ping())

        bill = billing.BillingClient(m, a.billing)
        invoice = await bill.create_invoice("u_py")
        out["invoice"] = {
            "type": type(invoice).__name__,
            "id_type": type(invoice.id).__name__,
            "created_at_type": type(invoice.created_at).__name__,
            "created_at_aware": invoice.created_at.tzinfo is not None,
            "wire": invoice.to_wire(),
        }

        proto = proto_svc.ProtoSvcClient(m, a.proto)
        out["echo"] = await attempt(proto.echo("hi", 2))
        out["client_err"] = await attempt(proto.client_err())
        out["boom"] = await attempt(proto.boom())
        out["ret_none"] = await attempt(proto.ret_none())
        types = await proto.types()
        out["types"] = {
            "wire": types.to_wire(),
            "b": [type(types.b).__name__, types.b.hex()],
            "dt": [type(types.dt).__name__, types.dt.isoformat()],
            "d": [type(types.d).__name__, types.d.isoformat()],
            "u": [type(types.u).__name__, str(types.u)],
            "model": type(types.model).__name__,
        }
        out["model_arg"] = await attempt(
            proto.model_arg(proto_svc.Item(name="a", qty=2), None)
        )

        # A per-call timeout shorter than Kontiki's (10 s): nobody serves this name.
        nobody = proto_svc.ProtoSvcClient(m, f"nobody-{uuid.uuid4().hex[:8]}")
        started = time.monotonic()
        out["timeout"] = await attempt(nobody.ret_none(timeout=0.5))
        out["timeout_seconds"] = time.monotonic() - started

        # A session pinned to one instance of session-service, typed steps through it.
        pinned = await session.SessionServiceClient(m, a.session).open_session()
        await pinned.session_step(session.Step(seq=7, data=a.event_id))
        out["session_id"] = pinned.session_id

        # A typed event for compute-api, which answers with thing_processed.
        await compute.EventPublisher(m).thing_happened({"id": a.event_id})
        out["published"] = a.event_id
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
