//! The NATS headers natsgen sets and reads, spelled exactly as on the wire.
//!
//! | header | set by | value |
//! |---|---|---|
//! | [`CALL_ID`] `Natsgen-Call-Id` | caller | the id of this call (a UUIDv7 string); a request without it gets a fresh one |
//! | [`CALLER_CHAIN`] `Natsgen-Caller-Chain` | caller | comma-separated call ids of the calls that led to this one, outermost first, at most [`MAX_CALLER_CHAIN`] (the oldest are dropped) |
//! | [`DEADLINE_MS`] `Natsgen-Deadline-Ms` | caller | milliseconds the caller still waits, counted from when the request arrives (relative, so clocks need not agree) |
//! | [`TRACEPARENT`] `traceparent` | caller | W3C trace context `00-<trace id>-<parent span id>-<flags>`; a service continues the trace (same trace id, new span id) and starts one when it is absent. One the caller sets itself is sent as it is |
//! | [`SERVICE_ERROR_CODE`] `Nats-Service-Error-Code` | service | on error replies: the numeric code (400, 413, 422, 500, 503, 504) |
//! | [`SERVICE_ERROR`] `Nats-Service-Error` | service | on error replies: the message (one line, shortened to [`MAX_ERROR_HEADER_LEN`] bytes; the body has it whole) |
//!
//! With the `otel` feature, OpenTelemetry's propagator writes `traceparent` (and `tracestate`)
//! instead; see the `otel` module.
//!
//! Names are matched exactly (NATS headers keep their case). A value that does not parse is
//! ignored with a `tracing` warning; it never fails a call.
//!
//! A request without [`DEADLINE_MS`] (e.g. from `nats req`) gets the method's schema timeout as
//! its deadline, so no handler runs unbounded.

use async_nats::header::HeaderValue;
use async_nats::{HeaderMap, HeaderName};

/// The id of this call.
pub const CALL_ID: &str = "Natsgen-Call-Id";
/// The ids of the calls that led to this one, comma-separated, outermost first.
pub const CALLER_CHAIN: &str = "Natsgen-Caller-Chain";
/// Milliseconds the caller still waits for the reply, relative to the request's arrival.
pub const DEADLINE_MS: &str = "Natsgen-Deadline-Ms";
/// W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// NATS micro error code header (numeric) of an error reply.
pub const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
/// NATS micro error message header of an error reply.
pub const SERVICE_ERROR: &str = "Nats-Service-Error";

/// The most call ids [`CALLER_CHAIN`] carries; older ones are dropped (like Nameko's
/// `parent_calls_tracked`).
pub const MAX_CALLER_CHAIN: usize = 16;
/// The longest [`SERVICE_ERROR`] header value sent; longer messages are cut (at a character
/// boundary) in the header and sent whole in the body.
pub const MAX_ERROR_HEADER_LEN: usize = 512;
/// The longest call id accepted from a request.
pub(crate) const MAX_CALL_ID_LEN: usize = 128;

pub(crate) const CALL_ID_NAME: HeaderName = HeaderName::from_static(CALL_ID);
pub(crate) const CALLER_CHAIN_NAME: HeaderName = HeaderName::from_static(CALLER_CHAIN);
pub(crate) const DEADLINE_MS_NAME: HeaderName = HeaderName::from_static(DEADLINE_MS);
pub(crate) const TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
pub(crate) const SERVICE_ERROR_CODE_NAME: HeaderName = HeaderName::from_static(SERVICE_ERROR_CODE);
pub(crate) const SERVICE_ERROR_NAME: HeaderName = HeaderName::from_static(SERVICE_ERROR);

/// A W3C `traceparent`: trace id, span (parent) id and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

impl TraceParent {
    /// A new trace (random trace and span ids, not sampled).
    pub fn new_root() -> Self {
        TraceParent {
            trace_id: crate::ids::new_trace_id(),
            span_id: crate::ids::new_span_id(),
            flags: 0,
        }
    }

    /// A new trace the caller records (random trace and span ids, the sampled flag set).
    pub(crate) fn new_sampled_root() -> Self {
        TraceParent {
            flags: 1,
            ..Self::new_root()
        }
    }

    /// A trace context from its parts.
    #[cfg(feature = "otel")]
    pub(crate) fn from_parts(trace_id: u128, span_id: u64, flags: u8) -> Self {
        TraceParent {
            trace_id,
            span_id,
            flags,
        }
    }

    /// The next span of the same trace: same trace id and flags, new span id.
    pub fn child(&self) -> Self {
        TraceParent {
            span_id: crate::ids::new_span_id(),
            ..*self
        }
    }

    /// The 128-bit trace id.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The 64-bit span id.
    pub fn span_id(&self) -> u64 {
        self.span_id
    }

    /// The trace flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Parses a `traceparent` header value; `None` when it is not one.
    pub fn parse(value: &str) -> Option<Self> {
        let bytes = value.as_bytes();
        // version(2) - trace(32) - span(16) - flags(2); later versions may append fields.
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return None;
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let version = hex(&bytes[0..2])?;
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return None;
        }
        let trace_id = (u128::from(hex(&bytes[3..19])?) << 64) | u128::from(hex(&bytes[19..35])?);
        let span_id = hex(&bytes[36..52])?;
        let flags = hex(&bytes[53..55])? as u8;
        if trace_id == 0 || span_id == 0 {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The header value, written without the formatting machinery (this runs on every call).
    pub(crate) fn to_header_value(self) -> HeaderValue {
        let mut text = [0u8; 55];
        text[..3].copy_from_slice(b"00-");
        write_hex(&mut text[3..35], self.trace_id);
        text[35] = b'-';
        write_hex(&mut text[36..52], u128::from(self.span_id));
        text[52] = b'-';
        write_hex(&mut text[53..55], u128::from(self.flags));
        // Only ASCII hex digits and dashes were written.
        HeaderValue::from(String::from_utf8_lossy(&text).into_owned())
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

/// The value of up to 16 hex digits (either case); `None` for anything else.
fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut value = 0u64;
    for &digit in digits {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        value = (value << 4) | u64::from(nibble);
    }
    Some(value)
}

/// Writes the low `out.len()` nibbles of `value` as lower-case hex, most significant first.
fn write_hex(out: &mut [u8], mut value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Whether `name` is one of the headers natsgen sets on requests and a caller's own value of
/// which natsgen leaves out (call id, caller chain, deadline). A caller's `traceparent` is not
/// among them: it is sent instead of natsgen's.
pub(crate) fn is_request_header(name: &str) -> bool {
    [CALL_ID, CALLER_CHAIN, DEADLINE_MS].contains(&name)
}

/// Whether a caller's own headers set a `traceparent` (any case: a second one in another case
/// would make two).
pub(crate) fn sets_trace_parent(user_headers: &[(String, String)]) -> bool {
    user_headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(TRACEPARENT))
}

/// Whether a call id from the wire is acceptable: short, printable ASCII, no commas (they
/// separate the chain) and no spaces.
pub(crate) fn is_valid_call_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CALL_ID_LEN
        && id.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// A header value from text that may contain line breaks (which would panic async-nats and
/// break the protocol framing): they become spaces, and the value is cut to `max` bytes.
pub(crate) fn sanitized_value(text: &str, max: usize) -> HeaderValue {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = &text[..end];
    match cut.parse::<HeaderValue>() {
        Ok(value) => value,
        Err(_) => cut
            .replace(['\r', '\n'], " ")
            .parse::<HeaderValue>()
            .unwrap_or_default(),
    }
}

/// The first value of a header as text.
pub(crate) fn get<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name.clone()).map(HeaderValue::as_str)
}

/// Sets the caller chain and a continued `traceparent` of the call `ctx` belongs to, for a
/// message sent on its behalf (a nested async call or an event); `trace: false` when the caller
/// set a `traceparent` of its own.
pub(crate) fn propagate(headers: &mut HeaderMap, ctx: &crate::Context, trace: bool) {
    headers.insert(CALLER_CHAIN_NAME, HeaderValue::from(ctx.outgoing_chain()));
    if trace {
        headers.insert(
            TRACEPARENT_NAME,
            ctx.trace_parent().child().to_header_value(),
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(text).unwrap();
        assert_eq!(parsed.to_string(), text);
        assert_eq!(parsed.to_header_value().as_str(), text);
        assert_eq!(parsed.flags(), 1);
        let child = parsed.child();
        assert_eq!(child.trace_id(), parsed.trace_id());
        assert_ne!(child.span_id(), parsed.span_id());
    }

    #[test]
    fn traceparent_rejects_garbage() {
        for text in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::parse(text).is_none(), "{text:?}");
        }
        assert!(TraceParent::parse(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"
        )
        .is_some());
    }

    #[test]
    fn sanitized_values_never_break_lines() {
        let value = sanitized_value("line one\r\nline two", 512);
        assert_eq!(value.as_str(), "line one  line two");
        let value = sanitized_value("ééé", 3);
        assert_eq!(value.as_str(), "é");
    }
}
