#!/usr/bin/env python3
"""The two services of the Kontiki mission examples, in Python Kontiki 2.3.2, for the tests of
the `kontiki` command line against Python services.

Run:  <venv>/bin/python kontiki-rt/tests/py/mission_svc.py compute-api|rpc-service --config FILE

- compute-api: `compute(x)` returns `x * 2` through its delegate (`do_something`).
- rpc-service: `rpc_example(feature)` returns `rpc_error("USER_INPUT_ERROR", "Invalid feature
  value")` for `"bad_input"`, else `"ok"`.

stdout carries one line, `READY <service_name> <instance_id>`, once every consumer consumes;
logging goes to stderr.
"""

import sys

from kontiki.delegate import ServiceDelegate
from kontiki.messaging import rpc, rpc_error
from kontiki.runner.cli import run


class _ReadyNotifier(ServiceDelegate):
    async def start(self):
        c = self.container
        sys.stdout.write(f"READY {c.service_name} {c.instance_id}\n")
        sys.stdout.flush()


class Doubler(ServiceDelegate):
    def do_something(self, x):
        return x * 2


class ComputeApi:
    name = "compute-api"
    delegate = Doubler()
    zz_ready = _ReadyNotifier()

    @rpc
    async def compute(self, x: int):
        return self.delegate.do_something(x)


class RpcService:
    name = "rpc-service"
    zz_ready = _ReadyNotifier()

    @rpc
    async def rpc_example(self, feature: str):
        if feature == "bad_input":
            return rpc_error("USER_INPUT_ERROR", "Invalid feature value")
        return "ok"


SERVICES = {"compute-api": ComputeApi, "rpc-service": RpcService}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in SERVICES:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(SERVICES)} --config FILE")
    service = SERVICES[sys.argv[1]]
    sys.argv = [sys.argv[0]] + sys.argv[2:]
    run(service, f"Kontiki mission example {service.name}", "1.0.0")


if __name__ == "__main__":
    main()
