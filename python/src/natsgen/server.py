"""Serving services from Python: the base of the generated service classes, and the `Host`.

A `Host` serves implementations of generated service classes with the wire contract of the Rust
host (docs/PROTOCOL.md): RPC methods on `<service>.rpc.<method>` in queue group `<service>`; async
methods from the durable pull consumer `<service>` of `ASYNC_<service>`; durable event handlers
from the consumer `<service>_<handler>` (broadcast: an ephemeral consumer per instance) of the
stream that captures their topic, `EVENTS_<package>` when none does; best-effort handlers as core
subscriptions in queue group `<service>_<handler>`. Failed async calls and durable events are
nak'd with the schema's backoff and, past `max_attempts` (counted from the delivery count), go
to `NATSGEN_DLQ` on `natsgen.dlq.<service>.<endpoint>` with the headers the Rust worker writes.
Each instance answers `$SRV.PING|INFO|STATS`.

What the Rust host does and this one does not (see docs/PYTHON.md): deliveries returned by a
shutdown count as attempts here (the Rust host notes them in `NATSGEN_STATE`); messages that
reach a consumer's `max_deliver` without being handled are not dead-lettered from the
max-deliveries advisory (a Rust host of the same service does it); an existing consumer is used
as it is, not brought to the schema's settings; no metrics, tracing spans or middleware.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import TypeAdapter

from . import streams
from .context import (
    DEADLINE_MS,
    MAX_ERROR_HEADER_LEN,
    SERVICE_ERROR,
    SERVICE_ERROR_CODE,
    Context,
    one_line,
)
from .descriptors import AsyncMethod, Endpoint, Handler, Rpc, ServiceDescriptor
from .errors import (
    BAD_REQUEST,
    DEADLINE_EXCEEDED,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    DeclaredError,
    ServiceError,
)
from .types import DecodeError, decode_json, dumps, format_timestamp, to_json_value

log = logging.getLogger("natsgen")

VERSION = "0.1.0"
_PULL_EXPIRES = 5.0


class Service:
    """Base of the generated service classes: subclass one and implement its methods."""

    DESCRIPTOR: ClassVar[ServiceDescriptor]


@dataclass
class _Stats:
    num_requests: int = 0
    num_errors: int = 0
    last_error: str = ""
    processing_time: int = 0

    def record(self, started: float, error: ServiceError | None) -> None:
        self.num_requests += 1
        self.processing_time += int((time.monotonic() - started) * 1e9)
        if error is not None:
            self.num_errors += 1
            message = "" if error.kind == INTERNAL else f": {error.message}"
            self.last_error = f"{error.code}:{error.kind}{message}"


class _Undecodable(Exception):
    """A body the runtime cannot decode: dead-lettered at once."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


def _internal(call_id: str) -> ServiceError:
    return ServiceError(
        INTERNAL, 500, f"internal error; the service logged the details under call id {call_id}"
    )


def _as_service_error(error: BaseException, endpoint: Endpoint, ctx: Context) -> ServiceError:
    """What a handler's exception means: a declared error of this method as itself, a
    runtime-kind `ServiceError` as itself, anything else `internal`. An RPC caller gets no
    internal text (it goes to the log under the call id); a dead letter keeps it for the
    operator, as the Rust worker's do."""
    if isinstance(error, DeclaredError):
        if isinstance(endpoint, Rpc) and isinstance(error, endpoint.errors):
            return error
    elif isinstance(error, ServiceError):
        return error
    log.error(
        "%s.%s failed (call id %s)", endpoint.service, endpoint.name, ctx.call_id, exc_info=error
    )
    if isinstance(endpoint, Rpc):
        return _internal(ctx.call_id)
    return ServiceError(INTERNAL, 500, str(error) or type(error).__name__)


def _error_reply(error: ServiceError) -> tuple[dict[str, str], bytes]:
    body: dict[str, Any] = {"kind": error.kind, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    headers = {
        SERVICE_ERROR_CODE: str(error.code),
        SERVICE_ERROR: one_line(error.message, MAX_ERROR_HEADER_LEN),
    }
    return headers, json.dumps({"error": body}, separators=(",", ":")).encode()


class _Instance:
    """One served service: its subscriptions, pull loops, stats and `$SRV` answers."""

    def __init__(self, host: Host, impl: Service) -> None:
        self.host = host
        self.impl = impl
        self.descriptor = impl.DESCRIPTOR
        self.id = uuid.uuid4().hex
        self.started = format_timestamp(datetime.now(timezone.utc))
        self.stats = [_Stats() for _ in self.descriptor.endpoints]
        self.slots = asyncio.Semaphore(host.max_concurrency)
        self.subscriptions: list[Subscription] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.loops: list[asyncio.Task[None]] = []
        self.event_streams: dict[str, str] = {}
        self.stopping = False

    @property
    def nc(self) -> NATS:
        return self.host.nats

    @property
    def js(self) -> JetStreamContext:
        return self.host.js

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- start ---------------------------------------------------------------------------

    async def start(self) -> None:
        d = self.descriptor
        asyncs = [e for e in d.endpoints if isinstance(e, AsyncMethod)]
        handlers = [e for e in d.endpoints if isinstance(e, Handler)]
        if asyncs or any(h.delivery == "durable" for h in handlers):
            await streams.ensure_dlq_stream(self.js)
        if handlers and d.topics:
            await streams.ensure_event_stream(self.js, d.package, d.topics)
        for index, endpoint in enumerate(d.endpoints):
            if isinstance(endpoint, Rpc):
                sub = await self.nc.subscribe(
                    endpoint.subject, queue=d.name, cb=self._rpc_callback(index, endpoint)
                )
                self.subscriptions.append(sub)
        if asyncs:
            await streams.ensure_async_stream(self.js, d.name)
            max_deliver = max(e.max_attempts for e in asyncs) + streams.REDELIVERY_ALLOWANCE
            config = ConsumerConfig(
                durable_name=d.name,
                description=f"natsgen: async calls of {d.name}",
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.host.ack_wait,
                max_deliver=max_deliver,
                filter_subject=f"{d.name}.async.*",
            )
            await self._pull(streams.async_stream_name(d.name), config, None)
        for index, handler in enumerate(d.endpoints):
            if not isinstance(handler, Handler):
                continue
            if handler.delivery == "best_effort":
                await streams.ensure_handler_stream(self.js, d.package, handler.pattern)
                group = "" if handler.mode == "broadcast" else f"{d.name}_{handler.name}"
                sub = await self.nc.subscribe(
                    handler.pattern, queue=group, cb=self._best_effort_callback(index, handler)
                )
                self.subscriptions.append(sub)
                continue
            stream = await streams.ensure_handler_stream(self.js, d.package, handler.pattern)
            self.event_streams[handler.name] = stream
            mode = " (broadcast, one instance)" if handler.mode == "broadcast" else ""
            config = ConsumerConfig(
                description=f"natsgen: {d.name}.{handler.name}{mode} handles {handler.pattern}",
                deliver_policy=DeliverPolicy.NEW,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self.host.ack_wait,
                max_deliver=handler.max_attempts + streams.REDELIVERY_ALLOWANCE,
                filter_subject=handler.pattern,
            )
            if handler.mode == "broadcast":
                config.inactive_threshold = streams.EPHEMERAL_INACTIVE_THRESHOLD
            else:
                config.durable_name = streams.event_consumer_name(d.name, handler.name)
            await self._pull(stream, config, index)
        for verb in ("PING", "INFO", "STATS"):
            for subject in (f"$SRV.{verb}", f"$SRV.{verb}.{d.name}", f"$SRV.{verb}.{d.name}.{self.id}"):
                sub = await self.nc.subscribe(subject, cb=self._discovery_callback(verb))
                self.subscriptions.append(sub)
        await self.nc.flush()

    async def _pull(self, stream: str, config: ConsumerConfig, handler: int | None) -> None:
        """Makes sure of the consumer and pulls from it; `handler` is the endpoint its messages
        go to (`None`: async calls, routed by subject)."""
        name = config.durable_name
        info = None
        if name is not None:
            try:
                info = await self.js.consumer_info(stream, name)
            except NotFoundError:
                info = None
        if info is None:
            info = await self.js.add_consumer(stream, config)
        psub = await self.js.pull_subscribe_bind(consumer=info.name, stream=stream)
        self.loops.append(asyncio.ensure_future(self._pull_loop(psub, info.name, handler)))

    async def _pull_loop(
        self, psub: JetStreamContext.PullSubscription, consumer: str, handler: int | None
    ) -> None:
        while not self.stopping:
            free = self.host.max_concurrency - len(self.tasks)
            if free <= 0:
                await asyncio.sleep(0.01)
                continue
            try:
                messages = await psub.fetch(batch=min(free, 256), timeout=_PULL_EXPIRES)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - a lost pull: try again shortly
                log.warning("pulling from consumer %s failed: %s", consumer, error)
                await asyncio.sleep(1)
                continue
            for msg in messages:
                self.spawn(self._handle_durable(msg, handler))

    # -- RPC -----------------------------------------------------------------------------

    def _rpc_callback(self, index: int, endpoint: Rpc[Any]) -> Callable[[Msg], Awaitable[None]]:
        async def callback(msg: Msg) -> None:
            if self.stopping:
                return
            self.spawn(self._handle_rpc(index, endpoint, msg))

        return callback

    async def _handle_rpc(self, index: int, endpoint: Rpc[Any], msg: Msg) -> None:
        started = time.monotonic()
        ctx = Context.from_headers(
            self.nc, msg.headers, subject=msg.subject, timeout=endpoint.timeout_ms / 1000
        )
        error: ServiceError | None = None
        reply: tuple[dict[str, str] | None, bytes]
        async with self.slots:
            remaining = ctx.remaining() or 0.0
            try:
                if remaining <= 0 or (msg.headers or {}).get(DEADLINE_MS, "").strip() == "0":
                    raise ServiceError(DEADLINE_EXCEEDED, 504, "the deadline passed before the call started")
                try:
                    params = decode_json(TypeAdapter(endpoint.params), msg.data or b"{}")
                except DecodeError as failure:
                    raise ServiceError(
                        BAD_REQUEST, 400, f"the request does not decode into the params: {failure}"
                    ) from None
                try:
                    result = await asyncio.wait_for(endpoint.invoke(self.impl, ctx, params), remaining)
                except asyncio.TimeoutError:
                    raise ServiceError(
                        DEADLINE_EXCEEDED, 504,
                        "the handler did not finish before the caller's deadline and was cancelled",
                    ) from None
                try:
                    body = dumps({"result": to_json_value(endpoint.result, result)})
                except Exception as failure:  # noqa: BLE001 - NaN, a wrong result type
                    log.error("%s.%s returned a result that does not encode: %s",
                              endpoint.service, endpoint.name, failure)
                    raise _internal(ctx.call_id) from None
                if self.nc.max_payload and len(body) > self.nc.max_payload:
                    raise ServiceError(
                        PAYLOAD_TOO_LARGE, 413,
                        f"the result is {len(body)} bytes, more than the server's max_payload",
                    )
                reply = (None, body)
            except Exception as failure:  # noqa: BLE001 - every failure becomes an error reply
                error = _as_service_error(failure, endpoint, ctx)
                reply = _error_reply(error)
        if msg.reply:
            # Counted before the reply goes out, so a caller's next `$SRV.STATS` includes it.
            self.stats[index].record(started, error)
            headers, body = reply
            try:
                await self.nc.publish(msg.reply, body, headers=headers)
            except Exception as failure:  # noqa: BLE001 - the caller is gone
                log.warning("could not reply to %s: %s", endpoint.subject, failure)

    # -- async calls and durable events -----------------------------------------------------

    def _route(self, subject: str) -> tuple[int, Endpoint] | None:
        for index, endpoint in enumerate(self.descriptor.endpoints):
            if isinstance(endpoint, AsyncMethod) and endpoint.subject == subject:
                return index, endpoint
        return None

    async def _handle_durable(self, msg: Msg, handler: int | None) -> None:
        d = self.descriptor
        started = time.monotonic()
        meta = msg.metadata
        attempt = max(meta.num_delivered or 1, 1)
        endpoint: Endpoint
        if handler is None:
            routed = self._route(msg.subject)
            if routed is None:
                method = msg.subject.rsplit(".", 1)[-1]
                unknown = ServiceError(
                    BAD_REQUEST, 400,
                    f"{d.name} has no async method {method!r}; check the subject, or deploy a "
                    "version of the service that has it",
                )
                await self._dead_letter(msg, method, "unknown_method", unknown, None)
                return
            index, endpoint = routed
        else:
            index, endpoint = handler, d.endpoints[handler]
        if isinstance(endpoint, Rpc):
            return
        max_attempts = max(endpoint.max_attempts, 1)
        backoff = endpoint.backoff_ms / 1000
        ctx = Context.from_headers(
            self.nc, msg.headers, subject=msg.subject, timeout=None, attempt=attempt
        )
        error: ServiceError | None = None
        async with self.slots:
            if attempt > max_attempts:
                error = ServiceError(
                    INTERNAL, 500,
                    f"attempt {attempt - 1} of {max_attempts} did not complete: its worker "
                    "crashed mid-call (or its failure could not be dead-lettered then)",
                )
                await self._dead_letter(msg, endpoint.name, "abandoned", error, backoff)
            else:
                try:
                    await self._run(endpoint, ctx, msg)
                except _Undecodable as undecodable:
                    error = undecodable.error
                    await self._dead_letter(msg, endpoint.name, "undecodable", error, backoff)
                except Exception as failure:  # noqa: BLE001 - retried, then dead-lettered
                    error = _as_service_error(failure, endpoint, ctx)
                    if attempt >= max_attempts:
                        await self._dead_letter(msg, endpoint.name, "failed", error, backoff)
                    else:
                        log.warning("%s.%s: attempt %d of %d failed (%s); retrying in %ss",
                                    d.name, endpoint.name, attempt, max_attempts, error, backoff)
                        await msg.nak(delay=backoff)
                else:
                    try:
                        await msg.ack_sync()
                    except Exception as failure:  # noqa: BLE001 - it may be delivered again
                        log.warning("the server did not confirm an ack: %s", failure)
        self.stats[index].record(started, error)

    async def _run(self, endpoint: AsyncMethod | Handler, ctx: Context, msg: Msg) -> None:
        """Decodes and runs a handler, with an in-progress ack every third of the ack wait."""
        if isinstance(endpoint, AsyncMethod):
            try:
                params: Any = decode_json(TypeAdapter(endpoint.params), msg.data or b"{}")
            except DecodeError as failure:
                raise _Undecodable(ServiceError(
                    BAD_REQUEST, 400, f"the call does not decode into the params: {failure}"
                )) from None
        else:
            params = self._decode_event(endpoint, msg)
        work = asyncio.ensure_future(endpoint.invoke(self.impl, ctx, params))
        every = self.host.ack_wait / 3
        while True:
            done, _ = await asyncio.wait({work}, timeout=every)
            if done:
                work.result()
                return
            try:
                await msg.in_progress()
            except Exception as failure:  # noqa: BLE001 - the next one may get through
                log.warning("could not send an in-progress ack: %s", failure)

    @staticmethod
    def _decode_event(handler: Handler, msg: Msg) -> Any:
        adapter = handler.payloads.get(msg.subject)
        if adapter is None:
            raise _Undecodable(ServiceError(
                BAD_REQUEST, 400, f"no declared event matches subject {msg.subject}"
            ))
        try:
            return decode_json(adapter, msg.data)
        except DecodeError as failure:
            raise _Undecodable(ServiceError(
                BAD_REQUEST, 400, f"the event does not decode into its payload type: {failure}"
            )) from None

    async def _dead_letter(
        self, msg: Msg, endpoint: str, reason: str, error: ServiceError, retry: float | None
    ) -> None:
        """Publishes the letter (PubAck awaited), then acks; on failure naks with `retry`."""
        meta = msg.metadata
        stream, seq = meta.stream, meta.sequence.stream
        headers: dict[str, str] = {
            "Natsgen-Dlq-Reason": reason,
            "Natsgen-Dlq-Subject": one_line(msg.subject, 256),
            "Natsgen-Dlq-Stream": one_line(stream, 256),
            "Natsgen-Dlq-Sequence": str(seq),
            "Natsgen-Dlq-Attempts": str(meta.num_delivered),
            "Natsgen-Dlq-Error-Kind": one_line(error.kind, MAX_ERROR_HEADER_LEN),
            "Natsgen-Dlq-Error-Code": str(error.code),
            "Natsgen-Dlq-Error-Message": one_line(error.message, MAX_ERROR_HEADER_LEN),
            "Nats-Msg-Id": one_line(f"dlq:{stream}:{seq}:{meta.consumer}", 512),
        }
        original = msg.headers or {}
        if "Nats-Msg-Id" in original:
            headers["Natsgen-Dlq-Msg-Id"] = one_line(original["Nats-Msg-Id"], 512)
        own = dict(headers)
        copied = 0
        for name, value in original.items():
            if name.lower().startswith("nats-") or name == DEADLINE_MS or name in own:
                continue
            headers[name] = value
            copied += 1
        body = msg.data
        limit = self.nc.max_payload
        if limit and (streams.header_block_len(headers) + len(body) > limit
                      or streams.header_block_len(headers) > 65_535):
            headers = own
            headers["Natsgen-Dlq-Headers-Dropped"] = str(copied)
        room = limit - streams.header_block_len(headers) - 64
        if limit and len(body) > room:
            headers["Natsgen-Dlq-Truncated"] = str(len(body))
            body = body[: max(room, 0)]
        try:
            await self.js.publish(
                streams.dlq_subject(self.descriptor.name, endpoint), body, timeout=5.0, headers=headers
            )
        except Exception as failure:  # noqa: BLE001 - returned, dead-lettered when it comes back
            log.error("failed to dead-letter %s: %s; returned for another try", msg.subject, failure)
            await msg.nak(delay=retry)
            return
        log.error("dead-lettered %s (%s, %d attempts): %s", msg.subject, reason,
                  meta.num_delivered or 0, error)
        try:
            await msg.ack_sync()
        except Exception as failure:  # noqa: BLE001 - it may be delivered again
            log.warning("the server did not confirm an ack: %s", failure)

    # -- best-effort events ----------------------------------------------------------------

    def _best_effort_callback(self, index: int, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        async def callback(msg: Msg) -> None:
            if not self.stopping:
                self.spawn(self._handle_best_effort(index, handler, msg))

        return callback

    async def _handle_best_effort(self, index: int, handler: Handler, msg: Msg) -> None:
        started = time.monotonic()
        ctx = Context.from_headers(self.nc, msg.headers, subject=msg.subject, timeout=None)
        error: ServiceError | None = None
        async with self.slots:
            try:
                event = self._decode_event(handler, msg)
                await handler.invoke(self.impl, ctx, event)
            except _Undecodable as undecodable:
                error = undecodable.error
            except Exception as failure:  # noqa: BLE001 - best effort: logged only
                error = _as_service_error(failure, handler, ctx)
        if error is not None:
            log.warning("%s.%s failed on %s: %s", handler.service, handler.name, msg.subject, error)
        self.stats[index].record(started, error)

    # -- discovery ---------------------------------------------------------------------------

    def _discovery_callback(self, verb: str) -> Callable[[Msg], Awaitable[None]]:
        async def callback(msg: Msg) -> None:
            if msg.reply:
                await self.nc.publish(msg.reply, json.dumps(self._answer(verb)).encode())

        return callback

    def _answer(self, verb: str) -> dict[str, Any]:
        d = self.descriptor
        answer: dict[str, Any] = {
            "type": f"io.nats.micro.v1.{verb.lower()}_response",
            "name": d.name,
            "id": self.id,
            "version": d.version or "0.0.0",
            "metadata": {"natsgen_version": VERSION, "package": d.package},
        }
        if verb == "INFO":
            answer["description"] = d.description
            answer["endpoints"] = [
                {"name": e.name, "subject": e.subject, "queue_group": self._group(e),
                 "metadata": self._metadata(e)}
                for e in d.endpoints
            ]
        elif verb == "STATS":
            answer["started"] = self.started
            answer["endpoints"] = [
                {
                    "name": e.name,
                    "subject": e.subject,
                    "queue_group": self._group(e),
                    "num_requests": s.num_requests,
                    "num_errors": s.num_errors,
                    "last_error": s.last_error,
                    "processing_time": s.processing_time,
                    "average_processing_time": s.processing_time // s.num_requests
                    if s.num_requests else 0,
                }
                for e, s in zip(d.endpoints, self.stats)
            ]
        return answer

    def _group(self, endpoint: Endpoint) -> str:
        if isinstance(endpoint, Handler):
            return "" if endpoint.mode == "broadcast" else f"{endpoint.service}_{endpoint.name}"
        return endpoint.service

    def _metadata(self, e: Endpoint) -> dict[str, str]:
        d = self.descriptor
        if isinstance(e, Rpc):
            meta = {"kind": "rpc", "params_schema": e.params_schema,
                    "result_schema": e.result_schema, "timeout_ms": str(e.timeout_ms)}
            if e.errors:
                meta["errors"] = ",".join(err.KIND for err in e.errors)
            return meta
        meta = {"params_schema": e.params_schema, "result_schema": '{"type":"null"}'}
        retry = {"max_attempts": str(e.max_attempts), "backoff_ms": str(e.backoff_ms)}
        if isinstance(e, AsyncMethod):
            return {**meta, "kind": "async", "stream": streams.async_stream_name(d.name),
                    "consumer": d.name, **retry}
        meta.update(kind="event", mode=e.mode, delivery=e.delivery)
        if e.delivery == "durable":
            meta["stream"] = self.event_streams.get(e.name, streams.event_stream_name(d.package))
            if e.mode == "shared":
                meta["consumer"] = streams.event_consumer_name(d.name, e.name)
            meta.update(retry)
        return meta

    # -- stop --------------------------------------------------------------------------------

    async def stop(self, grace: float) -> None:
        self.stopping = True
        for loop in self.loops:
            loop.cancel()
        for sub in self.subscriptions:
            if not sub.subject.startswith("$SRV."):
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 - closing anyway
                    pass
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=grace)
        for sub in self.subscriptions:
            if sub.subject.startswith("$SRV."):
                try:
                    await sub.unsubscribe()
                except Exception:  # noqa: BLE001 - closing anyway
                    pass


class Host:
    """Serves Python implementations of generated service classes.

    ```python
    host = natsgen.Host(nc).serve(Orders())
    await host.run()        # until cancelled; or: await host.start() ... await host.stop()
    ```
    """

    def __init__(self, nc: NATS, *, max_concurrency: int = 64, ack_wait: float = streams.ACK_WAIT) -> None:
        self.nats = nc
        self.js = nc.jetstream()
        self.max_concurrency = max_concurrency
        self.ack_wait = ack_wait
        self._services: list[Service] = []
        self._instances: list[_Instance] = []

    def serve(self, service: Service) -> Host:
        """Adds an implementation of a generated service class."""
        self._services.append(service)
        return self

    async def start(self) -> None:
        """Subscribes every endpoint, creates missing streams and consumers, answers `$SRV`."""
        for service in self._services:
            instance = _Instance(self, service)
            await instance.start()
            self._instances.append(instance)

    async def stop(self, grace: float = 10.0) -> None:
        """Stops taking work, lets running handlers finish within `grace` seconds, then stops
        answering `$SRV`."""
        for instance in self._instances:
            await instance.stop(grace)
        self._instances.clear()

    async def run(self) -> None:
        """Starts, serves until cancelled (Ctrl-C with `asyncio.run`), then stops."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
