//! JSON on the wire: params, result and error envelopes.
//!
//! Values are serialized straight into the bytes that are sent, through [`Finite`], a thin
//! serializer wrapper that turns a non-finite `f32`/`f64` into an error (serde_json would write
//! `null`, silently changing the value). Replies are decoded in one pass by [`Reply`].
//!
//! Everything that arrives (params, event payloads, replies, error details) is decoded through
//! [`checked::Checked`], the mirror of [`Finite`]: a number that does not fit an `f32` field is a
//! decode error instead of `inf`.

mod checked;

use std::fmt;
use std::marker::PhantomData;

use std::io::Write as _;

use bytes::Bytes;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::ser::{
    self, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, ServiceError};

/// Decodes the params object of a request. An empty body counts as `{}`, so `nats req` works
/// for methods without params. Failure is a `bad_request` (400) error saying what did not decode.
pub fn decode_params<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        payload
    };
    decode(payload).map_err(|error| {
        ServiceError::undecodable(format!(
            "the request body does not decode into the method's params: {error}"
        ))
    })
}

/// Decodes a JSON body from the wire (a whole document), checked: see [`checked`].
pub(crate) fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, serde_json::Error> {
    checked::from_slice(payload)
}

/// Encodes the params object of a request.
pub fn encode_params<T: Serialize + ?Sized>(params: &T) -> Result<Bytes, Error> {
    scratch::encode(|out| serde_json::to_writer(out, &Finite(params))).map_err(|error| {
        Error::Encode {
            what: "the call's params",
            reason: error.to_string(),
        }
    })
}

/// Encodes any value as JSON; a non-finite float anywhere in it is an error.
pub(crate) fn encode_value<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
) -> Result<Bytes, Error> {
    scratch::encode(|out| serde_json::to_writer(out, &Finite(value))).map_err(|error| {
        Error::Encode {
            what,
            reason: error.to_string(),
        }
    })
}

/// Encodes a success reply, `{"result": <value>}`. A non-finite float anywhere in the value is an
/// `internal` error.
pub fn encode_result<T: Serialize + ?Sized>(result: &T) -> Result<Bytes, ServiceError> {
    scratch::encode(|out| {
        out.write_all(b"{\"result\":")
            .map_err(serde_json::Error::io)?;
        serde_json::to_writer(&mut *out, &Finite(result))?;
        out.write_all(b"}").map_err(serde_json::Error::io)
    })
    .map_err(|error| {
        ServiceError::internal(format!(
            "the handler's result does not encode as JSON: {error}"
        ))
    })
}

/// Encoding into shared chunks: every encoded body is a slice of a per-thread buffer of
/// [`CHUNK`](scratch::CHUNK) bytes, so a body costs no allocation of its own (a chunk is freed
/// when the last body cut from it is dropped) and sending it, which clones it, only counts a
/// reference. A body larger than what is left of a chunk grows it into a buffer of its own,
/// which is let go of afterwards.
mod scratch {
    use std::cell::RefCell;

    use bytes::{BufMut, Bytes, BytesMut};

    /// The size of a chunk; a body larger than what is left of one gets a buffer of its own.
    pub(super) const CHUNK: usize = 8 * 1024;
    /// Below this much room, the next body starts a new chunk.
    const LOW: usize = 512;

    thread_local! {
        static BUFFER: RefCell<BytesMut> = RefCell::new(BytesMut::new());
    }

    /// The bytes `write` writes. A failed (or panicking) write leaves nothing behind: what it
    /// wrote is cleared before the next body.
    pub(super) fn encode<E>(
        write: impl FnOnce(&mut bytes::buf::Writer<&mut BytesMut>) -> Result<(), E>,
    ) -> Result<Bytes, E> {
        let encode_into = |buffer: &mut BytesMut| {
            buffer.clear();
            if buffer.capacity() < LOW {
                *buffer = BytesMut::with_capacity(CHUNK);
            }
            let result = write(&mut (&mut *buffer).writer());
            let body = match result {
                Ok(()) => Ok(buffer.split().freeze()),
                Err(error) => {
                    buffer.clear();
                    Err(error)
                }
            };
            // A body that grew the buffer past a chunk leaves it behind: the next body starts a
            // chunk of its own, so no thread keeps a large buffer for good.
            if buffer.capacity() > CHUNK {
                *buffer = BytesMut::new();
            }
            body
        };
        BUFFER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffer) => encode_into(&mut buffer),
            // A `Serialize` impl that encodes a body itself: that one gets a buffer of its own.
            Err(_) => encode_into(&mut BytesMut::new()),
        })
    }
}

/// A declared error (code 422, [`ServiceError::DECLARED_CODE`]) with structured details.
pub fn declared_error<D: Serialize + ?Sized>(
    kind: &'static str,
    message: &str,
    details: &D,
) -> ServiceError {
    match serde_json::to_value(Finite(details)) {
        Ok(details) => {
            ServiceError::new(kind, ServiceError::DECLARED_CODE, message).with_details(details)
        }
        Err(error) => ServiceError::internal(format!(
            "the details of error {kind} do not encode as JSON: {error}"
        )),
    }
}

/// A declared error (code 422, [`ServiceError::DECLARED_CODE`]) without details.
pub fn declared_error_without_details(kind: &'static str, message: &str) -> ServiceError {
    ServiceError::new(kind, ServiceError::DECLARED_CODE, message)
}

/// Decodes the details of an error reply; missing details decode as `{}`.
pub fn decode_details<D: DeserializeOwned>(error: &ServiceError) -> Result<D, serde_json::Error> {
    match error.details() {
        Some(details) => D::deserialize(checked::Checked(details)),
        None => D::deserialize(&serde_json::Value::Object(serde_json::Map::new())),
    }
}

/// What a generated binding answers for an endpoint index it does not know (a bug in how it was
/// called, never reached through NATS).
pub async fn unknown_endpoint(endpoint: usize) -> Result<Bytes, ServiceError> {
    Err(ServiceError::internal(format!(
        "this service has no endpoint #{endpoint}; the server binding and its descriptor disagree, \
         regenerate the code"
    )))
}

/// The body of an error reply: `{"error": {"kind": ..., "message": ..., "details": ...}}`.
pub(crate) fn encode_error(error: &ServiceError) -> Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        error: ErrorBody<'a>,
    }
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        kind: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        details: Option<&'a serde_json::Value>,
    }
    let body = Body {
        error: ErrorBody {
            kind: error.kind(),
            message: error.message(),
            details: error.details(),
        },
    };
    let mut buffer = Vec::with_capacity(64 + error.message().len());
    match serde_json::to_writer(&mut buffer, &body) {
        Ok(()) => Bytes::from(buffer),
        // Serializing strings and a JSON value cannot fail; keep a valid body regardless.
        Err(_) => Bytes::from_static(b"{\"error\":{\"kind\":\"internal\",\"message\":\"error\"}}"),
    }
}

/// A reply body decoded in one pass.
pub(crate) enum Reply<R> {
    /// `{"result": ...}`
    Result(R),
    /// `{"error": ...}`
    Error(WireError),
    /// Neither: the top-level keys found (at most a few), for the protocol error message.
    Other(Vec<String>),
}

/// The `error` member of an error reply. Accepts the natsgen object and a bare string (as simpler
/// frameworks send).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum WireError {
    Object {
        #[serde(default)]
        kind: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        details: Option<serde_json::Value>,
    },
    Text(String),
    Other(serde_json::Value),
}

impl WireError {
    /// The error, with `code` from the headers when they carry one.
    pub(crate) fn into_service_error(self, code: Option<u16>) -> ServiceError {
        match self {
            WireError::Object {
                kind,
                message,
                details,
            } => {
                let code = code.unwrap_or(match kind.as_deref() {
                    Some(kind) => runtime_code(kind),
                    None => 500,
                });
                let kind = kind.unwrap_or_else(|| ServiceError::kind_for_code(code).to_owned());
                let error = ServiceError::new(kind, code, message.unwrap_or_default());
                match details {
                    Some(serde_json::Value::Null) | None => error,
                    Some(details) => error.with_details(details),
                }
            }
            WireError::Text(message) => {
                let code = code.unwrap_or(500);
                ServiceError::new(ServiceError::kind_for_code(code), code, message)
            }
            WireError::Other(value) => {
                let code = code.unwrap_or(500);
                ServiceError::new(ServiceError::kind_for_code(code), code, value.to_string())
            }
        }
    }
}

/// The code of a kind when the reply carries no code header: the runtime kinds' own, and 422 for
/// anything else (a declared error).
fn runtime_code(kind: &str) -> u16 {
    match kind {
        ServiceError::BAD_REQUEST => 400,
        ServiceError::PAYLOAD_TOO_LARGE => 413,
        ServiceError::INTERNAL => 500,
        ServiceError::BUSY => 503,
        ServiceError::DEADLINE_EXCEEDED => 504,
        _ => ServiceError::DECLARED_CODE,
    }
}

impl<'de, R: Deserialize<'de>> Deserialize<'de> for Reply<R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ReplyVisitor<R>(PhantomData<fn() -> R>);

        impl<'de, R: Deserialize<'de>> Visitor<'de> for ReplyVisitor<R> {
            type Value = Reply<R>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an object {"result": ...} or {"error": ...}"#)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found: Option<Reply<R>> = None;
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<KeyName<'de>>()? {
                    match (&key, &found) {
                        (KeyName::Result, None) => found = Some(Reply::Result(map.next_value()?)),
                        (KeyName::Error, None) => found = Some(Reply::Error(map.next_value()?)),
                        _ => {
                            if keys.len() < 8 {
                                keys.push(key.into_string());
                            }
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(found.unwrap_or(Reply::Other(keys)))
            }
        }

        deserializer.deserialize_map(ReplyVisitor(PhantomData))
    }
}

/// A top-level key of a reply, borrowed where possible.
enum KeyName<'de> {
    Result,
    Error,
    Borrowed(&'de str),
    Owned(String),
}

impl KeyName<'_> {
    fn into_string(self) -> String {
        match self {
            KeyName::Result => "result".to_owned(),
            KeyName::Error => "error".to_owned(),
            KeyName::Borrowed(key) => key.to_owned(),
            KeyName::Owned(key) => key,
        }
    }
}

impl<'de> Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyName<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                key: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(match key {
                    "result" => KeyName::Result,
                    "error" => KeyName::Error,
                    _ => KeyName::Borrowed(key),
                })
            }

            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(match key {
                    "result" => KeyName::Result,
                    "error" => KeyName::Error,
                    _ => KeyName::Owned(key.to_owned()),
                })
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Serializes the wrapped value, failing on a non-finite float anywhere inside it.
pub(crate) struct Finite<'a, T: ?Sized>(pub(crate) &'a T);

impl<T: Serialize + ?Sized> Serialize for Finite<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(FiniteSerializer(serializer))
    }
}

fn non_finite<E: ser::Error>(value: f64) -> E {
    E::custom(format_args!(
        "{value} is not a finite number and JSON has no representation for it"
    ))
}

struct FiniteSerializer<S>(S);

/// Wraps each compound serializer so that its elements are checked too.
struct FiniteCompound<C>(C);

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method(self, $($arg: $ty),*) -> Result<Self::Ok, Self::Error> {
                self.0.$method($($arg),*)
            }
        )*
    };
}

impl<S: Serializer> Serializer for FiniteSerializer<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = FiniteCompound<S::SerializeSeq>;
    type SerializeTuple = FiniteCompound<S::SerializeTuple>;
    type SerializeTupleStruct = FiniteCompound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = FiniteCompound<S::SerializeTupleVariant>;
    type SerializeMap = FiniteCompound<S::SerializeMap>;
    type SerializeStruct = FiniteCompound<S::SerializeStruct>;
    type SerializeStructVariant = FiniteCompound<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<Self::Ok, Self::Error> {
        if v.is_finite() {
            self.0.serialize_f32(v)
        } else {
            Err(non_finite(f64::from(v)))
        }
    }

    fn serialize_f64(self, v: f64) -> Result<Self::Ok, Self::Error> {
        if v.is_finite() {
            self.0.serialize_f64(v)
        } else {
            Err(non_finite(v))
        }
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_some(&Finite(value))
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_newtype_struct(name, &Finite(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Finite(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        self.0.serialize_seq(len).map(FiniteCompound)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        self.0.serialize_tuple(len).map(FiniteCompound)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        self.0.serialize_tuple_struct(name, len).map(FiniteCompound)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(FiniteCompound)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        self.0.serialize_map(len).map(FiniteCompound)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        self.0.serialize_struct(name, len).map(FiniteCompound)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(FiniteCompound)
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.0.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<C: SerializeSeq> SerializeSeq for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_element(&Finite(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTuple> SerializeTuple for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_element(&Finite(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTupleStruct> SerializeTupleStruct for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_field(&Finite(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeTupleVariant> SerializeTupleVariant for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_field(&Finite(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeMap> SerializeMap for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), C::Error> {
        self.0.serialize_key(&Finite(key))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), C::Error> {
        self.0.serialize_value(&Finite(value))
    }
    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), C::Error> {
        self.0.serialize_entry(&Finite(key), &Finite(value))
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeStruct> SerializeStruct for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        self.0.serialize_field(key, &Finite(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

impl<C: SerializeStructVariant> SerializeStructVariant for FiniteCompound<C> {
    type Ok = C::Ok;
    type Error = C::Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), C::Error> {
        self.0.serialize_field(key, &Finite(value))
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), C::Error> {
        self.0.skip_field(key)
    }
    fn end(self) -> Result<C::Ok, C::Error> {
        self.0.end()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn bodies_cut_from_one_chunk_stay_whole() {
        let bodies: Vec<(u32, Bytes)> = (0..2_000)
            .map(|n| (n, encode_params(&BTreeMap::from([("n", n)])).unwrap()))
            .collect();
        for (n, body) in &bodies {
            assert_eq!(&body[..], format!("{{\"n\":{n}}}").as_bytes());
        }
        // A body larger than a chunk, between small ones.
        let large = "x".repeat(3 * scratch::CHUNK);
        let before = encode_result(&1).unwrap();
        let big = encode_result(&large).unwrap();
        let after = encode_result(&2).unwrap();
        assert_eq!(&before[..], b"{\"result\":1}");
        assert_eq!(big.len(), large.len() + b"{\"result\":\"\"}".len());
        assert_eq!(&after[..], b"{\"result\":2}");
    }

    #[test]
    fn a_failed_encoding_leaves_nothing_in_the_next_body() {
        assert!(encode_params(&BTreeMap::from([("x", f64::NAN)])).is_err());
        assert!(encode_result(&[1.0, f64::INFINITY]).is_err());
        assert_eq!(&encode_result(&3).unwrap()[..], b"{\"result\":3}");
        assert_eq!(
            &encode_params(&BTreeMap::from([("a", 1)])).unwrap()[..],
            b"{\"a\":1}"
        );
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        name: String,
        values: Vec<f64>,
        nested: Option<Box<Sample>>,
        map: BTreeMap<String, f32>,
    }

    fn sample(value: f64) -> Sample {
        Sample {
            name: "a".into(),
            values: vec![1.5],
            nested: Some(Box::new(Sample {
                name: "b".into(),
                values: vec![2.0, value],
                nested: None,
                map: BTreeMap::new(),
            })),
            map: BTreeMap::from([("x".to_owned(), 0.5)]),
        }
    }

    #[test]
    fn results_are_wrapped_in_an_envelope() {
        let bytes = encode_result(&sample(3.0)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["result"]["nested"]["values"][1], 3.0);
        assert_eq!(
            encode_result(&()).unwrap(),
            Bytes::from_static(b"{\"result\":null}")
        );
    }

    #[test]
    fn non_finite_floats_are_internal_errors_anywhere() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let error = encode_result(&sample(value)).unwrap_err();
            assert_eq!(error.kind(), "internal");
            assert!(error.message().contains("not a finite number"), "{error}");
        }
        let mut map = sample(1.0);
        map.map.insert("y".into(), f32::NAN);
        assert!(encode_result(&map).is_err());
        assert!(encode_result(&Some(f32::INFINITY)).is_err());
        assert!(encode_params(&[f64::NAN]).is_err());
        assert!(declared_error("E", "E", &f64::NAN).kind() == "internal");
    }

    #[test]
    fn params_decode_or_say_why_not() {
        #[derive(Deserialize, Debug)]
        struct Params {
            #[allow(dead_code)]
            id: u32,
        }
        let error = decode_params::<Params>(b"{\"id\": \"x\"}").unwrap_err();
        assert_eq!(error.code(), 400);
        assert_eq!(error.kind(), "bad_request");
        assert!(error.message().contains("invalid type"), "{error}");
        #[derive(Deserialize, Debug)]
        struct Empty {}
        decode_params::<Empty>(b"").unwrap();
        decode_params::<Empty>(b"  \n").unwrap();
    }

    #[test]
    fn replies_decode_in_one_pass() {
        let reply: Reply<Option<u32>> = serde_json::from_slice(b"{\"result\":null}").unwrap();
        assert!(matches!(reply, Reply::Result(None)));
        let reply: Reply<u32> =
            serde_json::from_slice(b"{\"x\":[1,{}],\"result\":5,\"y\":1}").unwrap();
        assert!(matches!(reply, Reply::Result(5)));
        let reply: Reply<u32> = serde_json::from_slice(br#"{"stream":"ORDERS","seq":3}"#).unwrap();
        assert!(matches!(reply, Reply::Other(keys) if keys == ["stream", "seq"]));
        let reply: Reply<u32> = serde_json::from_slice(
            br#"{"error":{"kind":"PaymentDeclined","message":"no","details":{"reason":"r"}}}"#,
        )
        .unwrap();
        let Reply::Error(error) = reply else { panic!() };
        let error = error.into_service_error(None);
        assert_eq!(error.code(), 422);
        assert_eq!(error.details().unwrap()["reason"], "r");
        let reply: Reply<u32> = serde_json::from_slice(br#"{"error":"boom"}"#).unwrap();
        let Reply::Error(error) = reply else { panic!() };
        assert_eq!(error.into_service_error(Some(503)).kind(), "busy");
    }

    #[test]
    fn error_bodies_omit_missing_details() {
        let body = encode_error(&ServiceError::internal("boom"));
        assert_eq!(
            &body[..],
            br#"{"error":{"kind":"internal","message":"boom"}}"#
        );
        let body = encode_error(&declared_error(
            "Declined",
            "Declined",
            &serde_json::json!({"reason": "r"}),
        ));
        assert_eq!(
            &body[..],
            br#"{"error":{"kind":"Declined","message":"Declined","details":{"reason":"r"}}}"#
        );
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Color {
        Red,
        Green,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    enum Shape {
        Circle(f32),
        Pair(f32, f32),
        Rect { w: f32, h: f32 },
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Floats {
        one: f32,
        #[serde(default)]
        list: Vec<f32>,
        #[serde(default)]
        map: BTreeMap<String, f32>,
        #[serde(default)]
        optional: Option<f32>,
        #[serde(default)]
        nested: Option<Box<Floats>>,
        #[serde(default)]
        lists: Vec<Vec<Option<f32>>>,
        #[serde(default)]
        shape: Option<Shape>,
        #[serde(default)]
        wide: f64,
    }

    fn bad_request(body: &str) -> ServiceError {
        let error = decode_params::<Floats>(body.as_bytes()).unwrap_err();
        assert_eq!(error.code(), 400, "{body}: {error}");
        assert_eq!(error.kind(), "bad_request", "{body}");
        error
    }

    #[test]
    fn f32_out_of_range_is_a_bad_request_anywhere() {
        for body in [
            r#"{"one": 1e39}"#,
            r#"{"one": -1e39}"#,
            r#"{"one": 3.5e38}"#,
            r#"{"one": 1, "list": [1, 1e39]}"#,
            r#"{"one": 1, "map": {"a": 1, "b": -1e300}}"#,
            r#"{"one": 1, "optional": 1e39}"#,
            r#"{"one": 1, "nested": {"one": 1e39}}"#,
            r#"{"one": 1, "nested": {"one": 1, "map": {"x": 1e39}}}"#,
            r#"{"one": 1, "lists": [[1, null], [null, 1e39]]}"#,
            r#"{"one": 1, "shape": {"Circle": 1e39}}"#,
            r#"{"one": 1, "shape": {"Pair": [1, 1e39]}}"#,
            r#"{"one": 1, "shape": {"Rect": {"w": 1, "h": 1e39}}}"#,
        ] {
            let error = bad_request(body);
            assert!(
                error.message().contains("within the range of f32"),
                "{body}: {error}"
            );
        }
        // The largest f32, written as JSON numbers that round to it, and anything in f64's range
        // for an f64 field, still decode.
        for body in [
            r#"{"one": 3.4028235e38}"#,
            r#"{"one": -3.4028235e38}"#,
            r#"{"one": 3.40282356e38}"#,
            r#"{"one": 1e-50}"#,
            r#"{"one": 18446744073709551615}"#,
            r#"{"one": -9223372036854775808}"#,
            r#"{"one": 0, "wide": 1e308}"#,
        ] {
            let floats = decode_params::<Floats>(body.as_bytes()).unwrap();
            assert!(floats.one.is_finite(), "{body}");
        }
        let floats = decode_params::<Floats>(br#"{"one": 3.40282356e38}"#).unwrap();
        assert_eq!(floats.one, f32::MAX);
        // Event payloads decode the same way.
        let error = crate::codegen::decode_event::<Floats>(br#"{"one": 1e39}"#).unwrap_err();
        assert_eq!(error.kind(), "bad_request");
    }

    #[test]
    fn other_numbers_out_of_range_are_bad_requests() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Ints {
            a: i32,
            b: u32,
            c: i64,
            d: u64,
            e: f64,
        }
        let ok = r#"{"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}"#;
        decode_params::<Ints>(ok.as_bytes()).unwrap();
        for (field, value) in [
            ("a", "2147483648"),
            ("a", "-2147483649"),
            ("a", "1.5"),
            ("b", "-1"),
            ("b", "4294967296"),
            ("c", "9223372036854775808"),
            ("c", "1e3"),
            ("d", "-1"),
            ("d", "18446744073709551616"),
            ("e", "1e309"),
            ("e", "-1e400"),
            ("e", "NaN"),
            ("e", "Infinity"),
            ("e", "\"NaN\""),
        ] {
            let body = ok.replace(&format!("\"{field}\": 1"), &format!("\"{field}\": {value}"));
            let error = decode_params::<Ints>(body.as_bytes()).unwrap_err();
            assert_eq!(error.kind(), "bad_request", "{body}");
        }
    }

    #[test]
    fn strings_with_a_form_are_bad_requests_when_malformed() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Typed {
            id: uuid::Uuid,
            data: crate::Binary,
            at: crate::Timestamp,
            color: Color,
        }
        let ok = r#"{"id": "67e55044-10b1-426f-9247-bb680e5fe0c8", "data": "AQID",
            "at": "2026-01-02T03:04:05Z", "color": "red"}"#;
        let typed = decode_params::<Typed>(ok.as_bytes()).unwrap();
        assert_eq!(typed.color, Color::Red);
        assert_eq!(&typed.data[..], &[1, 2, 3]);
        for (from, to) in [
            ("67e55044-10b1-426f-9247-bb680e5fe0c8", "67e55044"),
            (
                "67e55044-10b1-426f-9247-bb680e5fe0c8",
                "zze55044-10b1-426f-9247-bb680e5fe0c8",
            ),
            ("\"AQID\"", "\"AQI\""),
            ("\"AQID\"", "\"A*ID\""),
            ("\"AQID\"", "[1,2,3]"),
            ("2026-01-02T03:04:05Z", "9999-12-31T23:59:59-00:01"),
            ("2026-01-02T03:04:05Z", "0000-01-01T00:00:00+00:01"),
            ("2026-01-02T03:04:05Z", "2026-01-02"),
            ("\"red\"", "\"purple\""),
            ("\"red\"", "\"Red\""),
            ("\"red\"", "1"),
        ] {
            let body = ok.replace(from, to);
            assert_ne!(body, ok);
            let error = decode_params::<Typed>(body.as_bytes()).unwrap_err();
            assert_eq!(error.kind(), "bad_request", "{body}");
        }
        let body = ok.replace("2026-01-02T03:04:05Z", "9999-12-31T23:59:59-00:01");
        let error = decode_params::<Typed>(body.as_bytes()).unwrap_err();
        assert!(error.message().contains("out of range"), "{error}");
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Node {
        #[serde(default)]
        next: Option<Box<Node>>,
        #[serde(default)]
        any: Option<serde_json::Value>,
        #[serde(default)]
        list: Vec<Node>,
    }

    /// Decodes on a thread with tokio's default worker stack (2 MiB), where handlers run.
    fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn deep_nesting_is_a_bad_request_not_a_stack_overflow() {
        let depth = 100_000;
        let deep_struct = format!("{}{{}}{}", r#"{"next":"#.repeat(depth), "}".repeat(depth));
        let deep_list = format!("{}{}", r#"{"list":["#.repeat(depth), "]}".repeat(depth));
        let deep_value = format!(r#"{{"any":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        let deep_map = format!(
            r#"{{"any":{}1{}}}"#,
            r#"{"a":"#.repeat(depth),
            "}".repeat(depth)
        );
        for body in [deep_struct, deep_list, deep_value, deep_map] {
            let error = on_small_stack(move || decode_params::<Node>(body.as_bytes())).unwrap_err();
            assert_eq!(error.kind(), "bad_request");
            assert!(error.message().contains("recursion limit"), "{error}");
        }
        // Nesting just inside the limit decodes, on the same stack.
        let depth = 120;
        let body = format!("{}{{}}{}", r#"{"next":"#.repeat(depth), "}".repeat(depth));
        let node = on_small_stack(move || decode_params::<Node>(body.as_bytes())).unwrap();
        assert!(node.next.is_some());
        let body = format!("{}{{}}{}", r#"{"list":["#.repeat(60), "]}".repeat(60));
        on_small_stack(move || decode_params::<Node>(body.as_bytes())).unwrap();
        // Replies go through the same limit.
        let body = format!(
            r#"{{"result":{}{{}}{}}}"#,
            r#"{"next":"#.repeat(depth * 10),
            "}".repeat(depth * 10)
        );
        let error = on_small_stack(move || decode::<Reply<Node>>(body.as_bytes()).err()).unwrap();
        assert!(error.to_string().contains("recursion limit"), "{error}");
    }

    #[test]
    fn long_strings_and_odd_bodies_decode_or_fail_cleanly() {
        #[derive(Deserialize, Debug)]
        struct Text {
            text: String,
        }
        let long = "é".repeat(1 << 20);
        let body = format!(r#"{{"text":"{long}"}}"#);
        assert_eq!(decode_params::<Text>(body.as_bytes()).unwrap().text, long);
        for body in [
            &b"{\"text\":\"\xff\"}"[..],
            b"{\"text\":\"\\ud800\"}",
            b"{\"text\":\"a\"} {}",
            b"{\"text\":\"a\"",
            b"[]",
            b"null",
            b"\x00",
            b"{\"text\":\"a\",\"text\":\"b\"}",
        ] {
            let error = decode_params::<Text>(body).unwrap_err();
            assert_eq!(error.kind(), "bad_request", "{body:?}");
        }
    }

    #[test]
    fn replies_are_checked() {
        let error = decode::<Reply<f32>>(br#"{"result": 1e39}"#).err().unwrap();
        assert!(error.to_string().contains("range of f32"), "{error}");
        let error =
            decode::<Reply<Vec<crate::Timestamp>>>(br#"{"result": ["9999-12-31T23:59:59-00:01"]}"#)
                .err()
                .unwrap();
        assert!(error.to_string().contains("out of range"), "{error}");
        let reply = decode::<Reply<Option<f32>>>(br#"{"result": 1.5}"#).unwrap();
        assert!(matches!(reply, Reply::Result(Some(v)) if v == 1.5));
        // An error reply's details are not decoded into the result type.
        let reply =
            decode::<Reply<f32>>(br#"{"error": {"kind": "E", "details": {"x": 1e39}}}"#).unwrap();
        assert!(matches!(reply, Reply::Error(_)));
    }

    #[test]
    fn details_are_checked() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct Details {
            limit: f32,
            at: Option<crate::Timestamp>,
        }
        let error =
            ServiceError::new("E", 422, "m").with_details(serde_json::json!({"limit": 1e39}));
        assert!(decode_details::<Details>(&error).is_err());
        let error = ServiceError::new("E", 422, "m")
            .with_details(serde_json::json!({"limit": 1, "at": "9999-12-31T23:59:59-00:01"}));
        assert!(decode_details::<Details>(&error).is_err());
        let error =
            ServiceError::new("E", 422, "m").with_details(serde_json::json!({"limit": 2.5}));
        assert_eq!(decode_details::<Details>(&error).unwrap().limit, 2.5);
    }

    #[test]
    fn hostile_error_replies_decode_to_errors() {
        for (body, code) in [
            (&br#"{"error": {"kind": 5, "message": []}}"#[..], None),
            (br#"{"error": {"details": [1, {"a": null}]}}"#, Some(0)),
            (br#"{"error": null}"#, Some(u16::MAX)),
            (br#"{"error": 1e999}"#, None),
            (br#"{"error": {"kind": "", "message": ""}}"#, None),
        ] {
            match decode::<Reply<u32>>(body) {
                Ok(Reply::Error(error)) => {
                    let error = error.into_service_error(code);
                    assert!(error.code() == code.unwrap_or(error.code()));
                }
                Ok(_) => panic!("{body:?}"),
                Err(_) => {}
            }
        }
        let details = format!(
            r#"{{"error": {{"kind": "k", "details": "{}"}}}}"#,
            "x".repeat(1 << 20)
        );
        let Ok(Reply::Error(error)) = decode::<Reply<u32>>(details.as_bytes()) else {
            panic!()
        };
        assert_eq!(error.into_service_error(None).code(), 422);
    }
}
