//! Serving async methods and event handlers: JetStream pull consumers (and, for best-effort
//! events, core NATS subscriptions) feeding the same bounded handler slots as RPC.
//!
//! Stream, consumer and dead-letter names, retention and headers are listed in
//! [`crate::streams`].
//!
//! # Pulling: no prefetch beyond free slots
//!
//! Each consumer — one per service for all its async methods, one per durable event handler —
//! is pulled by one loop per host, over a private inbox. A service's handler slots
//! (`max_concurrency`) are shared by its RPC calls, async calls and events, and a loop never asks
//! for more messages than there are free slots, so excess work waits in the stream, not in
//! memory, where it could outlive its ack wait:
//!
//! - While the consumer has a backlog (the `pending` count of the last delivery), the loop
//!   waits until half the slots (or as many as the backlog, if fewer) are free, reserves every
//!   free slot up to the backlog (at most 256), and asks for exactly that many messages with
//!   `no_wait`; the unused reservations are released as soon as the server answers. So a busy
//!   consumer is pulled in large batches, and the next pull goes out while the other half of the
//!   previous batch is still being handled.
//! - While it is idle, the loop waits until a slot is free, then long-polls for one message
//!   (the pull expires after 10 s and is renewed) *without* holding a slot, so an idle consumer
//!   never takes capacity from RPC. Should the slot be taken meanwhile, that one message waits for
//!   the next free slot, kept alive with in-progress acks.
//!
//! A pull lost to a server restart is renewed 5 s after its expiry; a consumer that disappeared
//! (no responders, `409 Consumer Deleted`) is recreated, stream included, once a second until that
//! succeeds.
//!
//! # Handling one message
//!
//! The pull loop starts the handler of a first delivery itself (on a host without middleware):
//! a handler that finishes on its first poll gets no task and no timer, and its ack's
//! confirmation goes to the loop's confirmer, one task that awaits the confirmations of all the
//! loop's messages at once. A handler still pending, or one that failed, continues in a task of
//! its own; so does every redelivery, timer tick and unknown method, and every message of a host
//! with middleware. The attempt number is JetStream's delivery count.
//!
//! 1. Async calls: the method (or `scope: service` timer, whose ticks are async calls of the
//!    service to itself, see the `timer` module) is found by the subject. An unknown method is
//!    dead-lettered at once (`unknown_method`). A timer's tick that arrives while the same timer's
//!    previous tick still runs on this instance is acked without running (`skipped`).
//! 2. The attempt number is JetStream's delivery count less the deliveries a shutdown returned
//!    (noted in the KV bucket `NATSGEN_STATE`, read on redeliveries only).
//!    A message past the endpoint's `max_attempts` — its last allowed attempt did not complete
//!    because its worker crashed (or dead-lettering its failure failed) — is dead-lettered without
//!    running (`abandoned`).
//! 3. The handler runs with a [`Context`] built from the headers: call id, caller chain and
//!    `traceparent` as for RPC, no deadline (async calls and events have none), the message
//!    subject, [`Context::attempt`] and [`Context::message_id`]. While it runs, an in-progress
//!    ack goes out every third of the ack wait, so a slow handler never loses its message.
//! 4. Success: the handler slot is released, then the message is acked and the server's
//!    confirmation awaited (AckSync); the consumer's `max_ack_pending` bounds the confirmations
//!    in flight.
//!    A body the runtime cannot decode into the params or the event payload (or a topic a
//!    wildcard handler's enum does not know): dead-lettered at once (`undecodable`), no retry.
//!    Any error the handler returns (a `bad_request` of its own included), or a panic: if
//!    attempts remain, a nak with the schema's backoff as its delay; after the last one,
//!    dead-lettered (`failed`).
//! 5. Dead-lettering publishes the message with its error to `natsgen.dlq.<service>.<endpoint>`
//!    and awaits the PubAck, then acks it, logging at error level. If that publish fails, the
//!    message is nak'd with the backoff instead and dead-lettered when it comes back.
//!
//! Every message is handled in a `natsgen.async`, `natsgen.timer` or `natsgen.event` tracing span
//! with the service, method (or handler), call id, attempt, outcome (`ok`, `retry`,
//! `dead_lettered`, `abandoned`, `nak_failed`, `ack_failed`, `skipped`) and duration, and counted
//! in the endpoint's stats.
//!
//! # Shutdown
//!
//! On [`HostHandle::shutdown`](crate::HostHandle::shutdown) a loop stops pulling: it drains its
//! inbox subscription and naks (without delay) whatever arrived but has not started. Running
//! handlers finish within the grace period and are acked or nak'd as usual; a handler still
//! running when it ends is cancelled and its message nak'd, so another instance takes it over at
//! once. Such returned deliveries are noted first, so they do not count as attempts.
//!
//! # The max-deliver backstop
//!
//! Each consumer's `max_deliver` is its endpoints' largest `max_attempts` plus
//! [`streams::REDELIVERY_ALLOWANCE`], so no message is delivered forever. A message that reaches
//! it without being handled (every delivery lost to crashes, or one the client library cannot
//! read at all) is dead-lettered by a path that does not need the worker to see it: the host
//! listens for the server's max-deliveries advisory of its consumers (one instance per service,
//! through a queue group), reads the message through the stream's message-get API (which returns
//! the header block as data; unreadable header lines are left out), and stores its letter
//! (`undeliverable`); a work-queue call is then deleted from its stream.
//!
//! # Best-effort events
//!
//! `delivery: best_effort` handlers subscribe with core NATS to their topic or pattern, in queue
//! group `<service>_<handler>` (`mode: broadcast`: no queue group). An event waits for a free
//! handler slot in the service's bounded queue (`max_queue`, shared with RPC); beyond it, it is
//! dropped with a warning and counted as `busy` in the stats, so memory stays bounded. Failures
//! are logged, not retried; events published while no instance runs are lost.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::header::{HeaderValue, NATS_MESSAGE_ID};
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{ConsumerInfoErrorKind, PublishErrorKind};
use async_nats::jetstream::{self, stream, AckKind};
use async_nats::{HeaderMap, HeaderName, Message, StatusCode, Subject, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::connection::Backend;
use crate::headers;
use crate::host::{panicked, poll_once, poll_started, resume, run_handler, ServiceRuntime};
use crate::service::{Delivery, DeliveryMode, EndpointDescriptor, EndpointKind};
use crate::streams::{self, dlq_subject};
use crate::{Context, Error, ServiceError};

/// How long a pull for one message on an idle consumer waits before it is renewed.
const IDLE_PULL_EXPIRES: Duration = Duration::from_secs(10);
/// How long past its expiry an unanswered pull is given before it counts as lost.
const PULL_GRACE: Duration = Duration::from_secs(5);
/// How long the handlers of one batch may run in the pull loop (their first polls) before the
/// rest of the batch gets tasks of their own.
const INLINE_BUDGET: Duration = Duration::from_millis(2);
/// How long to wait for the server to confirm an ack or store a dead letter.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed pull before the next one.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long a stopping watcher waits for the advisories the naks of a shutdown may cause.
const SHUTDOWN_ADVISORY_WINDOW: Duration = Duration::from_millis(300);
/// The most messages one pull asks for.
const MAX_BATCH: usize = 256;
/// The shortest ack wait accepted (in-progress acks go out every third of it).
const MIN_ACK_WAIT: Duration = Duration::from_millis(300);

const ACK: &[u8] = b"+ACK";
const PROGRESS: &[u8] = b"+WPI";

const DLQ_REASON: HeaderName = HeaderName::from_static(streams::DLQ_REASON);
const DLQ_SUBJECT: HeaderName = HeaderName::from_static(streams::DLQ_SUBJECT);
const DLQ_STREAM: HeaderName = HeaderName::from_static(streams::DLQ_STREAM_HEADER);
const DLQ_SEQUENCE: HeaderName = HeaderName::from_static(streams::DLQ_SEQUENCE);
const DLQ_ATTEMPTS: HeaderName = HeaderName::from_static(streams::DLQ_ATTEMPTS);
const DLQ_ERROR_KIND: HeaderName = HeaderName::from_static(streams::DLQ_ERROR_KIND);
const DLQ_ERROR_CODE: HeaderName = HeaderName::from_static(streams::DLQ_ERROR_CODE);
const DLQ_ERROR_MESSAGE: HeaderName = HeaderName::from_static(streams::DLQ_ERROR_MESSAGE);
const DLQ_MSG_ID: HeaderName = HeaderName::from_static(streams::DLQ_MSG_ID);
const DLQ_TRUNCATED: HeaderName = HeaderName::from_static(streams::DLQ_TRUNCATED);
const DLQ_HEADERS_DROPPED: HeaderName = HeaderName::from_static(streams::DLQ_HEADERS_DROPPED);

/// What every worker of a host shares.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The consumers' ack wait.
    pub(crate) ack_wait: Duration,
    /// Held by every loop and handler task; the host waits until all are dropped.
    pub(crate) guard: mpsc::Sender<()>,
    /// Turns `true` when the shutdown grace period is over: running handlers are cancelled and
    /// their messages nak'd.
    pub(crate) abandon: watch::Receiver<bool>,
}

/// A running consumer or subscription loop.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// Sending (or dropping) it stops the loop.
    pub(crate) stop: oneshot::Sender<()>,
    pub(crate) task: JoinHandle<()>,
    /// A pull consumer's max-deliveries watcher: it outlives the loop and the handlers, since
    /// the naks of a shutdown can be what makes a message reach its `max_deliver`.
    pub(crate) watcher: Option<Watcher>,
}

/// A max-deliveries watcher (see [`watch_max_deliveries`]).
#[derive(Debug)]
pub(crate) struct Watcher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Stops the watchers, each once it has handled the advisories already received.
    pub(crate) async fn stop_all(watchers: Vec<Watcher>) {
        let mut tasks = Vec::with_capacity(watchers.len());
        for watcher in watchers {
            let _ = watcher.stop.send(());
            tasks.push(watcher.task);
        }
        for task in tasks {
            if tokio::time::timeout(CONFIRM_TIMEOUT * 2, task)
                .await
                .is_err()
            {
                tracing::warn!("a max-deliveries watcher did not stop in time");
            }
        }
    }
}

/// Starts the async consumer (when the service has async methods) and one consumer or
/// subscription per event handler of `runtime`'s service. Streams and consumers exist when it
/// returns.
pub(crate) async fn serve(
    runtime: &Arc<ServiceRuntime>,
    settings: &Settings,
) -> Result<Vec<Spawned>, Error> {
    let descriptor = runtime.descriptor;
    let mut spawned = Vec::new();
    if descriptor.endpoints.iter().any(is_async_work) {
        spawned.push(start_pull(runtime, settings, Source::Async).await?);
    }
    for (index, endpoint) in descriptor.endpoints.iter().enumerate() {
        if endpoint.kind != EndpointKind::Event {
            continue;
        }
        let started = match (endpoint.delivery, endpoint.mode) {
            (Delivery::BestEffort, _) => {
                start_best_effort(runtime, settings, index, endpoint).await?
            }
            (Delivery::Durable, DeliveryMode::Shared) => {
                start_pull(runtime, settings, Source::Shared { index, endpoint }).await?
            }
            (Delivery::Durable, DeliveryMode::Broadcast) => {
                start_pull(runtime, settings, Source::Broadcast { index, endpoint }).await?
            }
        };
        spawned.push(started);
    }
    Ok(spawned)
}

/// Whether the endpoint's messages travel through `ASYNC_<service>`: an async method, or a timer
/// with `scope: service` (whose ticks are async calls of the service to itself).
fn is_async_work(endpoint: &EndpointDescriptor) -> bool {
    match endpoint.kind {
        EndpointKind::Async => true,
        EndpointKind::Timer => endpoint.mode == DeliveryMode::Shared,
        EndpointKind::Rpc | EndpointKind::Event => false,
    }
}

/// Which messages a pull loop consumes.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Every async method of the service, from `ASYNC_<service>`.
    Async,
    /// A durable handler shared by the service's instances.
    Shared {
        index: usize,
        endpoint: &'static EndpointDescriptor,
    },
    /// A durable handler every instance runs (an ephemeral consumer per instance).
    Broadcast {
        index: usize,
        endpoint: &'static EndpointDescriptor,
    },
}

/// One pull consumer's loop and the handler tasks it spawned share this.
struct Lane {
    runtime: Arc<ServiceRuntime>,
    source: Source,
    js: jetstream::Context,
    ack_wait: Duration,
    /// The dead-letter subject of every endpoint, indexed like the descriptor's endpoints.
    dlq_subjects: Vec<Subject>,
    abandon: watch::Receiver<bool>,
    /// The consumer's current name (a broadcast handler's ephemeral consumer gets a new one when
    /// it is recreated); max-deliveries advisories of other consumers are not this lane's.
    consumer_name: std::sync::Mutex<String>,
    /// Deliveries returned by shutdowns, per message (see [`Lane::record_return`]).
    returns: jetstream::kv::Store,
    /// Set once this lane returned a delivery at shutdown: its watcher then waits a moment for
    /// the advisory such a nak may cause.
    returned_any: std::sync::atomic::AtomicBool,
}

impl Lane {
    /// The endpoint a message on `subject` is for; `None` for an unknown async method.
    fn route(&self, subject: &str) -> Option<(usize, &'static EndpointDescriptor)> {
        match self.source {
            Source::Async => self
                .runtime
                .descriptor
                .endpoints
                .iter()
                .enumerate()
                .find(|(_, endpoint)| is_async_work(endpoint) && endpoint.subject == subject),
            Source::Shared { index, endpoint } | Source::Broadcast { index, endpoint } => {
                Some((index, endpoint))
            }
        }
    }

    /// Notes that this delivery of a message was returned by a shutdown (not started, or
    /// cancelled after the grace period), so it does not count as an attempt. Before the nak: if
    /// noting fails, the delivery counts as an attempt after all (logged).
    async fn record_return(&self, info: &AckInfo<'_>) {
        self.returned_any
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let returned = self.returns_of(info).await + 1;
        let put = self
            .returns
            .put(returns_key(info), Bytes::from(returned.to_string()));
        if !matches!(tokio::time::timeout(CONFIRM_TIMEOUT, put).await, Ok(Ok(_))) {
            tracing::warn!(
                sequence = info.stream_sequence,
                "could not note a delivery returned at shutdown; it counts as an attempt"
            );
        }
    }

    /// How many deliveries of a message shutdowns returned (0 when unknown).
    async fn returns_of(&self, info: &AckInfo<'_>) -> u32 {
        let get = self.returns.get(returns_key(info));
        match tokio::time::timeout(CONFIRM_TIMEOUT, get).await {
            Ok(Ok(Some(value))) => std::str::from_utf8(&value)
                .ok()
                .and_then(|text| text.parse().ok())
                .unwrap_or(0),
            Ok(Ok(None)) => 0,
            _ => {
                tracing::warn!(
                    sequence = info.stream_sequence,
                    "could not read the deliveries returned at shutdown; counting none"
                );
                0
            }
        }
    }

    /// Drops the note of a message handled for good.
    async fn forget_returns(&self, info: &AckInfo<'_>) {
        let purge = self.returns.purge(returns_key(info));
        if !matches!(
            tokio::time::timeout(CONFIRM_TIMEOUT, purge).await,
            Ok(Ok(()))
        ) {
            tracing::debug!("could not drop a returns note; it expires by itself");
        }
    }

    fn settings(&self) -> &streams::StreamSettings {
        self.runtime.connection.stream_settings()
    }

    /// The consumer's `max_deliver`: its endpoints' largest `max_attempts` plus
    /// [`streams::REDELIVERY_ALLOWANCE`], a finite backstop so no message is delivered forever.
    fn max_deliver(&self) -> i64 {
        let endpoints = self.runtime.descriptor.endpoints.iter();
        let attempts = match self.source {
            Source::Async => endpoints
                .filter(|endpoint| is_async_work(endpoint))
                .map(|endpoint| endpoint.retry.max_attempts)
                .max()
                .unwrap_or(1),
            Source::Shared { endpoint, .. } | Source::Broadcast { endpoint, .. } => {
                endpoint.retry.max_attempts
            }
        };
        i64::from(attempts.max(1)) + i64::from(streams::REDELIVERY_ALLOWANCE)
    }

    /// Makes sure the stream and the consumer exist (creating or updating them), and returns the
    /// consumer.
    async fn setup(&self) -> Result<PullConsumer, Error> {
        let descriptor = self.runtime.descriptor;
        let service = descriptor.name;
        let common = pull::Config {
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver(),
            ..Default::default()
        };
        if !matches!(self.source, Source::Async) && !descriptor.topics.is_empty() {
            // The package's stream captures all its declared topics, not only those handled
            // here, so a publish of any of them finds a stream.
            streams::ensure_event_stream(
                &self.js,
                self.settings(),
                descriptor.package,
                descriptor.topics,
            )
            .await?;
        }
        let (stream, config) = match self.source {
            Source::Async => {
                let stream =
                    streams::ensure_async_stream(&self.js, self.settings(), service).await?;
                let config = pull::Config {
                    durable_name: Some(streams::async_consumer_name(service)),
                    description: Some(format!("natsgen: async calls of {service}")),
                    deliver_policy: DeliverPolicy::All,
                    filter_subject: format!("{service}.async.*"),
                    ..common
                };
                (stream, config)
            }
            Source::Shared { endpoint, .. } => {
                let stream = streams::ensure_handler_stream(
                    &self.js,
                    self.settings(),
                    descriptor.package,
                    endpoint.subject,
                )
                .await?;
                let config = pull::Config {
                    durable_name: Some(streams::event_consumer_name(service, endpoint.name)),
                    description: Some(format!(
                        "natsgen: {service}.{} handles {}",
                        endpoint.name, endpoint.subject
                    )),
                    deliver_policy: DeliverPolicy::New,
                    filter_subject: endpoint.subject.to_owned(),
                    ..common
                };
                (stream, config)
            }
            Source::Broadcast { endpoint, .. } => {
                let stream = streams::ensure_handler_stream(
                    &self.js,
                    self.settings(),
                    descriptor.package,
                    endpoint.subject,
                )
                .await?;
                let config = pull::Config {
                    description: Some(format!(
                        "natsgen: {service}.{} (broadcast, one instance) handles {}",
                        endpoint.name, endpoint.subject
                    )),
                    deliver_policy: DeliverPolicy::New,
                    filter_subject: endpoint.subject.to_owned(),
                    inactive_threshold: streams::EPHEMERAL_INACTIVE_THRESHOLD,
                    ..common
                };
                (stream, config)
            }
        };
        // Created up front: a core subscriber on `natsgen.dlq.>` (a `nats sub` watching the
        // dead letters) would otherwise answer the first dead letter's publish in its place, so
        // the stream would never be created.
        streams::ensure_dlq_stream(&self.js, self.settings()).await?;
        let consumer = ensure_consumer(&stream, config).await?;
        *self
            .consumer_name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            consumer.cached_info().name.clone();
        Ok(consumer)
    }

    fn is_current_consumer(&self, name: &str) -> bool {
        *self
            .consumer_name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == name
    }

    /// Sends an ack of kind `kind` without waiting for the server.
    async fn send_ack(&self, reply: &Subject, kind: &'static [u8]) -> bool {
        let client = self.runtime.connection.nats();
        match client
            .publish(reply.clone(), Bytes::from_static(kind))
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "failed to send an ack");
                false
            }
        }
    }

    /// Naks a message so it is redelivered after `delay` (at once for `None`).
    async fn nak(&self, reply: &Subject, delay: Option<Duration>) -> bool {
        let body = match delay {
            None | Some(Duration::ZERO) => Bytes::from_static(b"-NAK"),
            Some(delay) => Bytes::from(AckKind::Nak(Some(delay))),
        };
        match self
            .runtime
            .connection
            .nats()
            .publish(reply.clone(), body)
            .await
        {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "failed to nak; the message is redelivered after the ack wait");
                false
            }
        }
    }

    /// Counts a handled message in the stats, and ends its span with the outcome.
    fn handled(
        &self,
        index: usize,
        received: Instant,
        (outcome, error): (Outcome, Option<&ServiceError>),
        span: &tracing::Span,
    ) {
        let elapsed = received.elapsed();
        self.runtime.stats.record(index, elapsed, error);
        span.record("outcome", outcome.as_str());
        span.record("duration_us", elapsed.as_micros() as u64);
        span.in_scope(|| tracing::debug!(outcome = outcome.as_str(), "handled"));
    }

    /// [`Lane::ack`] as the outcome of a handled message: `ok`, or `ack_failed`.
    async fn confirmed_ack(&self, reply: &Subject) -> Outcome {
        if self.ack(reply).await {
            Outcome::Ok
        } else {
            Outcome::AckFailed
        }
    }

    /// Acks a message and waits for the server to confirm it (AckSync), so a confirmed call is
    /// not delivered again.
    async fn ack(&self, reply: &Subject) -> bool {
        // One timer, this one (it also bounds handing the request to the connection): none of
        // async-nats's own.
        let request = self.runtime.connection.nats().send_request(
            reply.clone(),
            async_nats::Request::new()
                .payload(Bytes::from_static(ACK))
                .timeout(None),
        );
        match tokio::time::timeout(CONFIRM_TIMEOUT, request).await {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "the server did not confirm the ack; the message may be delivered again");
                false
            }
            Err(_) => {
                tracing::warn!("the server did not confirm the ack in time; the message may be delivered again");
                false
            }
        }
    }
}

/// Creates the consumer `config` describes, or brings an existing one of that name to it
/// (filter, ack wait, retries) while keeping where it is in the stream.
async fn ensure_consumer(
    stream: &stream::Stream,
    config: pull::Config,
) -> Result<PullConsumer, Error> {
    let stream_name = stream.cached_info().config.name.clone();
    let consumer_error = |name: &str, reason: String| Error::Consumer {
        stream: stream_name.clone(),
        consumer: name.to_owned(),
        reason,
    };
    let Some(name) = config.durable_name.clone() else {
        return stream
            .create_consumer(config)
            .await
            .map_err(|e| consumer_error("(ephemeral)", e.to_string()));
    };
    let config = match stream.consumer_info(&name).await {
        Ok(info) => {
            let existing = info.config;
            if existing.ack_policy != AckPolicy::Explicit {
                return Err(consumer_error(
                    &name,
                    format!(
                        "it exists with ack policy {:?}; natsgen needs explicit acks",
                        existing.ack_policy
                    ),
                ));
            }
            let up_to_date = existing.filter_subject == config.filter_subject
                && existing.filter_subjects.is_empty()
                && existing.ack_wait == config.ack_wait
                && existing.max_deliver == config.max_deliver
                && existing.backoff.is_empty()
                && existing.deliver_subject.is_none();
            if up_to_date {
                return stream
                    .get_consumer(&name)
                    .await
                    .map_err(|e| consumer_error(&name, e.to_string()));
            }
            if existing.deliver_subject.is_some() {
                return Err(consumer_error(
                    &name,
                    "it exists as a push consumer; natsgen pulls".to_owned(),
                ));
            }
            tracing::info!(
                stream = %stream_name,
                consumer = %name,
                filter = %config.filter_subject,
                "updating the consumer to this service's settings"
            );
            pull::Config {
                deliver_policy: existing.deliver_policy,
                max_ack_pending: existing.max_ack_pending,
                max_waiting: existing.max_waiting,
                ..config
            }
        }
        Err(error) if error.kind() == ConsumerInfoErrorKind::NotFound => config,
        Err(error) => return Err(consumer_error(&name, error.to_string())),
    };
    stream
        .create_consumer(config)
        .await
        .map_err(|e| consumer_error(&name, e.to_string()))
}

async fn start_pull(
    runtime: &Arc<ServiceRuntime>,
    settings: &Settings,
    source: Source,
) -> Result<Spawned, Error> {
    let descriptor = runtime.descriptor;
    let client = runtime.connection.nats();
    let js = jetstream::new(client.clone());
    let returns = streams::ensure_state_bucket(&js, runtime.connection.stream_settings()).await?;
    let lane = Arc::new(Lane {
        runtime: Arc::clone(runtime),
        source,
        js,
        ack_wait: settings.ack_wait.max(MIN_ACK_WAIT),
        dlq_subjects: descriptor
            .endpoints
            .iter()
            .map(|endpoint| Subject::from(dlq_subject(descriptor.name, endpoint.name)))
            .collect(),
        abandon: settings.abandon.clone(),
        consumer_name: std::sync::Mutex::new(String::new()),
        returns,
        returned_any: std::sync::atomic::AtomicBool::new(false),
    });
    let consumer = lane.setup().await?;
    let advisories = subscribe_max_deliveries(&lane, &consumer).await?;
    let inbox = Subject::from(client.new_inbox());
    let subscriber = client
        .subscribe(inbox.clone())
        .await
        .map_err(|source| Error::Subscribe {
            subject: inbox.to_string(),
            source,
        })?;
    let info = consumer.cached_info();
    tracing::info!(
        service = descriptor.name,
        stream = %info.stream_name,
        consumer = %info.name,
        filter = %info.config.filter_subject,
        "consuming"
    );
    let (stop, stopped) = oneshot::channel();
    let (watcher_stop, watcher_stopped) = oneshot::channel();
    let watcher = Watcher {
        stop: watcher_stop,
        task: tokio::spawn(watch_max_deliveries(
            Arc::clone(&lane),
            advisories,
            watcher_stopped,
        )),
    };
    let guard = settings.guard.clone();
    let task = tokio::spawn(pull_loop(lane, consumer, subscriber, inbox, stopped, guard));
    Ok(Spawned {
        stop,
        task,
        watcher: Some(watcher),
    })
}

/// Subscribes to the server's max-deliveries advisories of the lane's stream (one instance of a
/// service gets each, through a queue group; a broadcast handler's own consumer is its alone).
async fn subscribe_max_deliveries(
    lane: &Lane,
    consumer: &PullConsumer,
) -> Result<Subscriber, Error> {
    let info = consumer.cached_info();
    let subject = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.*",
        info.stream_name
    );
    let client = lane.runtime.connection.nats();
    let subscribed = match lane.source {
        Source::Broadcast { .. } => client.subscribe(subject.clone()).await,
        Source::Async | Source::Shared { .. } => {
            client
                .queue_subscribe(subject.clone(), format!("natsgen_dlq_{}", info.name))
                .await
        }
    };
    subscribed.map_err(|source| Error::Subscribe { subject, source })
}

/// A JetStream max-deliveries advisory: a message of `stream` reached the `max_deliver` of
/// `consumer` without being acked.
#[derive(Debug, serde::Deserialize)]
struct MaxDeliveries {
    stream: String,
    consumer: String,
    stream_seq: u64,
    deliveries: u64,
}

/// Dead-letters the messages that reached their consumer's `max_deliver` backstop, without the
/// worker ever handling them again: their body and headers come from the stream's message-get
/// API, which returns the header block as data, so even a message the client library cannot
/// parse is dead-lettered (`undeliverable`). A work-queue message is then deleted from its
/// stream; an event stays in its stream for its other handlers.
async fn watch_max_deliveries(
    lane: Arc<Lane>,
    mut advisories: Subscriber,
    mut stop: oneshot::Receiver<()>,
) {
    let mut stopping = false;
    loop {
        let advisory = if stopping {
            // What has arrived already, and, after naks at shutdown, what arrives shortly (the
            // server handles acks asynchronously, so their advisories may trail a round trip).
            let window = if lane.returned_any.load(std::sync::atomic::Ordering::Relaxed) {
                SHUTDOWN_ADVISORY_WINDOW
            } else {
                Duration::ZERO
            };
            match tokio::time::timeout(window, advisories.next()).await {
                Ok(advisory) => advisory,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    stopping = true;
                    continue;
                }
                advisory = advisories.next() => advisory,
            }
        };
        let Some(advisory) = advisory else { break };
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&advisory.payload) else {
            tracing::warn!("ignoring a max-deliveries advisory that does not parse");
            continue;
        };
        if !lane.is_current_consumer(&advisory.consumer) {
            continue;
        }
        if let Err(error) = dead_letter_undeliverable(&lane, &advisory).await {
            tracing::error!(
                stream = %advisory.stream,
                consumer = %advisory.consumer,
                sequence = advisory.stream_seq,
                %error,
                "a message reached its max_deliver and could not be dead-lettered; it stays in \
                 its stream"
            );
        }
    }
    let _ = advisories.unsubscribe().await;
}

/// A stored message as the stream's message-get API returns it.
#[derive(Debug, serde::Deserialize)]
struct StoredMessage {
    subject: String,
    #[serde(default)]
    hdrs: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct MessageGetResponse {
    message: Option<StoredMessage>,
    error: Option<serde_json::Value>,
}

async fn dead_letter_undeliverable(lane: &Lane, advisory: &MaxDeliveries) -> Result<(), String> {
    use base64::Engine as _;
    let client = lane.runtime.connection.nats();
    let request = serde_json::json!({ "seq": advisory.stream_seq }).to_string();
    let reply = tokio::time::timeout(
        CONFIRM_TIMEOUT,
        client.request(
            format!("$JS.API.STREAM.MSG.GET.{}", advisory.stream),
            request.into(),
        ),
    )
    .await
    .map_err(|_| format!("no answer to the message get within {CONFIRM_TIMEOUT:?}"))?
    .map_err(|error| error.to_string())?;
    let response: MessageGetResponse =
        serde_json::from_slice(&reply.payload).map_err(|error| error.to_string())?;
    let Some(message) = response.message else {
        // Gone already: acked, dead-lettered and deleted by another path, or expired.
        tracing::debug!(error = ?response.error, "the undeliverable message is gone");
        return Ok(());
    };
    let decode = |text: Option<&str>| {
        text.map_or(Ok(Vec::new()), |text| {
            base64::engine::general_purpose::STANDARD.decode(text)
        })
    };
    let payload = Bytes::from(decode(message.data.as_deref()).map_err(|e| e.to_string())?);
    let original = lenient_headers(&decode(message.hdrs.as_deref()).unwrap_or_default());
    let info = AckInfo {
        stream: &advisory.stream,
        consumer: &advisory.consumer,
        delivered: u32::try_from(advisory.deliveries).unwrap_or(u32::MAX),
        stream_sequence: advisory.stream_seq,
        pending: 0,
    };
    let service = lane.runtime.descriptor.name;
    let (index, dlq) = match lane.route(&message.subject) {
        Some((index, _)) => (
            Some(index),
            lane.dlq_subjects
                .get(index)
                .cloned()
                .unwrap_or_else(|| Subject::from(dlq_subject(service, "unknown"))),
        ),
        None => {
            let method = message.subject.rsplit('.').next().unwrap_or_default();
            (None, Subject::from(dlq_subject(service, method)))
        }
    };
    let error = ServiceError::internal(format!(
        "delivered {} times without being handled (the consumer's max_deliver): every attempt \
         was lost, or the message cannot be read by the client library",
        advisory.deliveries
    ));
    let letter = Letter {
        dlq: dlq.clone(),
        subject: &message.subject,
        headers: Some(&original),
        payload,
        info: &info,
        reason: Reason::Undeliverable,
        error: &error,
    };
    let (headers, payload) = letter.into_message(lane.runtime.connection.max_payload());
    publish_dead_letter(lane, dlq.clone(), headers, payload).await?;
    tracing::error!(
        %error,
        reason = Reason::Undeliverable.as_str(),
        dead_letter_subject = %dlq,
        "dead-lettered"
    );
    if let Some(index) = index {
        lane.runtime
            .stats
            .record(index, Duration::ZERO, Some(&error));
    }
    if matches!(lane.source, Source::Async) {
        // A work queue keeps what was never acked; this call is in the dead-letter stream now.
        let request = serde_json::json!({ "seq": advisory.stream_seq }).to_string();
        let deleted = tokio::time::timeout(
            CONFIRM_TIMEOUT,
            client.request(
                format!("$JS.API.STREAM.MSG.DELETE.{}", advisory.stream),
                request.into(),
            ),
        )
        .await;
        if !matches!(deleted, Ok(Ok(_))) {
            tracing::warn!(
                sequence = advisory.stream_seq,
                "could not delete a dead-lettered call from its work queue"
            );
        }
    }
    Ok(())
}

/// The readable lines of a header block (`NATS/1.0` status line first): a line that is not
/// UTF-8, has no `:`, or is not a valid header is skipped.
fn lenient_headers(block: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in block.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            name.trim().parse::<HeaderName>(),
            value.trim().parse::<HeaderValue>(),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// The pull loop of one consumer; see the module docs.
async fn pull_loop(
    lane: Arc<Lane>,
    mut consumer: PullConsumer,
    mut subscriber: Subscriber,
    inbox: Subject,
    mut stop: oneshot::Receiver<()>,
    guard: mpsc::Sender<()>,
) {
    let permits = &lane.runtime.permits;
    let mut backlog: u64 = 0;
    let (confirmations, unconfirmed) = mpsc::unbounded_channel();
    tokio::spawn(confirm_acks(Arc::clone(&lane), unconfirmed));
    'pulling: loop {
        // With a backlog, wait until half the slots (or as many as the backlog, if fewer) are
        // free, so pulls stay large while handlers keep running: the next pull goes out while
        // the other half of the previous batch is still being handled.
        let want = usize::try_from(backlog).unwrap_or(MAX_BATCH).min(MAX_BATCH);
        let threshold = (lane.runtime.max_concurrency / 2).clamp(1, want.max(1));
        let threshold = u32::try_from(threshold).unwrap_or(1);
        let first = tokio::select! {
            biased;
            _ = &mut stop => break 'pulling,
            permit = Arc::clone(permits).acquire_many_owned(threshold) => match permit {
                Ok(permit) => permit,
                Err(_) => break 'pulling,
            },
        };
        let (mut reserved, expires) = if backlog > 0 {
            let mut reserved = first;
            let extra = want
                .saturating_sub(reserved.num_permits())
                .min(permits.available_permits());
            if let Ok(more) = u32::try_from(extra).map_err(|_| ()).and_then(|extra| {
                Arc::clone(permits)
                    .try_acquire_many_owned(extra)
                    .map_err(|_| ())
            }) {
                reserved.merge(more);
            }
            (Some(reserved), None)
        } else {
            // Idle: a slot was free a moment ago; wait for a message without holding it.
            drop(first);
            (None, Some(IDLE_PULL_EXPIRES))
        };
        let batch = reserved
            .as_ref()
            .map_or(1, OwnedSemaphorePermit::num_permits);
        let request = pull::BatchConfig {
            batch,
            expires,
            no_wait: expires.is_none(),
            ..Default::default()
        };
        if let Err(error) = consumer.request_batch(request, inbox.clone()).await {
            tracing::warn!(%error, "failed to request messages; retrying");
            drop(reserved);
            if pause(&mut stop).await {
                break 'pulling;
            }
            continue;
        }

        let give_up = Instant::now() + expires.unwrap_or(Duration::ZERO) + PULL_GRACE;
        let mut outstanding = batch;
        // How long this batch's handlers have run in the loop; past INLINE_BUDGET, the rest of
        // the batch gets tasks, so slow first polls never hold up the messages behind them.
        let mut inline = Duration::ZERO;
        while outstanding > 0 {
            let message = tokio::select! {
                biased;
                _ = &mut stop => break 'pulling,
                // Messages already here come before the give-up timer.
                message = subscriber.next() => message,
                _ = tokio::time::sleep_until(give_up) => {
                    tracing::debug!("a pull went unanswered; renewing it");
                    break;
                }
            };
            let Some(message) = message else {
                tracing::error!("the inbox subscription of a consumer closed; it stops pulling");
                break 'pulling;
            };
            match message.status {
                None | Some(StatusCode::OK) => {
                    outstanding -= 1;
                    let Some(reply) = message.reply.as_ref() else {
                        tracing::warn!(subject = %message.subject, "ignoring a message without an ack subject");
                        continue;
                    };
                    let info = AckInfo::parse(reply.as_str());
                    backlog = info.as_ref().map_or(0, |info| info.pending);
                    let first_delivery = info.is_some_and(|info| info.delivered == 1);
                    let permit = match take_one(&mut reserved) {
                        Some(permit) => permit,
                        None => match wait_for_slot(&lane, reply, &mut stop).await {
                            Some(permit) => permit,
                            None => {
                                if let Some(info) = AckInfo::parse(reply.as_str()) {
                                    lane.record_return(&info).await;
                                }
                                lane.nak(reply, None).await;
                                break 'pulling;
                            }
                        },
                    };
                    if inline < INLINE_BUDGET {
                        let started = Instant::now();
                        let dispatch = dispatch_message(
                            &lane,
                            (message, first_delivery),
                            permit,
                            &guard,
                            &confirmations,
                        );
                        // The handler's own panics are caught where it is polled; this would be
                        // the runtime's own: the message is redelivered after its ack wait.
                        if AssertUnwindSafe(dispatch).catch_unwind().await.is_err() {
                            tracing::error!("handling a message panicked outside its handler");
                        }
                        inline += started.elapsed();
                    } else {
                        tokio::spawn(handle(Arc::clone(&lane), message, permit, guard.clone()));
                    }
                }
                Some(StatusCode::IDLE_HEARTBEAT) => {}
                Some(StatusCode::NOT_FOUND) => {
                    backlog = 0;
                    break;
                }
                Some(StatusCode::TIMEOUT) => break,
                Some(status) => {
                    let consumer_gone = status == StatusCode::NO_RESPONDERS
                        || message
                            .description
                            .as_deref()
                            .is_some_and(|d| d.eq_ignore_ascii_case("consumer deleted"));
                    tracing::warn!(
                        %status,
                        description = message.description.as_deref().unwrap_or(""),
                        "a pull failed"
                    );
                    drop(reserved.take());
                    if consumer_gone {
                        match recover(&lane, &mut stop).await {
                            Some(recovered) => consumer = recovered,
                            None => break 'pulling,
                        }
                    } else if pause(&mut stop).await {
                        break 'pulling;
                    }
                    backlog = 0;
                    break;
                }
            }
        }
    }
    stop_pulling(&lane, subscriber).await;
}

/// The returns bucket's key of a message of a consumer.
fn returns_key(info: &AckInfo<'_>) -> String {
    format!(
        "returns.{}.{}.{}",
        info.stream, info.consumer, info.stream_sequence
    )
}

/// Takes one slot out of a reservation.
fn take_one(reserved: &mut Option<OwnedSemaphorePermit>) -> Option<OwnedSemaphorePermit> {
    match reserved {
        Some(permits) if permits.num_permits() > 1 => permits.split(1),
        _ => reserved.take(),
    }
}

/// Waits for a free slot for a message that arrived without one, keeping the message alive with
/// in-progress acks. `None` when the loop is told to stop meanwhile.
async fn wait_for_slot(
    lane: &Lane,
    reply: &Subject,
    stop: &mut oneshot::Receiver<()>,
) -> Option<OwnedSemaphorePermit> {
    let every = lane.ack_wait / 3;
    let mut acquire = pin!(Arc::clone(&lane.runtime.permits).acquire_owned());
    let mut tick = pin!(tokio::time::sleep(every));
    loop {
        tokio::select! {
            biased;
            _ = &mut *stop => return None,
            permit = &mut acquire => return permit.ok(),
            _ = &mut tick => {
                lane.send_ack(reply, PROGRESS).await;
                tick.as_mut().reset(Instant::now() + every);
            }
        }
    }
}

/// Waits [`RETRY_PAUSE`]; true when told to stop meanwhile.
async fn pause(stop: &mut oneshot::Receiver<()>) -> bool {
    tokio::select! {
        biased;
        _ = stop => true,
        _ = tokio::time::sleep(RETRY_PAUSE) => false,
    }
}

/// Recreates a vanished consumer (and its stream), retrying every [`RETRY_PAUSE`]. `None` when
/// told to stop meanwhile.
async fn recover(lane: &Lane, stop: &mut oneshot::Receiver<()>) -> Option<PullConsumer> {
    loop {
        if pause(stop).await {
            return None;
        }
        match lane.setup().await {
            Ok(consumer) => {
                tracing::info!(
                    consumer = %consumer.cached_info().name,
                    "consumer recreated"
                );
                return Some(consumer);
            }
            Err(error) => {
                tracing::warn!(%error, "the consumer is gone and cannot be recreated yet")
            }
        }
    }
}

/// Stops pulling: drains the inbox and returns what arrived but has not started.
async fn stop_pulling(lane: &Lane, mut subscriber: Subscriber) {
    if let Err(error) = subscriber.drain().await {
        tracing::warn!(%error, "failed to drain a consumer's inbox");
        return;
    }
    let mut returned = 0usize;
    while let Ok(Some(message)) = tokio::time::timeout(CONFIRM_TIMEOUT, subscriber.next()).await {
        if let (None | Some(StatusCode::OK), Some(reply)) = (message.status, &message.reply) {
            if let Some(info) = AckInfo::parse(reply.as_str()) {
                lane.record_return(&info).await;
            }
            if lane.nak(reply, None).await {
                returned += 1;
            }
        }
    }
    tracing::debug!(returned, "stopped pulling");
}

/// The parts of a JetStream ack subject (`$JS.ACK...`) the worker uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AckInfo<'a> {
    stream: &'a str,
    consumer: &'a str,
    /// Deliveries of this message so far, this one included.
    delivered: u32,
    stream_sequence: u64,
    /// Messages the consumer has yet to deliver.
    pending: u64,
}

impl<'a> AckInfo<'a> {
    /// What a message whose ack subject cannot be read is taken for: a first delivery.
    const FIRST: AckInfo<'static> = AckInfo {
        stream: "",
        consumer: "",
        delivered: 1,
        stream_sequence: 0,
        pending: 0,
    };

    /// Parses both ack subject formats of ADR-15: `$JS.ACK.<stream>.<consumer>.<delivered>.
    /// <stream seq>.<consumer seq>.<time>.<pending>` and the newer one with domain and account
    /// hash in front (and a random token, possibly more, at the end).
    fn parse(reply: &'a str) -> Option<Self> {
        let rest = reply.strip_prefix("$JS.ACK.")?;
        let mut tokens = [""; 9];
        let mut count = 0;
        let mut put = |token| {
            if let Some(slot) = tokens.get_mut(count) {
                *slot = token;
            }
            count += 1;
        };
        // Split at the dots byte by byte: an ASCII dot is always a char boundary.
        let mut start = 0;
        for (at, byte) in rest.bytes().enumerate() {
            if byte == b'.' {
                put(rest.get(start..at)?);
                start = at + 1;
            }
        }
        put(rest.get(start..)?);
        let [stream, consumer, delivered, sequence, pending] = match count {
            7 => [tokens[0], tokens[1], tokens[2], tokens[3], tokens[6]],
            9.. => [tokens[2], tokens[3], tokens[4], tokens[5], tokens[8]],
            _ => return None,
        };
        Some(AckInfo {
            stream,
            consumer,
            delivered: u32::try_from(delivered.parse::<u64>().ok()?).unwrap_or(u32::MAX),
            stream_sequence: sequence.parse().ok()?,
            pending: pending.parse().ok()?,
        })
    }
}

/// How a message's handling ended (the span's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Retry,
    DeadLettered,
    Abandoned,
    AckFailed,
    NakFailed,
    /// A timer's tick that arrived while its previous tick still ran on this instance.
    Skipped,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Retry => "retry",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Abandoned => "abandoned",
            Outcome::AckFailed => "ack_failed",
            Outcome::NakFailed => "nak_failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// Why a message is dead-lettered (the `Natsgen-Dlq-Reason` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    Failed,
    Abandoned,
    Undecodable,
    UnknownMethod,
    Undeliverable,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Failed => "failed",
            Reason::Abandoned => "abandoned",
            Reason::Undecodable => "undecodable",
            Reason::UnknownMethod => "unknown_method",
            Reason::Undeliverable => "undeliverable",
        }
    }
}

/// Handles one message from a pull consumer; see the module docs.
async fn handle(
    lane: Arc<Lane>,
    message: Message,
    permit: OwnedSemaphorePermit,
    _guard: mpsc::Sender<()>,
) {
    let mut permit = Some(permit);
    let received = Instant::now();
    let Message {
        subject,
        reply,
        payload,
        headers,
        ..
    } = message;
    // The pull loop only hands over messages with an ack subject.
    let Some(reply) = reply else { return };
    let info = AckInfo::parse(reply.as_str()).unwrap_or_else(|| {
        tracing::warn!(reply = %reply, "cannot read the delivery count of a message; taking it as the first");
        AckInfo::FIRST
    });
    let service = lane.runtime.descriptor.name;

    let Some((index, endpoint)) = lane.route(subject.as_str()) else {
        let method = subject.as_str().rsplit('.').next().unwrap_or_default();
        let span = tracing::error_span!(
            "natsgen.async",
            service,
            method,
            attempt = info.delivered,
            outcome = tracing::field::Empty,
        );
        let unknown = async {
            let error = ServiceError::bad_request(format!(
                "{service} has no async method {method:?}; check the subject, or deploy a \
                 version of the service that has it"
            ));
            let letter = Letter {
                dlq: Subject::from(dlq_subject(service, method)),
                subject: &subject,
                headers: headers.as_ref(),
                payload,
                info: &info,
                reason: Reason::UnknownMethod,
                error: &error,
            };
            let outcome = dead_letter(&lane, &reply, letter, Some(RETRY_PAUSE)).await;
            tracing::Span::current().record("outcome", outcome.as_str());
        }
        .instrument(span);
        // Cold paths are boxed, so they do not grow every message's task.
        Box::pin(unknown).await;
        drop(permit);
        return;
    };

    // Deliveries a shutdown returned (unstarted, or cancelled after the grace period) are not
    // attempts. Looked up on redeliveries only: a first delivery has none.
    let max_attempts = endpoint.retry.max_attempts.max(1);
    let returned = if info.delivered > 1 {
        Box::pin(lane.returns_of(&info)).await
    } else {
        0
    };
    let attempt = info.delivered.saturating_sub(returned).max(1);
    let ctx = Context::from_message(
        Backend::Nats(lane.runtime.connection.clone()),
        service,
        endpoint.name,
        subject,
        headers,
        attempt,
    );
    let span = message_span(&lane, endpoint, &ctx, attempt);
    // A tick of a timer still running on this instance is not run beside it: acked unrun.
    let mut ticking = if endpoint.kind == EndpointKind::Timer {
        match lane.runtime.start_tick(index) {
            Some(ticking) => Some(ticking),
            None => {
                let skipped = async {
                    let outcome = if lane.ack(&reply).await {
                        Outcome::Skipped
                    } else {
                        Outcome::AckFailed
                    };
                    tracing::Span::current().record("outcome", outcome.as_str());
                    tracing::debug!("skipped: the previous tick still runs on this instance");
                }
                .instrument(span);
                Box::pin(skipped).await;
                return;
            }
        }
    } else {
        None
    };
    async {
        let backoff = Duration::from_millis(endpoint.retry.backoff_ms);
        let dlq = lane
            .dlq_subjects
            .get(index)
            .cloned()
            .unwrap_or_else(|| Subject::from(dlq_subject(service, endpoint.name)));
        let parts = LetterParts {
            dlq,
            ctx: &ctx,
            payload: &payload,
            info: &info,
        };

        let (outcome, error) = if attempt > max_attempts {
            let error = ServiceError::internal(format!(
                "attempt {} of {max_attempts} did not complete: its worker crashed mid-call (or \
                 its failure could not be dead-lettered then)",
                attempt - 1
            ));
            let outcome = Box::pin(dead_letter(
                &lane,
                &reply,
                parts.letter(Reason::Abandoned, &error),
                Some(backoff),
            ))
            .await;
            (outcome, Some(error))
        } else {
            match run_with_progress(&lane, index, ctx.clone(), payload.clone(), &reply).await {
                Some(Ok(_)) => {
                    // The handler is done: its slot goes back before the ack's confirmation
                    // is awaited (the consumer's max_ack_pending bounds those in flight).
                    drop(permit.take());
                    drop(ticking.take());
                    (lane.confirmed_ack(&reply).await, None)
                }
                unfinished => {
                    let failure = Failure {
                        lane: &lane,
                        reply: &reply,
                        info: &info,
                        endpoint,
                        attempt,
                        letter: &parts,
                    };
                    Box::pin(failure.settle(unfinished)).await
                }
            }
        };
        drop(permit.take());
        drop(ticking.take());
        if returned > 0 && matches!(outcome, Outcome::Ok | Outcome::DeadLettered) {
            Box::pin(lane.forget_returns(&info)).await;
        }
        lane.handled(
            index,
            received,
            (outcome, error.as_ref()),
            &tracing::Span::current(),
        );
    }
    .instrument(span)
    .await;
}

/// What a dead letter of a delivery is made of, but its reason and error.
struct LetterParts<'a> {
    dlq: Subject,
    ctx: &'a Context,
    payload: &'a Bytes,
    info: &'a AckInfo<'a>,
}

impl LetterParts<'_> {
    fn letter<'e>(&'e self, reason: Reason, error: &'e ServiceError) -> Letter<'e> {
        Letter::of(&self.dlq, self.ctx, self.payload, self.info, reason, error)
    }
}

/// A delivery whose handler failed, or was cancelled at shutdown: what is left to do with it.
struct Failure<'a> {
    lane: &'a Lane,
    reply: &'a Subject,
    info: &'a AckInfo<'a>,
    endpoint: &'static EndpointDescriptor,
    attempt: u32,
    letter: &'a LetterParts<'a>,
}

impl Failure<'_> {
    /// An error: dead-lettered (undecodable, or the last attempt) or nak'd with the backoff.
    /// `None` (cancelled when the shutdown grace period ended): returned for redelivery.
    async fn settle(
        self,
        result: Option<Result<Bytes, ServiceError>>,
    ) -> (Outcome, Option<ServiceError>) {
        let Failure {
            lane,
            reply,
            info,
            endpoint,
            attempt,
            letter,
        } = self;
        let max_attempts = endpoint.retry.max_attempts.max(1);
        let backoff = Duration::from_millis(endpoint.retry.backoff_ms);
        let error = match result {
            Some(Ok(_)) => return (lane.confirmed_ack(reply).await, None),
            Some(Err(error)) => error,
            None => {
                tracing::warn!(
                    "still running when the shutdown grace period ended; cancelled and \
                     returned for redelivery"
                );
                lane.record_return(info).await;
                lane.nak(reply, None).await;
                let error = ServiceError::internal(
                    "cancelled: still running when the shutdown grace period ended",
                );
                return (Outcome::Abandoned, Some(error));
            }
        };
        let outcome = if error.is_undecodable() {
            let letter = letter.letter(Reason::Undecodable, &error);
            dead_letter(lane, reply, letter, Some(backoff)).await
        } else if attempt >= max_attempts {
            let letter = letter.letter(Reason::Failed, &error);
            dead_letter(lane, reply, letter, Some(backoff)).await
        } else {
            tracing::warn!(
                %error,
                retry_in_ms = endpoint.retry.backoff_ms,
                "attempt {attempt} of {max_attempts} failed; retrying"
            );
            if lane.nak(reply, Some(backoff)).await {
                Outcome::Retry
            } else {
                Outcome::NakFailed
            }
        };
        (outcome, Some(error))
    }
}

/// The span a message is handled in: `natsgen.async`, `natsgen.timer` or `natsgen.event`.
fn message_span(
    lane: &Lane,
    endpoint: &'static EndpointDescriptor,
    ctx: &Context,
    attempt: u32,
) -> tracing::Span {
    let service = lane.runtime.descriptor.name;
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                $name,
                service,
                method = endpoint.name,
                call_id = %ctx.call_id(),
                attempt,
                outcome = tracing::field::Empty,
                duration_us = tracing::field::Empty,
            )
        };
    }
    match lane.source {
        Source::Async if endpoint.kind == EndpointKind::Timer => span!("natsgen.timer"),
        Source::Async => span!("natsgen.async"),
        Source::Shared { .. } | Source::Broadcast { .. } => span!("natsgen.event"),
    }
}

/// Handles a message the pull loop received. The common case — a first delivery of an async
/// call or event, on a host without middleware — starts the handler here, in the pull loop: a
/// handler that finishes on its first poll gets no task and no timer, and its ack's confirmation
/// goes to the lane's confirmer ([`confirm_acks`]). A handler still pending, or one that failed,
/// continues in a task ([`finish_started`]); redeliveries, timer ticks, unknown methods and hosts
/// with middleware get a task from the start ([`handle`]). `first_delivery`: the delivery count
/// the pull loop read from the ack subject is 1.
async fn dispatch_message(
    lane: &Arc<Lane>,
    (message, first_delivery): (Message, bool),
    permit: OwnedSemaphorePermit,
    guard: &mpsc::Sender<()>,
    confirmations: &mpsc::UnboundedSender<Confirmation>,
) {
    let route = lane
        .route(message.subject.as_str())
        .filter(|(_, endpoint)| endpoint.kind != EndpointKind::Timer);
    let (Some((index, endpoint)), true, true) =
        (route, first_delivery, lane.runtime.middleware.is_empty())
    else {
        tokio::spawn(handle(Arc::clone(lane), message, permit, guard.clone()));
        return;
    };
    let received = Instant::now();
    let Message {
        subject,
        reply,
        payload,
        headers,
        ..
    } = message;
    let Some(reply) = reply else { return };
    let ctx = Context::from_message(
        Backend::Nats(lane.runtime.connection.clone()),
        lane.runtime.descriptor.name,
        endpoint.name,
        subject,
        headers,
        1,
    );
    let span = message_span(lane, endpoint, &ctx, 1);
    let first = match crate::host::start_handler(
        &*lane.runtime.service,
        index,
        ctx.clone(),
        payload.clone(),
    ) {
        Ok(mut handler) => match poll_started(&mut handler, &span, &ctx).await {
            Poll::Ready(result) => Started::Finished(result),
            Poll::Pending => Started::Running(handler),
        },
        Err(error) => Started::Finished(Err(error)),
    };
    if let Started::Finished(Ok(_)) = first {
        #[cfg(feature = "otel")]
        crate::otel::finish(ctx.otel_context(), None);
        // The slot goes back before the ack's confirmation is awaited.
        drop(permit);
        let confirmation = Confirmation {
            reply,
            index,
            received,
            span,
            _guard: guard.clone(),
        };
        // The confirmer lives as long as this pull loop, which holds the sender; should it have
        // ended anyway, the confirmation gets a task of its own.
        if let Err(unsent) = confirmations.send(confirmation) {
            let lane = Arc::clone(lane);
            tokio::spawn(async move { confirm(&lane, unsent.0).await });
        }
        return;
    }
    let delivery = StartedDelivery {
        reply,
        ctx,
        payload,
        index,
        endpoint,
        received,
    };
    let rest = finish_started(Arc::clone(lane), delivery, first, permit, guard.clone());
    tokio::spawn(rest.instrument(span));
}

/// A handler started in the pull loop: finished on its first poll, or still running.
enum Started {
    Finished(Result<Bytes, ServiceError>),
    Running(crate::host::Started),
}

/// A first delivery whose handler was started in the pull loop.
struct StartedDelivery {
    reply: Subject,
    ctx: Context,
    payload: Bytes,
    index: usize,
    endpoint: &'static EndpointDescriptor,
    received: Instant,
}

/// The rest of a first delivery whose handler did not succeed on its first poll: awaited with
/// in-progress acks, then acked, retried or dead-lettered as [`handle`] does.
async fn finish_started(
    lane: Arc<Lane>,
    delivery: StartedDelivery,
    started: Started,
    permit: OwnedSemaphorePermit,
    _guard: mpsc::Sender<()>,
) {
    let StartedDelivery {
        reply,
        ctx,
        payload,
        index,
        endpoint,
        received,
    } = delivery;
    let mut permit = Some(permit);
    let result = match started {
        Started::Finished(result) => Some(result),
        Started::Running(handler) => {
            let mut handler = resume(handler, &ctx);
            with_progress(&lane, Pin::new(&mut handler), &reply)
                .await
                .map(|finished| finished.unwrap_or_else(|panic| Err(panicked(panic))))
        }
    };
    #[cfg(feature = "otel")]
    if let Some(result) = &result {
        crate::otel::finish(ctx.otel_context(), result.as_ref().err());
    }
    let info = AckInfo::parse(reply.as_str()).unwrap_or(AckInfo::FIRST);
    let (outcome, error) = match result {
        Some(Ok(_)) => {
            drop(permit.take());
            (lane.confirmed_ack(&reply).await, None)
        }
        unfinished => {
            let dlq = lane.dlq_subjects.get(index).cloned().unwrap_or_else(|| {
                Subject::from(dlq_subject(lane.runtime.descriptor.name, endpoint.name))
            });
            let parts = LetterParts {
                dlq,
                ctx: &ctx,
                payload: &payload,
                info: &info,
            };
            let failure = Failure {
                lane: &lane,
                reply: &reply,
                info: &info,
                endpoint,
                attempt: 1,
                letter: &parts,
            };
            failure.settle(unfinished).await
        }
    };
    drop(permit.take());
    lane.handled(
        index,
        received,
        (outcome, error.as_ref()),
        &tracing::Span::current(),
    );
}

/// A handled message whose ack awaits the server's confirmation.
struct Confirmation {
    reply: Subject,
    index: usize,
    received: Instant,
    span: tracing::Span,
    /// Keeps the host's shutdown waiting until the confirmation is in.
    _guard: mpsc::Sender<()>,
}

/// The confirmer of a pull loop: confirms the acks of the messages handled in the loop (AckSync),
/// many at a time, in one task, then counts each in the stats and ends its span. It ends when
/// its pull loop has ended and every confirmation is in.
async fn confirm_acks(lane: Arc<Lane>, mut confirmations: mpsc::UnboundedReceiver<Confirmation>) {
    let mut pending = futures_util::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            confirmation = confirmations.recv() => match confirmation {
                // A panic (in a tracing layer, say) costs one confirmation, not the confirmer.
                Some(confirmation) => pending.push(
                    AssertUnwindSafe(confirm(&lane, confirmation))
                        .catch_unwind()
                        .map(drop),
                ),
                None => break,
            },
            Some(()) = pending.next(), if !pending.is_empty() => {}
        }
    }
    while pending.next().await.is_some() {}
}

/// Confirms one ack, as [`handle`] does after a success.
async fn confirm(lane: &Lane, confirmation: Confirmation) {
    let outcome = lane
        .confirmed_ack(&confirmation.reply)
        .instrument(confirmation.span.clone())
        .await;
    let Confirmation {
        index,
        received,
        span,
        ..
    } = &confirmation;
    lane.handled(*index, *received, (outcome, None), span);
}

/// Runs the handler, sending an in-progress ack every third of the ack wait. `None` when the
/// shutdown grace period ended first (the handler is cancelled).
async fn run_with_progress(
    lane: &Lane,
    index: usize,
    ctx: Context,
    payload: Bytes,
    reply: &Subject,
) -> Option<Result<Bytes, ServiceError>> {
    let mut handler = pin!(run_handler(&lane.runtime, index, ctx, payload, None));
    // Most handlers finish on their first poll: no timer and no watch for them, and (boxed)
    // no room for them in every message's task.
    if let Poll::Ready(result) = poll_once(handler.as_mut()).await {
        return Some(result);
    }
    Box::pin(with_progress(lane, handler, reply)).await
}

/// Awaits a handler that did not finish on its first poll, as [`run_with_progress`] says.
async fn with_progress<F>(
    lane: &Lane,
    mut handler: Pin<&mut F>,
    reply: &Subject,
) -> Option<F::Output>
where
    F: Future,
{
    let every = lane.ack_wait / 3;
    let mut tick = pin!(tokio::time::sleep(every));
    let mut abandon = lane.abandon.clone();
    let mut abandoned = pin!(async move {
        if abandon.wait_for(|abandon| *abandon).await.is_err() {
            // The host handle was dropped without a shutdown: nothing will cancel this handler.
            std::future::pending::<()>().await;
        }
    });
    loop {
        tokio::select! {
            biased;
            result = &mut handler => return Some(result),
            _ = &mut abandoned => return None,
            _ = &mut tick => {
                lane.send_ack(reply, PROGRESS).await;
                tick.as_mut().reset(Instant::now() + every);
            }
        }
    }
}

/// A message about to be dead-lettered.
struct Letter<'a> {
    dlq: Subject,
    subject: &'a str,
    headers: Option<&'a HeaderMap>,
    payload: Bytes,
    info: &'a AckInfo<'a>,
    reason: Reason,
    error: &'a ServiceError,
}

impl<'a> Letter<'a> {
    fn of(
        dlq: &Subject,
        ctx: &'a Context,
        payload: &Bytes,
        info: &'a AckInfo<'a>,
        reason: Reason,
        error: &'a ServiceError,
    ) -> Self {
        Letter {
            dlq: dlq.clone(),
            subject: ctx.subject(),
            headers: ctx.message_headers(),
            payload: payload.clone(),
            info,
            reason,
            error,
        }
    }
}

/// Publishes `letter` to the dead-letter stream (PubAck awaited), then acks the message. When
/// the publish fails, naks it with `retry` instead (at once for `None`), so it is dead-lettered
/// when it comes back.
async fn dead_letter(
    lane: &Lane,
    reply: &Subject,
    letter: Letter<'_>,
    retry: Option<Duration>,
) -> Outcome {
    let (dlq, reason, attempts) = (letter.dlq.clone(), letter.reason, letter.info.delivered);
    let error = letter.error;
    let (headers, payload) = letter.into_message(lane.runtime.connection.max_payload());
    match publish_dead_letter(lane, dlq.clone(), headers, payload).await {
        Ok(()) => {
            tracing::error!(
                %error,
                reason = reason.as_str(),
                attempts,
                dead_letter_subject = %dlq,
                "dead-lettered"
            );
            if lane.ack(reply).await {
                Outcome::DeadLettered
            } else {
                Outcome::AckFailed
            }
        }
        Err(publish) => {
            tracing::error!(
                %error,
                reason = reason.as_str(),
                %publish,
                "failed to dead-letter; the message is returned and dead-lettered when it comes back"
            );
            if lane.nak(reply, retry).await {
                Outcome::Retry
            } else {
                Outcome::NakFailed
            }
        }
    }
}

impl Letter<'_> {
    /// The dead letter's headers and body, never larger than `max_payload` (0: unknown): the
    /// original headers are copied (except JetStream's own and the deadline) when they fit, in
    /// the message and in the 64 KiB header block JetStream stores; if they do not, they are
    /// dropped, and if the body alone still does not fit, its end is cut,
    /// each with a header saying so.
    fn into_message(self, max_payload: usize) -> (HeaderMap, Bytes) {
        let Letter {
            dlq: _,
            subject,
            headers: original,
            mut payload,
            info,
            reason,
            error,
        } = self;
        let mut headers = HeaderMap::new();
        headers.insert(DLQ_REASON, reason.as_str());
        headers.insert(DLQ_SUBJECT, headers::sanitized_value(subject, 256));
        headers.insert(DLQ_STREAM, headers::sanitized_value(info.stream, 256));
        headers.insert(DLQ_SEQUENCE, HeaderValue::from(info.stream_sequence));
        headers.insert(DLQ_ATTEMPTS, HeaderValue::from(info.delivered));
        headers.insert(
            DLQ_ERROR_KIND,
            headers::sanitized_value(error.kind(), headers::MAX_ERROR_HEADER_LEN),
        );
        headers.insert(DLQ_ERROR_CODE, HeaderValue::from(error.code()));
        headers.insert(
            DLQ_ERROR_MESSAGE,
            headers::sanitized_value(error.message(), headers::MAX_ERROR_HEADER_LEN),
        );
        // One letter per consumer: every handler of an event that fails it owes its own letter,
        // while a letter published twice by the same consumer (a crash between the PubAck and
        // the ack) is stored once.
        headers.insert(
            NATS_MESSAGE_ID,
            headers::sanitized_value(
                &format!(
                    "dlq:{}:{}:{}",
                    info.stream, info.stream_sequence, info.consumer
                ),
                512,
            ),
        );
        let mut copied = 0usize;
        if let Some(original) = original {
            if let Some(id) = original.get(NATS_MESSAGE_ID) {
                headers.insert(DLQ_MSG_ID, headers::sanitized_value(id.as_str(), 512));
            }
            let own = headers.clone();
            for (name, values) in original.iter() {
                let text: &str = name.as_ref();
                let jetstream_own = text
                    .get(..5)
                    .is_some_and(|prefix| prefix.eq_ignore_ascii_case("nats-"));
                if jetstream_own || text == headers::DEADLINE_MS || own.get(text).is_some() {
                    continue;
                }
                for value in values {
                    headers.append(name.clone(), value.clone());
                    copied += 1;
                }
            }
            let block = streams::header_block_len(&headers);
            if block > streams::MAX_STORED_HEADER_BLOCK
                || (max_payload > 0 && block + payload.len() > max_payload)
            {
                headers = own;
                headers.insert(DLQ_HEADERS_DROPPED, HeaderValue::from(copied));
            }
        }
        let room = max_payload.saturating_sub(streams::header_block_len(&headers) + 64);
        if max_payload > 0 && payload.len() > room {
            headers.insert(DLQ_TRUNCATED, HeaderValue::from(payload.len()));
            payload.truncate(room);
        }
        (headers, payload)
    }
}

/// Publishes a dead letter and awaits the PubAck, creating `NATSGEN_DLQ` when it is missing.
async fn publish_dead_letter(
    lane: &Lane,
    subject: Subject,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<(), String> {
    let mut created = false;
    loop {
        let publish = async {
            lane.js
                .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                .await?
                .await
        };
        let error = match tokio::time::timeout(CONFIRM_TIMEOUT, publish).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => {
                if created || !matches!(error.kind(), PublishErrorKind::StreamNotFound) {
                    return Err(error.to_string());
                }
                error.to_string()
            }
            // No stream answered (a core subscriber may have taken the message in its place).
            Err(_) if !created => format!("no PubAck within {CONFIRM_TIMEOUT:?}"),
            Err(_) => return Err(format!("no PubAck within {CONFIRM_TIMEOUT:?}")),
        };
        tracing::debug!(%error, "creating the dead-letter stream");
        streams::ensure_dlq_stream(&lane.js, lane.settings())
            .await
            .map_err(|error| error.to_string())?;
        created = true;
    }
}

/// What a best-effort handler's loop and tasks share.
struct Listener {
    runtime: Arc<ServiceRuntime>,
    index: usize,
    endpoint: &'static EndpointDescriptor,
    _guard: mpsc::Sender<()>,
}

async fn start_best_effort(
    runtime: &Arc<ServiceRuntime>,
    settings: &Settings,
    index: usize,
    endpoint: &'static EndpointDescriptor,
) -> Result<Spawned, Error> {
    let client = runtime.connection.nats();
    let service = runtime.descriptor.name;
    let subscribed = match endpoint.mode {
        DeliveryMode::Shared => {
            let group = streams::event_consumer_name(service, endpoint.name);
            client.queue_subscribe(endpoint.subject, group).await
        }
        DeliveryMode::Broadcast => client.subscribe(endpoint.subject).await,
    };
    let subscriber = subscribed.map_err(|source| Error::Subscribe {
        subject: endpoint.subject.to_owned(),
        source,
    })?;
    // Publishers store every event; without a stream, this subscription would take their
    // JetStream publishes in its place and leave them waiting for a PubAck.
    let js = jetstream::new(client.clone());
    streams::ensure_handler_stream(
        &js,
        runtime.connection.stream_settings(),
        runtime.descriptor.package,
        endpoint.subject,
    )
    .await?;
    tracing::info!(
        service,
        handler = endpoint.name,
        subject = endpoint.subject,
        "listening (best effort)"
    );
    let listener = Arc::new(Listener {
        runtime: Arc::clone(runtime),
        index,
        endpoint,
        _guard: settings.guard.clone(),
    });
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(listen(listener, subscriber, stopped));
    Ok(Spawned {
        stop,
        task,
        watcher: None,
    })
}

/// The loop of a best-effort handler. Events are taken off the subscription as they come (so
/// none pile up in the client library's buffer, where an overflow would drop them unseen): each
/// runs as soon as a handler slot is free, waiting meanwhile in the service's bounded queue
/// (`max_queue`, shared with RPC); when that is full too, the event is dropped — best effort is
/// at most once — with a warning and a `busy` error in the endpoint's stats. On stop it
/// unsubscribes (draining) and still handles what had arrived.
async fn listen(
    listener: Arc<Listener>,
    mut subscriber: Subscriber,
    mut stop: oneshot::Receiver<()>,
) {
    let runtime = &listener.runtime;
    let mut draining = false;
    let mut dropped = 0u64;
    loop {
        let message = if draining {
            subscriber.next().await
        } else {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    draining = true;
                    if let Err(error) = subscriber.drain().await {
                        tracing::warn!(subject = listener.endpoint.subject, %error, "failed to drain");
                        break;
                    }
                    continue;
                }
                message = subscriber.next() => message,
            }
        };
        let Some(message) = message else { break };
        let permit = match Arc::clone(&runtime.permits).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if runtime.queued.fetch_add(1, Ordering::Relaxed) < runtime.max_queue => None,
            Err(_) => {
                runtime.queued.fetch_sub(1, Ordering::Relaxed);
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        service = runtime.descriptor.name,
                        handler = listener.endpoint.name,
                        dropped,
                        "every handler slot is busy and the queue is full: best-effort events are \
                         dropped"
                    );
                }
                let error = ServiceError::busy("dropped: every handler slot busy, queue full");
                runtime
                    .stats
                    .record(listener.index, Duration::ZERO, Some(&error));
                continue;
            }
        };
        tokio::spawn(handle_best_effort(Arc::clone(&listener), message, permit));
    }
    tracing::debug!(subject = listener.endpoint.subject, "stopped listening");
}

async fn handle_best_effort(
    listener: Arc<Listener>,
    message: Message,
    permit: Option<OwnedSemaphorePermit>,
) {
    let received = Instant::now();
    let runtime = &listener.runtime;
    let permit = match permit {
        Some(permit) => permit,
        None => {
            // Queued: wait for a slot. The semaphore is never closed.
            let acquired = Arc::clone(&runtime.permits).acquire_owned().await;
            runtime.queued.fetch_sub(1, Ordering::Relaxed);
            match acquired {
                Ok(permit) => permit,
                Err(_) => return,
            }
        }
    };
    let endpoint = listener.endpoint;
    let service = runtime.descriptor.name;
    let ctx = Context::from_message(
        Backend::Nats(runtime.connection.clone()),
        service,
        endpoint.name,
        message.subject,
        message.headers,
        1,
    );
    let span = tracing::info_span!(
        "natsgen.event",
        service,
        method = endpoint.name,
        call_id = %ctx.call_id(),
        attempt = 1u32,
        outcome = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    async {
        let result = run_handler(runtime, listener.index, ctx, message.payload, None).await;
        drop(permit);
        let elapsed = received.elapsed();
        let error = result.err();
        let outcome = match &error {
            None => "ok",
            Some(error) => {
                tracing::warn!(%error, "a best-effort event handler failed; the event is dropped");
                "failed"
            }
        };
        runtime
            .stats
            .record(listener.index, elapsed, error.as_ref());
        let span = tracing::Span::current();
        span.record("outcome", outcome);
        span.record("duration_us", elapsed.as_micros() as u64);
    }
    .instrument(span)
    .await;
}

#[cfg(test)]
mod tests {
    use super::AckInfo;

    #[test]
    fn ack_subjects_of_both_formats_parse() {
        assert_eq!(
            AckInfo::parse("$JS.ACK.ASYNC_jobs.jobs.3.17.5.1795730850976574915.42"),
            Some(AckInfo {
                stream: "ASYNC_jobs",
                consumer: "jobs",
                delivered: 3,
                stream_sequence: 17,
                pending: 42
            })
        );
        assert_eq!(
            AckInfo::parse(
                "$JS.ACK._.HASH.EVENTS_jobs.ledger_record.1.9.9.1795730850976574915.0.r4nd0m"
            ),
            Some(AckInfo {
                stream: "EVENTS_jobs",
                consumer: "ledger_record",
                delivered: 1,
                stream_sequence: 9,
                pending: 0
            })
        );
        assert_eq!(
            AckInfo::parse("$JS.ACK._.HASH.S.C.2.9.9.1795730850976574915.5.token.more.tokens"),
            Some(AckInfo {
                stream: "S",
                consumer: "C",
                delivered: 2,
                stream_sequence: 9,
                pending: 5
            })
        );
        assert_eq!(AckInfo::parse("_INBOX.abc"), None);
        assert_eq!(AckInfo::parse("$JS.ACK.S.C.x.1.1.1.0"), None);
        assert_eq!(AckInfo::parse("$JS.ACK.S.C.1.1.1.0"), None);
    }
}
