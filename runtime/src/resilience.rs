//! Client resilience: retries ([`CallRetry`]), client defaults ([`ClientOptions`]) and the
//! circuit breaker per target service ([`CircuitBreakerConfig`], [`CircuitState`]).
//!
//! # Retries (opt-in)
//!
//! A call retries only when asked to: per call (`client.method(..).retry(CallRetry::new())` or
//! [`CallOptions::retry`](crate::CallOptions::retry)), or by default for the clients of a
//! connection ([`ClientOptions`] through [`Connection::with_client_options`] or
//! [`ConnectOptions::client_options`]), for every service, one service or one method. A retry
//! policy set on the call wins over the most specific default.
//!
//! What is retried — only failures where the request certainly did not run, so a retry is safe
//! for any method:
//!
//! | failure | RPC | async |
//! |---|---|---|
//! | no responders ([`CallError::ServiceUnavailable`]) | always | — |
//! | a `busy` (503) reply | when [`CallRetry::on_busy`] (default on) | — |
//! | JetStream cannot store the call ([`CallError::JetStreamUnavailable`]) | — | always (the `Nats-Msg-Id` makes a repeat count once) |
//! | not connected ([`CallError::Disconnected`]) | when [`CallRetry::on_disconnected`] (default off) | same |
//!
//! Timeouts, declared errors, `internal`, `bad_request` and the rest are never retried. All
//! attempts share the call's timeout (and its context's deadline): each attempt waits only for
//! the time left (and says so in its deadline header), and when the backoff plus another attempt
//! as long as the last one would not fit in it, the call returns the last attempt's error. Backoff doubles from [`CallRetry::backoff`]'s initial delay
//! up to its maximum, each delay drawn at random between half and all of it (so clients that
//! failed together do not retry together). Defaults: 3 attempts, 50 ms initial, 1 s maximum.
//!
//! # Circuit breaker (on by default)
//!
//! Each [`Connection`] keeps one breaker per target service, shared by every client of that
//! service on it (also across [`Connection::with_client_options`] handles). It counts
//! *consecutive* failures that say the service is down or overloaded:
//!
//! - a call timing out ([`CallError::Timeout`]);
//! - a `busy` (503) or `deadline_exceeded` (504) reply;
//!
//! A timeout or a 504 counts only when the caller waited at least the method's schema timeout:
//! a caller's own shorter timeout says nothing about the service, so one impatient caller never
//! opens the breaker for every other caller on the connection (it counts as neither failure nor
//! success).
//! - no responders, only with [`CircuitBreakerConfig::count_no_responders`] (default off).
//!
//! Any other answer — a result, a declared error, `bad_request`, `internal`, `payload_too_large`
//! — proves the service is up and resets the count. Failures on our side (disconnected, a
//! request that does not encode) are not counted either way.
//!
//! After [`failure_threshold`](CircuitBreakerConfig::failure_threshold) such failures in a row
//! (default 5) the breaker *opens*: calls fail at once with [`CallError::CircuitOpen`] without
//! sending anything. After [`open_for`](CircuitBreakerConfig::open_for) (default 5 s) the next
//! call is let through as the one *probe* (half-open; other calls keep failing with
//! `CircuitOpen` meanwhile): a probe that succeeds closes the breaker, one that fails opens it
//! for another `open_for`. A probe that ends without a verdict (the caller dropped it, or the
//! connection was down) lets the next call probe.
//!
//! Why on by default: a service that times out or sheds load with `busy` only gets worse when
//! every caller keeps sending at full rate; five failures *in a row* with no answer in between
//! never happen to a healthy service, and a five-second pause is short enough to go unnoticed
//! once it recovers. No responders is not counted by default because it costs nothing (the
//! server answers at once) and counting it would keep callers away for `open_for` after a
//! restart in which no instance ran for a moment; 500s are not counted because a service that
//! answers is up, and one bad request must not cut off the good ones. Async calls go to
//! JetStream, not to the service, so the breaker does not apply to them.
//!
//! ```no_run
//! # async fn f() -> Result<(), natsgen::Error> {
//! use std::time::Duration;
//! use natsgen::{CallRetry, CircuitBreakerConfig, ClientOptions, ConnectOptions};
//!
//! let nats = ConnectOptions::new()
//!     .circuit_breaker(CircuitBreakerConfig::new().failure_threshold(10).open_for(Duration::from_secs(2)))
//!     .client_options(ClientOptions::new().retry_for("order_service", CallRetry::new()))
//!     .connect("nats://127.0.0.1:4222")
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`Connection`]: crate::Connection
//! [`Connection::with_client_options`]: crate::Connection::with_client_options
//! [`ConnectOptions::client_options`]: crate::ConnectOptions::client_options
//! [`CallError::ServiceUnavailable`]: crate::CallError::ServiceUnavailable
//! [`CallError::JetStreamUnavailable`]: crate::CallError::JetStreamUnavailable
//! [`CallError::Disconnected`]: crate::CallError::Disconnected
//! [`CallError::Timeout`]: crate::CallError::Timeout
//! [`CallError::CircuitOpen`]: crate::CallError::CircuitOpen

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::{CallError, ServiceError};

/// Default of [`CallRetry::max_attempts`].
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;
/// Default initial delay of [`CallRetry::backoff`].
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(50);
/// Default longest delay of [`CallRetry::backoff`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Default of [`CircuitBreakerConfig::failure_threshold`].
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// Default of [`CircuitBreakerConfig::open_for`].
pub const DEFAULT_OPEN_FOR: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/// How a call retries failures that left the request unprocessed (see the
/// [module docs](crate::resilience) for which ones). Retries stay within the call's timeout.
///
/// ```
/// # use std::time::Duration;
/// use natsgen::CallRetry;
///
/// let retry = CallRetry::new()
///     .max_attempts(5)
///     .backoff(Duration::from_millis(20), Duration::from_millis(500));
/// assert_eq!(retry.max_attempts, 5);
/// // Retry until the call's timeout runs out, also while the connection is down:
/// let patient = CallRetry::until_deadline().on_disconnected(true);
/// assert_eq!(patient.max_attempts, u32::MAX);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CallRetry {
    /// Attempts in all, the first included; 1 means no retry, [`u32::MAX`] until the deadline.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles with every further one.
    pub initial_backoff: Duration,
    /// The longest delay between two attempts.
    pub max_backoff: Duration,
    /// Retry RPC calls answered `busy` (503). Default: on.
    pub on_busy: bool,
    /// Retry while the connection to NATS is down (the client reconnects by itself meanwhile).
    /// Default: off, so a call fails fast with `Disconnected`.
    pub on_disconnected: bool,
}

impl Default for CallRetry {
    fn default() -> Self {
        CallRetry {
            max_attempts: DEFAULT_RETRY_ATTEMPTS,
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            on_busy: true,
            on_disconnected: false,
        }
    }
}

impl CallRetry {
    /// The defaults: 3 attempts, backoff from 50 ms up to 1 s, retrying no responders and
    /// `busy`.
    pub fn new() -> Self {
        Self::default()
    }

    /// No retries (one attempt): turns off a retry default for a call or method.
    ///
    /// ```
    /// assert_eq!(natsgen::CallRetry::none().max_attempts, 1);
    /// ```
    pub fn none() -> Self {
        Self::default().max_attempts(1)
    }

    /// As many attempts as fit in the call's timeout.
    pub fn until_deadline() -> Self {
        Self::default().max_attempts(u32::MAX)
    }

    /// Attempts in all, the first included (0 counts as 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay before the first retry and the longest delay; delays double in between.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Whether to retry `busy` (503) replies.
    pub fn on_busy(mut self, retry: bool) -> Self {
        self.on_busy = retry;
        self
    }

    /// Whether to retry while disconnected from NATS.
    pub fn on_disconnected(mut self, retry: bool) -> Self {
        self.on_disconnected = retry;
        self
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub(crate) fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Whether `error` (the untyped form of a call's error) is one this policy retries.
    pub(crate) fn retries(&self, error: &CallError<ServiceError>) -> bool {
        match error {
            CallError::ServiceUnavailable { .. } | CallError::JetStreamUnavailable { .. } => true,
            CallError::Disconnected => self.on_disconnected,
            CallError::Service(error) => self.on_busy && error.code() == 503,
            _ => false,
        }
    }

    /// The delay after attempt number `attempt` (1-based) failed: exponential, with jitter
    /// between half and all of it.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let full = self
            .initial_backoff
            .saturating_mul(1_u32 << doublings.min(31))
            .min(self.max_backoff);
        let nanos = u64::try_from(full.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        let jitter = match half {
            0 => 0,
            _ => crate::ids::next_u64() % (half + 1),
        };
        Duration::from_nanos(nanos - half + jitter)
    }
}

// ---------------------------------------------------------------------------------------------
// Client defaults
// ---------------------------------------------------------------------------------------------

/// Defaults for the clients made on a connection: which calls retry, and how.
///
/// Targets are `"<service>"` or `"<service>.<method>"`; the most specific match wins, then
/// [`ClientOptions::retry`], and a retry set on the call itself wins over all of them.
///
/// ```
/// use natsgen::{CallRetry, ClientOptions};
///
/// let options = ClientOptions::new()
///     .retry(CallRetry::new())                                    // every method ...
///     .retry_for("order_service.process_payment", CallRetry::none()); // ... but this one
/// assert_eq!(options.retry_policy("order_service", "create_order"), Some(CallRetry::new()));
/// assert_eq!(options.retry_policy("order_service", "process_payment"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    retry: Option<CallRetry>,
    overrides: Vec<(String, CallRetry)>,
    hooks: crate::middleware::ClientHooks,
}

impl ClientOptions {
    /// No defaults: calls do not retry unless asked to.
    pub fn new() -> Self {
        Self::default()
    }

    /// Retry every method of every service this way.
    pub fn retry(mut self, retry: CallRetry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Retry the methods of one service (`"order_service"`) or one method
    /// (`"order_service.create_order"`) this way; [`CallRetry::none`] turns retries off there.
    pub fn retry_for(mut self, target: impl Into<String>, retry: CallRetry) -> Self {
        let target = target.into();
        self.overrides.retain(|(existing, _)| *existing != target);
        self.overrides.push((target, retry));
        self
    }

    /// The retry policy a call of `service.method` gets by default; `None` for no retries.
    pub fn retry_policy(&self, service: &str, method: &str) -> Option<CallRetry> {
        let mut for_service = None;
        for (target, retry) in &self.overrides {
            match target.split_once('.') {
                Some((s, m)) if s == service && m == method => {
                    return Some(*retry).filter(|retry| retry.max_attempts > 1)
                }
                None if target == service => for_service = Some(*retry),
                _ => {}
            }
        }
        for_service
            .or(self.retry)
            .filter(|retry| retry.max_attempts > 1)
    }

    /// Sends header `name: value` with every call and event of the clients made with these
    /// options, unless the call sets that header itself (e.g. a service token, a tenant). A
    /// name or value NATS cannot carry fails each call with
    /// [`CallError::Encode`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.hooks.headers.retain(|(existing, _)| *existing != name);
        self.hooks.headers.push((name, value.into()));
        self
    }

    /// Runs `interceptor` before every call and event of the clients made with these options
    /// are sent, in the order added; it can read and change the headers, and an error stops the
    /// call (see [`natsgen::middleware`](crate::middleware)).
    ///
    /// ```
    /// use natsgen::ClientOptions;
    ///
    /// let options = ClientOptions::new().intercept(|call| {
    ///     call.headers.push(("Authorization".into(), "Bearer s3cret".into()));
    ///     Ok(())
    /// });
    /// ```
    pub fn intercept(
        mut self,
        interceptor: impl Fn(&mut crate::middleware::OutgoingCall<'_>) -> Result<(), crate::ServiceError>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.hooks.intercept(interceptor);
        self
    }

    /// Runs `hook` after every call, async call and event publish of the clients made with these
    /// options has ended, in the order added: it sees the service, method, kind, context, outcome
    /// and the time the call took (retries included), e.g. to record client-side latency (see
    /// [`natsgen::middleware`](crate::middleware)).
    ///
    /// ```
    /// use natsgen::ClientOptions;
    ///
    /// let options = ClientOptions::new().on_complete(|call| {
    ///     println!("{}.{}: {} in {:?}", call.service, call.method, call.outcome, call.elapsed);
    /// });
    /// ```
    pub fn on_complete(
        mut self,
        hook: impl Fn(&crate::middleware::CompletedCall<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_complete(hook);
        self
    }

    /// The default headers and interceptors.
    pub(crate) fn hooks(&self) -> &crate::middleware::ClientHooks {
        &self.hooks
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.retry.is_none() && self.overrides.is_empty() && self.hooks.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------------

/// How the circuit breaker of each target service behaves (see the
/// [module docs](crate::resilience)). Set it with
/// [`ConnectOptions::circuit_breaker`](crate::ConnectOptions::circuit_breaker).
///
/// ```
/// # use std::time::Duration;
/// use natsgen::CircuitBreakerConfig;
///
/// let config = CircuitBreakerConfig::new()
///     .failure_threshold(3)
///     .open_for(Duration::from_secs(1))
///     .count_no_responders(true);
/// assert!(config.enabled);
/// assert!(!CircuitBreakerConfig::disabled().enabled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    /// Whether calls go through a breaker at all. Default: on.
    pub enabled: bool,
    /// Consecutive failures that open the breaker. Default: 5.
    pub failure_threshold: u32,
    /// How long an open breaker rejects calls before it lets a probe through. Default: 5 s.
    pub open_for: Duration,
    /// Whether no responders counts as a failure. Default: off.
    pub count_no_responders: bool,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            enabled: true,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            open_for: DEFAULT_OPEN_FOR,
            count_no_responders: false,
        }
    }
}

impl CircuitBreakerConfig {
    /// The defaults: on, opens after 5 consecutive failures, for 5 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// No breaker: every call is sent.
    pub fn disabled() -> Self {
        CircuitBreakerConfig {
            enabled: false,
            ..Self::default()
        }
    }

    /// Consecutive failures that open the breaker (0 counts as 1).
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures.max(1);
        self
    }

    /// How long an open breaker waits before it lets a probe through.
    pub fn open_for(mut self, duration: Duration) -> Self {
        self.open_for = duration;
        self
    }

    /// Whether no responders (no instance running) counts as a failure.
    pub fn count_no_responders(mut self, count: bool) -> Self {
        self.count_no_responders = count;
        self
    }

    /// What a finished call tells the breaker. `caller_limited`: the caller gave the call less
    /// time than the method's schema timeout, so its timeout (or a 504 for its deadline) says
    /// nothing about the service.
    pub(crate) fn verdict<T>(
        &self,
        result: &Result<T, CallError<ServiceError>>,
        caller_limited: bool,
    ) -> Verdict {
        match result {
            Ok(_) => Verdict::Success,
            Err(CallError::Timeout { .. }) if caller_limited => Verdict::Neutral,
            Err(CallError::Service(error)) if caller_limited && error.code() == 504 => {
                Verdict::Neutral
            }
            Err(CallError::Timeout { .. }) => Verdict::Failure,
            Err(CallError::ServiceUnavailable { .. }) if self.count_no_responders => {
                Verdict::Failure
            }
            Err(CallError::Service(error)) if matches!(error.code(), 503 | 504) => Verdict::Failure,
            Err(CallError::Service(_)) => Verdict::Success,
            Err(_) => Verdict::Neutral,
        }
    }
}

/// The state of a service's circuit breaker, from
/// [`Connection::circuit_state`](crate::Connection::circuit_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitState {
    /// Calls are sent (also when the breaker is turned off, or the service was never called).
    Closed,
    /// Calls fail with `CircuitOpen` without being sent; after the cool-down the next call
    /// becomes the probe.
    Open,
    /// One probe is out; other calls fail with `CircuitOpen` until it ends.
    HalfOpen,
}

/// What a call's outcome says about the service's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The service answered.
    Success,
    /// The service is down or overloaded.
    Failure,
    /// Says nothing about the service (e.g. our connection was down).
    Neutral,
}

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// One service's breaker: lock-free; a closed breaker costs a load per call, and a store only
/// when a success follows failures.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    service: &'static str,
    config: CircuitBreakerConfig,
    state: AtomicU8,
    failures: AtomicU32,
    /// When an open breaker lets the next probe through, in milliseconds since `epoch`.
    probe_at_ms: AtomicU64,
    epoch: Instant,
}

/// Leave to send one call; tell the breaker how it went with [`Permit::record`]. A probe permit
/// dropped without a verdict lets the next call probe.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    breaker: Option<&'a CircuitBreaker>,
    probe: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(service: &'static str, config: CircuitBreakerConfig) -> Self {
        CircuitBreaker {
            service,
            config,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            probe_at_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub(crate) fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn state(&self) -> CircuitState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => CircuitState::Closed,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Leave to send a call now, or how long until the breaker may let one through.
    pub(crate) fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> Result<Permit<'_>, Duration> {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Ok(Permit {
                breaker: Some(self),
                probe: false,
            }),
            OPEN => {
                let probe_at = self.probe_at_ms.load(Ordering::Acquire);
                let now = self.millis(now);
                if now < probe_at {
                    return Err(Duration::from_millis(probe_at - now));
                }
                match self.state.compare_exchange(
                    OPEN,
                    HALF_OPEN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => Ok(Permit {
                        breaker: Some(self),
                        probe: true,
                    }),
                    // Another call took the probe (or it just closed: let it retry then).
                    Err(_) => Err(self.config.open_for),
                }
            }
            _ => Err(self.config.open_for),
        }
    }

    fn record_at(&self, probe: bool, verdict: Verdict, now: Instant) {
        match verdict {
            Verdict::Success => {
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                if probe {
                    self.state.store(CLOSED, Ordering::Release);
                    tracing::info!(
                        service = self.service,
                        "circuit breaker closed: the probe call succeeded"
                    );
                }
            }
            Verdict::Failure => {
                let probe_at = self.millis(now).saturating_add(
                    u64::try_from(self.config.open_for.as_millis()).unwrap_or(u64::MAX),
                );
                if probe {
                    self.probe_at_ms.store(probe_at, Ordering::Release);
                    self.state.store(OPEN, Ordering::Release);
                    tracing::warn!(
                        service = self.service,
                        open_for = ?self.config.open_for,
                        "circuit breaker opened again: the probe call failed"
                    );
                    return;
                }
                let failures = self
                    .failures
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if failures >= self.config.failure_threshold
                    && self.state.load(Ordering::Acquire) == CLOSED
                {
                    // The cool-down is written before the state, so whoever sees OPEN sees it.
                    self.probe_at_ms.store(probe_at, Ordering::Release);
                    if self
                        .state
                        .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        tracing::warn!(
                            service = self.service,
                            failures,
                            open_for = ?self.config.open_for,
                            "circuit breaker opened: calls fail with CircuitOpen until a probe succeeds"
                        );
                    }
                }
            }
            Verdict::Neutral => {
                if probe {
                    // The cool-down is over already, so the next call probes.
                    self.state.store(OPEN, Ordering::Release);
                }
            }
        }
    }
}

impl Permit<'_> {
    /// A permit for a call that no breaker watches.
    pub(crate) fn unguarded() -> Self {
        Permit {
            breaker: None,
            probe: false,
        }
    }

    /// Tells the breaker how the call that ended with `result` went (see
    /// [`CircuitBreakerConfig::verdict`] for `caller_limited`).
    pub(crate) fn finish<T>(
        self,
        result: &Result<T, CallError<ServiceError>>,
        caller_limited: bool,
    ) {
        if let Some(breaker) = self.breaker {
            let verdict = breaker.config().verdict(result, caller_limited);
            self.record(verdict);
        }
    }

    /// Tells the breaker how the call went.
    pub(crate) fn record(mut self, verdict: Verdict) {
        if let Some(breaker) = self.breaker.take() {
            breaker.record_at(self.probe, verdict, Instant::now());
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(breaker) = self.breaker.take() {
            if self.probe {
                breaker.record_at(true, Verdict::Neutral, Instant::now());
            }
        }
    }
}

/// The breakers of one connection, one per target service, created on first use. The lock is
/// taken only when a client is made, never per call.
#[derive(Debug)]
pub(crate) struct BreakerRegistry {
    config: CircuitBreakerConfig,
    breakers: Mutex<HashMap<&'static str, Arc<CircuitBreaker>>>,
}

impl BreakerRegistry {
    pub(crate) fn new(config: CircuitBreakerConfig) -> Self {
        BreakerRegistry {
            config,
            breakers: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn config(&self) -> &CircuitBreakerConfig {
        &self.config
    }

    /// The breaker of `service`; `None` when breakers are turned off.
    pub(crate) fn breaker(&self, service: &'static str) -> Option<Arc<CircuitBreaker>> {
        if !self.config.enabled {
            return None;
        }
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(breakers.entry(service).or_insert_with(|| {
            Arc::new(CircuitBreaker::new(service, self.config))
        })))
    }

    pub(crate) fn state(&self, service: &str) -> CircuitState {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers
            .get(service)
            .map_or(CircuitState::Closed, |breaker| breaker.state())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            CircuitBreakerConfig::new()
                .failure_threshold(threshold)
                .open_for(Duration::from_secs(10)),
        )
    }

    fn fail(breaker: &CircuitBreaker, now: Instant) {
        let permit = breaker.try_acquire_at(now).unwrap();
        breaker.record_at(permit.probe, Verdict::Failure, now);
        std::mem::forget(permit);
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3);
        let now = Instant::now();
        fail(&b, now);
        fail(&b, now);
        b.record_at(false, Verdict::Success, now);
        fail(&b, now);
        fail(&b, now);
        assert_eq!(
            b.state(),
            CircuitState::Closed,
            "a success resets the count"
        );
        b.record_at(false, Verdict::Neutral, now);
        fail(&b, now);
        assert_eq!(b.state(), CircuitState::Open);
        let wait = b.try_acquire_at(now).unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
    }

    #[test]
    fn one_probe_after_the_cool_down_closes_or_reopens() {
        let b = breaker(1);
        let start = Instant::now();
        fail(&b, start);
        assert!(b.try_acquire_at(start + Duration::from_secs(9)).is_err());
        let later = start + Duration::from_secs(11);
        let probe = b.try_acquire_at(later).unwrap();
        assert!(probe.probe);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.try_acquire_at(later).is_err(), "only one probe at a time");
        b.record_at(true, Verdict::Failure, later);
        std::mem::forget(probe);
        assert_eq!(b.state(), CircuitState::Open);
        assert!(b.try_acquire_at(later + Duration::from_secs(9)).is_err());

        let much_later = later + Duration::from_secs(11);
        let probe = b.try_acquire_at(much_later).unwrap();
        assert!(probe.probe);
        probe.record(Verdict::Success);
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(!b.try_acquire_at(much_later).unwrap().probe);
    }

    #[test]
    fn a_dropped_or_neutral_probe_lets_the_next_call_probe() {
        let b = breaker(1);
        let start = Instant::now();
        fail(&b, start);
        let later = start + Duration::from_secs(11);
        drop(b.try_acquire_at(later).unwrap());
        assert_eq!(b.state(), CircuitState::Open);
        let probe = b.try_acquire_at(later).unwrap();
        assert!(probe.probe);
        probe.record(Verdict::Neutral);
        assert!(b.try_acquire_at(later).unwrap().probe);
    }

    #[test]
    fn verdicts() {
        let config = CircuitBreakerConfig::new();
        let v = |result: Result<(), CallError>| config.verdict(&result, false);
        let limited = |result: Result<(), CallError>| config.verdict(&result, true);
        assert_eq!(v(Ok(())), Verdict::Success);
        // A caller that gave the call less than the schema timeout learns nothing from its
        // own timeout or 504; a busy reply is the service's doing whatever the caller waited.
        let timeout = || {
            Err(CallError::Timeout {
                service: "s",
                method: "m",
                after: Duration::ZERO,
            })
        };
        assert_eq!(limited(timeout()), Verdict::Neutral);
        assert_eq!(
            limited(Err(CallError::Service(ServiceError::deadline_exceeded(
                "x"
            )))),
            Verdict::Neutral
        );
        assert_eq!(
            limited(Err(CallError::Service(ServiceError::busy("x")))),
            Verdict::Failure
        );
        assert_eq!(limited(Ok(())), Verdict::Success);
        assert_eq!(
            v(Err(CallError::Timeout {
                service: "s",
                method: "m",
                after: Duration::ZERO
            })),
            Verdict::Failure
        );
        assert_eq!(
            v(Err(CallError::Service(ServiceError::busy("x")))),
            Verdict::Failure
        );
        assert_eq!(
            v(Err(CallError::Service(ServiceError::deadline_exceeded(
                "x"
            )))),
            Verdict::Failure
        );
        assert_eq!(
            v(Err(CallError::Service(ServiceError::internal("x")))),
            Verdict::Success
        );
        assert_eq!(
            v(Err(CallError::Service(ServiceError::bad_request("x")))),
            Verdict::Success
        );
        assert_eq!(v(Err(CallError::Disconnected)), Verdict::Neutral);
        let unavailable = || {
            Err(CallError::ServiceUnavailable {
                service: "s",
                method: "m",
            })
        };
        assert_eq!(v(unavailable()), Verdict::Neutral);
        let counting = CircuitBreakerConfig::new().count_no_responders(true);
        assert_eq!(
            counting.verdict::<()>(&unavailable(), false),
            Verdict::Failure
        );
    }

    #[test]
    fn registry_shares_breakers_per_service_and_can_be_off() {
        let registry = BreakerRegistry::new(CircuitBreakerConfig::new().failure_threshold(1));
        let a = registry.breaker("a").unwrap();
        let a2 = registry.breaker("a").unwrap();
        assert!(Arc::ptr_eq(&a, &a2));
        fail(&a, Instant::now());
        assert_eq!(registry.state("a"), CircuitState::Open);
        assert_eq!(registry.state("b"), CircuitState::Closed);
        assert!(BreakerRegistry::new(CircuitBreakerConfig::disabled())
            .breaker("a")
            .is_none());
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let retry =
            CallRetry::new().backoff(Duration::from_millis(100), Duration::from_millis(300));
        for _ in 0..100 {
            let first = retry.delay(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let second = retry.delay(2);
            assert!(second >= Duration::from_millis(100) && second <= Duration::from_millis(200));
            let capped = retry.delay(40);
            assert!(capped >= Duration::from_millis(150) && capped <= Duration::from_millis(300));
        }
        assert_eq!(
            CallRetry::new()
                .backoff(Duration::ZERO, Duration::ZERO)
                .delay(3),
            Duration::ZERO
        );
    }

    #[test]
    fn what_retries() {
        let retry = CallRetry::new();
        assert!(retry.retries(&CallError::ServiceUnavailable {
            service: "s",
            method: "m"
        }));
        assert!(retry.retries(&CallError::Service(ServiceError::busy("x"))));
        assert!(!retry
            .on_busy(false)
            .retries(&CallError::Service(ServiceError::busy("x"))));
        assert!(!retry.retries(&CallError::Service(ServiceError::internal("x"))));
        assert!(!retry.retries(&CallError::Disconnected));
        assert!(retry
            .on_disconnected(true)
            .retries(&CallError::Disconnected));
        assert!(!retry.retries(&CallError::Timeout {
            service: "s",
            method: "m",
            after: Duration::ZERO
        }));
        assert!(retry.allows_another(2) && !retry.allows_another(3));
        assert!(CallRetry::until_deadline().allows_another(1_000_000));
    }

    #[test]
    fn client_options_resolve_most_specific_first() {
        let options = ClientOptions::new()
            .retry_for("a", CallRetry::new().max_attempts(7))
            .retry_for("a.m", CallRetry::new().max_attempts(2))
            .retry_for("b.m", CallRetry::none());
        assert_eq!(options.retry_policy("a", "m").unwrap().max_attempts, 2);
        assert_eq!(options.retry_policy("a", "n").unwrap().max_attempts, 7);
        assert_eq!(options.retry_policy("b", "m"), None);
        assert_eq!(options.retry_policy("c", "m"), None);
        let all = options.clone().retry(CallRetry::new());
        assert_eq!(all.retry_policy("c", "m"), Some(CallRetry::new()));
        assert_eq!(all.retry_policy("b", "m"), None);
        assert!(ClientOptions::new().is_empty() && !all.is_empty());
    }
}
