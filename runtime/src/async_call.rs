//! Durable fire-and-forget calls: a generated client's async methods return an [`AsyncCall`].
//!
//! The call is published to `<service>.async.<method>` with a JetStream publish; awaiting it
//! returns once the service's work-queue stream `ASYNC_<service>` has stored it (PubAck), not when
//! it is processed. `Nats-Msg-Id` is `<method>:<idempotency key>`; without a key the client makes
//! one, so its own retry after a lost PubAck is stored once.
//!
//! Failures: while disconnected the call fails at once with [`CallError::Disconnected`]; no
//! PubAck within the call's timeout (the per-call override, else the method's, else
//! [`DEFAULT_TIMEOUT`](crate::DEFAULT_TIMEOUT); never past its context's deadline) is
//! [`CallError::Timeout`]; JetStream not enabled or not ready is
//! [`CallError::JetStreamUnavailable`]. With a [`CallRetry`] (per call, or the connection's
//! [`ClientOptions`](crate::ClientOptions)) the call retries JetStream unavailability (and, if
//! asked, disconnects) within its timeout; every attempt carries the same `Nats-Msg-Id`, so the
//! call is stored once. The circuit breaker does not apply: async calls go to JetStream, not to
//! the service.

use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::header::HeaderValue;
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::time::Instant;
use tracing::Instrument;

use crate::client::{CallOptions, ClientCore};
use crate::connection::Backend;
use crate::headers;
use crate::service::{BoxFuture, EndpointDescriptor, EndpointKind};
use crate::streams::{ensure_async_stream, StoreError};
use crate::{CallError, CallRetry, Context, Error, ServiceError};

impl ClientCore {
    /// An async call of endpoint `endpoint` with the encoded `params`; awaiting it sends it.
    pub fn send(&self, endpoint: usize, params: Result<Bytes, Error>) -> AsyncCall {
        AsyncCall {
            core: self.clone(),
            endpoint,
            params,
            options: CallOptions::default(),
            context: self.context().cloned(),
        }
    }
}

/// One async call, not yet sent: set options, then `.await` it.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (_server, nats, host) = shop_running().await?;
/// let notifications = shop::NotificationServiceClient::new(&nats);
/// notifications
///     .send_email("user@example.com".into(), "Order Confirmation".into(), "Thanks!".into())
///     .idempotency_key("order_123/confirmation")
///     .await?;
/// # host.shutdown().await?;
/// # Ok(()) }
/// ```
#[must_use = "a call does nothing until it is awaited"]
pub struct AsyncCall {
    core: ClientCore,
    endpoint: usize,
    params: Result<Bytes, Error>,
    options: CallOptions,
    context: Option<Context>,
}

impl AsyncCall {
    /// The key that makes repeated sends of the same call count once (within JetStream's
    /// duplicate window, 2 minutes by default).
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.options.idempotency_key = Some(key.into());
        self
    }

    /// Adds a NATS header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.headers.push((name.into(), value.into()));
        self
    }

    /// How long to wait for JetStream to confirm it stored the call (default: the method's
    /// timeout from the schema).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Retries this call while JetStream is unavailable (and, with
    /// [`CallRetry::on_disconnected`], while disconnected), within its timeout.
    ///
    /// ```
    /// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (_server, nats, host) = shop_running().await?;
    /// use natsgen::CallRetry;
    ///
    /// let notifications = shop::NotificationServiceClient::new(&nats);
    /// notifications
    ///     .send_email("user@example.com".into(), "Order Confirmation".into(), "Thanks!".into())
    ///     .retry(CallRetry::until_deadline())
    ///     .await?;
    /// # host.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn retry(mut self, retry: CallRetry) -> Self {
        self.options.retry = Some(retry);
        self
    }

    /// Applies a set of options (headers are added; the timeout, key and retry, when set,
    /// replace this call's).
    pub fn options(mut self, options: CallOptions) -> Self {
        self.options.merge(options);
        self
    }

    /// Makes this call part of the call `ctx` belongs to (caller chain and trace).
    pub fn context(mut self, ctx: &Context) -> Self {
        self.context = Some(ctx.clone());
        self
    }
}

impl fmt::Debug for AsyncCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = self
            .core
            .descriptor()
            .endpoint(self.endpoint)
            .map_or("?", |e| e.name);
        f.debug_struct("AsyncCall")
            .field("service", &self.core.descriptor().name)
            .field("method", &method)
            .field("options", &self.options)
            .finish()
    }
}

impl IntoFuture for AsyncCall {
    type Output = Result<(), CallError<ServiceError>>;
    type IntoFuture = BoxFuture<Result<(), CallError<ServiceError>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl AsyncCall {
    async fn send(self) -> Result<(), CallError<ServiceError>> {
        let AsyncCall {
            core,
            endpoint,
            params,
            options,
            context,
        } = self;
        let service = core.descriptor().name;
        let Some(descriptor) = core
            .descriptor()
            .endpoint(endpoint)
            .filter(|e| e.kind == EndpointKind::Async)
        else {
            return Err(CallError::Protocol(format!(
                "service {service} has no async endpoint #{endpoint}; regenerate the code"
            )));
        };
        let payload = params.map_err(|error| CallError::Encode(error.to_string()))?;
        let mut options = options;
        core.apply_hooks(
            descriptor.name,
            EndpointKind::Async,
            context.as_ref(),
            &mut options.headers,
        )
        .map_err(CallError::Service)?;
        let mut timeout = options
            .timeout
            .unwrap_or(crate::client::schema_timeout(descriptor));
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
        let retry = core
            .retry_for(descriptor.name, options.retry)
            .unwrap_or_else(CallRetry::none);

        let span = tracing::debug_span!(
            "natsgen.async_call",
            service,
            method = descriptor.name,
            call_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_us = tracing::field::Empty,
        );
        // Checked once here; each attempt builds its headers again from them.
        crate::client::user_headers(&options.headers)?;
        // `Nats-Msg-Id` is `<method>:<key>`. Without a key the call id is the key, and the
        // service reads it from there: it is not sent twice.
        let mut msg_id = String::with_capacity(descriptor.name.len() + 1 + 36);
        msg_id.push_str(descriptor.name);
        msg_id.push(':');
        let keyed_call_id = match &options.idempotency_key {
            Some(key) => {
                if key.contains(['\r', '\n']) {
                    return Err(CallError::Encode(
                        "the idempotency key contains a line break".into(),
                    ));
                }
                msg_id.push_str(key);
                let call_id = crate::ids::new_call_id();
                span.record("call_id", call_id.as_str());
                Some(call_id)
            }
            None => {
                crate::ids::push_call_id(&mut msg_id);
                span.record("call_id", &msg_id[descriptor.name.len() + 1..]);
                None
            }
        };
        let own_trace = headers::sets_trace_parent(&options.headers);
        // The caller records the call: the service's records join its trace.
        let sampled_root = (context.is_none() && !span.is_disabled() && !own_trace)
            .then(headers::TraceParent::new_sampled_root);
        #[cfg(feature = "otel")]
        let otel = crate::otel::start_call(
            crate::otel::Outgoing::Publish {
                service,
                method: descriptor.name,
                subject: descriptor.subject,
            },
            context.as_ref(),
        );
        // The headers of an attempt: built for each, so the first gets them without a copy.
        let build_headers = || {
            // Checked above, so nothing is left out here.
            let mut map =
                crate::client::user_headers::<ServiceError>(&options.headers).unwrap_or_default();
            if let Some(call_id) = &keyed_call_id {
                map.insert(headers::CALL_ID_NAME, HeaderValue::from(call_id.as_str()));
            }
            // A method name and a UUID or a key without line breaks (checked above), so `from`
            // cannot panic.
            map.insert(
                async_nats::header::NATS_MESSAGE_ID,
                HeaderValue::from(msg_id.as_str()),
            );
            match (&context, sampled_root) {
                (Some(ctx), _) => headers::propagate(&mut map, ctx, !own_trace),
                (None, Some(root)) => {
                    map.insert(headers::TRACEPARENT_NAME, root.to_header_value());
                }
                (None, None) => {}
            }
            #[cfg(feature = "otel")]
            crate::otel::inject(&otel, &options.headers, &mut map);
            map
        };
        let map = build_headers();
        let connection = match core.backend() {
            Backend::Nats(connection) => connection,
            Backend::InProcess(hub) => {
                hub.send_async(crate::testing::RpcRequest {
                    service: core.descriptor(),
                    index: endpoint,
                    endpoint: descriptor,
                    headers: map,
                    payload,
                });
                span.record("outcome", "ok");
                #[cfg(feature = "otel")]
                crate::otel::finish_call(&otel, None);
                return Ok(());
            }
        };
        if let Err(reason) =
            crate::streams::leaves_dead_letter_room(payload.len(), &map, connection.max_payload())
        {
            #[cfg(feature = "otel")]
            crate::otel::finish_call(
                &otel,
                Some((ServiceError::PAYLOAD_TOO_LARGE, reason.clone())),
            );
            return Err(CallError::Encode(reason));
        }
        let started = std::time::Instant::now();
        let publish = Publish {
            core: &core,
            descriptor,
            payload,
            timeout,
            headers: &build_headers,
        };
        // A call without retries sends its headers as they are; a disabled span is not entered.
        let result = match (retry.allows_another(1), span.is_disabled()) {
            (false, true) => publish.once(map, timeout).await,
            (false, false) => publish.once(map, timeout).instrument(span.clone()).await,
            (true, _) => {
                publish
                    .with_retries(retry, map)
                    .instrument(span.clone())
                    .await
            }
        };
        let outcome = crate::client::call_outcome(&result);
        if !span.is_disabled() {
            span.record("outcome", outcome);
            span.record("duration_us", started.elapsed().as_micros() as u64);
        }
        core.complete_hooks(
            descriptor.name,
            crate::service::EndpointKind::Async,
            context.as_ref(),
            outcome,
            started,
        );
        #[cfg(feature = "otel")]
        crate::otel::finish_call(&otel, crate::otel::failure_of(&result));
        result
    }
}

/// The attempts of one async call.
struct Publish<'a> {
    core: &'a ClientCore,
    descriptor: &'static EndpointDescriptor,
    payload: Bytes,
    /// The whole call's timeout.
    timeout: Duration,
    /// Builds the headers of another attempt (the same `Nats-Msg-Id`).
    headers: &'a (dyn Fn() -> HeaderMap + Sync),
}

impl Publish<'_> {
    async fn with_retries(&self, retry: CallRetry, first: HeaderMap) -> Result<(), CallError> {
        let deadline = Instant::now().checked_add(self.timeout);
        let remaining = || {
            deadline.map_or(self.timeout, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            })
        };
        let mut attempt = 1;
        let mut first = Some(first);
        loop {
            let attempt_started = Instant::now();
            let headers = first.take().unwrap_or_else(self.headers);
            let error = match self.once(headers, remaining()).await {
                Ok(()) => return Ok(()),
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

    /// One attempt, waiting at most `wait` for the PubAck (and for creating the stream).
    async fn once(&self, headers: HeaderMap, wait: Duration) -> Result<(), CallError> {
        let service = self.core.descriptor().name;
        let method = self.descriptor.name;
        let Backend::Nats(connection) = self.core.backend() else {
            return Err(CallError::Protocol(
                "an in-process async call reached the NATS publish".into(),
            ));
        };
        if !connection.is_connected() {
            return Err(CallError::Disconnected);
        }
        let timed_out = || {
            if connection.is_connected() {
                CallError::Timeout {
                    service,
                    method,
                    after: self.timeout,
                }
            } else {
                CallError::Disconnected
            }
        };
        let attempt = async {
            let mut created = false;
            // The headers move into the first publish; the one after creating the stream
            // builds them again.
            let mut headers = Some(headers);
            loop {
                let headers = headers.take().unwrap_or_else(self.headers);
                let error = match crate::streams::store(
                    connection.nats(),
                    self.descriptor.subject,
                    headers,
                    self.payload.clone(),
                )
                .await
                {
                    Ok(()) => return Ok(()),
                    Err(error) => error,
                };
                return Err(match error {
                    // No stream captures the subject yet: create it, once.
                    StoreError::NoStream if !created => {
                        // Boxed: a cold path, kept out of every call's future.
                        Box::pin(ensure_async_stream(
                            connection.async_call_jetstream(),
                            connection.stream_settings(),
                            service,
                        ))
                        .await
                        .map_err(|e| {
                            if connection.is_connected() {
                                CallError::JetStreamUnavailable {
                                    service,
                                    method,
                                    reason: e.to_string(),
                                }
                            } else {
                                CallError::Disconnected
                            }
                        })?;
                        created = true;
                        continue;
                    }
                    _ if !connection.is_connected() => CallError::Disconnected,
                    StoreError::NoStream => CallError::JetStreamUnavailable {
                        service,
                        method,
                        reason: format!(
                            "no stream stores {} although {} was created; was it changed or \
                             deleted?",
                            self.descriptor.subject,
                            crate::streams::async_stream_name(service)
                        ),
                    },
                    StoreError::TooLarge(error) => CallError::Encode(format!(
                        "the call is larger than the server's max_payload: {error}"
                    )),
                    // JetStream answered with an error: 503 when it is not ready (no meta
                    // leader, no quorum), or it has no room; or something else answered.
                    StoreError::Refused(reason) | StoreError::NotAPubAck(reason) => {
                        CallError::JetStreamUnavailable {
                            service,
                            method,
                            reason,
                        }
                    }
                    StoreError::Nats(error) => {
                        CallError::Nats(format!("publishing {}: {error}", self.descriptor.subject))
                    }
                });
            }
        };
        match tokio::time::timeout(wait, attempt).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        }
    }
}
