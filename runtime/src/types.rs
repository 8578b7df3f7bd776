//! Value types for schema types whose JSON form needs care: `bytes` (base64) and `timestamp`
//! (RFC 3339, UTC). They are newtypes rather than `#[serde(with)]` attributes so they work the
//! same inside `list<...>`, `map<...>` and `optional<...>`.

use std::fmt;
use std::ops::{Add, AddAssign, Deref, DerefMut, Sub, SubAssign};

use base64::Engine as _;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
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
/// A `Timestamp` always lies between [`Timestamp::MIN`] and [`Timestamp::MAX`] (the years 0000 to
/// 9999 in UTC, what RFC 3339 can write), so every one can be sent. Input outside that range, such
/// as `"9999-12-31T23:59:59-00:01"` (a minute into the year 10000 in UTC), does not decode: a
/// request carrying it is a `bad_request`.
///
/// ```
/// let t = natsgen::Timestamp::now();
/// let json = serde_json::to_string(&t).unwrap();
/// assert!(json.ends_with("Z\""));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The earliest timestamp, `0000-01-01T00:00:00Z`.
    pub const MIN: Timestamp = Timestamp(datetime!(0000-01-01 00:00:00 UTC));

    /// The latest timestamp, `9999-12-31T23:59:59.999999999Z`.
    pub const MAX: Timestamp = Timestamp(datetime!(9999-12-31 23:59:59.999_999_999 UTC));

    /// The current time.
    pub fn now() -> Self {
        Timestamp::saturating(OffsetDateTime::now_utc())
    }

    /// The time, converted to UTC, or `None` when that falls outside [`Timestamp::MIN`] ..=
    /// [`Timestamp::MAX`]. (`From<OffsetDateTime>` saturates instead.)
    pub fn from_offset_date_time(t: OffsetDateTime) -> Option<Self> {
        let utc = t.checked_to_offset(UtcOffset::UTC)?;
        (Self::MIN.0..=Self::MAX.0)
            .contains(&utc)
            .then_some(Timestamp(utc))
    }

    /// The time as a `time::OffsetDateTime` in UTC.
    pub fn to_offset_date_time(self) -> OffsetDateTime {
        self.0
    }

    /// Seconds since the Unix epoch, or `None` when out of range (see [`Timestamp::MIN`] and
    /// [`Timestamp::MAX`]).
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .and_then(Self::from_offset_date_time)
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

    /// The time in UTC, clamped to [`Timestamp::MIN`] ..= [`Timestamp::MAX`].
    fn saturating(t: OffsetDateTime) -> Self {
        match t.checked_to_offset(UtcOffset::UTC) {
            Some(utc) => Timestamp(utc.clamp(Self::MIN.0, Self::MAX.0)),
            // Only a value at the very edge of what `time` holds overflows on the way to UTC.
            None if t.year() > 0 => Self::MAX,
            None => Self::MIN,
        }
    }
}

impl Timestamp {
    /// Milliseconds since the Unix epoch, or `None` when out of range.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        Self::from_unix_nanos(i128::from(millis) * 1_000_000)
    }

    /// Milliseconds since the Unix epoch (rounded towards the past).
    pub fn unix_millis(self) -> i64 {
        // Every timestamp lies within ±2^48 ms of the epoch.
        i64::try_from(self.unix_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }

    /// Nanoseconds since the Unix epoch, or `None` when out of range.
    pub fn from_unix_nanos(nanos: i128) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(Self::from_offset_date_time)
    }

    /// Nanoseconds since the Unix epoch.
    pub fn unix_nanos(self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// The time as a `SystemTime`, or `None` where the platform's `SystemTime` cannot hold it.
    pub fn to_system_time(self) -> Option<std::time::SystemTime> {
        let nanos = self.unix_nanos();
        let magnitude = std::time::Duration::new(
            u64::try_from((nanos / 1_000_000_000).unsigned_abs()).ok()?,
            u32::try_from((nanos % 1_000_000_000).unsigned_abs()).ok()?,
        );
        if nanos >= 0 {
            std::time::UNIX_EPOCH.checked_add(magnitude)
        } else {
            std::time::UNIX_EPOCH.checked_sub(magnitude)
        }
    }

    /// `self + duration`, or `None` past [`Timestamp::MAX`].
    pub fn checked_add(self, duration: std::time::Duration) -> Option<Self> {
        let duration = time::Duration::try_from(duration).ok()?;
        self.0
            .checked_add(duration)
            .and_then(Self::from_offset_date_time)
    }

    /// `self - duration`, or `None` before [`Timestamp::MIN`].
    pub fn checked_sub(self, duration: std::time::Duration) -> Option<Self> {
        let duration = time::Duration::try_from(duration).ok()?;
        self.0
            .checked_sub(duration)
            .and_then(Self::from_offset_date_time)
    }

    /// `self + duration`, at most [`Timestamp::MAX`] (what `+` does).
    pub fn saturating_add(self, duration: std::time::Duration) -> Self {
        self.checked_add(duration).unwrap_or(Self::MAX)
    }

    /// `self - duration`, at least [`Timestamp::MIN`] (what `-` does).
    pub fn saturating_sub(self, duration: std::time::Duration) -> Self {
        self.checked_sub(duration).unwrap_or(Self::MIN)
    }

    /// How long after `earlier` this is, or `None` when `earlier` is later.
    /// (`self - earlier` gives the signed difference as a `time::Duration`.)
    pub fn duration_since(self, earlier: Timestamp) -> Option<std::time::Duration> {
        std::time::Duration::try_from(self.0 - earlier.0).ok()
    }

    /// How long ago this was; zero when it lies in the future.
    pub fn elapsed(self) -> std::time::Duration {
        Timestamp::now().duration_since(self).unwrap_or_default()
    }
}

/// Saturates at [`Timestamp::MAX`]; [`Timestamp::checked_add`] says `None` instead.
impl Add<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, duration: std::time::Duration) -> Timestamp {
        self.saturating_add(duration)
    }
}

/// Saturates at [`Timestamp::MIN`]; [`Timestamp::checked_sub`] says `None` instead.
impl Sub<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, duration: std::time::Duration) -> Timestamp {
        self.saturating_sub(duration)
    }
}

impl AddAssign<std::time::Duration> for Timestamp {
    fn add_assign(&mut self, duration: std::time::Duration) {
        *self = *self + duration;
    }
}

impl SubAssign<std::time::Duration> for Timestamp {
    fn sub_assign(&mut self, duration: std::time::Duration) {
        *self = *self - duration;
    }
}

/// The signed time between two timestamps (never overflows: they lie within 10,000 years).
impl Sub for Timestamp {
    type Output = time::Duration;
    fn sub(self, earlier: Timestamp) -> time::Duration {
        self.0 - earlier.0
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(t: Timestamp) -> Self {
        t.0
    }
}

/// A value that is not one of an enum's declared strings: what `FromStr` of a generated enum
/// returns.
///
/// ```
/// let error = natsgen::ParseEnumError::new("OrderStatus", "shipped", &["created", "paid"]);
/// assert_eq!(
///     error.to_string(),
///     "\"shipped\" is not a OrderStatus: expected one of created, paid"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseEnumError {
    type_name: &'static str,
    value: String,
    expected: &'static [&'static str],
}

impl ParseEnumError {
    /// The error for `value`, which is none of `expected` (the wire strings of `type_name`).
    pub fn new(type_name: &'static str, value: &str, expected: &'static [&'static str]) -> Self {
        ParseEnumError {
            type_name,
            value: value.to_string(),
            expected,
        }
    }

    /// The string that did not parse.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ParseEnumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a {}: expected one of {}",
            self.value,
            self.type_name,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for ParseEnumError {}

/// Converts to UTC. A time outside [`Timestamp::MIN`] ..= [`Timestamp::MAX`] saturates to the
/// nearer bound (this conversion never panics); [`Timestamp::from_offset_date_time`] is the checked
/// form.
impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp::saturating(t)
    }
}

/// A time outside [`Timestamp::MIN`] ..= [`Timestamp::MAX`] saturates to the nearer bound (this
/// conversion never panics).
impl From<std::time::SystemTime> for Timestamp {
    fn from(t: std::time::SystemTime) -> Self {
        // Any `Duration` fits in an i128 of nanoseconds (at most 2^64 seconds).
        let nanos = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => i128::try_from(before.duration().as_nanos())
                .map(|nanos| -nanos)
                .unwrap_or(i128::MIN),
        };
        match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => Timestamp::saturating(t),
            Err(_) if nanos > 0 => Timestamp::MAX,
            Err(_) => Timestamp::MIN,
        }
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
                let t = OffsetDateTime::parse(v, &Rfc3339)
                    .map_err(|e| E::custom(format_args!("invalid RFC 3339 timestamp: {e}")))?;
                Timestamp::from_offset_date_time(t).ok_or_else(|| {
                    E::custom(format_args!(
                        "timestamp {v:?} is out of range: in UTC it must lie between \
                         0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z"
                    ))
                })
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

    #[test]
    fn timestamps_outside_rfc3339_in_utc_do_not_decode() {
        for text in [
            "9999-12-31T23:59:59-00:01",
            "9999-12-31T23:59:59-23:59",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00+23:59",
        ] {
            let error = serde_json::from_str::<Timestamp>(&format!("\"{text}\"")).unwrap_err();
            assert!(
                error.to_string().contains("out of range"),
                "{text}: {error}"
            );
        }
        for (text, utc) in [
            ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"),
            (
                "9999-12-31T23:59:59.999999999Z",
                "9999-12-31T23:59:59.999999999Z",
            ),
            ("9999-12-31T23:59:59+00:01", "9999-12-31T23:58:59Z"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
            ("0000-01-01T00:00:00-00:01", "0000-01-01T00:01:00Z"),
        ] {
            let t: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(t.to_rfc3339(), utc);
            // Every timestamp that decodes encodes again.
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{utc}\""));
        }
        for text in [
            "",
            "9999-12-31T23:59:60-00:01",
            "10000-01-01T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00+99:00",
        ] {
            assert!(serde_json::from_str::<Timestamp>(&format!("\"{text}\"")).is_err());
        }
    }

    #[test]
    fn conversions_saturate_or_say_none() {
        use time::macros::{datetime, offset};
        let past_max = datetime!(9999-12-31 23:59:59).assume_offset(offset!(-00:01));
        assert_eq!(Timestamp::from_offset_date_time(past_max), None);
        assert_eq!(Timestamp::from(past_max), Timestamp::MAX);
        let before_min = datetime!(0000-01-01 00:00).assume_offset(offset!(+00:01));
        assert_eq!(Timestamp::from_offset_date_time(before_min), None);
        assert_eq!(Timestamp::from(before_min), Timestamp::MIN);
        // At the edges of what `time` holds, the conversion to UTC itself overflows.
        let edge = OffsetDateTime::new_in_offset(time::Date::MAX, time::Time::MAX, offset!(-23:59));
        assert!(edge.checked_to_offset(UtcOffset::UTC).is_none());
        assert_eq!(Timestamp::from(edge), Timestamp::MAX);
        let edge =
            OffsetDateTime::new_in_offset(time::Date::MIN, time::Time::MIDNIGHT, offset!(+23:59));
        assert!(edge.checked_to_offset(UtcOffset::UTC).is_none());
        assert_eq!(Timestamp::from(edge), Timestamp::MIN);
        let inside = datetime!(2026-01-02 05:04:05 +02:00);
        assert_eq!(
            Timestamp::from_offset_date_time(inside)
                .unwrap()
                .to_rfc3339(),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(Timestamp::from(inside).to_rfc3339(), "2026-01-02T03:04:05Z");

        let far = std::time::Duration::from_secs(u64::MAX);
        let future = std::time::UNIX_EPOCH.checked_add(far / 4);
        if let Some(future) = future {
            assert_eq!(Timestamp::from(future), Timestamp::MAX);
        }
        if let Some(past) = std::time::UNIX_EPOCH.checked_sub(far / 4) {
            assert_eq!(Timestamp::from(past), Timestamp::MIN);
        }
        let now = Timestamp::from(std::time::SystemTime::now());
        assert!(now > Timestamp::MIN && now < Timestamp::MAX);

        assert_eq!(
            Timestamp::from_unix_seconds(0).unwrap().to_rfc3339(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_seconds(Timestamp::MAX.unix_seconds() + 1),
            None
        );
        assert_eq!(
            Timestamp::from_unix_seconds(Timestamp::MIN.unix_seconds() - 1),
            None
        );
        assert_eq!(Timestamp::from_unix_seconds(i64::MAX), None);
        assert_eq!(Timestamp::from_unix_seconds(i64::MIN), None);
        assert_eq!(
            serde_json::to_string(&Timestamp::MIN).unwrap(),
            "\"0000-01-01T00:00:00Z\""
        );
        assert_eq!(
            serde_json::to_string(&Timestamp::MAX).unwrap(),
            "\"9999-12-31T23:59:59.999999999Z\""
        );
    }

    #[test]
    fn arithmetic_keeps_the_range() {
        use std::time::Duration;
        let t = Timestamp::from_unix_seconds(1_000).unwrap();
        assert_eq!((t + Duration::from_millis(1_500)).unix_millis(), 1_001_500);
        assert_eq!((t - Duration::from_secs(2_000)).unix_seconds(), -1_000);
        let mut u = t;
        u += Duration::from_secs(5);
        u -= Duration::from_secs(2);
        assert_eq!(u.unix_seconds(), 1_003);
        assert_eq!(u - t, time::Duration::seconds(3));
        assert_eq!(t - u, time::Duration::seconds(-3));
        assert_eq!(u.duration_since(t), Some(Duration::from_secs(3)));
        assert_eq!(t.duration_since(u), None);
        assert_eq!(Timestamp::MAX.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Timestamp::MIN.checked_sub(Duration::from_nanos(1)), None);
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::MIN - Duration::MAX, Timestamp::MIN);
        assert_eq!(t.checked_add(Duration::MAX), None);
        assert_eq!(
            Timestamp::MAX - Timestamp::MIN,
            Timestamp::MAX.0 - Timestamp::MIN.0
        );
        assert!(Timestamp::now().elapsed() < Duration::from_secs(60));
        assert_eq!(
            (Timestamp::now() + Duration::from_secs(60)).elapsed(),
            Duration::ZERO
        );
    }

    #[test]
    fn unix_and_system_time_conversions_round_trip() {
        let t = Timestamp::from_unix_millis(-1_500).unwrap();
        assert_eq!(t.to_rfc3339(), "1969-12-31T23:59:58.5Z");
        assert_eq!(t.unix_millis(), -1_500);
        assert_eq!(t.unix_nanos(), -1_500_000_000);
        assert_eq!(Timestamp::from_unix_nanos(t.unix_nanos()), Some(t));
        assert_eq!(Timestamp::from_unix_millis(i64::MAX), None);
        assert_eq!(
            Timestamp::from_unix_millis(Timestamp::MAX.unix_millis() + 1),
            None
        );
        assert_eq!(
            Timestamp::from_unix_millis(Timestamp::MIN.unix_millis()),
            Some(Timestamp::MIN)
        );
        assert_eq!(Timestamp::from(t.to_system_time().unwrap()), t);
        let now = Timestamp::now();
        assert_eq!(Timestamp::from(now.to_system_time().unwrap()), now);
        let odt: OffsetDateTime = now.into();
        assert_eq!(Timestamp::from_offset_date_time(odt), Some(now));
    }

    #[test]
    fn parse_enum_error_names_the_choices() {
        let e = ParseEnumError::new("Color", "mauve", &["red", "green"]);
        assert_eq!(e.value(), "mauve");
        assert_eq!(
            e.to_string(),
            "\"mauve\" is not a Color: expected one of red, green"
        );
    }
}
