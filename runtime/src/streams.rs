//! The JetStream streams natsgen uses, created by whoever first writes or reads them.
//!
//! | stream | subjects | retention |
//! |---|---|---|
//! | `ASYNC_<service>` | `<service>.async.*` | work queue (a call is removed once acked) |
//! | `EVENTS_<package>` | the package's declared topics | limits, `max_age` 7 days |
//! | `NATSGEN_DLQ` | `natsgen.dlq.>` | limits, `max_age` 30 days |
//!
//! All are file-backed with a 2-minute duplicate window (`Nats-Msg-Id`).

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

/// The name of a service's async work-queue stream.
pub fn async_stream_name(service: &str) -> String {
    format!("ASYNC_{service}")
}

/// The name of a package's event stream.
pub fn event_stream_name(package: &str) -> String {
    format!("EVENTS_{package}")
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

/// Creates the event stream of `package` when it is missing, and adds any of `topics` it lacks.
/// Subjects are only ever added, so older publishers and newer ones can share the stream.
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
        .filter(|t| !info.config.subjects.iter().any(|s| s == *t))
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

/// Creates the dead-letter stream when it is missing.
pub async fn ensure_dlq_stream(js: &jetstream::Context) -> Result<stream::Stream, Error> {
    js.get_or_create_stream(stream::Config {
        name: DLQ_STREAM.to_owned(),
        subjects: vec!["natsgen.dlq.>".to_owned()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: DLQ_MAX_AGE,
        description: Some(
            "natsgen dead letters: async calls and events that failed for good".to_owned(),
        ),
        ..Default::default()
    })
    .await
    .map_err(|e| stream_error(DLQ_STREAM, e))
}
