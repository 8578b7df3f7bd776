"""Calling services: what generated `<Service>Client` classes are built on.

An RPC call is a core NATS request on `<service>.rpc.<method>` with the params as a JSON object,
waiting at most its timeout (the per-call `timeout`, else the method's schema timeout, never past
the deadline of the context it is made in). An async call is a JetStream publish on
`<service>.async.<method>` that returns once stored (PubAck), with
`Nats-Msg-Id = <method>:<idempotency key>`.

Headers are those the Rust client sends (docs/PROTOCOL.md, "Headers"): a plain call carries none
(an async call only its `Nats-Msg-Id`); a call made within a context carries the caller chain and
a continued `traceparent`; an RPC call that waits less than the schema timeout carries
`Natsgen-Deadline-Ms`; an async call with an idempotency key carries a fresh `Natsgen-Call-Id`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import APIError, NoStreamResponseError
from typing_extensions import Self

from . import streams
from .context import (
    CALL_ID,
    DEADLINE_MS,
    MSG_ID,
    OWN_HEADERS,
    SERVICE_ERROR,
    SERVICE_ERROR_CODE,
    Context,
    new_call_id,
)
from .descriptors import AsyncMethod, Rpc, ServiceDescriptor
from .errors import (
    Disconnected,
    EncodeError,
    JetStreamUnavailable,
    ProtocolError,
    ServiceError,
    ServiceUnavailable,
    Timeout,
)
from .types import DecodeError, Model, decode, dumps, loads

R = TypeVar("R")

# Per connection: the streams a client or publisher made sure of, so it does so once.
_known_streams: weakref.WeakKeyDictionary[NATS, set[str]] = weakref.WeakKeyDictionary()


def known_streams(nc: NATS) -> set[str]:
    known = _known_streams.get(nc)
    if known is None:
        known = set()
        _known_streams[nc] = known
    return known


def user_headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's own headers, checked; natsgen's own names among them are left out."""
    headers: dict[str, str] = {}
    for name, value in (extra or {}).items():
        if name in OWN_HEADERS:
            continue
        if not name or any(c in name for c in ": \r\n") or not name.isascii():
            raise EncodeError(f"{name!r} is not a valid NATS header name")
        if "\r" in value or "\n" in value:
            raise EncodeError(f"the value of header {name} contains a line break")
        headers[name] = value
    return headers


def encode_params(params: Model) -> bytes:
    try:
        return dumps(params.model_dump(mode="json", by_alias=True))
    except ValueError as error:
        raise EncodeError(f"the params do not encode as JSON: {error}") from None


def _millis(seconds: float) -> str:
    return str(max(int(seconds * 1000), 1))


class Client:
    """Base of the generated clients: one service over one NATS connection."""

    DESCRIPTOR: ClassVar[ServiceDescriptor]

    def __init__(self, nc: NATS, *, context: Context | None = None) -> None:
        self.nats = nc
        self.context = context

    def with_context(self, ctx: Context) -> Self:
        """The same client, making every call part of the call `ctx` belongs to."""
        return type(self)(self.nats, context=ctx)

    def _timeout(self, own: float | None, schema_ms: int) -> float:
        timeout = own if own is not None else schema_ms / 1000
        remaining = self.context.remaining() if self.context is not None else None
        if remaining is not None:
            timeout = min(timeout, remaining)
        return timeout

    async def _call(
        self,
        endpoint: Rpc[R],
        params: Model,
        timeout: float | None,
        headers: Mapping[str, str] | None,
    ) -> R:
        """Sends an RPC request and decodes its reply; raises a `CallError`."""
        payload = encode_params(params)
        wait = self._timeout(timeout, endpoint.timeout_ms)
        if wait <= 0:
            raise Timeout(endpoint.service, endpoint.name, 0.0)
        hdrs = user_headers(headers)
        if wait < endpoint.timeout_ms / 1000:
            hdrs[DEADLINE_MS] = _millis(wait)
        if self.context is not None:
            self.context.propagate(hdrs)
        if not self.nats.is_connected:
            raise Disconnected()
        try:
            reply = await self.nats.request(
                endpoint.subject, payload, timeout=wait, headers=hdrs or None
            )
        except nats.errors.NoRespondersError:
            raise ServiceUnavailable(endpoint.service, endpoint.name) from None
        except nats.errors.TimeoutError:
            if not self.nats.is_connected:
                raise Disconnected() from None
            raise Timeout(endpoint.service, endpoint.name, wait) from None
        except nats.errors.MaxPayloadError as error:
            raise EncodeError(f"the request is larger than the server's max_payload: {error}") from None
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
            raise Disconnected() from None
        return decode_reply(endpoint, reply)

    async def _send(
        self,
        endpoint: AsyncMethod,
        params: Model,
        timeout: float | None,
        headers: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> None:
        """Publishes an async call and waits until JetStream stored it."""
        payload = encode_params(params)
        wait = self._timeout(timeout, endpoint.timeout_ms)
        if wait <= 0:
            raise Timeout(endpoint.service, endpoint.name, 0.0)
        hdrs = user_headers(headers)
        if idempotency_key is None:
            # The call id is the key; the service reads it from there.
            msg_id = f"{endpoint.name}:{new_call_id()}"
        else:
            if "\r" in idempotency_key or "\n" in idempotency_key:
                raise EncodeError("the idempotency key contains a line break")
            msg_id = f"{endpoint.name}:{idempotency_key}"
            hdrs[CALL_ID] = new_call_id()
        hdrs[MSG_ID] = msg_id
        if self.context is not None:
            self.context.propagate(hdrs)
        too_large = streams.leaves_dead_letter_room(payload, hdrs, self.nats.max_payload)
        if too_large is not None:
            raise EncodeError(too_large)
        if not self.nats.is_connected:
            raise Disconnected()
        js = self.nats.jetstream()
        stream = streams.async_stream_name(endpoint.service)

        async def attempt() -> None:
            created = False
            while True:
                try:
                    await js.publish(endpoint.subject, payload, timeout=wait, headers=hdrs)
                    return
                except NoStreamResponseError:
                    if created:
                        raise JetStreamUnavailable(
                            endpoint.service,
                            endpoint.name,
                            f"no stream stores {endpoint.subject} although {stream} was created",
                        ) from None
                try:
                    await streams.ensure_async_stream(js, endpoint.service)
                except APIError as error:
                    raise JetStreamUnavailable(endpoint.service, endpoint.name, str(error)) from None
                created = True

        try:
            await asyncio.wait_for(attempt(), wait)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            if not self.nats.is_connected:
                raise Disconnected() from None
            raise Timeout(endpoint.service, endpoint.name, wait) from None
        except nats.errors.MaxPayloadError as error:
            raise EncodeError(f"the call is larger than the server's max_payload: {error}") from None
        except APIError as error:
            raise JetStreamUnavailable(endpoint.service, endpoint.name, str(error)) from None


def decode_reply(endpoint: Rpc[R], reply: Msg) -> R:
    """The result of a reply, or the `ServiceError` (a declared error as its class) it carries."""
    headers = reply.headers or {}
    code_text = headers.get(SERVICE_ERROR_CODE)
    body: Any = None
    try:
        body = loads(reply.data) if reply.data else None
    except ValueError:
        if code_text is None:
            raise ProtocolError(
                f"the reply of {endpoint.service}.{endpoint.name} is not JSON"
            ) from None
    if code_text is not None:
        try:
            code = int(code_text.strip())
        except ValueError:
            code = 500
        wire_error = body.get("error") if isinstance(body, dict) else None
        if isinstance(wire_error, dict):
            raise _service_error(endpoint, wire_error, code)
        kind = ServiceError.kind_for_code(code)
        raise ServiceError.of(kind, code, headers.get(SERVICE_ERROR, ""))
    if isinstance(body, dict) and "result" in body:
        try:
            return decode(endpoint.result, body["result"])
        except DecodeError as error:
            raise ProtocolError(
                f"the reply of {endpoint.service}.{endpoint.name} does not decode: {error}"
            ) from None
    if isinstance(body, dict) and "error" in body:
        wire_error = body["error"]
        if isinstance(wire_error, dict):
            raise _service_error(endpoint, wire_error, None)
        raise ServiceError.of("internal", 500, str(wire_error))
    keys = sorted(body)[:8] if isinstance(body, dict) else []
    if "stream" in keys and "seq" in keys:
        raise ProtocolError(
            f"the reply to {endpoint.service}.{endpoint.name} is a JetStream PubAck, not a "
            f"result: a stream captures subject {endpoint.subject}"
        )
    raise ProtocolError(
        f"the reply to {endpoint.service}.{endpoint.name} is neither {{\"result\": ..}} nor "
        f"{{\"error\": ..}} (keys: {', '.join(keys)})"
    )


_RUNTIME_CODES = {"bad_request": 400, "payload_too_large": 413, "busy": 503, "deadline_exceeded": 504}


def _service_error(endpoint: Rpc[Any], error: dict[str, Any], code: int | None) -> ServiceError:
    kind = error.get("kind")
    message = error.get("message")
    details = error.get("details")
    if not isinstance(kind, str):
        kind = None
    if code is None:
        code = _RUNTIME_CODES.get(kind or "", 500 if kind in (None, "internal") else 422)
    if kind is None:
        kind = ServiceError.kind_for_code(code)
    message = message if isinstance(message, str) else ""
    declared = endpoint.declared(kind) if code == 422 else None
    if declared is not None:
        try:
            instance = declared._decode(details)  # noqa: SLF001 - generated classmethod
        except DecodeError as failure:
            raise ProtocolError(
                f"the details of {kind} from {endpoint.service}.{endpoint.name} do not decode: "
                f"{failure}"
            ) from None
        instance.message = message or instance.message
        return instance
    return ServiceError.of(kind, code, message, details)
