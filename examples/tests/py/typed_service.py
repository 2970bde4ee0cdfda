#!/usr/bin/env python3
"""Python Kontiki services built on the generated base classes (generated/python).

Run by examples/tests/tests/python_package.rs with PYTHONPATH=generated/python:

    typed_service.py proto|compute|http|tasks|session --config FILE

`proto` implements idl/proto_svc.kontiki (`ProtoSvcBase`), `compute` idl/compute.kontiki,
`http` idl/http_simple.kontiki, `tasks` idl/task_service.kontiki, `session`
idl/session.kontiki: each method is a typed method
of the contract, wired to Kontiki's decorators by the base class. stdout carries
`READY <service_name> [<http port>]` once every consumer is up (a delegate's start() runs after
them and after the HTTP server), `TICK` / `CLEANUP` each time those tasks run, and
`STEP <session id> <seq> <data>` for each `session.step` of a session.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import uuid
from typing import Any, cast

from kontiki.delegate import ServiceDelegate  # type: ignore[import-untyped]
from kontiki.messaging import Messenger  # type: ignore[import-untyped]
from kontiki.runner.runner import run_service  # type: ignore[import-untyped]

from kontiki_generated import compute, http_simple, proto_svc, session, task_service


class Ready(ServiceDelegate):  # type: ignore[misc]
    async def start(self) -> None:
        container = cast(Any, self.container)
        line = f"READY {container.service_name}"
        server = container.http_server
        if server is not None and server.site is not None:
            line += f" {server.site._server.sockets[0].getsockname()[1]}"
        say(line)


def say(line: str) -> None:
    sys.stdout.write(f"{line}\n")
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


class TypedHttp(http_simple.HttpSimpleBase):
    ready = Ready()

    async def health(self) -> http_simple.HelloResponse:
        return http_simple.HelloResponse(message="ok")

    async def create_item(self, body: http_simple.NewItem) -> http_simple.Item:
        if body.name == "taken":
            raise http_simple.ConflictError()
        return http_simple.Item(id=1, name=body.name, qty=body.qty)

    async def get_item(self, id: int, deleted: bool) -> http_simple.Item:
        if id == 404:
            raise http_simple.NotFoundError(f"no item {id}")
        return http_simple.Item(id=id, name=f"deleted={deleted}", qty=1)

    async def list_items(
        self, owner: str, limit: int, order: http_simple.Order, cursor: str | None
    ) -> list[http_simple.Item]:
        return [
            http_simple.Item(id=limit, name=f"{owner}/{order.value}/{cursor}", qty=1)
        ]


class TypedTasks(task_service.TaskServiceBase):
    ready = Ready()

    async def tick(self) -> None:
        say("TICK")

    async def nightly_report(self) -> None:
        say("NIGHTLY")

    async def cleanup(self) -> None:
        say("CLEANUP")


class TypedSession(session.SessionServiceBase):
    ready = Ready()

    async def on_step(self, payload: session.Step, *, headers: dict[str, Any]) -> None:
        say(f"STEP {headers.get('session_id')} {payload.seq} {payload.data}")


SERVICES = {
    "proto": TypedProto,
    "compute": TypedCompute,
    "http": TypedHttp,
    "tasks": TypedTasks,
    "session": TypedSession,
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("service", choices=sorted(SERVICES))
    p.add_argument("--config", action="append", required=True)
    a = p.parse_args()
    asyncio.run(run_service(SERVICES[a.service], a.config, "1.0.0", True))


if __name__ == "__main__":
    main()
