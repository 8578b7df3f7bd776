//! The JetStream streams and consumers natsgen uses, created by whoever first writes or reads
//! them. Subjects of a stream are only ever added, never removed.
//!
//! | stream | subjects | retention | created by |
//! |---|---|---|---|
//! | `ASYNC_<service>` | `<service>.async.*` (async calls, and the ticks of `scope: service` timers) | work queue (a call is removed once acked) | a client's first async call, a [`Host`](crate::Host) serving the service |
//! | `EVENTS_<package>` | the package's declared topics (and handlers' patterns) | limits, `max_age` 7 days | a publisher whose topic no stream captures, a host serving a handler (durable or best effort) whose topic or pattern no stream captures |
//! | `NATSGEN_DLQ` | `natsgen.dlq.>` | limits, `max_age` 30 days | the first dead letter |
//! | `KV_NATSGEN_STATE` (KV bucket [`STATE_BUCKET`]) | `$KV.NATSGEN_STATE.>` | one value per key, 7 days | a host's first pull consumer, the first extension of an event stream's subjects |
//!
//! Replicas and limits come from the connection's [`StreamSettings`] (default R1; at most
//! 1,000,000 messages in each work queue and in the dead-letter stream; discard policy `new`).
//!
//! All are file-backed with a 2-minute duplicate window ([`DUPLICATE_WINDOW`], `Nats-Msg-Id`).
//!
//! | consumer | on stream | filter | kind |
//! |---|---|---|---|
//! | `<service>` | `ASYNC_<service>` | `<service>.async.*` | durable pull, `DeliverPolicy::All`; all instances of the service share it |
//! | `<service>_<handler>` | the stream capturing the handler's topic | the topic or wildcard pattern | durable pull, `DeliverPolicy::New` at first creation; `mode: shared` (the default) with `delivery: durable` (the default) |
//! | (server-named) | the same | the same | ephemeral pull per instance, `DeliverPolicy::New`, deleted after [`EPHEMERAL_INACTIVE_THRESHOLD`] without a pull; `mode: broadcast` with `delivery: durable` |
//!
//! Every natsgen consumer has ack policy explicit, a finite `max_deliver` (the largest
//! `max_attempts` of its endpoints plus [`REDELIVERY_ALLOWANCE`]), no `backoff` (the worker naks
//! with the schema's backoff and counts the attempts itself, see [`crate::Host`]) and an ack
//! wait of [`DEFAULT_ACK_WAIT`] (10 s, [`Host::ack_wait`](crate::Host::ack_wait)): a worker
//! that crashes mid-call gets its message redelivered within seconds, and a running handler sends
//! an in-progress ack every third of the ack wait so it never loses its message.
//! `delivery: best_effort` handlers consume no stream: a core NATS subscription on the topic or
//! pattern, in queue group `<service>_<handler>` (`mode: broadcast`: no queue group). Their host
//! still makes sure a stream captures the topic, because publishers always publish with JetStream
//! (without a stream, the subscription would take the publish and no PubAck would come).
//!
//! A host looks for an existing stream whose subjects overlap a durable handler's filter first
//! (so a handler of a topic declared in an imported package consumes from that package's
//! stream); only when there is none does it create or extend `EVENTS_<package>` of the handler's
//! own package with the filter. A consumer lives on one stream, so a wildcard pattern whose
//! topics are spread over several packages' streams sees only one of them.
//!
//! # Dead letters
//!
//! An async call or durable event that fails for good (see [`crate::Host`]) is published with a
//! JetStream publish (PubAck awaited) to `natsgen.dlq.<service>.<endpoint>` ([`dlq_subject`]) in
//! `NATSGEN_DLQ`; its payload is the original message body, unchanged. Headers:
//!
//! | header | value |
//! |---|---|
//! | [`DLQ_REASON`] `Natsgen-Dlq-Reason` | `failed` (the last allowed attempt failed), `abandoned` (the last allowed attempt did not complete: its worker crashed, or dead-lettering its failure failed; deliveries a shutdown returned do not count; the message is dead-lettered when it arrives once more), `undecodable` (the runtime could not decode the body into the params or the payload, or a wildcard handler does not know the topic: not retried), `unknown_method` (no such async method), `undeliverable` (it reached its consumer's `max_deliver` without being handled: dead-lettered from the max-deliveries advisory, see the worker docs in [`crate::Host`]) |
//! | [`DLQ_SUBJECT`] `Natsgen-Dlq-Subject` | the subject the message was published on |
//! | [`DLQ_STREAM_HEADER`] `Natsgen-Dlq-Stream` | the stream it was stored in |
//! | [`DLQ_SEQUENCE`] `Natsgen-Dlq-Sequence` | its sequence number in that stream |
//! | [`DLQ_ATTEMPTS`] `Natsgen-Dlq-Attempts` | deliveries so far (JetStream's delivery count) |
//! | [`DLQ_ERROR_KIND`] `Natsgen-Dlq-Error-Kind` | the error's kind (`internal`, `bad_request`, a declared error's name, ...) |
//! | [`DLQ_ERROR_CODE`] `Natsgen-Dlq-Error-Code` | the error's code (400, 422, 500, ...) |
//! | [`DLQ_ERROR_MESSAGE`] `Natsgen-Dlq-Error-Message` | the error's message, one line, at most 512 bytes |
//! | [`DLQ_MSG_ID`] `Natsgen-Dlq-Msg-Id` | the original `Nats-Msg-Id`, when there was one |
//! | `Nats-Msg-Id` | `dlq:<stream>:<sequence>:<consumer>`: each handler's letter for one event is stored, and a dead letter published twice by one consumer (a crash between the PubAck and the ack) is stored once |
//! | the original headers | copied, except `Nats-*` headers (JetStream's own) and `Natsgen-Deadline-Ms` |
//! | [`DLQ_HEADERS_DROPPED`] `Natsgen-Dlq-Headers-Dropped` | only when the original headers were left out so the letter fits in `max_payload`: how many |
//! | [`DLQ_TRUNCATED`] `Natsgen-Dlq-Truncated` | only when even then the body did not fit: the original body's length (the letter carries its beginning) |
//!
//! Read them with any JetStream client, e.g. `nats stream view NATSGEN_DLQ`; republishing the
//! payload to the original subject runs the call again.

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use bytes::Bytes;

use crate::Error;

/// How long JetStream remembers a `Nats-Msg-Id` to drop a repeated publish.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long an event stays in its package's stream.
pub const EVENT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The dead-letter stream.
pub const DLQ_STREAM: &str = "NATSGEN_DLQ";
/// How long dead letters are kept.
pub const DLQ_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a consumer waits for an ack (or an in-progress ack) before it redelivers a message:
/// how soon the call of a crashed worker runs again. Change it with
/// [`Host::ack_wait`](crate::Host::ack_wait).
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(10);
/// How long the server keeps a broadcast handler's ephemeral consumer once its instance stops
/// pulling.
pub const EPHEMERAL_INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);

/// Dead-letter header: why the message was dead-lettered.
pub const DLQ_REASON: &str = "Natsgen-Dlq-Reason";
/// Dead-letter header: the subject the message was published on.
pub const DLQ_SUBJECT: &str = "Natsgen-Dlq-Subject";
/// Dead-letter header: the stream the message was stored in.
pub const DLQ_STREAM_HEADER: &str = "Natsgen-Dlq-Stream";
/// Dead-letter header: the message's sequence number in that stream.
pub const DLQ_SEQUENCE: &str = "Natsgen-Dlq-Sequence";
/// Dead-letter header: how many times the message was delivered.
pub const DLQ_ATTEMPTS: &str = "Natsgen-Dlq-Attempts";
/// Dead-letter header: the kind of the last error.
pub const DLQ_ERROR_KIND: &str = "Natsgen-Dlq-Error-Kind";
/// Dead-letter header: the code of the last error.
pub const DLQ_ERROR_CODE: &str = "Natsgen-Dlq-Error-Code";
/// Dead-letter header: the message of the last error.
pub const DLQ_ERROR_MESSAGE: &str = "Natsgen-Dlq-Error-Message";
/// Dead-letter header: the original `Nats-Msg-Id`.
pub const DLQ_MSG_ID: &str = "Natsgen-Dlq-Msg-Id";
/// Dead-letter header: the original body's length, when the letter carries only its beginning
/// (the letter would otherwise exceed the server's `max_payload`).
pub const DLQ_TRUNCATED: &str = "Natsgen-Dlq-Truncated";
/// Dead-letter header: how many original header values were left out so the letter fits in the
/// server's `max_payload`.
pub const DLQ_HEADERS_DROPPED: &str = "Natsgen-Dlq-Headers-Dropped";

/// Room kept within the server's `max_payload` for a dead letter's own headers. natsgen clients
/// refuse an async call or an event whose body and headers do not leave it (`payload_too_large`),
/// so the dead letter of anything they send always fits; a foreign message that does not leave
/// it loses its copied headers in its letter, then the end of its body.
pub const DEAD_LETTER_RESERVE: usize = 4096;
/// Deliveries a consumer allows beyond an endpoint's `max_attempts` before the server stops
/// delivering a message (its `max_deliver` backstop): room for attempts lost to shutdowns and
/// crashes. A message that reaches it is dead-lettered without the worker (`undeliverable`).
pub const REDELIVERY_ALLOWANCE: u32 = 10;

/// The largest header block JetStream stores: nats-server refuses a publish with a larger one
/// ("header size exceeds maximum allowed of 64k", error code 10097).
pub(crate) const MAX_STORED_HEADER_BLOCK: usize = 65_535;

/// The size of `headers` as a NATS header block (`NATS/1.0` line, one line per value, blank
/// line).
pub(crate) fn header_block_len(headers: &async_nats::HeaderMap) -> usize {
    let mut len = "NATS/1.0\r\n\r\n".len();
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        for value in values {
            len += name.len() + ": \r\n".len() + value.as_str().len();
        }
    }
    len
}

/// Whether a message of `payload_len` bytes with `headers` leaves room for its dead letter's
/// headers within `max_payload` (0: not known yet, so not checked); the error says why not.
pub(crate) fn leaves_dead_letter_room(
    payload_len: usize,
    headers: &async_nats::HeaderMap,
    max_payload: usize,
) -> Result<(), String> {
    let size = payload_len + header_block_len(headers);
    if max_payload == 0 || size + DEAD_LETTER_RESERVE <= max_payload {
        return Ok(());
    }
    Err(format!(
        "payload_too_large: the message is {size} bytes; with the {DEAD_LETTER_RESERVE} bytes its          dead letter would need for its own headers it exceeds the server's max_payload of          {max_payload} bytes"
    ))
}

/// How natsgen creates its streams (and its KV bucket): replicas and limits. A connection-level
/// setting ([`ConnectOptions::streams`](crate::ConnectOptions::streams)), applied when natsgen
/// creates a stream; a stream that exists already keeps its configuration (change it with
/// `nats stream edit`).
///
/// Streams that reach a limit refuse new messages (discard policy `new`) instead of dropping
/// stored ones: an async call or an event publish then fails with an error the caller sees, and
/// a dead letter that does not fit is retried later; nothing stored is silently lost.
///
/// ```
/// let options = natsgen::ConnectOptions::new().streams(
///     natsgen::StreamSettings::new()
///         .replicas(3)
///         .async_limits(4 << 30, -1)
///         .dlq_limits(1 << 30, 1_000_000),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    replicas: usize,
    async_max_bytes: i64,
    async_max_messages: i64,
    events_max_bytes: i64,
    events_max_messages: i64,
    events_max_age: Duration,
    dlq_max_bytes: i64,
    dlq_max_messages: i64,
}

/// Default message limit of each `ASYNC_<service>` work queue and of `NATSGEN_DLQ`.
pub const DEFAULT_MAX_MESSAGES: i64 = 1_000_000;

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 1,
            async_max_bytes: -1,
            async_max_messages: DEFAULT_MAX_MESSAGES,
            events_max_bytes: -1,
            events_max_messages: -1,
            events_max_age: EVENT_MAX_AGE,
            dlq_max_bytes: -1,
            dlq_max_messages: DEFAULT_MAX_MESSAGES,
        }
    }
}

impl StreamSettings {
    /// The defaults: one replica; at most [`DEFAULT_MAX_MESSAGES`] (1,000,000) calls waiting in
    /// each `ASYNC_<service>` and letters in `NATSGEN_DLQ`; events kept 7 days. No byte limits by
    /// default: nats-server reserves a stream's byte limit out of its JetStream storage when the
    /// stream is created and refuses a stream whose reservation does not fit ("insufficient
    /// storage resources"), so a fixed default would stop services on a small disk. Set them
    /// where the server has the room; the server's own `max_file_store` bounds all streams
    /// together either way.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many copies of each stream a cluster keeps (1 to 5; default 1). With 3, losing one
    /// node of three loses no stored call, event or dead letter.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.clamp(1, 5);
        self
    }

    /// Limits of each service's `ASYNC_<service>` work queue (-1: none).
    pub fn async_limits(mut self, max_bytes: i64, max_messages: i64) -> Self {
        self.async_max_bytes = max_bytes;
        self.async_max_messages = max_messages;
        self
    }

    /// Limits of each package's `EVENTS_<package>` stream (-1: none).
    pub fn event_limits(mut self, max_bytes: i64, max_messages: i64) -> Self {
        self.events_max_bytes = max_bytes;
        self.events_max_messages = max_messages;
        self
    }

    /// How long events are kept (default 7 days).
    pub fn event_max_age(mut self, max_age: Duration) -> Self {
        self.events_max_age = max_age;
        self
    }

    /// Limits of the dead-letter stream `NATSGEN_DLQ` (-1: none).
    pub fn dlq_limits(mut self, max_bytes: i64, max_messages: i64) -> Self {
        self.dlq_max_bytes = max_bytes;
        self.dlq_max_messages = max_messages;
        self
    }

    /// The replica count.
    pub fn replica_count(&self) -> usize {
        self.replicas
    }
}

/// The name of a service's async work-queue stream.
pub fn async_stream_name(service: &str) -> String {
    format!("ASYNC_{service}")
}

/// The name of a package's event stream.
pub fn event_stream_name(package: &str) -> String {
    format!("EVENTS_{package}")
}

/// The name of the durable consumer all instances of a service pull its async calls from.
pub fn async_consumer_name(service: &str) -> String {
    service.to_owned()
}

/// The name of the durable consumer of a shared, durable event handler.
pub fn event_consumer_name(service: &str, handler: &str) -> String {
    format!("{service}_{handler}")
}

/// The subject a failed call or event of `service`'s `endpoint` is dead-lettered on.
pub fn dlq_subject(service: &str, endpoint: &str) -> String {
    format!("natsgen.dlq.{service}.{endpoint}")
}

/// Whether every subject `subject` matches is also matched by `pattern` (both may hold the
/// wildcards `*` and `>`).
pub(crate) fn subject_is_covered(subject: &str, pattern: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    let mut pattern_tokens = pattern.split('.');
    loop {
        match (subject_tokens.next(), pattern_tokens.next()) {
            (None, None) => return true,
            (Some(_), Some(">")) => return true,
            (Some(token), Some("*")) if token != ">" => {}
            (Some(token), Some(literal)) if token == literal && token != "*" && token != ">" => {}
            _ => return false,
        }
    }
}

fn stream_error(stream: &str, error: impl std::fmt::Display) -> Error {
    Error::Stream {
        stream: stream.to_owned(),
        reason: error.to_string(),
    }
}

/// Creates the work-queue stream of `service` when it is missing.
pub async fn ensure_async_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
    service: &str,
) -> Result<stream::Stream, Error> {
    let name = async_stream_name(service);
    js.get_or_create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{service}.async.*")],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        max_bytes: settings.async_max_bytes,
        max_messages: settings.async_max_messages,
        discard: stream::DiscardPolicy::New,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some(format!("natsgen async calls of service {service}")),
        ..Default::default()
    })
    .await
    .map_err(|e| stream_error(&name, e))
}

/// Creates the event stream of `package` when it is missing, and adds any of `topics` it lacks
/// (a topic one of its subjects already covers, e.g. through a handler's wildcard pattern, is not
/// added: the server refuses overlapping subjects). Subjects are only ever added, so older
/// publishers and newer ones can share the stream.
///
/// A stream update replaces the whole subject list, so two processes extending it at the same
/// moment could undo each other's change: writers take turns through a lock in the state bucket
/// ([`STATE_BUCKET`], key `lock.<stream>`, a lease of a few seconds so a crashed holder does not
/// block others), and each checks its topics are there after its update.
pub async fn ensure_event_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
    package: &str,
    topics: &[&str],
) -> Result<stream::Stream, Error> {
    let name = event_stream_name(package);
    let mut stream = js
        .get_or_create_stream(stream::Config {
            name: name.clone(),
            subjects: topics.iter().map(|t| (*t).to_owned()).collect(),
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            num_replicas: settings.replicas,
            max_age: settings.events_max_age,
            max_bytes: settings.events_max_bytes,
            max_messages: settings.events_max_messages,
            discard: stream::DiscardPolicy::New,
            duplicate_window: DUPLICATE_WINDOW,
            description: Some(format!("natsgen events of package {package}")),
            ..Default::default()
        })
        .await
        .map_err(|e| stream_error(&name, e))?;
    if missing_topics(&stream.cached_info().config.subjects, topics).is_empty() {
        return Ok(stream);
    }
    // A stream update replaces the whole subject list: writers take turns.
    let state = ensure_state_bucket(js, settings).await?;
    let lock = StreamLock::acquire(&state, &name).await?;
    let added = add_topics(js, &mut stream, topics).await;
    lock.release().await;
    added.map(|()| stream)
}

/// The topics no subject of `subjects` covers.
fn missing_topics(subjects: &[String], topics: &[&str]) -> Vec<String> {
    topics
        .iter()
        .filter(|t| !subjects.iter().any(|s| subject_is_covered(t, s)))
        .map(|t| (*t).to_owned())
        .collect()
}

/// Adds the topics the stream's subjects lack, checking they are there afterwards (a writer
/// that does not take the lock could still undo the change).
async fn add_topics(
    js: &jetstream::Context,
    stream: &mut stream::Stream,
    topics: &[&str],
) -> Result<(), Error> {
    const ATTEMPTS: u32 = 3;
    let name = stream.cached_info().config.name.clone();
    for _ in 0..ATTEMPTS {
        let info = stream.info().await.map_err(|e| stream_error(&name, e))?;
        let missing = missing_topics(&info.config.subjects, topics);
        if missing.is_empty() {
            return Ok(());
        }
        let mut config = info.config.clone();
        config.subjects.extend(missing);
        js.update_stream(config)
            .await
            .map_err(|e| stream_error(&name, e))?;
    }
    let info = stream.info().await.map_err(|e| stream_error(&name, e))?;
    if missing_topics(&info.config.subjects, topics).is_empty() {
        return Ok(());
    }
    Err(stream_error(
        &name,
        format!("its subjects kept changing; {topics:?} could not be added"),
    ))
}

/// Makes sure a stream captures a durable event handler's `filter` (its topic or wildcard
/// pattern) and returns it: the stream whose subjects overlap `filter` if there is one, else
/// `EVENTS_<package>`, created or extended with `filter`.
pub async fn ensure_handler_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
    package: &str,
    filter: &str,
) -> Result<stream::Stream, Error> {
    match js.stream_by_subject(filter).await {
        Ok(name) => js
            .get_stream(&name)
            .await
            .map_err(|e| stream_error(&name, e)),
        Err(error) if error.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
            ensure_event_stream(js, settings, package, &[filter]).await
        }
        Err(error) => Err(stream_error(&event_stream_name(package), error)),
    }
}

/// Creates the dead-letter stream when it is missing.
pub async fn ensure_dlq_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<stream::Stream, Error> {
    js.get_or_create_stream(stream::Config {
        name: DLQ_STREAM.to_owned(),
        subjects: vec!["natsgen.dlq.>".to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        max_bytes: settings.dlq_max_bytes,
        max_messages: settings.dlq_max_messages,
        discard: stream::DiscardPolicy::New,
        max_age: DLQ_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        description: Some(
            "natsgen dead letters: async calls and events that failed for good".to_owned(),
        ),
        ..Default::default()
    })
    .await
    .map_err(|e| stream_error(DLQ_STREAM, e))
}

/// A lease on `lock.<stream>` in the state bucket, given back by [`StreamLock::release`]; a lease
/// that ran out (its holder crashed) may be taken over.
struct StreamLock {
    state: jetstream::kv::Store,
    key: String,
    revision: u64,
}

/// How long a stream lock holds before another writer may take it over.
const STREAM_LOCK_LEASE: Duration = Duration::from_secs(10);

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl StreamLock {
    /// Takes the lock of `stream`, waiting (a bounded time) for another holder to release it or
    /// for its lease to run out.
    async fn acquire(state: &jetstream::kv::Store, stream: &str) -> Result<Self, Error> {
        let key = format!("lock.{stream}");
        let started = std::time::Instant::now();
        loop {
            let lease = (unix_millis() + STREAM_LOCK_LEASE.as_millis() as u64).to_string();
            let taken = match state.create(&key, lease.clone().into()).await {
                Ok(revision) => Some(revision),
                Err(_) => match state.entry(&key).await {
                    Ok(Some(entry))
                        if std::str::from_utf8(&entry.value)
                            .ok()
                            .and_then(|until| until.parse::<u64>().ok())
                            .is_none_or(|until| until < unix_millis()) =>
                    {
                        // Deleted meanwhile, or its holder's lease ran out: take it over.
                        state.update(&key, lease.into(), entry.revision).await.ok()
                    }
                    _ => None,
                },
            };
            if let Some(revision) = taken {
                return Ok(StreamLock {
                    state: state.clone(),
                    key,
                    revision,
                });
            }
            if started.elapsed() > 3 * STREAM_LOCK_LEASE {
                return Err(stream_error(
                    stream,
                    "another process holds the lock on its subjects (`lock.<stream>` in \
                     NATSGEN_STATE) for too long",
                ));
            }
            let pause = 10 + crate::ids::new_span_id() % 40;
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    async fn release(self) {
        if let Err(error) = self
            .state
            .delete_expect_revision(&self.key, Some(self.revision))
            .await
        {
            tracing::debug!(%error, "could not release a stream lock; its lease runs out by itself");
        }
    }
}

/// natsgen's coordination state, a KV bucket: `returns.<stream>.<consumer>.<sequence>` counts the
/// deliveries of a message a shutdown returned (unstarted, or cancelled after the grace period),
/// so they do not count as attempts; `lock.<stream>` serializes changes of a stream's subjects.
pub const STATE_BUCKET: &str = "NATSGEN_STATE";

/// Creates the state bucket when it is missing.
pub async fn ensure_state_bucket(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<jetstream::kv::Store, Error> {
    match js.get_key_value(STATE_BUCKET).await {
        Ok(store) => return Ok(store),
        Err(error) if error.kind() == jetstream::context::KeyValueErrorKind::GetBucket => {}
        Err(error) => return Err(stream_error(STATE_BUCKET, error)),
    }
    let created = js
        .create_key_value(jetstream::kv::Config {
            bucket: STATE_BUCKET.to_owned(),
            description: "natsgen: deliveries returned by shutdowns, stream update locks"
                .to_owned(),
            history: 1,
            max_age: EVENT_MAX_AGE,
            storage: stream::StorageType::File,
            num_replicas: settings.replicas,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another worker may have created it meanwhile.
        Err(error) => js
            .get_key_value(STATE_BUCKET)
            .await
            .map_err(|_| stream_error(STATE_BUCKET, error)),
    }
}

/// Why a message was not stored (see [`store`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// No stream captures the subject: nothing answered.
    #[error("no stream captures the subject")]
    NoStream,
    /// The message is larger than the server's `max_payload`.
    #[error("{0}")]
    TooLarge(String),
    /// JetStream answered with an error (not ready, no room, ...).
    #[error("JetStream refused it: {0}")]
    Refused(String),
    /// The answer was not a PubAck.
    #[error("the answer is not a PubAck: {0}")]
    NotAPubAck(String),
    /// The request could not be made.
    #[error("{0}")]
    Nats(String),
}

/// Stores a message in the stream that captures `subject` and awaits its PubAck: a JetStream
/// publish, made as the core request it is on the wire. Unlike async-nats's JetStream publish
/// it arms no timer of its own and takes no permit, so the caller's one timeout bounds it all.
pub(crate) async fn store(
    client: &async_nats::Client,
    subject: &'static str,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<(), StoreError> {
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(payload)
        .timeout(None);
    let reply = client
        .send_request(subject, request)
        .await
        .map_err(|error| match error.kind() {
            RequestErrorKind::NoResponders => StoreError::NoStream,
            RequestErrorKind::MaxPayloadExceeded => StoreError::TooLarge(error.to_string()),
            _ => StoreError::Nats(error.to_string()),
        })?;
    pub_ack(&reply.payload)
}

/// Reads a PubAck: `{"stream":..,"seq":..}`, or `{"error":{"code":..,"description":..}}`.
fn pub_ack(body: &[u8]) -> Result<(), StoreError> {
    #[derive(serde::Deserialize)]
    struct PubAck {
        #[serde(default)]
        stream: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        error: Option<ApiError>,
    }
    #[derive(serde::Deserialize)]
    struct ApiError {
        #[serde(default)]
        code: u16,
        #[serde(default)]
        err_code: u64,
        #[serde(default)]
        description: String,
    }
    match serde_json::from_slice::<PubAck>(body) {
        Ok(PubAck {
            error: Some(error), ..
        }) => Err(StoreError::Refused(format!(
            "{} (code {}, error code {})",
            error.description, error.code, error.err_code
        ))),
        Ok(PubAck {
            stream: Some(_), ..
        }) => Ok(()),
        Ok(_) => Err(StoreError::NotAPubAck(
            "the answer names no stream".to_owned(),
        )),
        Err(error) => Err(StoreError::NotAPubAck(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::{pub_ack, subject_is_covered, StoreError};

    #[test]
    fn pub_acks_and_errors_are_told_apart() {
        assert!(pub_ack(br#"{"stream":"ASYNC_a","seq":7}"#).is_ok());
        assert!(pub_ack(br#"{"stream":"ASYNC_a","seq":7,"duplicate":true}"#).is_ok());
        let unready = br#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#;
        match pub_ack(unready) {
            Err(StoreError::Refused(reason)) => {
                assert!(reason.contains("temporarily unavailable"), "{reason}");
                assert!(reason.contains("503"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(matches!(
            pub_ack(br#"{"result":1}"#),
            Err(StoreError::NotAPubAck(_))
        ));
        assert!(matches!(pub_ack(b""), Err(StoreError::NotAPubAck(_))));
        assert!(matches!(pub_ack(b"+OK"), Err(StoreError::NotAPubAck(_))));
    }

    #[test]
    fn coverage_is_wildcard_aware() {
        assert!(subject_is_covered("orders.created", "orders.created"));
        assert!(subject_is_covered("orders.created", "orders.*"));
        assert!(subject_is_covered("orders.created", "orders.>"));
        assert!(subject_is_covered("orders.*", "orders.*"));
        assert!(subject_is_covered("orders.*", "orders.>"));
        assert!(subject_is_covered("orders.a.b", "orders.>"));
        assert!(subject_is_covered("orders.>", ">"));
        assert!(!subject_is_covered("orders.*", "orders.created"));
        assert!(!subject_is_covered("orders.>", "orders.*"));
        assert!(!subject_is_covered("orders", "orders.>"));
        assert!(!subject_is_covered("orders.a.b", "orders.*"));
        assert!(!subject_is_covered("orders.created", "orders.cancelled"));
        assert!(!subject_is_covered("orders.created", "orders"));
    }
}
