//! The JetStream streams and consumers natsgen uses, created by whoever first writes or reads
//! them. Subjects of a stream are only ever added, never removed.
//!
//! | stream | subjects | retention | created by |
//! |---|---|---|---|
//! | `ASYNC_<service>` | `<service>.async.*` | work queue (a call is removed once acked) | a client's first async call, a [`Host`](crate::Host) serving the service |
//! | `EVENTS_<package>` | the package's declared topics (and handlers' patterns) | limits, `max_age` 7 days | a publisher whose topic no stream captures, a host serving a handler (durable or best effort) whose topic or pattern no stream captures |
//! | `NATSGEN_DLQ` | `natsgen.dlq.>` | limits, `max_age` 30 days | the first dead letter |
//!
//! All are file-backed with a 2-minute duplicate window ([`DUPLICATE_WINDOW`], `Nats-Msg-Id`).
//!
//! | consumer | on stream | filter | kind |
//! |---|---|---|---|
//! | `<service>` | `ASYNC_<service>` | `<service>.async.*` | durable pull, `DeliverPolicy::All`; all instances of the service share it |
//! | `<service>_<handler>` | the stream capturing the handler's topic | the topic or wildcard pattern | durable pull, `DeliverPolicy::New` at first creation; `mode: shared` (the default) with `delivery: durable` (the default) |
//! | (server-named) | the same | the same | ephemeral pull per instance, `DeliverPolicy::New`, deleted after [`EPHEMERAL_INACTIVE_THRESHOLD`] without a pull; `mode: broadcast` with `delivery: durable` |
//!
//! Every natsgen consumer has ack policy explicit, `max_deliver = -1` and no `backoff` (the worker
//! naks with the schema's backoff and counts the attempts itself, see [`crate::Host`]) and an ack
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
//! | [`DLQ_REASON`] `Natsgen-Dlq-Reason` | `failed` (the last allowed attempt failed), `abandoned` (the last allowed attempt did not complete: its worker crashed or was stopped, or dead-lettering its failure failed; the message is dead-lettered when it arrives once more), `undecodable` (the body does not decode: `bad_request`, not retried), `unknown_method` (no such async method) |
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
//!
//! Read them with any JetStream client, e.g. `nats stream view NATSGEN_DLQ`; republishing the
//! payload to the original subject runs the call again.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

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
    service: &str,
) -> Result<stream::Stream, Error> {
    let name = async_stream_name(service);
    js.get_or_create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{service}.async.*")],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
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
pub async fn ensure_event_stream(
    js: &jetstream::Context,
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
            max_age: EVENT_MAX_AGE,
            duplicate_window: DUPLICATE_WINDOW,
            description: Some(format!("natsgen events of package {package}")),
            ..Default::default()
        })
        .await
        .map_err(|e| stream_error(&name, e))?;
    let info = stream.info().await.map_err(|e| stream_error(&name, e))?;
    let missing: Vec<String> = topics
        .iter()
        .filter(|t| {
            !info
                .config
                .subjects
                .iter()
                .any(|s| subject_is_covered(t, s))
        })
        .map(|t| (*t).to_owned())
        .collect();
    if !missing.is_empty() {
        let mut config = info.config.clone();
        config.subjects.extend(missing);
        js.update_stream(config)
            .await
            .map_err(|e| stream_error(&name, e))?;
    }
    Ok(stream)
}

/// Makes sure a stream captures a durable event handler's `filter` (its topic or wildcard
/// pattern) and returns it: the stream whose subjects overlap `filter` if there is one, else
/// `EVENTS_<package>`, created or extended with `filter`.
pub async fn ensure_handler_stream(
    js: &jetstream::Context,
    package: &str,
    filter: &str,
) -> Result<stream::Stream, Error> {
    match js.stream_by_subject(filter).await {
        Ok(name) => js
            .get_stream(&name)
            .await
            .map_err(|e| stream_error(&name, e)),
        Err(error) if error.kind() == jetstream::context::GetStreamByNameErrorKind::NotFound => {
            ensure_event_stream(js, package, &[filter]).await
        }
        Err(error) => Err(stream_error(&event_stream_name(package), error)),
    }
}

/// Creates the dead-letter stream when it is missing.
pub async fn ensure_dlq_stream(js: &jetstream::Context) -> Result<stream::Stream, Error> {
    js.get_or_create_stream(stream::Config {
        name: DLQ_STREAM.to_owned(),
        subjects: vec!["natsgen.dlq.>".to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
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

#[cfg(test)]
mod tests {
    use super::subject_is_covered;

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
