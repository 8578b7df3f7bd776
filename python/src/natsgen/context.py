"""Headers, ids and the `Context` of a call (docs/PROTOCOL.md, "Headers")."""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

log = logging.getLogger("natsgen")

CALL_ID = "Natsgen-Call-Id"
CALLER_CHAIN = "Natsgen-Caller-Chain"
DEADLINE_MS = "Natsgen-Deadline-Ms"
TRACEPARENT = "traceparent"
SERVICE_ERROR_CODE = "Nats-Service-Error-Code"
SERVICE_ERROR = "Nats-Service-Error"
MSG_ID = "Nats-Msg-Id"
OWN_HEADERS = frozenset({CALL_ID, CALLER_CHAIN, DEADLINE_MS, TRACEPARENT})
MAX_CALLER_CHAIN = 16
MAX_CALL_ID_LEN = 128
MAX_ERROR_HEADER_LEN = 512

_TRACEPARENT = re.compile(r"([0-9a-fA-F]{2})-([0-9a-fA-F]{32})-([0-9a-fA-F]{16})-([0-9a-fA-F]{2})(-.*)?")


def new_call_id() -> str:
    """A UUIDv7 string: 48 bits of Unix milliseconds, then random bits."""
    millis = time.time_ns() // 1_000_000 & (2**48 - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | ((rand >> 68) & 0xFFF) << 64 | (0b10 << 62)
    value |= rand & (2**62 - 1)
    return str(uuid.UUID(int=value))


def is_valid_call_id(value: str) -> bool:
    """Short printable ASCII without commas or spaces, as the Rust runtime accepts."""
    return (
        0 < len(value) <= MAX_CALL_ID_LEN
        and value.isascii()
        and all(33 <= ord(c) <= 126 and c != "," for c in value)
    )


class TraceParent:
    """A W3C `traceparent`: trace id, span id and flags."""

    __slots__ = ("trace_id", "span_id", "flags")

    def __init__(self, trace_id: int, span_id: int, flags: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags

    @staticmethod
    def new_root() -> TraceParent:
        return TraceParent(
            int.from_bytes(os.urandom(16), "big") or 1, int.from_bytes(os.urandom(8), "big") or 1, 0
        )

    @staticmethod
    def parse(value: str) -> TraceParent | None:
        match = _TRACEPARENT.fullmatch(value)
        if match is None:
            return None
        version, trace, span, flags, rest = match.groups()
        if version.lower() == "ff" or (version == "00" and rest):
            return None
        trace_id, span_id = int(trace, 16), int(span, 16)
        if trace_id == 0 or span_id == 0:
            return None
        return TraceParent(trace_id, span_id, int(flags, 16))

    def child(self) -> TraceParent:
        return TraceParent(self.trace_id, int.from_bytes(os.urandom(8), "big") or 1, self.flags)

    def __str__(self) -> str:
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"


def one_line(text: str, limit: int) -> str:
    """`text` as a header value: line breaks become spaces, cut to `limit` bytes."""
    raw = text.replace("\r", " ").replace("\n", " ").encode()[:limit]
    return raw.decode("utf-8", errors="ignore")


E = TypeVar("E")


class Context:
    """What a handler knows about the call it serves, and what calls made within it carry on.

    Clients and publishers given a context (`client.with_context(ctx)`, `ctx.emit(Events)`) make
    their calls part of this one: they join its caller chain, continue its trace and (RPC) wait
    no longer than its remaining time.
    """

    def __init__(
        self,
        nc: NATS,
        *,
        call_id: str | None = None,
        caller_chain: tuple[str, ...] = (),
        trace: TraceParent | None = None,
        deadline: float | None = None,
        subject: str = "",
        attempt: int = 1,
        message_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.nats = nc
        self.call_id = call_id or new_call_id()
        self.caller_chain = caller_chain
        self.trace = trace or TraceParent.new_root()
        self.deadline = deadline
        """`time.monotonic()` at which the caller stops waiting; `None`: no deadline."""
        self.subject = subject
        self.attempt = attempt
        self.message_id = message_id
        self.headers: Mapping[str, str] = headers or {}

    @staticmethod
    def root(nc: NATS) -> Context:
        """A context of no incoming call, to group calls under one call id and trace."""
        return Context(nc)

    @staticmethod
    def from_headers(
        nc: NATS,
        headers: Mapping[str, str] | None,
        *,
        subject: str,
        timeout: float | None,
        attempt: int = 1,
    ) -> Context:
        """The context of an incoming message; garbage in a header is ignored with a warning."""
        headers = headers or {}
        call_id = headers.get(CALL_ID)
        if call_id is not None and not is_valid_call_id(call_id):
            log.warning("ignoring an invalid %s header", CALL_ID)
            call_id = None
        message_id = headers.get(MSG_ID)
        if call_id is None and message_id is not None:
            _, sep, key = message_id.partition(":")
            if sep and is_valid_call_id(key):
                call_id = key
        chain: tuple[str, ...] = ()
        if CALLER_CHAIN in headers:
            parts = tuple(p for p in headers[CALLER_CHAIN].split(",") if p)
            if all(is_valid_call_id(p) for p in parts):
                chain = parts[-MAX_CALLER_CHAIN:]
            else:
                log.warning("ignoring an invalid %s header", CALLER_CHAIN)
        trace = None
        if TRACEPARENT in headers:
            parent = TraceParent.parse(headers[TRACEPARENT])
            if parent is None:
                log.warning("ignoring an invalid %s header", TRACEPARENT)
            else:
                trace = parent.child()
        deadline = None
        if timeout is not None:
            wait = timeout
            if DEADLINE_MS in headers:
                try:
                    wait = min(wait, max(int(headers[DEADLINE_MS].strip()), 0) / 1000)
                except ValueError:
                    log.warning("ignoring an invalid %s header", DEADLINE_MS)
            deadline = time.monotonic() + wait
        return Context(
            nc,
            call_id=call_id,
            caller_chain=chain,
            trace=trace,
            deadline=deadline,
            subject=subject,
            attempt=attempt,
            message_id=message_id,
            headers=headers,
        )

    def remaining(self) -> float | None:
        """Seconds left until the deadline (never negative); `None` without one."""
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def outgoing_chain(self) -> str:
        """The caller chain a call made within this one carries."""
        chain = (*self.caller_chain, self.call_id)[-MAX_CALLER_CHAIN:]
        return ",".join(chain)

    def propagate(self, headers: dict[str, str]) -> None:
        """Sets the caller chain and a continued trace on a message sent within this call."""
        headers[CALLER_CHAIN] = self.outgoing_chain()
        headers[TRACEPARENT] = str(self.trace.child())

    def detached(self) -> Context:
        """The same context without a deadline, for background work."""
        ctx = Context(
            self.nats,
            call_id=self.call_id,
            caller_chain=self.caller_chain,
            trace=self.trace,
            subject=self.subject,
            attempt=self.attempt,
            message_id=self.message_id,
            headers=self.headers,
        )
        return ctx

    def client(self, cls: Callable[..., E]) -> E:
        """A client or event publisher (`ctx.client(OrderServiceClient)`, `ctx.emit(Events)`)
        whose calls are part of this one."""
        return cls(self.nats, context=self)

    emit = client
