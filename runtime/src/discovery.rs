//! Discovery: the NATS micro protocol (ADR-32, `io.nats.micro.v1`), answered by the runtime
//! itself, so `nats micro ls|info|stats` and every NATS micro client see natsgen services.
//!
//! The runtime does not use async-nats' `service` module: that one puts every endpoint in queue
//! group `q` and sends error replies with empty bodies, where natsgen uses queue group
//! `<service>` and `{"error": ...}` bodies.
//!
//! # Instances
//!
//! Every service a [`Host`](crate::Host) serves is one *instance* with its own id: 32 lower-case
//! hex digits, new at every start (e.g. `4f0c9a1e0d3b4c8f9a7e6b5d4c3b2a19`). Two services in one
//! host are two instances with two ids.
//!
//! # Subjects
//!
//! Each instance subscribes, without a queue group (every instance answers), to
//!
//! | verb | subjects |
//! |---|---|
//! | `PING` | `$SRV.PING`, `$SRV.PING.<service>`, `$SRV.PING.<service>.<id>` |
//! | `INFO` | `$SRV.INFO`, `$SRV.INFO.<service>`, `$SRV.INFO.<service>.<id>` |
//! | `STATS` | `$SRV.STATS`, `$SRV.STATS.<service>`, `$SRV.STATS.<service>.<id>` |
//!
//! and answers each request that has a reply subject with one JSON message (the request body is
//! ignored). A bare subject is answered by every instance of every service, so a caller collects
//! replies for a while (what `nats micro ls` does) instead of taking the first.
//!
//! The responders start once the service's endpoints are subscribed, and a graceful shutdown
//! stops them after in-flight handlers finished, just before the connection is drained: an
//! instance is listed exactly while it takes work.
//!
//! # `PING` → `io.nats.micro.v1.ping_response`
//!
//! ```json
//! {"type": "io.nats.micro.v1.ping_response", "name": "order_service",
//!  "id": "4f0c9a1e0d3b4c8f9a7e6b5d4c3b2a19", "version": "1.0.0",
//!  "metadata": {"natsgen_version": "0.1.0", "package": "ecommerce"}}
//! ```
//!
//! `version` is the schema's service version, `0.0.0` when it gives none. The service metadata is
//! always an object with [`META_PACKAGE`] (the schema package) and [`META_NATSGEN_VERSION`] (the
//! version of this runtime crate).
//!
//! # `INFO` → `io.nats.micro.v1.info_response`
//!
//! The ping fields plus `description` (the schema's, `""` when it gives none) and `endpoints`:
//! one per RPC method, async method and event handler, in schema order:
//!
//! ```json
//! {"type": "io.nats.micro.v1.info_response", "name": "order_service", "id": "...",
//!  "version": "1.0.0", "metadata": {...}, "description": "Creates orders and takes payments.",
//!  "endpoints": [
//!    {"name": "process_payment", "subject": "order_service.rpc.process_payment",
//!     "queue_group": "order_service",
//!     "metadata": {"kind": "rpc", "timeout_ms": "10000",
//!                  "errors": "PaymentDeclined,InsufficientFunds",
//!                  "params_schema": "{\"type\":\"object\",...}",
//!                  "result_schema": "{...}"}}]}
//! ```
//!
//! | endpoint kind | `subject` | `queue_group` | core subscription behind it |
//! |---|---|---|---|
//! | RPC method | `<service>.rpc.<method>` | `<service>` | yes: call it with a request |
//! | async method | `<service>.async.<method>` | `<service>` | no: captured by the stream `ASYNC_<service>` |
//! | event handler, shared | the topic or wildcard pattern | `<service>_<handler>` | durable: no (a JetStream consumer); best effort: yes, in that queue group |
//! | event handler, broadcast | the topic or wildcard pattern | `""` | durable: no (an ephemeral consumer per instance); best effort: yes, no queue group |
//! | timer, `scope: service` | `<service>.async.<timer>` | `<service>` | no: its ticks are captured by the stream `ASYNC_<service>` |
//! | timer, `scope: instance` | `""` | `""` | no: each instance ticks by itself, nothing goes over the wire |
//!
//! Endpoint metadata (all values are strings, as the protocol requires):
//!
//! | key | present for | value |
//! |---|---|---|
//! | [`META_KIND`] | all | `rpc`, `async`, `event` or `timer` |
//! | [`META_PARAMS_SCHEMA`] | all | JSON Schema of the request body (the params object; for an event handler, the event payload), as a JSON text |
//! | [`META_RESULT_SCHEMA`] | all | JSON Schema of the `result` of a success reply (`{"type":"null"}` for handlers without one), as a JSON text |
//! | [`META_TIMEOUT_MS`] | rpc | the method's default timeout in milliseconds |
//! | [`META_ERRORS`] | rpc, async, when declared | the declared error kinds, comma-separated, in schema order |
//! | [`META_STREAM`] | async, timers with `scope: service`; durable events | `ASYNC_<service>`; `EVENTS_<package>` (see below) |
//! | [`META_CONSUMER`] | async, timers with `scope: service`; durable shared events | `<service>`; `<service>_<handler>` (durable consumers) |
//! | [`META_MODE`] | events | `shared` or `broadcast` |
//! | [`META_DELIVERY`] | events | `durable` or `best_effort` |
//! | [`META_MAX_ATTEMPTS`], [`META_BACKOFF_MS`] | async; durable events; timers with `scope: service` | the retry policy |
//! | [`META_EVERY_MS`] | timers | the period in milliseconds |
//! | [`META_SCOPE`] | timers | `service` or `instance` |
//!
//! For a durable event handler, [`META_STREAM`] names the stream its consumer reads: the stream
//! that captures its topic or pattern, as the server reports at start (for a topic declared in an
//! imported package, that package's `EVENTS_<package>`); `EVENTS_<package>` of the service's own
//! package when the server cannot tell.
//!
//! # `STATS` → `io.nats.micro.v1.stats_response`
//!
//! The ping fields plus `started` (RFC 3339, UTC, when the instance started) and one entry per
//! endpoint, in the same order as `INFO`:
//!
//! ```json
//! {"type": "io.nats.micro.v1.stats_response", "name": "order_service", "id": "...",
//!  "version": "1.0.0", "metadata": {...}, "started": "2025-01-31T12:00:00.123456789Z",
//!  "endpoints": [
//!    {"name": "process_payment", "subject": "order_service.rpc.process_payment",
//!     "queue_group": "order_service", "num_requests": 10, "num_errors": 2,
//!     "last_error": "422:PaymentDeclined: limit", "processing_time": 1830000,
//!     "average_processing_time": 183000}]}
//! ```
//!
//! Times are integers in nanoseconds; `last_error` is `""` when there was none. What is counted
//! is described in the runtime's stats module: every answered RPC request (success or error reply
//! of any code, `busy` included) and, for async methods and event handlers, every processing
//! attempt. An RPC request without a reply subject is not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::stream::SelectAll;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::service::{Delivery, DeliveryMode, EndpointDescriptor, EndpointKind, ServiceDescriptor};
use crate::stats::ServiceStats;
use crate::streams::{
    async_consumer_name, async_stream_name, event_consumer_name, event_stream_name,
};
use crate::Error;

/// The subject prefix of the micro protocol.
pub const API_PREFIX: &str = "$SRV";
/// `type` of a `PING` response.
pub const PING_RESPONSE_TYPE: &str = "io.nats.micro.v1.ping_response";
/// `type` of an `INFO` response.
pub const INFO_RESPONSE_TYPE: &str = "io.nats.micro.v1.info_response";
/// `type` of a `STATS` response.
pub const STATS_RESPONSE_TYPE: &str = "io.nats.micro.v1.stats_response";
/// The version a service without one reports.
pub const DEFAULT_VERSION: &str = "0.0.0";

/// Service metadata: the schema package the service is declared in.
pub const META_PACKAGE: &str = "package";
/// Service metadata: the version of the natsgen runtime serving it.
pub const META_NATSGEN_VERSION: &str = "natsgen_version";

/// Endpoint metadata: `rpc`, `async` or `event`.
pub const META_KIND: &str = "kind";
/// Endpoint metadata: the JSON Schema of the params (or the event payload), as JSON text.
pub const META_PARAMS_SCHEMA: &str = "params_schema";
/// Endpoint metadata: the JSON Schema of the result, as JSON text.
pub const META_RESULT_SCHEMA: &str = "result_schema";
/// Endpoint metadata (rpc): the default timeout in milliseconds.
pub const META_TIMEOUT_MS: &str = "timeout_ms";
/// Endpoint metadata: the declared error kinds, comma-separated.
pub const META_ERRORS: &str = "errors";
/// Endpoint metadata (async, durable events): the JetStream stream the messages are stored in.
pub const META_STREAM: &str = "stream";
/// Endpoint metadata (async, durable shared events): the durable JetStream consumer.
pub const META_CONSUMER: &str = "consumer";
/// Endpoint metadata (events): `shared` or `broadcast`.
pub const META_MODE: &str = "mode";
/// Endpoint metadata (events): `durable` or `best_effort`.
pub const META_DELIVERY: &str = "delivery";
/// Endpoint metadata (async, durable events): attempts in all.
pub const META_MAX_ATTEMPTS: &str = "max_attempts";
/// Endpoint metadata (async, durable events): the delay before a retry, in milliseconds.
pub const META_BACKOFF_MS: &str = "backoff_ms";
/// Endpoint metadata of a timer: its period in milliseconds.
pub const META_EVERY_MS: &str = "every_ms";
/// Endpoint metadata of a timer: `service` (one instance runs each tick) or `instance`.
pub const META_SCOPE: &str = "scope";

/// How long a stopping responder may take to unsubscribe.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

const VERBS: [Verb; 3] = [Verb::Ping, Verb::Info, Verb::Stats];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    fn token(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
        }
    }

    /// The verb of a `$SRV.<VERB>[.<name>[.<id>]]` subject.
    fn of_subject(subject: &str) -> Option<Verb> {
        let rest = subject.strip_prefix(API_PREFIX)?.strip_prefix('.')?;
        let token = rest.split('.').next()?;
        VERBS.into_iter().find(|verb| verb.token() == token)
    }
}

/// The subjects an instance answers on: each verb bare, with the service name, and with the name
/// and the instance id.
pub(crate) fn subjects(name: &str, id: &str) -> Vec<String> {
    VERBS
        .iter()
        .flat_map(|verb| {
            let verb = verb.token();
            [
                format!("{API_PREFIX}.{verb}"),
                format!("{API_PREFIX}.{verb}.{name}"),
                format!("{API_PREFIX}.{verb}.{name}.{id}"),
            ]
        })
        .collect()
}

/// A new instance id: 32 lower-case hex digits.
pub(crate) fn new_instance_id() -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut buffer)
        .to_owned()
}

#[derive(Serialize)]
struct PingResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct InfoResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
    description: &'a str,
    endpoints: &'a [EndpointInfo],
}

#[derive(Serialize)]
struct EndpointInfo {
    name: &'static str,
    subject: &'static str,
    queue_group: String,
    metadata: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct StatsResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: &'a BTreeMap<String, String>,
    started: &'a str,
    endpoints: Vec<EndpointStatsEntry<'a>>,
}

#[derive(Serialize)]
struct EndpointStatsEntry<'a> {
    name: &'static str,
    subject: &'static str,
    queue_group: &'a str,
    num_requests: u64,
    num_errors: u64,
    last_error: String,
    processing_time: u64,
    average_processing_time: u64,
}

/// What one instance answers with; PING and INFO never change, so they are encoded once.
struct Answers {
    descriptor: &'static ServiceDescriptor,
    id: String,
    version: &'static str,
    metadata: BTreeMap<String, String>,
    endpoints: Vec<EndpointInfo>,
    stats: Arc<ServiceStats>,
    ping: Bytes,
    info: Bytes,
}

impl Answers {
    /// `event_streams`: the stream each durable event handler reads, indexed like the
    /// endpoints, where known.
    fn new(
        descriptor: &'static ServiceDescriptor,
        id: String,
        stats: Arc<ServiceStats>,
        event_streams: &[Option<String>],
    ) -> Result<Self, Error> {
        let version = if descriptor.version.is_empty() {
            DEFAULT_VERSION
        } else {
            descriptor.version
        };
        let metadata = service_metadata(descriptor);
        let endpoints: Vec<EndpointInfo> = descriptor
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, endpoint)| EndpointInfo {
                name: endpoint.name,
                subject: endpoint.subject,
                queue_group: queue_group(descriptor, endpoint),
                metadata: endpoint_metadata(
                    descriptor,
                    endpoint,
                    event_streams.get(index).and_then(Option::as_deref),
                ),
            })
            .collect();
        let ping = encode(
            "the $SRV.PING response",
            &PingResponse {
                kind: PING_RESPONSE_TYPE,
                name: descriptor.name,
                id: &id,
                version,
                metadata: &metadata,
            },
        )?;
        let info = encode(
            "the $SRV.INFO response",
            &InfoResponse {
                kind: INFO_RESPONSE_TYPE,
                name: descriptor.name,
                id: &id,
                version,
                metadata: &metadata,
                description: descriptor.description,
                endpoints: &endpoints,
            },
        )?;
        Ok(Answers {
            descriptor,
            id,
            version,
            metadata,
            endpoints,
            stats,
            ping,
            info,
        })
    }

    fn stats(&self) -> Result<Bytes, Error> {
        let endpoints = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(index, info)| {
                let snapshot = self
                    .stats
                    .endpoint(index)
                    .map(|stats| stats.snapshot())
                    .unwrap_or_default();
                EndpointStatsEntry {
                    name: info.name,
                    subject: info.subject,
                    queue_group: &info.queue_group,
                    num_requests: snapshot.num_requests,
                    num_errors: snapshot.num_errors,
                    last_error: snapshot.last_error,
                    processing_time: snapshot.processing_time,
                    average_processing_time: snapshot.average_processing_time,
                }
            })
            .collect();
        encode(
            "the $SRV.STATS response",
            &StatsResponse {
                kind: STATS_RESPONSE_TYPE,
                name: self.descriptor.name,
                id: &self.id,
                version: self.version,
                metadata: &self.metadata,
                started: self.stats.started(),
                endpoints,
            },
        )
    }

    fn answer(&self, verb: Verb) -> Result<Bytes, Error> {
        match verb {
            Verb::Ping => Ok(self.ping.clone()),
            Verb::Info => Ok(self.info.clone()),
            Verb::Stats => self.stats(),
        }
    }
}

fn encode(what: &'static str, value: &impl Serialize) -> Result<Bytes, Error> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|error| Error::Encode {
            what,
            reason: error.to_string(),
        })
}

fn service_metadata(descriptor: &ServiceDescriptor) -> BTreeMap<String, String> {
    BTreeMap::from([
        (META_PACKAGE.to_owned(), descriptor.package.to_owned()),
        (
            META_NATSGEN_VERSION.to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ])
}

/// The queue group an endpoint reports: the service for RPC and async methods,
/// `<service>_<handler>` for shared event handlers, none for broadcast ones.
fn queue_group(descriptor: &ServiceDescriptor, endpoint: &EndpointDescriptor) -> String {
    match (endpoint.kind, endpoint.mode) {
        (EndpointKind::Rpc | EndpointKind::Async, _)
        | (EndpointKind::Timer, DeliveryMode::Shared) => descriptor.name.to_owned(),
        (EndpointKind::Event, DeliveryMode::Shared) => {
            event_consumer_name(descriptor.name, endpoint.name)
        }
        (EndpointKind::Event | EndpointKind::Timer, DeliveryMode::Broadcast) => String::new(),
    }
}

fn endpoint_metadata(
    descriptor: &ServiceDescriptor,
    endpoint: &EndpointDescriptor,
    event_stream: Option<&str>,
) -> BTreeMap<String, String> {
    let mut metadata = BTreeMap::new();
    let mut put = |key: &str, value: String| {
        metadata.insert(key.to_owned(), value);
    };
    put(META_PARAMS_SCHEMA, endpoint.params_schema.to_owned());
    put(META_RESULT_SCHEMA, endpoint.result_schema.to_owned());
    if !endpoint.errors.is_empty() {
        put(META_ERRORS, endpoint.errors.join(","));
    }
    let retry = |put: &mut dyn FnMut(&str, String)| {
        put(META_MAX_ATTEMPTS, endpoint.retry.max_attempts.to_string());
        put(META_BACKOFF_MS, endpoint.retry.backoff_ms.to_string());
    };
    match endpoint.kind {
        EndpointKind::Rpc => {
            put(META_KIND, "rpc".to_owned());
            put(META_TIMEOUT_MS, endpoint.timeout_ms.to_string());
        }
        EndpointKind::Async => {
            put(META_KIND, "async".to_owned());
            put(META_STREAM, async_stream_name(descriptor.name));
            put(META_CONSUMER, async_consumer_name(descriptor.name));
            retry(&mut put);
        }
        EndpointKind::Event => {
            put(META_KIND, "event".to_owned());
            let mode = match endpoint.mode {
                DeliveryMode::Shared => "shared",
                DeliveryMode::Broadcast => "broadcast",
            };
            put(META_MODE, mode.to_owned());
            match endpoint.delivery {
                Delivery::Durable => {
                    put(META_DELIVERY, "durable".to_owned());
                    let stream = match event_stream {
                        Some(stream) => stream.to_owned(),
                        None => event_stream_name(descriptor.package),
                    };
                    put(META_STREAM, stream);
                    if endpoint.mode == DeliveryMode::Shared {
                        put(
                            META_CONSUMER,
                            event_consumer_name(descriptor.name, endpoint.name),
                        );
                    }
                    retry(&mut put);
                }
                Delivery::BestEffort => put(META_DELIVERY, "best_effort".to_owned()),
            }
        }
        EndpointKind::Timer => {
            put(META_KIND, "timer".to_owned());
            put(
                META_EVERY_MS,
                endpoint.period_ms().unwrap_or_default().to_string(),
            );
            if endpoint.mode == DeliveryMode::Shared {
                put(META_SCOPE, "service".to_owned());
                put(META_STREAM, async_stream_name(descriptor.name));
                put(META_CONSUMER, async_consumer_name(descriptor.name));
                retry(&mut put);
            } else {
                put(META_SCOPE, "instance".to_owned());
            }
        }
    }
    metadata
}

/// The `$SRV` responder of one running service instance. Dropping it stops answering too, but
/// without waiting for the unsubscriptions.
#[derive(Debug)]
pub(crate) struct Responder {
    id: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Responder {
    /// Subscribes to the `$SRV` subjects of `descriptor` as a new instance and answers from a
    /// task of its own. The caller flushes the connection to have the server confirm the
    /// subscriptions.
    pub(crate) async fn start(
        client: &Client,
        descriptor: &'static ServiceDescriptor,
        stats: Arc<ServiceStats>,
    ) -> Result<Responder, Error> {
        let id = new_instance_id();
        let event_streams = resolve_event_streams(client, descriptor).await;
        let answers = Answers::new(descriptor, id.clone(), stats, &event_streams)?;
        let mut subscribers = SelectAll::new();
        for subject in subjects(descriptor.name, &id) {
            let subscriber =
                client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|source| Error::Subscribe {
                        subject: subject.clone(),
                        source,
                    })?;
            subscribers.push(subscriber);
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(respond(client.clone(), answers, subscribers, stopped));
        Ok(Responder { id, stop, task })
    }

    /// Stops answering: unsubscribes every `$SRV` subject and waits (a few seconds at most) for
    /// that to be sent. Flush the connection afterwards to be sure the server has processed it.
    pub(crate) async fn stop(self) {
        let Responder { id, stop, mut task } = self;
        let _ = stop.send(());
        if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
            tracing::warn!(
                instance = id,
                "the discovery responder did not stop in time"
            );
            task.abort();
        }
    }
}

/// Asks the server which stream captures each durable event handler's topic (the one its
/// consumer reads, created by the host just before); `None` where it cannot tell.
async fn resolve_event_streams(
    client: &Client,
    descriptor: &ServiceDescriptor,
) -> Vec<Option<String>> {
    let durable_event = |endpoint: &EndpointDescriptor| {
        endpoint.kind == EndpointKind::Event && endpoint.delivery == Delivery::Durable
    };
    let mut streams = vec![None; descriptor.endpoints.len()];
    if !descriptor.endpoints.iter().any(durable_event) {
        return streams;
    }
    let js = async_nats::jetstream::new(client.clone());
    for (index, endpoint) in descriptor.endpoints.iter().enumerate() {
        if !durable_event(endpoint) {
            continue;
        }
        match js.stream_by_subject(endpoint.subject).await {
            Ok(stream) => streams[index] = Some(stream),
            Err(error) => tracing::debug!(
                service = descriptor.name,
                handler = endpoint.name,
                %error,
                "cannot tell which stream captures the handler's topic"
            ),
        }
    }
    streams
}

async fn respond(
    client: Client,
    answers: Answers,
    mut subscribers: SelectAll<Subscriber>,
    mut stop: oneshot::Receiver<()>,
) {
    let service = answers.descriptor.name;
    loop {
        let message = tokio::select! {
            biased;
            // A stop, or the handle dropped.
            _ = &mut stop => break,
            message = subscribers.next() => message,
        };
        let Some(message) = message else { break };
        let Some(reply) = message.reply else { continue };
        let Some(verb) = Verb::of_subject(message.subject.as_str()) else {
            continue;
        };
        let body = match answers.answer(verb) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(service, %error, "cannot answer a discovery request");
                continue;
            }
        };
        if let Err(error) = client.publish(reply, body).await {
            tracing::debug!(service, %error, "failed to answer a discovery request");
        }
    }
    for subscriber in subscribers.iter_mut() {
        if let Err(error) = subscriber.unsubscribe().await {
            tracing::debug!(service, %error, "failed to unsubscribe from $SRV");
        }
    }
    tracing::debug!(service, instance = answers.id, "discovery stopped");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::service::RetryPolicy;
    use serde_json::Value;

    const RETRY: RetryPolicy = RetryPolicy {
        max_attempts: 5,
        backoff_ms: 2000,
    };

    static ENDPOINTS: [EndpointDescriptor; 5] = [
        EndpointDescriptor {
            errors: &["Nope", "Never"],
            ..endpoint_const("call", EndpointKind::Rpc, "svc.rpc.call")
        },
        endpoint_const("later", EndpointKind::Async, "svc.async.later"),
        endpoint_const("on_created", EndpointKind::Event, "orders.created"),
        EndpointDescriptor {
            mode: DeliveryMode::Broadcast,
            ..endpoint_const("watch", EndpointKind::Event, "orders.*")
        },
        EndpointDescriptor {
            delivery: Delivery::BestEffort,
            ..endpoint_const("peek", EndpointKind::Event, "orders.>")
        },
    ];

    const fn endpoint_const(
        name: &'static str,
        kind: EndpointKind,
        subject: &'static str,
    ) -> EndpointDescriptor {
        EndpointDescriptor {
            name,
            kind,
            subject,
            timeout_ms: 2500,
            retry: RETRY,
            mode: DeliveryMode::Shared,
            delivery: Delivery::Durable,
            params_schema: r#"{"type":"object"}"#,
            result_schema: r#"{"type":"string"}"#,
            errors: &[],
        }
    }

    static DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
        name: "svc",
        package: "pkg",
        version: "",
        description: "A service.",
        topics: &[],
        endpoints: &ENDPOINTS,
    };

    fn json(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn verbs_are_read_from_subjects() {
        assert_eq!(Verb::of_subject("$SRV.PING"), Some(Verb::Ping));
        assert_eq!(Verb::of_subject("$SRV.INFO.svc"), Some(Verb::Info));
        assert_eq!(Verb::of_subject("$SRV.STATS.svc.abc"), Some(Verb::Stats));
        assert_eq!(Verb::of_subject("$SRV.SCHEMA.svc"), None);
        assert_eq!(Verb::of_subject("$SRVX.PING"), None);
        let all = subjects("svc", "abc");
        assert_eq!(all.len(), 9);
        assert!(all.contains(&"$SRV.STATS.svc.abc".to_owned()));
    }

    #[test]
    fn instance_ids_are_unique_hex() {
        let a = new_instance_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_instance_id());
    }

    #[test]
    fn answers_have_the_micro_shapes() {
        let stats = Arc::new(ServiceStats::new(&DESCRIPTOR));
        stats.record(
            0,
            Duration::from_micros(4),
            Some(&crate::ServiceError::new("Nope", 422, "no")),
        );
        stats.record(0, Duration::from_micros(2), None);
        // The server said which stream captures `on_created`; `watch` falls back.
        let streams = [None, None, Some("EVENTS_common".to_owned())];
        let answers = Answers::new(&DESCRIPTOR, "abc".into(), stats, &streams).unwrap();

        let ping = json(&answers.answer(Verb::Ping).unwrap());
        assert_eq!(ping["type"], PING_RESPONSE_TYPE);
        assert_eq!(ping["name"], "svc");
        assert_eq!(ping["id"], "abc");
        assert_eq!(ping["version"], "0.0.0");
        assert_eq!(ping["metadata"]["package"], "pkg");

        let info = json(&answers.answer(Verb::Info).unwrap());
        assert_eq!(info["type"], INFO_RESPONSE_TYPE);
        assert_eq!(info["description"], "A service.");
        let endpoints = info["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 5);
        let call = &endpoints[0];
        assert_eq!(call["subject"], "svc.rpc.call");
        assert_eq!(call["queue_group"], "svc");
        assert_eq!(call["metadata"]["kind"], "rpc");
        assert_eq!(call["metadata"]["errors"], "Nope,Never");
        assert_eq!(call["metadata"]["timeout_ms"], "2500");
        let later = &endpoints[1]["metadata"];
        assert_eq!(later["kind"], "async");
        assert_eq!(later["stream"], "ASYNC_svc");
        assert_eq!(later["consumer"], "svc");
        assert_eq!(later["max_attempts"], "5");
        assert_eq!(endpoints[1]["queue_group"], "svc");
        let created = &endpoints[2];
        assert_eq!(created["queue_group"], "svc_on_created");
        assert_eq!(created["metadata"]["stream"], "EVENTS_common");
        assert_eq!(endpoints[3]["metadata"]["stream"], "EVENTS_pkg");
        assert_eq!(created["metadata"]["consumer"], "svc_on_created");
        assert_eq!(created["metadata"]["mode"], "shared");
        assert_eq!(created["metadata"]["delivery"], "durable");
        let watch = &endpoints[3];
        assert_eq!(watch["queue_group"], "");
        assert_eq!(watch["metadata"]["mode"], "broadcast");
        assert!(watch["metadata"].get("consumer").is_none());
        let peek = &endpoints[4]["metadata"];
        assert_eq!(peek["delivery"], "best_effort");
        assert!(peek.get("stream").is_none());
        assert!(peek.get("max_attempts").is_none());
        for endpoint in endpoints {
            let params = endpoint["metadata"]["params_schema"].as_str().unwrap();
            serde_json::from_str::<Value>(params).unwrap();
        }

        let stats = json(&answers.answer(Verb::Stats).unwrap());
        assert_eq!(stats["type"], STATS_RESPONSE_TYPE);
        assert!(stats["started"].as_str().unwrap().ends_with('Z'));
        let first = &stats["endpoints"][0];
        assert_eq!(first["num_requests"], 2);
        assert_eq!(first["num_errors"], 1);
        assert_eq!(first["last_error"], "422:Nope: no");
        assert_eq!(first["processing_time"], 6000);
        assert_eq!(first["average_processing_time"], 3000);
        assert_eq!(stats["endpoints"][1]["last_error"], "");
        assert_eq!(stats["endpoints"][3]["queue_group"], "");
    }

    /// async-nats' own micro types (what a Rust micro client decodes with) accept the answers.
    #[test]
    fn async_nats_decodes_the_answers() {
        let stats = Arc::new(ServiceStats::new(&DESCRIPTOR));
        stats.record(
            0,
            Duration::from_micros(4),
            Some(&crate::ServiceError::internal("boom")),
        );
        let answers = Answers::new(&DESCRIPTOR, "abc".into(), stats, &[]).unwrap();
        let ping: async_nats::service::PingResponse =
            serde_json::from_slice(&answers.answer(Verb::Ping).unwrap()).unwrap();
        assert_eq!((ping.name.as_str(), ping.id.as_str()), ("svc", "abc"));
        let info: async_nats::service::Info =
            serde_json::from_slice(&answers.answer(Verb::Info).unwrap()).unwrap();
        assert_eq!(info.endpoints.len(), 5);
        assert_eq!(info.endpoints[0].queue_group, "svc");
        let decoded: async_nats::service::Stats =
            serde_json::from_slice(&answers.answer(Verb::Stats).unwrap()).unwrap();
        let first = &decoded.endpoints[0];
        assert_eq!((first.requests, first.errors), (1, 1));
        assert_eq!(first.processing_time, Duration::from_micros(4));
        let last = first.last_error.as_ref().unwrap();
        assert_eq!((last.code, last.status.as_str()), (500, "internal"));
        assert!(decoded.endpoints[1].last_error.is_none());
    }
}
