//! Publishing events: the generated `Events` type of each package is built on [`EventPublisher`].
//!
//! An event is published on its topic (the NATS subject) as plain JSON, with a JetStream publish
//! (PubAck awaited) into the package's stream `EVENTS_<package>` and `Nats-Msg-Id` = a UUIDv7
//! event id, so a publisher's retry after a lost PubAck is stored once. When no stream captures
//! the topic, the publisher creates (or extends) `EVENTS_<package>` with the package's declared
//! topics and publishes again; see [`crate::streams`].

use std::fmt;
use std::future::IntoFuture;
use std::str::FromStr;
use std::time::Duration;

use async_nats::header::HeaderValue;
use async_nats::{HeaderMap, HeaderName};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::connection::Backend;
use crate::headers;
use crate::service::BoxFuture;
use crate::streams::{ensure_event_stream, store, StoreError};
use crate::{Connection, Context, Error, ServiceError};

/// The events a package declares (generated, in a `static`).
#[derive(Debug, Clone, Copy)]
pub struct EventsDescriptor {
    /// The package name; its stream is `EVENTS_<package>`.
    pub package: &'static str,
    /// The declared topics, in declaration order.
    pub topics: &'static [&'static str],
}

/// A package's generated `Events` type: what [`Context::emit`] builds.
pub trait EventSet: Sized {
    /// The package's events.
    fn descriptor() -> &'static EventsDescriptor;
    /// The package's publisher over a prepared [`EventPublisher`].
    fn from_publisher(publisher: EventPublisher) -> Self;
}

/// Publishes the events of one package.
#[derive(Debug, Clone)]
pub struct EventPublisher {
    backend: Backend,
    descriptor: &'static EventsDescriptor,
    context: Option<Context>,
}

impl EventPublisher {
    /// A publisher for the package `descriptor` describes.
    pub fn new(connection: &Connection, descriptor: &'static EventsDescriptor) -> Self {
        EventPublisher {
            backend: Backend::Nats(connection.clone()),
            descriptor,
            context: None,
        }
    }

    /// A publisher over NATS or into an in-process test harness.
    pub(crate) fn on(backend: &Backend, descriptor: &'static EventsDescriptor) -> Self {
        EventPublisher {
            backend: backend.clone(),
            descriptor,
            context: None,
        }
    }

    /// Publishes topic number `topic` with an encoded payload; awaiting the result sends it.
    pub fn publish(&self, topic: usize, payload: Result<Bytes, Error>) -> Publish {
        Publish {
            publisher: self.clone(),
            topic,
            payload,
            event_id: None,
            headers: Vec::new(),
            timeout: None,
            #[cfg(feature = "otel")]
            otel: None,
        }
    }
}

/// How long a publish waits for its PubAck (stream creation included) unless told otherwise:
/// the default timeout of calls.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = crate::client::DEFAULT_TIMEOUT;

/// One event, not yet published: set options, then `.await` it.
#[must_use = "an event is not published until it is awaited"]
pub struct Publish {
    publisher: EventPublisher,
    topic: usize,
    payload: Result<Bytes, Error>,
    event_id: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    /// The publish's span, once it is sent.
    #[cfg(feature = "otel")]
    otel: Option<opentelemetry::Context>,
}

impl Publish {
    /// Sets the event id (`Nats-Msg-Id`); publishing the same id twice within the duplicate
    /// window stores the event once. Default: a new UUIDv7.
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.event_id = Some(id.into());
        self
    }

    /// Adds a NATS header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long to wait for the server to store the event (default
    /// [`DEFAULT_PUBLISH_TIMEOUT`], 10 s; never past the deadline of the [`Context`] given with
    /// [`Publish::context`]). A publish that is not confirmed in time fails with
    /// [`Error::Publish`]; the event may still have been stored, and publishing it again with the
    /// same [`event_id`](Publish::event_id) within the duplicate window stores it once.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Carries the call id chain and trace of the call `ctx` belongs to.
    pub fn context(mut self, ctx: &Context) -> Self {
        self.publisher.context = Some(ctx.clone());
        self
    }
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("package", &self.publisher.descriptor.package)
            .field("topic", &self.publisher.descriptor.topics.get(self.topic))
            .field("event_id", &self.event_id)
            .finish()
    }
}

impl IntoFuture for Publish {
    type Output = Result<(), Error>;
    type IntoFuture = BoxFuture<Result<(), Error>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl Publish {
    /// Publishes within the timeout: with the server unreachable, a publish never waits longer
    /// (the JetStream context's own timeout is far longer).
    #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
    async fn send(mut self) -> Result<(), Error> {
        let mut timeout = self.timeout.unwrap_or(DEFAULT_PUBLISH_TIMEOUT);
        if let Some(remaining) = self.publisher.context.as_ref().and_then(Context::remaining) {
            timeout = timeout.min(remaining);
        }
        let subject = self
            .publisher
            .descriptor
            .topics
            .get(self.topic)
            .copied()
            .unwrap_or_default();
        #[cfg(feature = "otel")]
        let otel = {
            let otel = crate::otel::start_call(
                crate::otel::Outgoing::Publish {
                    service: self.publisher.descriptor.package,
                    method: subject,
                    subject,
                },
                self.publisher.context.as_ref(),
            );
            self.otel = Some(otel.clone());
            otel
        };
        // The completion hooks, when the connection has any.
        let completions = match &self.publisher.backend {
            Backend::Nats(connection)
                if !connection.client_options().hooks().completions.is_empty() =>
            {
                Some((connection.clone(), self.publisher.context.clone()))
            }
            _ => None,
        };
        let package = self.publisher.descriptor.package;
        let started = std::time::Instant::now();
        let result = self.send_within(timeout, subject).await;
        if let Some((connection, context)) = completions {
            connection
                .client_options()
                .hooks()
                .complete(&crate::middleware::CompletedCall {
                    service: package,
                    method: subject,
                    kind: crate::service::EndpointKind::Event,
                    context: context.as_ref(),
                    outcome: if result.is_ok() { "ok" } else { "error" },
                    elapsed: started.elapsed(),
                });
        }
        #[cfg(feature = "otel")]
        crate::otel::finish_call(
            &otel,
            result
                .as_ref()
                .err()
                .map(|error| ("error", error.to_string())),
        );
        result
    }

    async fn send_within(self, timeout: Duration, subject: &'static str) -> Result<(), Error> {
        match tokio::time::timeout(timeout, self.send_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(Error::Publish {
                subject: subject.to_owned(),
                reason: format!(
                    "the server did not confirm the event within {timeout:?}; it may or may not \
                     be stored (publishing it again with the same event id stores it once)"
                ),
            }),
        }
    }

    async fn send_unbounded(self) -> Result<(), Error> {
        let Publish {
            publisher,
            topic,
            payload,
            event_id,
            headers: mut extra,
            timeout: _,
            #[cfg(feature = "otel")]
            otel,
        } = self;
        let descriptor = publisher.descriptor;
        let Some(subject) = descriptor.topics.get(topic).copied() else {
            return Err(Error::Publish {
                subject: format!("<topic #{topic} of {}>", descriptor.package),
                reason:
                    "no such topic; the generated code and its descriptor disagree, regenerate it"
                        .into(),
            });
        };
        let payload = payload?;
        let connection = match &publisher.backend {
            Backend::Nats(connection) => connection,
            Backend::InProcess(hub) => {
                let event_id = event_id.unwrap_or_else(crate::ids::new_call_id);
                let map = event_headers(
                    &extra,
                    &event_id,
                    publisher.context.as_ref(),
                    subject,
                    &HeaderMap::new(),
                )?;
                hub.publish_event(descriptor, subject, map, payload);
                return Ok(());
            }
        };
        connection
            .client_options()
            .hooks()
            .apply(
                descriptor.package,
                subject,
                crate::service::EndpointKind::Event,
                publisher.context.as_ref(),
                &mut extra,
            )
            .map_err(|error| Error::Publish {
                subject: subject.to_owned(),
                reason: error.to_string(),
            })?;
        if !connection.is_connected() {
            return Err(Error::Publish {
                subject: subject.to_owned(),
                reason: "not connected to NATS".into(),
            });
        }
        let event_id = event_id.unwrap_or_else(crate::ids::new_call_id);
        let context = publisher.context.as_ref();
        // The propagator's fields (with the `otel` feature), written over natsgen's own.
        #[cfg_attr(not(feature = "otel"), allow(unused_mut))]
        let mut traced = HeaderMap::new();
        #[cfg(feature = "otel")]
        if let Some(otel) = &otel {
            crate::otel::inject(otel, &extra, &mut traced);
        }
        let map = event_headers(&extra, &event_id, context, subject, &traced)?;
        crate::streams::leaves_dead_letter_room(payload.len(), &map, connection.max_payload())
            .map_err(|reason| Error::Publish {
                subject: subject.to_owned(),
                reason,
            })?;
        let js = connection.async_call_jetstream();
        // Once per connection and package: make sure the stream captures every declared topic
        // before the first publish, so no publish lands on a topic no stream captures (where a
        // core subscriber would take it in the stream's place and no PubAck would come).
        // Boxed: a cold path, kept out of every publish's future.
        let ensure_stream = || {
            Box::pin(ensure_event_stream(
                js,
                connection.stream_settings(),
                descriptor.package,
                descriptor.topics,
            ))
        };
        if !connection.event_stream_known(descriptor) {
            ensure_stream().await?;
            connection.remember_event_stream(descriptor);
        }
        // The headers move into the first publish; the one retry builds them again.
        let Err(error) = store(connection.nats(), subject, map, payload.clone()).await else {
            return Ok(());
        };
        // No stream captures the topic (it was deleted since it was made sure of): create the
        // package's stream and publish again (the event id makes the retry safe).
        if !matches!(error, StoreError::NoStream) {
            return Err(Error::Publish {
                subject: subject.to_owned(),
                reason: error.to_string(),
            });
        }
        ensure_stream().await?;
        let map = event_headers(&extra, &event_id, context, subject, &traced)?;
        store(connection.nats(), subject, map, payload)
            .await
            .map_err(|error| Error::Publish {
                subject: subject.to_owned(),
                reason: error.to_string(),
            })
    }
}

/// The headers of an event: the publisher's own, its id, the caller chain and trace of the call
/// it is published in, and the fields `traced` the OpenTelemetry propagator wrote (they win).
/// A `traceparent` of the publisher's own is sent instead of natsgen's.
fn event_headers(
    extra: &[(String, String)],
    event_id: &str,
    context: Option<&Context>,
    subject: &str,
    traced: &HeaderMap,
) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in extra {
        let name = HeaderName::from_str(name).map_err(|_| Error::Publish {
            subject: subject.to_owned(),
            reason: format!("{name:?} is not a valid header name"),
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| Error::Publish {
            subject: subject.to_owned(),
            reason: format!("the value of header {name} contains a line break"),
        })?;
        map.append(name, value);
    }
    let event_id = HeaderValue::from_str(event_id).map_err(|_| Error::Publish {
        subject: subject.to_owned(),
        reason: "the event id contains a line break".into(),
    })?;
    map.insert(async_nats::header::NATS_MESSAGE_ID, event_id);
    if let Some(ctx) = context {
        headers::propagate(&mut map, ctx, !headers::sets_trace_parent(extra));
    }
    for (name, values) in traced.iter() {
        if let Some(value) = values.first() {
            map.insert(name.clone(), value.clone());
        }
    }
    Ok(map)
}

/// Encodes an event payload as JSON. A non-finite float is an error.
pub fn encode_event<T: Serialize + ?Sized>(event: &T) -> Result<Bytes, Error> {
    crate::json::encode_value(event, "the event")
}

/// Decodes an event payload; failure is `bad_request`.
pub fn decode_event<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    crate::json::decode(payload).map_err(|error| {
        ServiceError::undecodable(format!(
            "the event does not decode into its payload type: {error}"
        ))
    })
}

/// The error for an event on a subject a wildcard handler's enum does not know.
pub fn unknown_topic(subject: &str) -> ServiceError {
    ServiceError::undecodable(format!("no declared event matches subject {subject}"))
}
