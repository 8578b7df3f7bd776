"""Publishing events: what generated `Events` classes are built on.

An event is published on its topic as plain JSON with a JetStream publish (PubAck awaited) into
`EVENTS_<package>`, with `Nats-Msg-Id` = the event id (a new UUIDv7 unless given). Before the
first publish on a connection the publisher makes sure the package's stream captures every
declared topic, as the Rust publisher does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.errors import APIError, NoStreamResponseError
from pydantic import TypeAdapter

from . import streams
from .client import known_streams, user_headers
from .context import MSG_ID, Context, new_call_id
from .descriptors import EventsDescriptor
from .errors import EncodeError, PublishError
from .types import encode

DEFAULT_PUBLISH_TIMEOUT = 10.0


class EventPublisher:
    """Base of the generated `Events` classes: publishes one package's events."""

    DESCRIPTOR: ClassVar[EventsDescriptor]

    def __init__(self, nc: NATS, *, context: Context | None = None) -> None:
        self.nats = nc
        self.context = context

    async def _publish(
        self,
        topic: str,
        adapter: TypeAdapter[Any],
        event: Any,
        event_id: str | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> None:
        try:
            payload = encode(adapter, event)
        except ValueError as error:
            raise PublishError(topic, f"the event does not encode as JSON: {error}") from None
        try:
            hdrs = user_headers(headers)
        except EncodeError as error:
            raise PublishError(topic, str(error)) from None
        event_id = event_id if event_id is not None else new_call_id()
        if "\r" in event_id or "\n" in event_id:
            raise PublishError(topic, "the event id contains a line break")
        hdrs[MSG_ID] = event_id
        if self.context is not None:
            self.context.propagate(hdrs)
        too_large = streams.leaves_dead_letter_room(payload, hdrs, self.nats.max_payload)
        if too_large is not None:
            raise PublishError(topic, too_large)
        if not self.nats.is_connected:
            raise PublishError(topic, "not connected to NATS")
        wait = timeout if timeout is not None else DEFAULT_PUBLISH_TIMEOUT
        remaining = self.context.remaining() if self.context is not None else None
        if remaining is not None:
            wait = min(wait, remaining)
        js = self.nats.jetstream()
        descriptor = self.DESCRIPTOR
        stream = streams.event_stream_name(descriptor.package)

        async def ensure() -> None:
            await streams.ensure_event_stream(js, descriptor.package, descriptor.topics)
            known_streams(self.nats).add(stream)

        async def send() -> None:
            if stream not in known_streams(self.nats):
                await ensure()
            try:
                await js.publish(topic, payload, timeout=wait, headers=hdrs)
                return
            except (NoStreamResponseError, nats.errors.TimeoutError):
                # The stream was deleted since, or a core subscriber took the publish.
                pass
            await ensure()
            await js.publish(topic, payload, timeout=wait, headers=hdrs)

        try:
            await asyncio.wait_for(send(), wait)
        except (asyncio.TimeoutError, nats.errors.TimeoutError):
            raise PublishError(
                topic,
                f"the server did not confirm the event within {wait}s; it may or may not be "
                "stored (publishing it again with the same event id stores it once)",
            ) from None
        except (APIError, NoStreamResponseError, RuntimeError, nats.errors.Error) as error:
            raise PublishError(topic, str(error)) from None
