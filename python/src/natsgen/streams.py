"""The JetStream streams natsgen uses, created by whoever first writes or reads them, with the
configuration the Rust runtime gives them (docs/PROTOCOL.md, "Streams, consumers and dead
letters"). Subjects of an event stream are only ever added, under the same lock in the
`NATSGEN_STATE` bucket the Rust runtime takes."""

from __future__ import annotations

import asyncio
import os
import time

from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, KeyWrongLastSequenceError
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

DUPLICATE_WINDOW = 120.0
EVENT_MAX_AGE = 7 * 24 * 3600.0
DLQ_STREAM = "NATSGEN_DLQ"
DLQ_MAX_AGE = 30 * 24 * 3600.0
DEFAULT_MAX_MESSAGES = 1_000_000
STATE_BUCKET = "NATSGEN_STATE"
DEAD_LETTER_RESERVE = 4096
REDELIVERY_ALLOWANCE = 10
ACK_WAIT = 10.0
EPHEMERAL_INACTIVE_THRESHOLD = 30.0
_LOCK_LEASE_MS = 10_000


def async_stream_name(service: str) -> str:
    return f"ASYNC_{service}"


def event_stream_name(package: str) -> str:
    return f"EVENTS_{package}"


def event_consumer_name(service: str, handler: str) -> str:
    return f"{service}_{handler}"


def dlq_subject(service: str, endpoint: str) -> str:
    return f"natsgen.dlq.{service}.{endpoint}"


def subject_is_covered(subject: str, pattern: str) -> bool:
    """Whether every subject `subject` matches is also matched by `pattern`."""
    s, p = subject.split("."), pattern.split(".")
    for i, token in enumerate(p):
        if i >= len(s):
            return False
        if token == ">":
            return True
        if token == "*":
            if s[i] == ">":
                return False
        elif token != s[i] or s[i] in ("*", ">"):
            return False
    return len(s) == len(p)


def header_block_len(headers: dict[str, str]) -> int:
    return len("NATS/1.0\r\n\r\n") + sum(len(k) + 4 + len(v) for k, v in headers.items())


def leaves_dead_letter_room(payload: bytes, headers: dict[str, str], max_payload: int) -> str | None:
    """Why a message is too large for its dead letter to fit, or `None` when it fits."""
    size = len(payload) + header_block_len(headers)
    if max_payload <= 0 or size + DEAD_LETTER_RESERVE <= max_payload:
        return None
    return (
        f"payload_too_large: the message is {size} bytes; with the {DEAD_LETTER_RESERVE} bytes "
        f"its dead letter would need for its own headers it exceeds the server's max_payload "
        f"of {max_payload} bytes"
    )


async def _get_or_create(js: JetStreamContext, config: StreamConfig) -> StreamInfo:
    assert config.name is not None
    try:
        return await js.stream_info(config.name)
    except NotFoundError:
        pass
    try:
        return await js.add_stream(config)
    except BadRequestError:
        # Created by another process meanwhile.
        return await js.stream_info(config.name)


async def ensure_async_stream(js: JetStreamContext, service: str) -> StreamInfo:
    return await _get_or_create(
        js,
        StreamConfig(
            name=async_stream_name(service),
            subjects=[f"{service}.async.*"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=1,
            max_bytes=-1,
            max_msgs=DEFAULT_MAX_MESSAGES,
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW,
            description=f"natsgen async calls of service {service}",
        ),
    )


async def ensure_dlq_stream(js: JetStreamContext) -> StreamInfo:
    return await _get_or_create(
        js,
        StreamConfig(
            name=DLQ_STREAM,
            subjects=["natsgen.dlq.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=1,
            max_bytes=-1,
            max_msgs=DEFAULT_MAX_MESSAGES,
            discard=DiscardPolicy.NEW,
            max_age=DLQ_MAX_AGE,
            duplicate_window=DUPLICATE_WINDOW,
            description="natsgen dead letters: async calls and events that failed for good",
        ),
    )


def _missing(subjects: list[str] | None, topics: list[str] | tuple[str, ...]) -> list[str]:
    return [t for t in topics if not any(subject_is_covered(t, s) for s in subjects or [])]


async def ensure_event_stream(
    js: JetStreamContext, package: str, topics: list[str] | tuple[str, ...]
) -> StreamInfo:
    """Creates `EVENTS_<package>` when missing and adds any of `topics` it lacks."""
    info = await _get_or_create(
        js,
        StreamConfig(
            name=event_stream_name(package),
            subjects=list(topics),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=1,
            max_age=EVENT_MAX_AGE,
            max_bytes=-1,
            max_msgs=-1,
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW,
            description=f"natsgen events of package {package}",
        ),
    )
    if not _missing(info.config.subjects, topics):
        return info
    name = event_stream_name(package)
    state = await ensure_state_bucket(js)
    key, revision = await _lock(state, name)
    try:
        for _ in range(3):
            info = await js.stream_info(name)
            missing = _missing(info.config.subjects, topics)
            if not missing:
                return info
            config = info.config
            config.subjects = [*(config.subjects or []), *missing]
            await js.update_stream(config)
        info = await js.stream_info(name)
        if _missing(info.config.subjects, topics):
            raise RuntimeError(f"stream {name}: its subjects kept changing; {topics} not added")
        return info
    finally:
        try:
            await state.delete(key, last=revision)
        except Exception:  # noqa: BLE001 - the lease runs out by itself
            pass


async def ensure_handler_stream(js: JetStreamContext, package: str, pattern: str) -> str:
    """The stream that captures a durable handler's pattern: an existing one whose subjects
    overlap it, else `EVENTS_<package>` created or extended with it."""
    try:
        return await js.find_stream_name_by_subject(pattern)
    except NotFoundError:
        info = await ensure_event_stream(js, package, [pattern])
        assert info.config.name is not None
        return info.config.name


async def ensure_state_bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(STATE_BUCKET)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=STATE_BUCKET,
                description="natsgen: deliveries returned by shutdowns, stream update locks",
                history=1,
                ttl=EVENT_MAX_AGE,
                storage=StorageType.FILE,
                replicas=1,
            )
        )
    except Exception:  # noqa: BLE001 - created by another process meanwhile
        return await js.key_value(STATE_BUCKET)


async def _lock(state: KeyValue, stream: str) -> tuple[str, int]:
    """Takes the lease `lock.<stream>` (as the Rust runtime does), waiting a bounded time."""
    key = f"lock.{stream}"
    started = time.monotonic()
    while True:
        lease = str(int(time.time() * 1000) + _LOCK_LEASE_MS).encode()
        try:
            return key, await state.create(key, lease)
        except KeyWrongLastSequenceError:
            pass
        except Exception:  # noqa: BLE001 - an existing key: look at its lease below
            pass
        try:
            entry = await state.get(key)
            until = int((entry.value or b"0").decode() or "0")
            if until < time.time() * 1000 and entry.revision is not None:
                return key, await state.update(key, lease, last=entry.revision)
        except Exception:  # noqa: BLE001 - deleted or taken meanwhile: try again
            pass
        if time.monotonic() - started > 3 * _LOCK_LEASE_MS / 1000:
            raise RuntimeError(f"another process holds lock.{stream} in {STATE_BUCKET} too long")
        await asyncio.sleep((10 + int.from_bytes(os.urandom(1), "big") % 40) / 1000)
