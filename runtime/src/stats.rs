//! Per-endpoint statistics of a served service, as `$SRV.STATS` reports them
//! (see [`crate::discovery`]).
//!
//! Every handled message costs three relaxed atomic additions on its own endpoint's counters;
//! there is no lock shared by calls. Only an error also takes the endpoint's own small mutex, to
//! remember its text as `last_error`.
//!
//! What counts, per endpoint:
//!
//! - `num_requests`: every message answered or processed — a success, an error reply of any code
//!   (4xx and 5xx, `busy` included), and for async calls and events every attempt. A request
//!   without a reply subject is ignored and not counted.
//! - `num_errors`: those that ended in an error (an error reply, a failed attempt, or a success
//!   reply that could not be sent, counted as `internal`).
//! - `last_error`: the last error as `"<code>:<kind>: <message>"` (e.g.
//!   `"422:PaymentDeclined: limit"`), at most [`MAX_LAST_ERROR_LEN`] bytes; empty when there was
//!   none. An `internal` error is `"500:internal"` alone: its message stays in the service's log. The `<code>:` prefix is what async-nats' and the Go client's micro parsers expect.
//! - `processing_time`: the sum of the times from receiving a message to answering it (queueing
//!   for a free handler slot included), in nanoseconds; `average_processing_time` is that sum
//!   divided by `num_requests`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::service::ServiceDescriptor;
use crate::ServiceError;

/// The longest `last_error` kept, in bytes (longer texts are cut at a character boundary).
pub const MAX_LAST_ERROR_LEN: usize = 512;

/// The statistics of one served service instance: when it started and one [`EndpointStats`] per
/// endpoint, indexed like [`ServiceDescriptor::endpoints`].
///
/// ```text
/// // In a handling path (`index` is the endpoint's index in the descriptor):
/// let started = tokio::time::Instant::now();
/// let result = run(..).await;
/// stats.record(index, started.elapsed(), result.as_ref().err());
/// ```
#[derive(Debug)]
pub struct ServiceStats {
    started: String,
    endpoints: Box<[EndpointStats]>,
}

impl ServiceStats {
    /// Fresh statistics for every endpoint of `descriptor`, started now.
    pub fn new(descriptor: &ServiceDescriptor) -> Self {
        Self::with_endpoints(descriptor.endpoints.len())
    }

    /// Fresh statistics for `count` endpoints, started now.
    pub fn with_endpoints(count: usize) -> Self {
        // Formatting a current UTC time as RFC 3339 does not fail; the epoch is a harmless
        // fallback should it ever.
        let started = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned());
        ServiceStats {
            started,
            endpoints: (0..count).map(|_| EndpointStats::default()).collect(),
        }
    }

    /// When the service started, as an RFC 3339 UTC time (e.g. `2025-01-31T12:00:00.123456789Z`).
    pub fn started(&self) -> &str {
        &self.started
    }

    /// The statistics of the endpoint at `index` (its index in the descriptor), if there is one.
    pub fn endpoint(&self, index: usize) -> Option<&EndpointStats> {
        self.endpoints.get(index)
    }

    /// Records one handled message of endpoint `index`; see [`EndpointStats::record`]. An index
    /// the service does not have is ignored.
    pub fn record(&self, index: usize, elapsed: Duration, error: Option<&ServiceError>) {
        if let Some(endpoint) = self.endpoints.get(index) {
            endpoint.record(elapsed, error);
        }
    }
}

/// The counters of one endpoint. Cheap to update from many tasks at once.
#[derive(Debug, Default)]
pub struct EndpointStats {
    requests: AtomicU64,
    errors: AtomicU64,
    processing_nanos: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl EndpointStats {
    /// Records one handled message: it took `elapsed` from arrival to answer, and failed with
    /// `error` (`None` for a success).
    pub fn record(&self, elapsed: Duration, error: Option<&ServiceError>) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.processing_nanos.fetch_add(nanos, Ordering::Relaxed);
        if let Some(error) = error {
            // An internal error's text may hold anything (a panic message, a path, a
            // credential in an error string): `$SRV.STATS` answers anyone, so it gets the kind.
            let message = if error.kind() == ServiceError::INTERNAL {
                ""
            } else {
                error.message()
            };
            self.record_error_text(error.code(), error.kind(), message);
        }
    }

    fn record_error_text(&self, code: u16, kind: &str, message: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut text = if message.is_empty() {
            format!("{code}:{kind}")
        } else {
            format!("{code}:{kind}: {message}")
        };
        if text.len() > MAX_LAST_ERROR_LEN {
            let mut end = MAX_LAST_ERROR_LEN;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        // A poisoned lock only means another thread panicked while holding it; the string it
        // guards is still whole.
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(text);
    }

    /// The current values. The counters are read one by one, so under load the snapshot may mix
    /// values from a few nanoseconds apart.
    pub fn snapshot(&self) -> EndpointStatsSnapshot {
        let num_requests = self.requests.load(Ordering::Relaxed);
        let num_errors = self.errors.load(Ordering::Relaxed);
        let processing_time = self.processing_nanos.load(Ordering::Relaxed);
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_default();
        EndpointStatsSnapshot {
            num_requests,
            num_errors,
            last_error,
            processing_time,
            average_processing_time: processing_time
                .checked_div(num_requests)
                .unwrap_or_default(),
        }
    }
}

/// The statistics of one endpoint at one moment, in the units `$SRV.STATS` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStatsSnapshot {
    /// Messages handled.
    pub num_requests: u64,
    /// Messages that ended in an error.
    pub num_errors: u64,
    /// The last error (`"<code>:<kind>: <message>"`), empty when there was none.
    pub last_error: String,
    /// Total processing time, in nanoseconds.
    pub processing_time: u64,
    /// `processing_time / num_requests`, in nanoseconds (0 before the first message).
    pub average_processing_time: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_errors_and_time() {
        let stats = ServiceStats::with_endpoints(2);
        stats.record(0, Duration::from_micros(10), None);
        stats.record(
            0,
            Duration::from_micros(30),
            Some(&ServiceError::bad_request("no")),
        );
        stats.record(
            0,
            Duration::from_micros(20),
            Some(&ServiceError::new("PaymentDeclined", 422, "limit")),
        );
        stats.record(7, Duration::from_secs(1), None); // no such endpoint: ignored
        let first = stats.endpoint(0).unwrap().snapshot();
        assert_eq!(first.num_requests, 3);
        assert_eq!(first.num_errors, 2);
        assert_eq!(first.processing_time, 60_000);
        assert_eq!(first.average_processing_time, 20_000);
        assert_eq!(first.last_error, "422:PaymentDeclined: limit");
        assert_eq!(
            stats.endpoint(1).unwrap().snapshot(),
            EndpointStatsSnapshot::default()
        );
        assert!(stats.endpoint(2).is_none());
    }

    #[test]
    fn long_errors_are_cut_at_a_char_boundary() {
        let stats = EndpointStats::default();
        stats.record(
            Duration::ZERO,
            Some(&ServiceError::new("Declined", 422, "é".repeat(1000))),
        );
        let last = stats.snapshot().last_error;
        assert!(last.len() <= MAX_LAST_ERROR_LEN);
        assert!(last.starts_with("422:Declined: é"));
        // An internal error's text is not reported: `$SRV.STATS` answers anyone.
        stats.record(
            Duration::ZERO,
            Some(&ServiceError::internal("password=hunter2")),
        );
        assert_eq!(stats.snapshot().last_error, "500:internal");
        stats.record(Duration::ZERO, Some(&ServiceError::busy("")));
        assert_eq!(stats.snapshot().last_error, "503:busy");
    }

    #[test]
    fn started_is_rfc3339() {
        let stats = ServiceStats::with_endpoints(0);
        assert!(OffsetDateTime::parse(stats.started(), &Rfc3339).is_ok());
    }
}
