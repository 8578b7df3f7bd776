"""The JSON mapping of natsgen schema types (docs/PROTOCOL.md, "JSON mapping"), as pydantic types.

| schema | Python | JSON |
|---|---|---|
| `bool`, `string` | `bool`, `str` | boolean, string (no coercion from other JSON types) |
| `i32 i64 u32 u64` | `int` | number, checked against the type's range; `1.0` is not an integer |
| `f32 f64` | `float` | number; NaN and infinities are refused in and out |
| `bytes` | `bytes` | base64 string (standard alphabet, padded) |
| `timestamp` | `datetime` (aware) | RFC 3339 string in UTC (`2026-01-02T03:04:05.123Z`) |
| `uuid` | `uuid.UUID` | hyphenated string |
| `json` | `pydantic.JsonValue` | any JSON value |
| `list<T>` / `map<T>` | `list[T]` / `dict[str, T]` | array / object, keys sorted on output |
| `optional<T>` | `T \\| None`, default `None` | absent or `null` on input; omitted when `None` on output |
| enum | a `str` enum | its declared string |
| struct | a `Model` subclass | object; unknown fields ignored |
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, TypeVar

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    Strict,
    TypeAdapter,
    ValidationError,
    WrapSerializer,
)

T = TypeVar("T")

_F32_MAX = 3.4028234663852886e38


class Model(BaseModel):
    """Base of every generated struct, inline event payload and params object.

    Fields are constructed by their Python names and read from and written to JSON by their wire
    names; unknown JSON fields are ignored; assignments are validated like construction.
    """

    model_config = ConfigDict(
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        validate_assignment=True,
    )


def _is_none(value: object) -> bool:
    return value is None


def optional(alias: str | None = None) -> Any:
    """The default of an `optional<T>` field: `None`, left out of the JSON when it is `None`."""
    if alias is None:
        return Field(default=None, exclude_if=_is_none)
    return Field(
        default=None, exclude_if=_is_none, validation_alias=alias, serialization_alias=alias
    )


def wire(alias: str) -> Any:
    """A required field whose wire name differs from its Python name."""
    return Field(validation_alias=alias, serialization_alias=alias)


Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
I32 = Annotated[int, Strict(), Field(ge=-(2**31), le=2**31 - 1)]
I64 = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]
U32 = Annotated[int, Strict(), Field(ge=0, le=2**32 - 1)]
U64 = Annotated[int, Strict(), Field(ge=0, le=2**64 - 1)]
F32 = Annotated[float, Strict(), AllowInfNan(False), Field(ge=-_F32_MAX, le=_F32_MAX)]
F64 = Annotated[float, Strict(), AllowInfNan(False)]


def _decode_bytes(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as error:
            raise ValueError(f"invalid base64: {error}") from None
    raise ValueError("expected a base64 string")


def _encode_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


Binary = Annotated[
    bytes,
    PlainValidator(_decode_bytes),
    PlainSerializer(_encode_bytes, return_type=str, when_used="json"),
]

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp in any offset, as an aware `datetime` in UTC.

    Python keeps microseconds: digits beyond them are dropped. Years before 1 (which RFC 3339
    allows and `datetime` cannot hold) do not decode.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, _z, sign, off_h, off_m = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta(0)
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"invalid RFC 3339 offset: {text!r}")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        if sign == "-":
            offset = -offset
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros,
            tzinfo=timezone(offset),
        )
        return local.astimezone(timezone.utc)
    except (ValueError, OverflowError) as error:
        raise ValueError(f"timestamp out of range: {text!r} ({error})") from None


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`, fractional seconds only when there are some (as natsgen's Rust
    runtime writes them)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a timestamp needs a time zone (datetime.now(timezone.utc))")
    utc = value.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if len(text) < 19:  # years before 1000 without leading zeros on some platforms
        text = f"{utc.year:04d}" + text[text.index("-"):]
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _decode_timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("a timestamp needs a time zone (datetime.now(timezone.utc))")
        return value.astimezone(timezone.utc)
    if isinstance(value, str):
        return parse_timestamp(value)
    raise ValueError("expected an RFC 3339 string")


Timestamp = Annotated[
    datetime,
    PlainValidator(_decode_timestamp),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


def _sorted_keys(value: Any, handler: SerializerFunctionWrapHandler) -> Any:
    data = handler(value)
    if isinstance(data, dict):
        return dict(sorted(data.items()))
    return data


SortedKeys = WrapSerializer(_sorted_keys)
"""Put on `dict[str, T]` fields: objects are written with sorted keys, as natsgen's Rust side
writes its `BTreeMap`s."""


class DecodeError(ValueError):
    """A message that does not decode into its type (a `bad_request`)."""


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: bytes | str) -> Any:
    """Parses JSON strictly: `NaN` and `Infinity` are not JSON."""
    return json.loads(data, parse_constant=_no_constants)


def decode(adapter: TypeAdapter[T], data: Any) -> T:
    """Validates a parsed JSON value into `adapter`'s type; failure is a `DecodeError`."""
    try:
        return adapter.validate_python(data)
    except ValidationError as error:
        raise DecodeError(str(error)) from None
    except (ValueError, TypeError, RecursionError) as error:
        raise DecodeError(str(error)) from None


def decode_json(adapter: TypeAdapter[T], data: bytes) -> T:
    """Parses and validates a JSON message; failure is a `DecodeError`."""
    try:
        value = loads(data) if data.strip() else None
    except (ValueError, RecursionError) as error:
        raise DecodeError(f"not JSON: {error}") from None
    return decode(adapter, value)


def to_json_value(adapter: TypeAdapter[T], value: T) -> Any:
    """`value` as plain JSON data (dicts, lists, strings, numbers) by the wire names."""
    return adapter.dump_python(value, mode="json", by_alias=True)


def dumps(data: Any) -> bytes:
    """Compact JSON; a non-finite float is a `ValueError` (never `null`)."""
    return json.dumps(data, allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode()


def encode(adapter: TypeAdapter[T], value: T) -> bytes:
    """`value` as JSON bytes; a non-finite float anywhere is a `ValueError`."""
    return dumps(to_json_value(adapter, value))


M = TypeVar("M", bound=BaseModel)


def decode_fields(model: type[M], details: Any) -> M:
    """The fields of a declared error from an error reply's `details` (absent: `{}`)."""
    try:
        return model.model_validate(details if details is not None else {})
    except ValidationError as error:
        raise DecodeError(str(error)) from None
