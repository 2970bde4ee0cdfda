"""Runtime helpers of the modules kontiki-codegen generates for Python Kontiki 2.3.2.

The wire types (`I64`, `Bytes`, `DateTime`...) validate and serialize exactly as kontiki-rs
does, calls go through Kontiki's `Messenger.call`, and the entrypoints of the generated base
classes are Kontiki's own decorators (`rpc`, `on_event`, `http`, `task`) around the typed
methods a service implements.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as _dt
import importlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, TypeAlias, cast

import annotated_types
import pydantic

# Kontiki ships no type information: its objects are reached as `Any` here, once, so the
# generated modules type-check strictly with mypy and pyright alike.
_messaging: Any = importlib.import_module("kontiki.messaging")
_publisher: Any = importlib.import_module("kontiki.messaging.publisher.rpc")
_tasks: Any = importlib.import_module("kontiki.task.task")
_web: Any = importlib.import_module("kontiki.web")

if TYPE_CHECKING:

    class RpcError(Exception):
        """Kontiki's `kontiki.messaging.publisher.rpc.RpcError`."""

        method_name: str
        code: str
        message: str

        def __init__(self, method_name: str, code: str, message: str) -> None: ...

    class RpcClientError(RpcError):
        """Kontiki's `RpcClientError`."""

    class RpcTimeoutError(RpcError):
        """Kontiki's `RpcTimeoutError`."""

        def __init__(self, method_name: str) -> None: ...

else:
    RpcError = _publisher.RpcError
    RpcClientError = _messaging.RpcClientError
    RpcTimeoutError = _messaging.RpcTimeoutError

# -- wire types -------------------------------------------------------------------------------

Bool: TypeAlias = Annotated[bool, pydantic.Strict()]
"""`bool`: `true` / `false` only."""

I32: TypeAlias = Annotated[
    int, pydantic.Strict(), annotated_types.Interval(ge=-(2**31), le=2**31 - 1)
]
"""`i32`."""

I64: TypeAlias = Annotated[
    int, pydantic.Strict(), annotated_types.Interval(ge=-(2**63), le=2**63 - 1)
]
"""`i64`."""

U32: TypeAlias = Annotated[
    int, pydantic.Strict(), annotated_types.Interval(ge=0, le=2**32 - 1)
]
"""`u32`."""

U64: TypeAlias = Annotated[
    int, pydantic.Strict(), annotated_types.Interval(ge=0, le=2**64 - 1)
]
"""`u64`."""

F64: TypeAlias = Annotated[float, pydantic.Strict()]
"""`f64`: a JSON number (integers included)."""

Str: TypeAlias = Annotated[str, pydantic.Strict()]
"""`string`."""

Json: TypeAlias = Any
"""`json`: any JSON value (and `None`)."""


def _bytes_in(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, dict):
        wire = cast(dict[str, Any], value)
        data = wire.get("data") if wire.get("__bytes__") is True else None
        if isinstance(data, str):
            try:
                return base64.b64decode(data, validate=True)
            except binascii.Error as e:
                raise ValueError(f"invalid base64 in Kontiki bytes: {e}") from None
    raise ValueError('expected Kontiki bytes {"__bytes__": true, "data": "<base64>"}')


def _bytes_out(value: bytes) -> dict[str, Any]:
    return {"__bytes__": True, "data": base64.b64encode(value).decode("ascii")}


Bytes: TypeAlias = Annotated[
    bytes,
    pydantic.PlainValidator(_bytes_in),
    pydantic.PlainSerializer(_bytes_out, when_used="json"),
]
"""`bytes`: `{"__bytes__": true, "data": "<base64>"}` on the wire, as Kontiki writes them."""


def _datetime_out(value: _dt.datetime) -> str:
    v = value.astimezone(_dt.timezone.utc)
    text = (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
        f"T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
    )
    if v.microsecond == 0:
        return f"{text}Z"
    if v.microsecond % 1000 == 0:
        return f"{text}.{v.microsecond // 1000:03d}Z"
    return f"{text}.{v.microsecond:06d}Z"


DateTime: TypeAlias = Annotated[
    pydantic.AwareDatetime,
    pydantic.PlainSerializer(_datetime_out, when_used="json"),
]
"""`datetime`: time-zone aware; RFC 3339 in UTC on the wire (`2024-01-02T03:04:05Z`)."""

Date: TypeAlias = _dt.date
"""`date`: `2024-01-02` on the wire."""

Uuid: TypeAlias = uuid.UUID
"""`uuid`: the hyphenated string on the wire."""


class Model(pydantic.BaseModel):
    """Base of the generated models: wire names by alias, unknown fields ignored."""

    model_config = pydantic.ConfigDict(
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object kontiki-rs sends for this value."""
        return self.model_dump(mode="json", by_alias=True)


_ADAPTERS: dict[Any, pydantic.TypeAdapter[Any]] = {}


def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    try:
        found = _ADAPTERS.get(tp)
    except TypeError:
        return pydantic.TypeAdapter(tp)
    if found is None:
        found = pydantic.TypeAdapter(tp)
        _ADAPTERS[tp] = found
    return found


def encode(tp: Any, value: Any) -> Any:
    """`value` of type `tp` as its JSON form (wire names, Kontiki bytes, UTC datetimes)."""
    return _adapter(tp).dump_python(value, mode="json", by_alias=True)


def decode(tp: Any, value: Any) -> Any:
    """`value`, as Kontiki's serializer decoded it, validated as type `tp`."""
    return _adapter(tp).validate_python(value)


def decode_text(tp: Any, value: str) -> Any:
    """An HTTP path or query parameter, validated as type `tp`."""
    return _adapter(tp).validate_strings(value)


# -- errors -----------------------------------------------------------------------------------


class ContractError(RpcClientError):
    """An error code of a contract: raised by a generated client when a call returns the
    code, and raised by a service implementation to return it.

    A subclass of Kontiki's `RpcClientError`, so `except RpcClientError:` still catches it.
    """

    CODE: ClassVar[str] = ""
    """The code on the wire (`code` of an instance, as Kontiki's errors have)."""
    DEFAULT_MESSAGE: ClassVar[str] = ""
    """The message the contract declares (`message` of an instance is the one received)."""

    def __init__(self, message: str | None = None, *, method_name: str = "") -> None:
        super().__init__(
            method_name,
            self.CODE,
            self.DEFAULT_MESSAGE if message is None else message,
        )


# -- calling ----------------------------------------------------------------------------------


class Messenger(Protocol):
    """What the generated clients and publishers use of Kontiki's `Messenger`."""

    async def call(
        self,
        service_name: str,
        method_name: str,
        /,
        *args: Any,
        extra_headers: dict[str, Any] | None = ...,
        flow_id: str | None = ...,
        instance_id: str | None = ...,
    ) -> Any: ...

    async def publish(
        self,
        event_type: str,
        obj: Any,
        reply_to: str | None = ...,
        extra_headers: dict[str, Any] | None = ...,
        flow_id: str | None = ...,
        session_id: str | None = ...,
    ) -> None: ...

    async def open_session(self, service_name: str | None = ...) -> Any: ...


async def call(
    messenger: Messenger,
    service: str,
    method: str,
    args: list[Any],
    errors: Mapping[str, type[ContractError]],
    *,
    timeout: float | None,
    extra_headers: Mapping[str, Any] | None,
    instance_id: str | None,
    flow_id: str | None,
) -> Any:
    """Calls `service.method(*args)`; a declared error code raises its class, a timeout
    Kontiki's `RpcTimeoutError`."""
    invocation = messenger.call(
        service,
        method,
        *args,
        extra_headers=None if extra_headers is None else dict(extra_headers),
        flow_id=flow_id,
        instance_id=instance_id,
    )
    try:
        if timeout is None:
            return await invocation
        return await asyncio.wait_for(invocation, timeout)
    except asyncio.TimeoutError:
        raise RpcTimeoutError(method) from None
    except RpcClientError as e:
        if isinstance(e, ContractError):
            raise
        cls = errors.get(e.code)
        if cls is None:
            raise
        raise cls(e.message, method_name=method) from e


async def publish(
    messenger: Messenger,
    event_type: str,
    payload: Any,
    *,
    extra_headers: Mapping[str, Any] | None,
    flow_id: str | None,
) -> None:
    """Publishes an event whose payload is already in its JSON form."""
    await messenger.publish(
        event_type,
        payload,
        extra_headers=None if extra_headers is None else dict(extra_headers),
        flow_id=flow_id,
    )


# -- serving ----------------------------------------------------------------------------------

REQUIRED: Any = object()
"""The default of a parameter that must be given."""


class Param:
    """A parameter of an entrypoint: wire name, type, default in JSON form."""

    __slots__ = ("name", "tp", "default")

    def __init__(self, name: str, tp: Any, default: Any) -> None:
        self.name = name
        self.tp = tp
        self.default = default

    def bind(self, raw: Any) -> Any:
        """The typed value of a received argument (`None`: left out); raises `ValueError`."""
        if raw is None:
            if self.default is REQUIRED:
                raise ValueError(f"{self.name}: missing")
            if self.default is None:
                return None
            raw = self.default
        try:
            return decode(self.tp, raw)
        except pydantic.ValidationError as e:
            raise ValueError(f"{self.name}: {_first_error(e)}") from None


def _first_error(e: pydantic.ValidationError) -> str:
    errors = e.errors(include_url=False)
    if not errors:
        return str(e)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _service(owner: Any) -> Any:
    # Kontiki calls RPC entrypoints with the container as `self`, the others bound to the
    # service instance.
    return getattr(owner, "service_instance", owner)


def _entrypoint(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    fn.__name__ = name
    fn.__qualname__ = name
    # Kontiki rebuilds pydantic arguments from annotations; the wrapper decodes them itself.
    fn.__annotations__ = {}
    return fn


def rpc_entry(
    wire: str,
    method: str,
    params: Sequence[Param],
    returns: Any,
    errors: Sequence[type[ContractError]],
    *,
    include_headers: bool,
) -> Callable[..., Awaitable[Any]]:
    """Kontiki's `@rpc` around the typed method `method`: binds and validates the arguments
    (client error `INVALID_ARGUMENTS` otherwise, as kontiki-rs answers), encodes the result,
    and returns a declared error code raised as its `ContractError` as a client error."""
    codes = frozenset(e.CODE for e in errors)

    async def entry(
        owner: Any, /, *args: Any, _headers: Any = None, **kwargs: Any
    ) -> Any:
        service = _service(owner)
        values: list[Any] = []
        try:
            for i, p in enumerate(params):
                raw = args[i] if i < len(args) else kwargs.get(p.name)
                values.append(p.bind(raw))
        except ValueError as e:
            return _messaging.rpc_error("INVALID_ARGUMENTS", str(e))
        extra: dict[str, Any] = {}
        if include_headers:
            extra["headers"] = dict(_headers or {})
        try:
            result = await getattr(service, method)(*values, **extra)
        except ContractError as e:
            if e.code in codes:
                return _messaging.rpc_error(e.code, e.message)
            raise
        return encode(returns, result)

    fn: Callable[..., Awaitable[Any]] = _messaging.rpc(include_headers=include_headers)(
        _entrypoint(entry, wire)
    )
    return fn


def event_entry(
    wire: str,
    method: str,
    payloads: Mapping[str, Any],
    *,
    source: str | list[str],
    use_config: bool,
    with_event_type: bool,
    broadcast: bool,
    in_session: bool,
    max_attempts: int | None,
    include_headers: bool,
) -> Callable[..., Awaitable[None]]:
    """Kontiki's `@on_event` around the typed method `method`, which gets the payload decoded
    as its event type says (and the event type first when it handles several)."""

    async def entry(owner: Any, payload: Any, /, _headers: Any = None) -> None:
        service = _service(owner)
        headers = dict(_headers or {})
        event_type = str(headers.get("event_type", ""))
        value = decode(payloads.get(event_type, Any), payload)
        args: list[Any] = [event_type, value] if with_event_type else [value]
        extra: dict[str, Any] = {}
        if include_headers:
            extra["headers"] = headers
        await getattr(service, method)(*args, **extra)

    fn: Callable[..., Awaitable[None]] = _messaging.on_event(
        source,
        use_config,
        # The wrapper reads the event type from the headers.
        include_headers=True,
        in_session=in_session,
        broadcast=broadcast,
        max_attempts=max_attempts,
    )(_entrypoint(entry, wire))
    return fn


def http_entry(
    wire: str,
    method: str,
    http_method: str,
    path: str,
    *,
    use_config: bool,
    path_params: Sequence[Param],
    query: Sequence[Param],
    body: Any,
    response: Any,
    status: int,
    errors: Mapping[type[ContractError], int],
    version: str | None,
    summary: str | None,
    description: str | None,
    tags: list[str],
    skip_documentation: bool,
) -> Callable[..., Awaitable[Any]]:
    """Kontiki's `@http` around the typed method `method`: path and query parameters and the
    body validated (400 / 422 otherwise), the response encoded with the route's status, a
    declared error code answered with its status and `{"message": ...}`."""
    from aiohttp import web

    async def entry(owner: Any, request: Any, /, **match_info: str) -> Any:
        service = _service(owner)
        values: list[Any] = []
        try:
            for p in path_params:
                values.append(_bind_text(p, match_info.get(p.name)))
            for p in query:
                values.append(_bind_text(p, request.query.get(p.name)))
        except ValueError as e:
            return web.json_response({"message": str(e)}, status=400)
        if body is not None:
            try:
                values.append(decode(body, await request.json()))
            except (ValueError, pydantic.ValidationError):
                raise web.HTTPUnprocessableEntity(
                    reason="Invalid request body"
                ) from None
        try:
            result = await getattr(service, method)(*values)
        except ContractError as e:
            for cls, code_status in errors.items():
                if isinstance(e, cls):
                    return web.json_response({"message": e.message}, status=code_status)
            raise
        if response is None:
            return web.Response(status=status)
        return web.json_response(encode(response, result), status=status)

    model = (
        body
        if isinstance(body, type) and issubclass(body, pydantic.BaseModel)
        else None
    )
    answer = (
        response
        if isinstance(response, type) and issubclass(response, pydantic.BaseModel)
        else None
    )
    fn: Callable[..., Awaitable[Any]] = _web.http(
        path,
        http_method,
        use_config=use_config,
        version=version,
        summary=summary,
        description=description,
        tags=tags,
        request_model=model,
        response_model=answer,
        status_code=status,
        skip_documentation=skip_documentation,
    )(_entrypoint(entry, wire))
    return fn


def _bind_text(p: Param, raw: str | None) -> Any:
    if raw is None:
        return p.bind(None)
    try:
        return decode_text(p.tp, raw)
    except pydantic.ValidationError as e:
        raise ValueError(f"{p.name}: {_first_error(e)}") from None


def task_entry(
    wire: str,
    method: str,
    *,
    interval: int | str | None,
    cron: str | None,
    use_config: bool,
    immediate: bool,
) -> Callable[..., Awaitable[None]]:
    """Kontiki's `@task` around the typed method `method`."""

    async def entry(owner: Any, /) -> None:
        await getattr(_service(owner), method)()

    fn: Callable[..., Awaitable[None]] = _tasks.task(
        interval, immediate, cron=cron, use_config=use_config
    )(_entrypoint(entry, wire))
    return fn
