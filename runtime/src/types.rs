//! Value types for schema types whose JSON form needs care: `bytes` (base64) and `timestamp`
//! (RFC 3339, UTC). They are newtypes rather than `#[serde(with)]` attributes so they work the
//! same inside `list<...>`, `map<...>` and `optional<...>`.

use std::fmt;
use std::ops::{Deref, DerefMut};

use base64::Engine as _;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The schema type `bytes`: raw bytes, standard base64 (with padding) in JSON.
///
/// ```
/// let b = natsgen::Binary::from(vec![1u8, 2, 3]);
/// assert_eq!(serde_json::to_string(&b).unwrap(), "\"AQID\"");
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Binary(pub Vec<u8>);

impl Binary {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Binary(bytes.into())
    }

    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Binary({} bytes)", self.0.len())
    }
}

impl Deref for Binary {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.0
    }
}

impl DerefMut for Binary {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.0
    }
}

impl From<Vec<u8>> for Binary {
    fn from(v: Vec<u8>) -> Self {
        Binary(v)
    }
}

impl From<&[u8]> for Binary {
    fn from(v: &[u8]) -> Self {
        Binary(v.to_vec())
    }
}

impl From<Binary> for Vec<u8> {
    fn from(b: Binary) -> Self {
        b.0
    }
}

impl AsRef<[u8]> for Binary {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Binary {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Binary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Binary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Binary, E> {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .map(Binary)
                    .map_err(|e| E::custom(format_args!("invalid base64: {e}")))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The schema type `timestamp`: a point in time, an RFC 3339 string in UTC in JSON
/// (`"2026-01-02T03:04:05.123Z"`). Input in any offset is accepted and converted to UTC.
///
/// ```
/// let t = natsgen::Timestamp::now();
/// let json = serde_json::to_string(&t).unwrap();
/// assert!(json.ends_with("Z\""));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(OffsetDateTime::now_utc())
    }

    /// The time as a `time::OffsetDateTime` in UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    /// Seconds since the Unix epoch, or `None` when out of range.
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Timestamp)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The RFC 3339 form.
    pub fn to_rfc3339(self) -> String {
        self.0
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.to_string())
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t.to_offset(UtcOffset::UTC))
    }
}

impl From<std::time::SystemTime> for Timestamp {
    fn from(t: std::time::SystemTime) -> Self {
        Timestamp(OffsetDateTime::from(t))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.0.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                OffsetDateTime::parse(v, &Rfc3339)
                    .map(Timestamp::from)
                    .map_err(|e| E::custom(format_args!("invalid RFC 3339 timestamp: {e}")))
            }
        }
        deserializer.deserialize_str(V)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trips_as_base64() {
        let b = Binary::from(b"hello".to_vec());
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"aGVsbG8=\"");
        assert_eq!(serde_json::from_str::<Binary>(&json).unwrap(), b);
        assert!(serde_json::from_str::<Binary>("\"***\"").is_err());
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        let t: Timestamp = serde_json::from_str("\"2026-01-02T05:04:05+02:00\"").unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2026-01-02T03:04:05Z\""
        );
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
    }
}
