//! Calling services: per-call [`CallOptions`], and the machinery generated clients are built on
//! ([`ClientCore`], [`RpcCall`]).
//!
//! An RPC call waits at most its timeout: the per-call override, else the method's schema
//! timeout, else [`DEFAULT_TIMEOUT`], and never past the deadline of the [`Context`] it is made
//! in. Within that time it retries only when asked to ([`CallRetry`]), and it passes the target
//! service's circuit breaker first; see [`crate::resilience`].

use std::fmt;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::header::HeaderValue;
use async_nats::{HeaderMap, HeaderName, Message, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;

use crate::connection::Backend;
use crate::headers::{self, TraceParent};
use crate::json::Reply;
use crate::resilience::{CircuitBreaker, Permit};
use crate::service::{BoxFuture, EndpointDescriptor, MethodError, ServiceDescriptor};
use crate::{CallError, CallRetry, ClientOptions, Connection, Context, Error, ServiceError};

/// The timeout of a call whose descriptor has none (`timeout_ms: 0`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-call options: timeout, retries, extra headers and (for async calls) an idempotency key.
///
/// Generated clients take them through their builders (`client.method(..).timeout(d)`) and, in
/// the mockable client trait, as a value.
///
/// ```
/// # use std::time::Duration;
/// let options = natsgen::CallOptions::new()
///     .timeout(Duration::from_secs(2))
///     .retry(natsgen::CallRetry::new())
///     .header("X-Tenant", "acme");
/// assert_eq!(options.timeout, Some(Duration::from_secs(2)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// Overrides the method's timeout from the schema.
    pub timeout: Option<Duration>,
    /// Extra NATS headers sent with the request. natsgen's own headers (call id, caller chain,
    /// deadline) win on a clash; a `traceparent` given here is sent instead of natsgen's.
    pub headers: Vec<(String, String)>,
    /// Async calls: the key that makes a retried call count once. Ignored by RPC calls.
    pub idempotency_key: Option<String>,
    /// How this call retries; `None` keeps the connection's default for the method (see
    /// [`ClientOptions`]), [`CallRetry::none`] turns retries off.
    pub retry: Option<CallRetry>,
}

impl CallOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Overrides the method's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header. A name or value NATS cannot carry fails the call with
    /// [`CallError::Encode`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the idempotency key of an async call.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Retries this call this way (see [`CallRetry`]), whatever the client's default.
    pub fn retry(mut self, retry: CallRetry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Merges `other` into these options: its timeout, key and retry (when set) replace these,
    /// its headers are added.
    pub(crate) fn merge(&mut self, other: CallOptions) {
        let CallOptions {
            timeout,
            headers,
            idempotency_key,
            retry,
        } = other;
        if timeout.is_some() {
            self.timeout = timeout;
        }
        self.headers.extend(headers);
        if idempotency_key.is_some() {
            self.idempotency_key = idempotency_key;
        }
        if retry.is_some() {
            self.retry = retry;
        }
    }
}

/// What a generated client holds: the connection (or the in-process test harness it calls),
/// the service's descriptor and the service's circuit breaker on that connection.
#[derive(Debug, Clone)]
pub struct ClientCore {
    backend: Backend,
    descriptor: &'static ServiceDescriptor,
    breaker: Option<Arc<CircuitBreaker>>,
    context: Option<Context>,
}

impl ClientCore {
    /// A client core for one service. Its defaults (e.g. retries) are the connection's
    /// [`ClientOptions`]; its circuit breaker is the one the connection keeps for the service.
    pub fn new(connection: &Connection, descriptor: &'static ServiceDescriptor) -> Self {
        ClientCore {
            backend: Backend::Nats(connection.clone()),
            breaker: connection.circuit_breaker(descriptor.name),
            descriptor,
            context: None,
        }
    }

    /// A client core over NATS or an in-process test harness.
    pub(crate) fn on(backend: &Backend, descriptor: &'static ServiceDescriptor) -> Self {
        match backend {
            Backend::Nats(connection) => ClientCore::new(connection, descriptor),
            Backend::InProcess(_) => ClientCore {
                backend: backend.clone(),
                breaker: None,
                descriptor,
                context: None,
            },
        }
    }

    /// Where the calls go.
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The same client, making every call part of the call `ctx` belongs to: calls join its
    /// caller chain, continue its trace and wait no longer than its remaining time. This is what
    /// [`Context::client`] gives handlers.
    pub fn with_context(mut self, ctx: &Context) -> Self {
        self.context = Some(ctx.clone());
        self
    }

    /// The context calls are made in, if any.
    pub(crate) fn context(&self) -> Option<&Context> {
        self.context.as_ref()
    }

    /// The same client with other defaults than its connection's (the circuit breaker stays
    /// shared). A client of an in-process test harness has no connection and ignores them.
    ///
    /// ```
    /// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (_server, nats, host) = shop_running().await?;
    /// use natsgen::{CallRetry, ClientOptions};
    ///
    /// // Generated clients wrap a `ClientCore`: `with_options` on them lands here.
    /// let orders = shop::OrderServiceClient::new(&nats)
    ///     .with_options(ClientOptions::new().retry(CallRetry::new()));
    /// let order = orders.create_order("user_1".into(), 25.0).await?;
    /// assert_eq!(order.order_id, "order_of_user_1");
    /// # host.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn with_options(mut self, options: ClientOptions) -> Self {
        if let Backend::Nats(connection) = &mut self.backend {
            *connection = connection.with_client_options(options);
        }
        self
    }

    /// The same client, retrying every method this way by default.
    pub fn with_retry(self, retry: CallRetry) -> Self {
        self.with_options(ClientOptions::new().retry(retry))
    }

    /// The retry policy of a call of `method`: its own, else the client's default for the
    /// method; `None` when that allows a single attempt only.
    pub(crate) fn retry_for(&self, method: &str, own: Option<CallRetry>) -> Option<CallRetry> {
        own.or_else(|| {
            self.connection()?
                .client_options()
                .retry_policy(self.descriptor.name, method)
        })
        .filter(|retry| retry.max_attempts > 1)
    }

    /// Leave to send a call through the service's circuit breaker, or the error to fail with.
    pub(crate) fn permit<E>(&self) -> Result<Permit<'_>, CallError<E>> {
        match &self.breaker {
            None => Ok(Permit::unguarded()),
            Some(breaker) => breaker
                .try_acquire()
                .map_err(|retry_after| CallError::CircuitOpen {
                    service: self.descriptor.name,
                    retry_after,
                }),
        }
    }

    /// The connection calls go out on; `None` for a client of an in-process test harness.
    pub fn connection(&self) -> Option<&Connection> {
        self.backend.connection()
    }

    /// Runs the connection's client middleware (hooks) for a call; a client of an in-process
    /// test harness has none.
    pub(crate) fn apply_hooks(
        &self,
        method: &'static str,
        kind: crate::service::EndpointKind,
        context: Option<&Context>,
        headers: &mut Vec<(String, String)>,
    ) -> Result<(), ServiceError> {
        match &self.backend {
            Backend::Nats(connection) => connection.client_options().hooks().apply(
                self.descriptor.name,
                method,
                kind,
                context,
                headers,
            ),
            Backend::InProcess(_) => Ok(()),
        }
    }

    /// Runs the connection's completion hooks for a call that ended with `outcome`.
    pub(crate) fn complete_hooks(
        &self,
        method: &'static str,
        kind: crate::service::EndpointKind,
        context: Option<&Context>,
        outcome: &str,
        started: std::time::Instant,
    ) {
        if let Backend::Nats(connection) = &self.backend {
            let hooks = connection.client_options().hooks();
            if !hooks.completions.is_empty() {
                hooks.complete(&crate::middleware::CompletedCall {
                    service: self.descriptor.name,
                    method,
                    kind,
                    context,
                    outcome,
                    elapsed: started.elapsed(),
                });
            }
        }
    }

    /// The service's descriptor.
    pub fn descriptor(&self) -> &'static ServiceDescriptor {
        self.descriptor
    }

    /// A call of RPC endpoint `endpoint` with the encoded `params`; awaiting it sends it.
    pub fn rpc<R, E>(&self, endpoint: usize, params: Result<Bytes, Error>) -> RpcCall<R, E>
    where
        R: DeserializeOwned + Send + 'static,
        E: MethodError,
    {
        RpcCall {
            core: self.clone(),
            endpoint,
            params,
            options: CallOptions::default(),
            context: self.context.clone(),
            marker: PhantomData,
        }
    }
}

/// One RPC call, not yet sent: set options, then `.await` it.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (_server, nats, host) = shop_running().await?;
/// use std::time::Duration;
///
/// let orders = shop::OrderServiceClient::new(&nats);
/// let order = orders.create_order("user_1".into(), 25.0).timeout(Duration::from_secs(2)).await?;
/// assert_eq!(order.order_id, "order_of_user_1");
/// # host.shutdown().await?;
/// # Ok(()) }
/// ```
#[must_use = "a call does nothing until it is awaited"]
pub struct RpcCall<R, E> {
    core: ClientCore,
    endpoint: usize,
    params: Result<Bytes, Error>,
    options: CallOptions,
    context: Option<Context>,
    marker: PhantomData<fn() -> (R, E)>,
}

impl<R, E> RpcCall<R, E> {
    /// Overrides the method's timeout from the schema.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Adds a NATS header to the request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.headers.push((name.into(), value.into()));
        self
    }

    /// Retries this call on no responders and `busy` (see [`CallRetry`]) within its timeout,
    /// whatever the client's default; [`CallRetry::none`] turns a default off.
    ///
    /// ```
    /// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (_server, nats, host) = shop_running().await?;
    /// use natsgen::CallRetry;
    ///
    /// let orders = shop::OrderServiceClient::new(&nats);
    /// let order = orders.create_order("user_1".into(), 25.0).retry(CallRetry::new()).await?;
    /// assert_eq!(order.order_id, "order_of_user_1");
    /// # host.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn retry(mut self, retry: CallRetry) -> Self {
        self.options.retry = Some(retry);
        self
    }

    /// Applies a set of options: its timeout and retry (if set) replace this call's, its headers
    /// are added.
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options.merge(options);
        self
    }

    /// Makes this a nested call of the call `ctx` belongs to: it joins the caller chain,
    /// continues the trace, and waits no longer than the context's remaining time.
    pub fn context(mut self, ctx: &Context) -> Self {
        self.context = Some(ctx.clone());
        self
    }
}

impl<R, E> fmt::Debug for RpcCall<R, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = self
            .core
            .descriptor
            .endpoint(self.endpoint)
            .map_or("?", |endpoint| endpoint.name);
        f.debug_struct("RpcCall")
            .field("service", &self.core.descriptor.name)
            .field("method", &method)
            .field("options", &self.options)
            .field("context", &self.context)
            .finish()
    }
}

impl<R, E> IntoFuture for RpcCall<R, E>
where
    R: DeserializeOwned + Send + 'static,
    E: MethodError,
{
    type Output = Result<R, CallError<E>>;
    type IntoFuture = BoxFuture<Result<R, CallError<E>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl<R, E> RpcCall<R, E>
where
    R: DeserializeOwned + Send + 'static,
    E: MethodError,
{
    async fn send(self) -> Result<R, CallError<E>> {
        let RpcCall {
            core,
            endpoint,
            params,
            options,
            context,
            marker: _,
        } = self;
        let service = core.descriptor.name;
        let Some(descriptor) = core.descriptor.endpoint(endpoint) else {
            return Err(CallError::Protocol(format!(
                "service {service} has no endpoint #{endpoint}; the client and its descriptor \
                 disagree, regenerate the code"
            )));
        };
        let payload = params.map_err(|error| CallError::Encode(error.to_string()))?;
        let mut options = options;
        core.apply_hooks(
            descriptor.name,
            crate::service::EndpointKind::Rpc,
            context.as_ref(),
            &mut options.headers,
        )
        .map_err(|error| CallError::Service(E::from_service_error(error)))?;

        let mut timeout = options.timeout.unwrap_or(schema_timeout(descriptor));
        if let Some(remaining) = context.as_ref().and_then(Context::remaining) {
            timeout = timeout.min(remaining);
        }
        if timeout.is_zero() {
            return Err(CallError::Timeout {
                service,
                method: descriptor.name,
                after: timeout,
            });
        }
        let retry = core.retry_for(descriptor.name, options.retry);

        let schema_timeout = schema_timeout(descriptor);
        let span = tracing::debug_span!(
            "natsgen.call",
            service,
            method = descriptor.name,
            call_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
        let mut headers = request_headers(
            &options,
            context.as_ref(),
            (timeout < schema_timeout).then_some(timeout),
            !span.is_disabled(),
        )?;
        #[cfg(feature = "otel")]
        let otel = crate::otel::start_call(
            crate::otel::Outgoing::Rpc {
                service,
                method: descriptor.name,
            },
            context.as_ref(),
        );
        #[cfg(feature = "otel")]
        crate::otel::inject(&otel, &options.headers, &mut headers);
        if let Some(call_id) = headers::get(&headers, &headers::CALL_ID_NAME) {
            span.record("call_id", call_id);
        }
        let started = std::time::Instant::now();
        let call = Attempts {
            core: &core,
            index: endpoint,
            descriptor,
            timeout,
        };
        // A disabled span is not entered: the attempt runs as it is, without a wrapper.
        let result = match (retry, span.is_disabled()) {
            (None, true) => call.once(headers, payload, timeout).await,
            (None, false) => {
                call.once(headers, payload, timeout)
                    .instrument(span.clone())
                    .await
            }
            (Some(retry), _) => {
                call.with_retries(retry, headers, payload)
                    .instrument(span.clone())
                    .await
            }
        };
        let outcome = call_outcome(&result);
        if !span.is_disabled() {
            span.record("outcome", outcome);
            span.record("duration_us", started.elapsed().as_micros() as u64);
        }
        core.complete_hooks(
            descriptor.name,
            crate::service::EndpointKind::Rpc,
            context.as_ref(),
            outcome,
            started,
        );
        #[cfg(feature = "otel")]
        crate::otel::finish_call(&otel, crate::otel::failure_of(&result));
        result.map_err(|error| error.map_service(E::from_service_error))
    }
}

/// The `outcome` of a call's span: `ok`, or what went wrong (a service error's kind).
pub(crate) fn call_outcome<T>(result: &Result<T, CallError<ServiceError>>) -> &str {
    match result {
        Ok(_) => "ok",
        Err(CallError::Service(error)) => error.kind(),
        Err(CallError::Timeout { .. }) => "timeout",
        Err(CallError::ServiceUnavailable { .. }) => "service_unavailable",
        Err(CallError::Disconnected) => "disconnected",
        Err(CallError::CircuitOpen { .. }) => "circuit_open",
        Err(_) => "error",
    }
}

/// The attempts of one RPC call. Errors are untyped until the call ends, so retries and the
/// circuit breaker can see the codes.
struct Attempts<'a> {
    core: &'a ClientCore,
    index: usize,
    descriptor: &'static EndpointDescriptor,
    /// The whole call's timeout, reported by a [`CallError::Timeout`].
    timeout: Duration,
}

impl Attempts<'_> {
    async fn with_retries<R: DeserializeOwned>(
        &self,
        retry: CallRetry,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<R, CallError> {
        let started = Instant::now();
        let deadline = started.checked_add(self.timeout);
        let remaining = || {
            deadline.map_or(self.timeout, |d| {
                d.saturating_duration_since(Instant::now())
            })
        };
        let mut attempt = 1;
        loop {
            let wait = remaining();
            if attempt > 1 {
                headers.insert(headers::DEADLINE_MS_NAME, HeaderValue::from(millis(wait)));
            }
            let attempt_started = Instant::now();
            let error = match self.once(headers.clone(), payload.clone(), wait).await {
                Ok(result) => return Ok(result),
                Err(error) => error,
            };
            if !(retry.retries(&error) && retry.allows_another(attempt)) {
                return Err(error);
            }
            // An attempt that would likely be cut short by the deadline is not started: the
            // caller learns more from this error than from a timeout.
            let delay = retry.delay(attempt);
            if delay.saturating_add(attempt_started.elapsed()) >= remaining() {
                tracing::debug!(attempt, %error, "no time left for another attempt");
                return Err(error);
            }
            tracing::debug!(attempt, ?delay, %error, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt, waiting at most `wait`.
    async fn once<R: DeserializeOwned>(
        &self,
        headers: HeaderMap,
        payload: Bytes,
        wait: Duration,
    ) -> Result<R, CallError> {
        let service = self.core.descriptor.name;
        let method = self.descriptor.name;
        let connection = match &self.core.backend {
            Backend::Nats(connection) => connection,
            Backend::InProcess(hub) => {
                let call = crate::testing::RpcRequest {
                    service: self.core.descriptor,
                    index: self.index,
                    endpoint: self.descriptor,
                    headers,
                    payload,
                };
                let body = hub.rpc(call, wait, self.timeout).await?;
                return decode_body(self.descriptor, service, &body);
            }
        };
        if !connection.is_connected() {
            return Err(CallError::Disconnected);
        }
        if wait.is_zero() {
            return Err(CallError::Timeout {
                service,
                method,
                after: self.timeout,
            });
        }
        let permit = self.core.permit()?;
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(payload)
            .timeout(Some(wait));
        let result = match connection
            .nats()
            .send_request(self.descriptor.subject, request)
            .await
        {
            Ok(message) => decode_reply(self.descriptor, service, message),
            Err(error) => Err(match error.kind() {
                RequestErrorKind::NoResponders => CallError::ServiceUnavailable { service, method },
                _ if !connection.is_connected() => CallError::Disconnected,
                RequestErrorKind::TimedOut => CallError::Timeout {
                    service,
                    method,
                    after: self.timeout,
                },
                RequestErrorKind::MaxPayloadExceeded => CallError::Encode(format!(
                    "the request is larger than the server's max_payload: {error}"
                )),
                _ => CallError::Nats(error.to_string()),
            }),
        };
        permit.finish(&result, wait < schema_timeout(self.descriptor));
        result
    }
}

/// A timeout in whole milliseconds for the deadline header (at least 1).
fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A method's timeout from the schema ([`DEFAULT_TIMEOUT`] when it sets none): what a service
/// applies to a request that carries no deadline.
pub(crate) fn schema_timeout(endpoint: &EndpointDescriptor) -> Duration {
    match endpoint.timeout_ms {
        0 => DEFAULT_TIMEOUT,
        millis => Duration::from_millis(millis),
    }
}

/// The extra headers a call was given, checked. natsgen's own request headers among them are
/// left out: natsgen sets them, or leaves them out on purpose.
pub(crate) fn user_headers<E>(extra: &[(String, String)]) -> Result<HeaderMap, CallError<E>> {
    let mut headers = HeaderMap::new();
    for (name, value) in extra {
        if headers::is_request_header(name) {
            continue;
        }
        let name = HeaderName::from_str(name)
            .map_err(|_| CallError::Encode(format!("{name:?} is not a valid NATS header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            CallError::Encode(format!(
                "the value of header {name} contains a line break, which NATS headers cannot carry"
            ))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The headers of a request: only those the service cannot work out by itself.
///
/// - the caller's own headers;
/// - with a parent context: the caller chain and the continued `traceparent`;
/// - `deadline`: the call's timeout, sent only when it is shorter than the method's schema
///   timeout (the service applies that one by itself);
/// - `sampled` (the caller records the call: its `natsgen.call` span is enabled in `tracing`): a
///   call id and, without a parent context, a new sampled `traceparent`, so the service's records
///   join the caller's.
///
/// A `traceparent` among the caller's headers is sent instead of natsgen's.
///
/// A plain call (no context, the schema's timeout, tracing off) sends no header at all; the
/// service makes a call id and applies the schema timeout.
fn request_headers<E>(
    options: &CallOptions,
    context: Option<&Context>,
    deadline: Option<Duration>,
    sampled: bool,
) -> Result<HeaderMap, CallError<E>> {
    let mut headers = user_headers(&options.headers)?;
    if sampled {
        // A call id is a UUID: no line breaks, so `HeaderValue::from` cannot panic.
        headers.insert(
            headers::CALL_ID_NAME,
            HeaderValue::from(crate::ids::new_call_id()),
        );
    }
    if let Some(timeout) = deadline {
        headers.insert(
            headers::DEADLINE_MS_NAME,
            HeaderValue::from(millis(timeout)),
        );
    }
    let trace = match context {
        Some(context) => {
            // Ids and chains from the wire were validated when the context was built.
            headers.insert(
                headers::CALLER_CHAIN_NAME,
                HeaderValue::from(context.outgoing_chain()),
            );
            Some(context.trace_parent().child())
        }
        None => sampled.then(TraceParent::new_sampled_root),
    };
    if let Some(trace) = trace.filter(|_| !headers::sets_trace_parent(&options.headers)) {
        headers.insert(headers::TRACEPARENT_NAME, trace.to_header_value());
    }
    Ok(headers)
}

fn decode_reply<R>(
    endpoint: &'static EndpointDescriptor,
    service: &'static str,
    message: Message,
) -> Result<R, CallError>
where
    R: DeserializeOwned,
{
    if let Some(status) = message.status {
        if status != StatusCode::OK {
            return Err(CallError::Protocol(format!(
                "{service}.{} answered with NATS status {status} {}",
                endpoint.name,
                message.description.as_deref().unwrap_or_default()
            )));
        }
    }
    let error_code = message
        .headers
        .as_ref()
        .and_then(|headers| headers::get(headers, &headers::SERVICE_ERROR_CODE_NAME))
        .map(|code| code.trim().parse::<u16>().unwrap_or(500));
    if let Some(code) = error_code {
        return Err(CallError::Service(error_reply(code, &message)));
    }
    decode_body(endpoint, service, &message.payload)
}

/// Decodes the body of a reply that carries no error headers.
fn decode_body<R>(
    endpoint: &'static EndpointDescriptor,
    service: &'static str,
    body: &[u8],
) -> Result<R, CallError>
where
    R: DeserializeOwned,
{
    match crate::json::decode::<Reply<R>>(body) {
        Ok(Reply::Result(result)) => Ok(result),
        Ok(Reply::Error(error)) => Err(CallError::Service(error.into_service_error(None))),
        Ok(Reply::Other(keys)) => Err(CallError::Protocol(unexpected_reply(
            service, endpoint, &keys,
        ))),
        Err(error) => Err(CallError::Protocol(format!(
            "the reply of {service}.{} does not decode: {error}",
            endpoint.name
        ))),
    }
}

/// The error of a reply that carries the NATS micro error headers; the body, when it is ours,
/// adds kind and details.
fn error_reply(code: u16, message: &Message) -> ServiceError {
    if let Some(error) = decode_error_body(code, &message.payload) {
        return error;
    }
    let text = message
        .headers
        .as_ref()
        .and_then(|headers| headers::get(headers, &headers::SERVICE_ERROR_NAME))
        .unwrap_or_default();
    ServiceError::new(ServiceError::kind_for_code(code), code, text)
}

/// The error in a natsgen error body, with `code` from the headers.
pub(crate) fn decode_error_body(code: u16, body: &[u8]) -> Option<ServiceError> {
    match serde_json::from_slice::<Reply<serde::de::IgnoredAny>>(body) {
        Ok(Reply::Error(error)) => Some(error.into_service_error(Some(code))),
        _ => None,
    }
}

fn unexpected_reply(service: &str, endpoint: &EndpointDescriptor, keys: &[String]) -> String {
    let has = |key: &str| keys.iter().any(|k| k == key);
    if has("stream") && has("seq") {
        format!(
            "the reply to {service}.{} is a JetStream PubAck, not a result: a stream captures \
             subject {}; remove that subject from the stream's subjects so requests reach the \
             service",
            endpoint.name, endpoint.subject
        )
    } else {
        format!(
            "the reply to {service}.{} is neither {{\"result\": ..}} nor {{\"error\": ..}} (keys: \
             {}); is something other than a natsgen service answering on {}?",
            endpoint.name,
            keys.join(", "),
            endpoint.subject
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_merge() {
        let options = CallOptions::new()
            .timeout(Duration::from_secs(1))
            .header("a", "1")
            .idempotency_key("k");
        assert_eq!(options.headers, [("a".to_owned(), "1".to_owned())]);
        assert_eq!(options.idempotency_key.as_deref(), Some("k"));
    }

    #[test]
    fn bad_user_headers_are_encode_errors() {
        let options = CallOptions::new().header("bad:name", "v");
        let result = request_headers::<ServiceError>(&options, None, None, false);
        assert!(matches!(result, Err(CallError::Encode(_))));
        let options = CallOptions::new().header("Name", "line\nbreak");
        let result = request_headers::<ServiceError>(&options, None, None, false);
        assert!(matches!(result, Err(CallError::Encode(_))));
    }

    #[test]
    fn requests_carry_only_the_headers_they_need() {
        let plain =
            request_headers::<ServiceError>(&CallOptions::new(), None, None, false).unwrap();
        assert!(plain.is_empty(), "{plain:?}");

        // natsgen's own headers are natsgen's to set.
        let options = CallOptions::new()
            .header(headers::CALL_ID, "mine")
            .header(headers::CALLER_CHAIN, "mine")
            .header("X-Tenant", "acme");
        let headers = request_headers::<ServiceError>(
            &options,
            None,
            Some(Duration::from_millis(1500)),
            false,
        )
        .unwrap();
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(headers.get("X-Tenant").map(|v| v.as_str()), Some("acme"));
        assert_eq!(
            headers::get(&headers, &headers::DEADLINE_MS_NAME),
            Some("1500")
        );

        let sampled = request_headers::<ServiceError>(&options, None, None, true).unwrap();
        let call_id = headers::get(&sampled, &headers::CALL_ID_NAME).unwrap();
        assert!(headers::is_valid_call_id(call_id) && call_id != "mine");
        let trace = headers::get(&sampled, &headers::TRACEPARENT_NAME).unwrap();
        assert_eq!(TraceParent::parse(trace).unwrap().flags(), 1, "{trace}");
        assert!(headers::get(&sampled, &headers::DEADLINE_MS_NAME).is_none());

        // A caller's own traceparent is sent as it is, instead of natsgen's.
        let own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let options = CallOptions::new().header(headers::TRACEPARENT, own);
        let sampled = request_headers::<ServiceError>(&options, None, None, true).unwrap();
        let sent: Vec<_> = sampled
            .get_all(headers::TRACEPARENT_NAME)
            .map(|value| value.as_str())
            .collect();
        assert_eq!(sent, [own]);
    }
}
