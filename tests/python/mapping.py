"""Checks the JSON mapping of generated Python (docs/PROTOCOL.md, "JSON mapping") on the
`everything` fixture: run with the generated package `gen_everything` and the natsgen runtime on
PYTHONPATH. Prints one line per check and exits 1 on the first failure."""

import datetime as dt
import math
import uuid

import natsgen as rt
from gen_everything import common, everything as e
from pydantic import TypeAdapter

checks = 0


def check(what: str, ok: bool) -> None:
    global checks
    checks += 1
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        raise SystemExit(1)


def refused(adapter: TypeAdapter, data: bytes) -> bool:
    try:
        rt.types.decode_json(adapter, data)
    except rt.DecodeError:
        return True
    return False


scalars = TypeAdapter(e.Scalars)
good = {
    "flag": True, "text": "t", "blob": "aGVsbG8=", "small": -5, "big": 2**53, "count": 7,
    "huge": 2**64 - 1, "ratio": 1.5, "precise": 0.25, "when": "2026-01-02T05:04:05.5+02:00",
    "id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "anything": {"b": [1, None], "a": "x"},
}
value = rt.types.decode(scalars, good)
out = rt.types.to_json_value(scalars, value)
check("bytes are standard padded base64", value.blob == b"hello" and out["blob"] == "aGVsbG8=")
check("timestamps come out in UTC with Z", out["when"] == "2026-01-02T03:04:05.5Z")
check("timestamps without fraction have none",
      rt.types.format_timestamp(dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc)) == "2026-01-02T00:00:00Z")
check("uuids are hyphenated", out["id"] == "67e55044-10b1-426f-9247-bb680e5fe0c8")
check("json values pass through", out["anything"] == {"b": [1, None], "a": "x"})
check("u64 keeps its full range", out["huge"] == 2**64 - 1)

def with_(**changes: object) -> bytes:
    return rt.types.dumps({**good, **changes})

check("a float is not an integer", refused(scalars, with_(count=1.0)))
check("u32 out of range", refused(scalars, with_(count=2**32)))
check("i32 out of range", refused(scalars, with_(small=2**31)))
check("negative u64", refused(scalars, with_(huge=-1)))
check("f32 out of range", refused(scalars, with_(ratio=1e39)))
check("NaN is not JSON", refused(scalars, with_(precise="NaN").replace(b'"NaN"', b"NaN")))
check("no coercion of numbers to strings", refused(scalars, with_(text=5)))
check("no coercion of strings to bools", refused(scalars, with_(flag="true")))
check("bad base64", refused(scalars, with_(blob="***")))
check("a timestamp needs an offset", refused(scalars, with_(when="2026-01-02T03:04:05")))
check("a date is not a timestamp", refused(scalars, with_(when="2026-01-02")))
check("unknown fields are ignored", not refused(scalars, with_(unknown={"deep": [1]})))
try:
    rt.types.encode(scalars, value.model_copy(update={"precise": math.nan}))
    check("a NaN result does not encode", False)
except ValueError:
    check("a NaN result does not encode", True)

containers = TypeAdapter(e.Containers)
c = e.Containers(
    names=["a"], scores={"b": 1.0, "a": 2.0}, matrix=[[1]], lookup={"z": [None], "y": []},
    price=common.Money(amount=1, currency="EUR"), times=[],
)
text = rt.types.encode(containers, c)
check("maps are written with sorted keys", b'"scores":{"a":2.0,"b":1.0}' in text and b'"lookup":{"y":[],"z":[null]}' in text)
check("absent optionals are omitted", b"nickname" not in text and b"maybe_blob" not in text)
check("null inside a list stays", b"[null]" in text)
check("optional given as null decodes as None",
      rt.types.decode_json(containers, text.replace(b'"times"', b'"nickname":null,"times"')).nickname is None)

wire = TypeAdapter(e.Wire)
w = rt.types.decode_json(wire, b'{"orderId":"o","HTTPStatus":5,"with space":"s","field":"f"}')
check("fields keep their wire names", w.order_id == "o" and w.http_status == 5 and w.with_space == "s")
check("and are written by them", rt.types.encode(wire, w) == b'{"orderId":"o","HTTPStatus":5,"with space":"s","field":"f"}')

check("enums are their strings", rt.types.encode(TypeAdapter(e.Color), e.Color.LIGHT_BLUE) == b'"light-blue"')
check("an unknown enum string does not decode", refused(TypeAdapter(e.Color), b'"purple"'))

tree = rt.types.decode_json(TypeAdapter(e.Tree), b'{"label":"r","children":[{"label":"c","children":[]}]}')
check("recursive types decode", tree.children[0].label == "c" and tree.parent is None)

nf = e.NotFound(id="x")
check("declared errors carry their fields", nf.id == "x" and nf.details == {"id": "x"} and nf.code == 422)
check("declared errors decode from details", e.NotFound._decode({"id": "y"}).id == "y")
check("a declared error without fields has no details", e.Conflict().details is None)

print(f"{checks} passed, 0 failed")
