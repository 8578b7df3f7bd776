"""What a call can fail with, as a small exception hierarchy.

```
NatsgenError
├── CallError                      a call failed
│   ├── ServiceError               the service answered with an error (kind, code, message, details)
│   │   ├── BadRequest             400 bad_request
│   │   ├── PayloadTooLarge        413 payload_too_large
│   │   ├── Internal               500 internal
│   │   ├── Busy                   503 busy
│   │   ├── DeadlineExceeded       504 deadline_exceeded
│   │   └── DeclaredError          422: the schema's declared errors, generated per method
│   ├── ServiceUnavailable         no responders: nothing serves the method (reported at once)
│   ├── Timeout                    no reply (or PubAck) within the call's timeout
│   ├── Disconnected               not connected to NATS
│   ├── JetStreamUnavailable       JetStream could not store an async call
│   ├── ProtocolError              the reply is neither a result nor an error
│   └── EncodeError                the call could not be encoded (or is too large)
└── PublishError                   an event was not stored
```
"""

from __future__ import annotations

from typing import Any, ClassVar

BAD_REQUEST = "bad_request"
PAYLOAD_TOO_LARGE = "payload_too_large"
INTERNAL = "internal"
BUSY = "busy"
DEADLINE_EXCEEDED = "deadline_exceeded"
DECLARED_CODE = 422


class NatsgenError(Exception):
    """Base of every error natsgen raises."""


class CallError(NatsgenError):
    """A call (RPC or async) failed."""


class ServiceError(CallError):
    """An error reply: `kind` is a declared error's name or a runtime kind, `code` its number.

    Raised by a Python service's handler, it becomes the error reply (or, for async calls and
    events, the error that is retried and dead-lettered) with this kind, code and message.
    """

    def __init__(
        self, kind: str, code: int, message: str, details: Any = None
    ) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.code = code
        self.message = message
        self.details = details

    @staticmethod
    def of(kind: str, code: int, message: str, details: Any = None) -> ServiceError:
        """The error of a reply: the runtime kinds as their classes, any other as `ServiceError`."""
        cls = _RUNTIME_KINDS.get(kind)
        if cls is not None:
            error: ServiceError = cls(message)
            error.code = code
            error.details = details
            return error
        return ServiceError(kind, code, message, details)

    @staticmethod
    def kind_for_code(code: int) -> str:
        """The runtime kind of a code (for replies that carry only the micro headers)."""
        return {400: BAD_REQUEST, 413: PAYLOAD_TOO_LARGE, 503: BUSY, 504: DEADLINE_EXCEEDED}.get(
            code, INTERNAL
        )


class _RuntimeError(ServiceError):
    KIND: ClassVar[str] = INTERNAL
    CODE: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(self.KIND, self.CODE, message)


class BadRequest(_RuntimeError):
    """400: the request does not decode into the params (or the handler said so)."""

    KIND = BAD_REQUEST
    CODE = 400


class PayloadTooLarge(_RuntimeError):
    """413: the result exceeds the server's max_payload."""

    KIND = PAYLOAD_TOO_LARGE
    CODE = 413


class Internal(_RuntimeError):
    """500: the handler failed; the service logged the details under the call id."""

    KIND = INTERNAL
    CODE = 500


class Busy(_RuntimeError):
    """503: the service's bounded queue is full."""

    KIND = BUSY
    CODE = 503


class DeadlineExceeded(_RuntimeError):
    """504: the deadline passed before or while the handler ran."""

    KIND = DEADLINE_EXCEEDED
    CODE = 504


_RUNTIME_KINDS: dict[str, type[_RuntimeError]] = {
    cls.KIND: cls for cls in (BadRequest, PayloadTooLarge, Internal, Busy, DeadlineExceeded)
}


class DeclaredError(ServiceError):
    """Base of the generated exception classes of the schema's declared errors (code 422).

    Each generated class has its declared fields as attributes; its `message` is the error's
    description (else its name) and its `details` the fields as JSON.
    """

    KIND: ClassVar[str] = ""
    MESSAGE: ClassVar[str] = ""

    def __init__(self, details: Any = None) -> None:
        super().__init__(self.KIND, DECLARED_CODE, self.MESSAGE, details)

    @classmethod
    def _decode(cls, details: Any) -> DeclaredError:
        """The error of an error reply's `details` (generated classes decode their fields)."""
        return cls(details)


class ServiceUnavailable(CallError):
    """Nothing serves the method right now (NATS "no responders")."""

    def __init__(self, service: str, method: str) -> None:
        super().__init__(f"service unavailable: nothing serves {service}.{method}")
        self.service = service
        self.method = method


class Timeout(CallError, TimeoutError):
    """No reply (or, for an async call, no PubAck) within the call's timeout."""

    def __init__(self, service: str, method: str, after: float) -> None:
        super().__init__(f"call to {service}.{method} timed out after {after:.3f}s")
        self.service = service
        self.method = method
        self.after = after


class Disconnected(CallError):
    """The connection to NATS is down, so the call was not sent."""

    def __init__(self) -> None:
        super().__init__("not connected to NATS")


class JetStreamUnavailable(CallError):
    """JetStream could not store an async call (not enabled, not ready, or no room)."""

    def __init__(self, service: str, method: str, reason: str) -> None:
        super().__init__(f"JetStream could not store the call to {service}.{method}: {reason}")
        self.service = service
        self.method = method
        self.reason = reason


class ProtocolError(CallError):
    """The reply is neither `{"result": ...}` nor an error reply, or does not decode."""


class EncodeError(CallError):
    """The call could not be encoded, or is too large to send."""


class PublishError(NatsgenError):
    """An event was not stored (no PubAck in time, no stream, too large, ...)."""

    def __init__(self, subject: str, reason: str) -> None:
        super().__init__(f"publishing {subject}: {reason}")
        self.subject = subject
        self.reason = reason
