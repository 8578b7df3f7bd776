//! Durable fire-and-forget calls: a generated client's async methods return an [`AsyncCall`].
//!
//! The call is published to `<service>.async.<method>` with a JetStream publish; awaiting it
//! returns once the service's work-queue stream `ASYNC_<service>` has stored it (PubAck), not when
//! it is processed. `Nats-Msg-Id` is `<method>:<idempotency key>`; without a key the client makes
//! one, so its own retry after a lost PubAck is stored once.

use std::fmt;
use std::future::IntoFuture;
use std::str::FromStr;

use async_nats::header::HeaderValue;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::{HeaderMap, HeaderName};
use bytes::Bytes;

use crate::client::{CallOptions, ClientCore};
use crate::headers;
use crate::service::{BoxFuture, EndpointKind};
use crate::streams::ensure_async_stream;
use crate::{CallError, Context, Error, ServiceError};

impl ClientCore {
    /// An async call of endpoint `endpoint` with the encoded `params`; awaiting it sends it.
    pub fn send(&self, endpoint: usize, params: Result<Bytes, Error>) -> AsyncCall {
        AsyncCall {
            core: self.clone(),
            endpoint,
            params,
            options: CallOptions::default(),
            context: None,
        }
    }
}

/// One async call, not yet sent: set options, then `.await` it.
///
/// ```ignore
/// notifications.send_email(to, subject, body).idempotency_key("order_123/confirmation").await?;
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

    /// Applies a set of options (headers are added; the key, when set, replaces this call's).
    pub fn options(mut self, options: CallOptions) -> Self {
        let CallOptions {
            timeout,
            headers,
            idempotency_key,
        } = options;
        if timeout.is_some() {
            self.options.timeout = timeout;
        }
        self.options.headers.extend(headers);
        if idempotency_key.is_some() {
            self.options.idempotency_key = idempotency_key;
        }
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
        let connection = core.connection();
        if !connection.is_connected() {
            return Err(CallError::Disconnected);
        }
        let mut map = HeaderMap::new();
        for (name, value) in &options.headers {
            let name = HeaderName::from_str(name).map_err(|_| {
                CallError::Encode(format!("{name:?} is not a valid NATS header name"))
            })?;
            let value = HeaderValue::from_str(value).map_err(|_| {
                CallError::Encode(format!("the value of header {name} contains a line break"))
            })?;
            map.append(name, value);
        }
        let call_id = crate::ids::new_call_id();
        let key = options
            .idempotency_key
            .clone()
            .unwrap_or_else(|| call_id.clone());
        let msg_id = HeaderValue::from_str(&format!("{}:{key}", descriptor.name))
            .map_err(|_| CallError::Encode("the idempotency key contains a line break".into()))?;
        map.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
        map.insert(headers::CALL_ID_NAME, HeaderValue::from(call_id.as_str()));
        match &context {
            Some(ctx) => headers::propagate(&mut map, ctx),
            None => {
                map.insert(
                    headers::TRACEPARENT_NAME,
                    headers::TraceParent::new_root().to_header_value(),
                );
            }
        }
        let js = async_nats::jetstream::new(connection.nats().clone());
        let mut created = false;
        loop {
            let result = match js
                .publish_with_headers(descriptor.subject, map.clone(), payload.clone())
                .await
            {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => return Ok(()),
                Err(e) if !created && matches!(e.kind(), PublishErrorKind::StreamNotFound) => {
                    ensure_async_stream(&js, service)
                        .await
                        .map_err(|e| CallError::Nats(e.to_string()))?;
                    created = true;
                }
                Err(_) if !connection.is_connected() => return Err(CallError::Disconnected),
                Err(e) if matches!(e.kind(), PublishErrorKind::TimedOut) => {
                    return Err(CallError::Timeout {
                        service,
                        method: descriptor.name,
                        after: std::time::Duration::from_secs(5),
                    })
                }
                Err(e) => {
                    return Err(CallError::Nats(format!(
                        "publishing {}: {e}",
                        descriptor.subject
                    )))
                }
            }
        }
    }
}
