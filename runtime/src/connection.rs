//! Connecting to NATS: [`connect`], [`ConnectOptions`] and the [`Connection`] handle.
//!
//! # Reconnecting
//!
//! The connection reconnects by itself, forever, after a server restart or failover (to any URL
//! given or learned from the cluster); subscriptions — a [`Host`](crate::Host)'s included — are
//! restored on the new connection without the user's code doing anything. While it is down, a
//! call fails at once with [`CallError::Disconnected`](crate::CallError::Disconnected) (or, with
//! [`CallRetry::on_disconnected`](crate::CallRetry::on_disconnected), retries until its timeout);
//! a call whose reply was lost to the outage fails within its timeout. Nothing waits forever.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream;
use async_nats::ServerAddr;

use crate::events::EventsDescriptor;
use crate::resilience::{BreakerRegistry, CircuitBreaker, CircuitBreakerConfig, CircuitState};
use crate::streams::StreamSettings;
use crate::{ClientOptions, Error};

/// The oldest nats-server natsgen works with (major, minor).
pub const MIN_SERVER_VERSION: (u64, u64) = (2, 10);

/// How long the shared JetStream context of async calls waits by itself; each call bounds its
/// own wait by its timeout, so this only has to be longer than any of them.
const JETSTREAM_CONTEXT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The packages (by their generated descriptor) whose event stream a connection made sure of.
/// A process publishes the events of a few packages, so they fit in a few slots read without a
/// lock; more than that go to a locked set.
#[derive(Default)]
struct KnownEventStreams {
    slots: [AtomicPtr<EventsDescriptor>; 8],
    more: std::sync::Mutex<Vec<usize>>,
}

impl KnownEventStreams {
    fn contains(&self, events: &'static EventsDescriptor) -> bool {
        let wanted = std::ptr::from_ref(events).cast_mut();
        for slot in &self.slots {
            let known = slot.load(Ordering::Acquire);
            if known == wanted {
                return true;
            }
            if known.is_null() {
                return false;
            }
        }
        self.more
            .lock()
            .is_ok_and(|more| more.contains(&(wanted as usize)))
    }

    fn insert(&self, events: &'static EventsDescriptor) {
        let wanted = std::ptr::from_ref(events).cast_mut();
        for slot in &self.slots {
            match slot.compare_exchange(
                std::ptr::null_mut(),
                wanted,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(known) if known == wanted => return,
                Err(_) => {}
            }
        }
        if let Ok(mut more) = self.more.lock() {
            if !more.contains(&(wanted as usize)) {
                more.push(wanted as usize);
            }
        }
    }
}

/// Where a context, a client or an event publisher sends its work: NATS, or the services of an
/// [`InProcess`](crate::testing::InProcess) test harness. One branch per call; the NATS side pays
/// nothing else for the other.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Nats(Connection),
    InProcess(Arc<crate::testing::Hub>),
}

impl Backend {
    /// The NATS connection, when there is one.
    pub(crate) fn connection(&self) -> Option<&Connection> {
        match self {
            Backend::Nats(connection) => Some(connection),
            Backend::InProcess(_) => None,
        }
    }
}

/// A connection to NATS, shared by clients, hosts and contexts. Cheap to clone.
///
/// It wraps an [`async_nats::Client`], which reconnects by itself after a server restart or
/// failover; [`Connection::nats`] gives access to it for anything natsgen does not cover. It also
/// holds the circuit breakers of the services called through it (see [`crate::resilience`]) and
/// the [`ClientOptions`] its clients start from.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    /// Shared by every handle made with [`Connection::with_client_options`].
    shared: Arc<Shared>,
    client_options: ClientOptions,
}

struct Shared {
    breakers: BreakerRegistry,
    jetstream: OnceLock<jetstream::Context>,
    /// Packages whose event stream this connection has made sure of.
    event_streams: KnownEventStreams,
    /// How streams are created.
    streams: StreamSettings,
}

impl Connection {
    /// Wraps a client connected by other means, checking its server's version like [`connect`].
    /// It gets the default circuit breaker and no client defaults.
    pub fn from_nats(client: async_nats::Client) -> Result<Self, Error> {
        Self::from_parts(
            client,
            CircuitBreakerConfig::default(),
            ClientOptions::default(),
            StreamSettings::default(),
        )
    }

    fn from_parts(
        client: async_nats::Client,
        circuit_breaker: CircuitBreakerConfig,
        client_options: ClientOptions,
        streams: StreamSettings,
    ) -> Result<Self, Error> {
        check_server_version(&client)?;
        Ok(Connection {
            inner: Arc::new(Inner {
                client,
                shared: Arc::new(Shared {
                    breakers: BreakerRegistry::new(circuit_breaker),
                    jetstream: OnceLock::new(),
                    event_streams: KnownEventStreams::default(),
                    streams,
                }),
                client_options,
            }),
        })
    }

    /// A handle on the same NATS connection (and the same circuit breakers) whose clients start
    /// from `options`, e.g. retry by default. Clients made on `self` keep theirs.
    ///
    /// ```no_run
    /// # fn f(nats: natsgen::Connection) {
    /// use natsgen::{CallRetry, ClientOptions};
    ///
    /// let patient = nats.with_client_options(ClientOptions::new().retry(CallRetry::new()));
    /// // let orders = shop::OrderServiceClient::new(&patient); // its calls retry
    /// # }
    /// ```
    pub fn with_client_options(&self, options: ClientOptions) -> Connection {
        Connection {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                shared: Arc::clone(&self.inner.shared),
                client_options: options,
            }),
        }
    }

    /// The defaults clients made on this handle start from.
    pub fn client_options(&self) -> &ClientOptions {
        &self.inner.client_options
    }

    /// How natsgen creates streams over this connection (replicas, limits).
    pub fn stream_settings(&self) -> &StreamSettings {
        &self.inner.shared.streams
    }

    /// The circuit breaker settings of this connection.
    pub fn circuit_breaker_config(&self) -> &CircuitBreakerConfig {
        self.inner.shared.breakers.config()
    }

    /// The state of the circuit breaker of `service` ([`CircuitState::Closed`] for a service
    /// not called yet, and when breakers are turned off).
    ///
    /// ```no_run
    /// # fn f(nats: natsgen::Connection) {
    /// if nats.circuit_state("order_service") != natsgen::CircuitState::Closed {
    ///     eprintln!("order_service is failing; calls are held back");
    /// }
    /// # }
    /// ```
    pub fn circuit_state(&self, service: &str) -> CircuitState {
        self.inner.shared.breakers.state(service)
    }

    /// The breaker of `service`, created on first use; `None` when breakers are off.
    pub(crate) fn circuit_breaker(&self, service: &'static str) -> Option<Arc<CircuitBreaker>> {
        self.inner.shared.breakers.breaker(service)
    }

    /// Whether this connection already made sure the event stream of `events`' package exists.
    /// Every event publish asks, so the answer takes no lock.
    pub(crate) fn event_stream_known(&self, events: &'static EventsDescriptor) -> bool {
        self.inner.shared.event_streams.contains(events)
    }

    /// Remembers that the event stream of `events`' package exists.
    pub(crate) fn remember_event_stream(&self, events: &'static EventsDescriptor) {
        self.inner.shared.event_streams.insert(events);
    }

    /// The JetStream context async calls publish through, made on first use (it runs a task).
    pub(crate) fn async_call_jetstream(&self) -> &jetstream::Context {
        self.inner.shared.jetstream.get_or_init(|| {
            let mut context = jetstream::new(self.inner.client.clone());
            context.set_timeout(JETSTREAM_CONTEXT_TIMEOUT);
            context
        })
    }

    /// The underlying async-nats client.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// True while connected to a server.
    pub fn is_connected(&self) -> bool {
        self.inner.client.connection_state() == State::Connected
    }

    /// The version the server reported (empty before the first connect).
    pub fn server_version(&self) -> String {
        self.inner.client.server_info().version
    }

    /// The largest message (headers plus payload) the server accepts.
    pub fn max_payload(&self) -> usize {
        self.inner.client.max_payload()
    }

    /// Waits until everything published so far has reached the server.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner
            .client
            .flush()
            .await
            .map_err(|error| Error::Confirm {
                reason: error.to_string(),
            })
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Connection");
        debug
            .field("state", &self.inner.client.connection_state())
            .field("server_version", &self.server_version());
        if !self.inner.client_options.is_empty() {
            debug.field("client_options", &self.inner.client_options);
        }
        debug.finish()
    }
}

/// One or more NATS server URLs: a `&str` or `String` with one URL or several separated by
/// commas (`"nats://a:4222,nats://b:4222"`), or a slice, array or `Vec` of such strings.
/// A URL without a scheme gets `nats://`, one without a port gets 4222.
pub trait ServerUrls {
    /// The URLs, each still as text.
    fn server_urls(&self) -> Vec<String>;
}

impl ServerUrls for str {
    fn server_urls(&self) -> Vec<String> {
        self.split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl ServerUrls for String {
    fn server_urls(&self) -> Vec<String> {
        self.as_str().server_urls()
    }
}

impl<T: AsRef<str>> ServerUrls for [T] {
    fn server_urls(&self) -> Vec<String> {
        self.iter()
            .flat_map(|urls| urls.as_ref().server_urls())
            .collect()
    }
}

impl<T: AsRef<str>, const N: usize> ServerUrls for [T; N] {
    fn server_urls(&self) -> Vec<String> {
        self.as_slice().server_urls()
    }
}

impl<T: AsRef<str>> ServerUrls for Vec<T> {
    fn server_urls(&self) -> Vec<String> {
        self.as_slice().server_urls()
    }
}

impl<T: ServerUrls + ?Sized> ServerUrls for &T {
    fn server_urls(&self) -> Vec<String> {
        (**self).server_urls()
    }
}

/// Connects to NATS with default options.
///
/// ```no_run
/// # async fn f() -> Result<(), natsgen::Error> {
/// let nats = natsgen::connect("nats://127.0.0.1:4222").await?;
/// let cluster = natsgen::connect("nats://a:4222,nats://b:4222").await?;
/// let same = natsgen::connect(["nats://a:4222", "nats://b:4222"]).await?;
/// # Ok(())
/// # }
/// ```
pub async fn connect(urls: impl ServerUrls) -> Result<Connection, Error> {
    ConnectOptions::new().connect(urls).await
}

/// Options for [`ConnectOptions::connect`]: authentication, TLS, naming and reconnect behaviour.
///
/// ```no_run
/// # async fn f() -> Result<(), natsgen::Error> {
/// let nats = natsgen::ConnectOptions::new()
///     .name("orders")
///     .user_and_password("orders", "s3cret")
///     .connect("nats://127.0.0.1:4222")
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    options: async_nats::ConnectOptions,
    credentials_file: Option<PathBuf>,
    circuit_breaker: CircuitBreakerConfig,
    client_options: ClientOptions,
    /// Whether authentication was set through these options (then credentials in a URL are
    /// not used).
    explicit_auth: bool,
    streams: StreamSettings,
}

impl ConnectOptions {
    /// Default options: no authentication, reconnect forever, the default circuit breaker
    /// ([`CircuitBreakerConfig::new`]), no retries unless a call asks.
    pub fn new() -> Self {
        ConnectOptions {
            options: async_nats::ConnectOptions::new().event_callback(log_event),
            credentials_file: None,
            circuit_breaker: CircuitBreakerConfig::default(),
            client_options: ClientOptions::default(),
            explicit_auth: false,
            streams: StreamSettings::default(),
        }
    }

    /// The circuit breaker of every service called over this connection (see
    /// [`crate::resilience`]); [`CircuitBreakerConfig::disabled`] turns breakers off.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let options = natsgen::ConnectOptions::new().circuit_breaker(
    ///     natsgen::CircuitBreakerConfig::new().failure_threshold(10).open_for(Duration::from_secs(1)),
    /// );
    /// ```
    pub fn circuit_breaker(mut self, config: CircuitBreakerConfig) -> Self {
        self.circuit_breaker = config;
        self
    }

    /// How natsgen creates the streams it needs (replicas and limits; see [`StreamSettings`]):
    /// on a three-node cluster, `StreamSettings::new().replicas(3)` keeps every stored call,
    /// event and dead letter through the loss of one node.
    pub fn streams(mut self, settings: StreamSettings) -> Self {
        self.streams = settings;
        self
    }

    /// The defaults of the clients made on this connection, e.g. which calls retry (see
    /// [`ClientOptions`]). [`Connection::with_client_options`] makes handles with others.
    ///
    /// ```
    /// use natsgen::{CallRetry, ClientOptions};
    /// let options = natsgen::ConnectOptions::new()
    ///     .client_options(ClientOptions::new().retry_for("order_service", CallRetry::new()));
    /// ```
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.client_options = options;
        self
    }

    /// The client name the server shows (e.g. in `nats server report connections`).
    pub fn name(self, name: impl Into<String>) -> Self {
        self.map(|options| options.name(name.into()))
    }

    /// Authenticate with a user and password. Without any authentication option, credentials in
    /// the URL are used (`nats://user:password@host:4222`, or `nats://token@host:4222`); error
    /// messages never show them.
    pub fn user_and_password(self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.map_auth(|options| options.user_and_password(user.into(), password.into()))
    }

    /// Authenticate with a token.
    pub fn token(self, token: impl Into<String>) -> Self {
        self.map_auth(|options| options.token(token.into()))
    }

    /// Authenticate with a credentials (`.creds`) file, read when connecting.
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.explicit_auth = true;
        self.credentials_file = Some(path.into());
        self
    }

    /// Authenticate with an nkey seed (`SU...`).
    pub fn nkey(self, seed: impl Into<String>) -> Self {
        self.map_auth(|options| options.nkey(seed.into()))
    }

    /// Trust the CA certificate(s) in this PEM file for the server's TLS certificate.
    pub fn root_certificates(self, path: impl Into<PathBuf>) -> Self {
        self.map(|options| options.add_root_certificates(path.into()))
    }

    /// Present this client certificate and key (PEM files) for mutual TLS.
    pub fn client_certificate(self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.map(|options| options.add_client_certificate(cert.into(), key.into()))
    }

    /// Refuse to connect without TLS.
    pub fn require_tls(self, required: bool) -> Self {
        self.map(|options| options.require_tls(required))
    }

    /// Return from `connect` at once and keep trying in the background when no server is up yet
    /// (calls fail with [`CallError::Disconnected`](crate::CallError::Disconnected) meanwhile).
    /// The server version is then checked only if the first connect already happened.
    pub fn retry_on_initial_connect(self) -> Self {
        self.map(|options| options.retry_on_initial_connect())
    }

    /// How long one connection attempt may take.
    pub fn connection_timeout(self, timeout: Duration) -> Self {
        self.map(|options| options.connection_timeout(timeout))
    }

    /// Any other async-nats option.
    ///
    /// ```
    /// let options = natsgen::ConnectOptions::new()
    ///     .nats_options(|options| options.ping_interval(std::time::Duration::from_secs(10)));
    /// ```
    pub fn nats_options(
        self,
        configure: impl FnOnce(async_nats::ConnectOptions) -> async_nats::ConnectOptions,
    ) -> Self {
        self.map(configure)
    }

    fn map_auth(
        mut self,
        configure: impl FnOnce(async_nats::ConnectOptions) -> async_nats::ConnectOptions,
    ) -> Self {
        self.explicit_auth = true;
        self.map(configure)
    }

    fn map(
        mut self,
        configure: impl FnOnce(async_nats::ConnectOptions) -> async_nats::ConnectOptions,
    ) -> Self {
        self.options = configure(self.options);
        self
    }

    /// Connects, then checks the server is nats-server 2.10 or newer.
    pub async fn connect(self, urls: impl ServerUrls) -> Result<Connection, Error> {
        let urls = urls.server_urls();
        if urls.is_empty() {
            return Err(Error::NoUrl);
        }
        let mut addrs = Vec::with_capacity(urls.len());
        for url in &urls {
            let addr = url
                .parse::<ServerAddr>()
                .map_err(|error| Error::InvalidUrl {
                    url: redacted_url(url),
                    reason: error.to_string(),
                })?;
            addrs.push(addr);
        }
        let mut options = self.options;
        if !self.explicit_auth {
            // `nats://user:password@host` or `nats://token@host`, as the NATS CLI and the Go
            // client take them (async-nats itself ignores credentials in URLs).
            if let Some(addr) = addrs.iter().find(|addr| addr.username().is_some()) {
                let user = percent_decoded(addr.username().unwrap_or_default());
                options = match addr.password() {
                    Some(password) => options.user_and_password(user, percent_decoded(password)),
                    None => options.token(user),
                };
            }
        }
        if let Some(path) = self.credentials_file {
            options = options
                .credentials_file(&path)
                .await
                .map_err(|source| Error::Credentials { path, source })?;
        }
        let client = options
            .connect(addrs)
            .await
            .map_err(|source| Error::Connect {
                urls: urls
                    .iter()
                    .map(|url| redacted_url(url))
                    .collect::<Vec<_>>()
                    .join(","),
                source,
            })?;
        Connection::from_parts(
            client,
            self.circuit_breaker,
            self.client_options,
            self.streams,
        )
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs what happens to the connection (async-nats reports it through one callback; setting
/// another with [`ConnectOptions::nats_options`] replaces this one). A slow consumer means a
/// subscription's buffer overflowed and the client library dropped messages: natsgen's own
/// subscriptions take their messages off as they come, so this points at a subscription of the
/// user's, or at a process too busy to keep up.
async fn log_event(event: async_nats::Event) {
    match event {
        async_nats::Event::SlowConsumer(subscription) => tracing::warn!(
            subscription,
            "slow consumer: NATS messages were dropped because a subscription's buffer was full"
        ),
        async_nats::Event::Connected => tracing::info!("connected to NATS"),
        async_nats::Event::Disconnected => {
            tracing::warn!("disconnected from NATS; reconnecting")
        }
        async_nats::Event::ServerError(error) => tracing::warn!(%error, "NATS server error"),
        async_nats::Event::ClientError(error) => tracing::warn!(%error, "NATS client error"),
        other => tracing::info!(event = %other, "NATS connection event"),
    }
}

/// A URL fit for an error message or a log: a password or token in it is replaced by `***`
/// (`nats://alice:***@host:4222`, `nats://***@host:4222`).
pub(crate) fn redacted_url(url: &str) -> String {
    let authority_start = url.find("://").map_or(0, |scheme| scheme + 3);
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_len].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let hidden = match userinfo.split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    format!("{}{hidden}{}", &url[..authority_start], &rest[at..])
}

/// `%XX` escapes of a URL's user info decoded (anything malformed is kept as it is).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

fn check_server_version(client: &async_nats::Client) -> Result<(), Error> {
    let Some(info) = client.try_server_info() else {
        tracing::debug!("not connected yet; the nats-server version is not checked");
        return Ok(());
    };
    match parse_version(&info.version) {
        Some(found) if found < MIN_SERVER_VERSION => Err(Error::ServerTooOld {
            version: info.version,
        }),
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                version = %info.version,
                "cannot tell the nats-server version; natsgen needs 2.10 or newer"
            );
            Ok(())
        }
    }
}

/// `(major, minor)` of a version such as `2.10.22`, `v2.11.0-beta.1` or `2.12`.
fn parse_version(version: &str) -> Option<(u64, u64)> {
    let version = version.trim().trim_start_matches('v');
    let mut parts = version.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.10.22"), Some((2, 10)));
        assert_eq!(parse_version("v2.11.0-beta.1"), Some((2, 11)));
        assert_eq!(parse_version("2.9.25"), Some((2, 9)));
        assert!(parse_version("2.9.25").unwrap() < MIN_SERVER_VERSION);
        assert!(parse_version("3.0.0").unwrap() > MIN_SERVER_VERSION);
        assert_eq!(parse_version(""), None);
        assert_eq!(parse_version("nightly"), None);
    }

    #[test]
    fn credentials_never_reach_error_messages() {
        assert_eq!(
            redacted_url("nats://alice:secret@127.0.0.1:4222"),
            "nats://alice:***@127.0.0.1:4222"
        );
        assert_eq!(
            redacted_url("nats://s3cr3t-token@localhost"),
            "nats://***@localhost"
        );
        assert_eq!(redacted_url("bob:pw@host:1/x@y"), "bob:***@host:1/x@y");
        assert_eq!(redacted_url("tls://a:b:c@h?x=@"), "tls://a:***@h?x=@");
        assert_eq!(
            redacted_url("nats://127.0.0.1:4222"),
            "nats://127.0.0.1:4222"
        );
        assert_eq!(redacted_url("nats://h/@x"), "nats://h/@x");
        assert_eq!(percent_decoded("p%40ss%2"), "p@ss%2");
    }

    #[test]
    fn urls_split_on_commas() {
        assert_eq!(
            "nats://a:1, nats://b:2".server_urls(),
            ["nats://a:1", "nats://b:2"]
        );
        assert_eq!(["a", "b,c"].server_urls(), ["a", "b", "c"]);
        assert_eq!(vec!["x".to_owned()].server_urls(), ["x"]);
        assert!("".server_urls().is_empty());
    }
}
