#!/usr/bin/env python3
"""Python Kontiki services built on the generated base classes (generated/python).

Run by examples/tests/tests/python_package.rs with PYTHONPATH=generated/python:

    typed_service.py proto|compute --config FILE

`proto` implements idl/proto_svc.kontiki (`ProtoSvcBase`), `compute` implements
idl/compute.kontiki (`ComputeApiBase`): each method is a typed method of the contract, wired to
Kontiki's decorators by the base class. stdout carries one line, `READY <service_name>`, once
every consumer is up (a delegate's start() runs after them).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import uuid

from kontiki.delegate import ServiceDelegate  # type: ignore[import-untyped]
from kontiki.messaging import Messenger  # type: ignore[import-untyped]
from kontiki.runner.runner import run_service  # type: ignore[import-untyped]

from kontiki_generated import compute, proto_svc


class Ready(ServiceDelegate):  # type: ignore[misc]
    async def start(self) -> None:
        sys.stdout.write(f"READY {self.container.service_name}\n")
        sys.stdout.flush()


class TypedProto(proto_svc.ProtoSvcBase):
    ready = Ready()

    async def echo(self, text: str, n: int) -> proto_svc.Echoed:
        return proto_svc.Echoed(args=[text, n], kwargs={})

    async def client_err(self) -> None:
        raise proto_svc.NotFoundError()

    async def boom(self) -> None:
        raise RuntimeError("kaboom")

    async def ret_none(self) -> None:
        return None

    async def types(self) -> proto_svc.Types:
        return proto_svc.Types(
            dt=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            d=datetime.date(2024, 1, 2),
            u=uuid.UUID(int=1),
            b=b"\x00\x01hi",
            t=[1, 2],
            model=proto_svc.Item(name="x"),
            none=None,
        )

    async def model_arg(
        self, item: proto_svc.Item, other: proto_svc.Item | None
    ) -> proto_svc.ModelArg:
        return proto_svc.ModelArg(
            item=item,
            item_type=type(item).__name__,
            other=other,
            other_type=type(other).__name__,
        )


class TypedCompute(compute.ComputeApiBase):
    ready = Ready()
    messenger = Messenger()

    async def compute(self, x: int) -> int:
        return x * 2

    async def on_thing(self, payload: object) -> None:
        await self.publisher().thing_processed(
            compute.ThingProcessed(
                payload={"handled_by": "python", "original": payload}
            )
        )


SERVICES = {"proto": TypedProto, "compute": TypedCompute}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("service", choices=sorted(SERVICES))
    p.add_argument("--config", action="append", required=True)
    a = p.parse_args()
    asyncio.run(run_service(SERVICES[a.service], a.config, "1.0.0", True))


if __name__ == "__main__":
    main()
