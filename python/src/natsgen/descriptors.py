"""What generated code tells the runtime about a package's services and events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter

from .errors import DeclaredError
from .types import Model

R = TypeVar("R")

NULL_SCHEMA = '{"type":"null"}'
DEFAULT_TIMEOUT_MS = 10_000
Invoke = Callable[[Any, Any, Any], Awaitable[Any]]
"""Calls the implementation's method: `(impl, ctx, params or event) -> awaitable result`."""


@dataclass(frozen=True, eq=False)
class Rpc(Generic[R]):
    """A synchronous method: request-reply on `<service>.rpc.<method>`."""

    service: str
    name: str
    params: type[Model]
    result: TypeAdapter[R]
    invoke: Invoke
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    errors: tuple[type[DeclaredError], ...] = ()
    params_schema: str = "{}"
    result_schema: str = NULL_SCHEMA

    @property
    def subject(self) -> str:
        return f"{self.service}.rpc.{self.name}"

    def declared(self, kind: str) -> type[DeclaredError] | None:
        return next((e for e in self.errors if e.KIND == kind), None)


@dataclass(frozen=True, eq=False)
class AsyncMethod:
    """A durable fire-and-forget method: JetStream on `<service>.async.<method>`."""

    service: str
    name: str
    params: type[Model]
    invoke: Invoke
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_attempts: int = 3
    backoff_ms: int = 1000
    params_schema: str = "{}"

    @property
    def subject(self) -> str:
        return f"{self.service}.async.{self.name}"


@dataclass(frozen=True, eq=False)
class Handler:
    """An event handler of a topic or wildcard pattern; `payloads` decodes each matching topic."""

    service: str
    name: str
    pattern: str
    payloads: Mapping[str, TypeAdapter[Any]]
    invoke: Invoke
    mode: str = "shared"
    delivery: str = "durable"
    max_attempts: int = 3
    backoff_ms: int = 1000
    params_schema: str = "{}"

    @property
    def subject(self) -> str:
        return self.pattern


Endpoint = Rpc[Any] | AsyncMethod | Handler


@dataclass(frozen=True, eq=False)
class ServiceDescriptor:
    """A service: its endpoints in schema order, and its package's declared topics."""

    name: str
    package: str
    version: str
    description: str
    endpoints: tuple[Endpoint, ...]
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class EventsDescriptor:
    """A package's events: its stream is `EVENTS_<package>`, over the declared topics."""

    package: str
    topics: tuple[str, ...]
    payloads: Mapping[str, TypeAdapter[Any]] = field(default_factory=dict)
