//! What the scenarios share: servers, the records stream, service processes, bounded waits.

use std::future::IntoFuture;
use std::path::Path;
use std::time::Duration;

use natsgen::testing::NatsServer;
use natsgen_tests::chaos::procs::ServiceProcess;
use natsgen_tests::chaos::store;

/// Guards single waits (a start, a request), so a broken runtime fails a test instead of
/// hanging it. Never a measure of speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The stream the services' handlers record their starts and completions in.
pub const RECORDS: &str = "FAULTS_REC";
/// The dead-letter stream.
pub const DLQ: &str = natsgen::streams::DLQ_STREAM;

pub async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long: something hangs")
}

/// A server with JetStream and monitoring (for `/connz?state=closed`).
pub async fn start_server() -> NatsServer {
    within(NatsServer::builder().monitoring(true).start())
        .await
        .expect("nats-server starts")
}

/// Creates the records stream (file-backed, so it survives a server restart).
pub async fn create_records_stream(client: &async_nats::Client) {
    let js = async_nats::jetstream::new(client.clone());
    within(
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: RECORDS.to_owned(),
            subjects: vec!["faults_rec.>".to_owned()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        }),
    )
    .await
    .expect("the records stream is created");
}

/// The service process binary (`src/bin/faults_worker.rs`).
pub fn worker_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faults_worker"))
}

/// Starts a `faults_worker` and waits until it serves.
pub async fn spawn_worker(args: &[String]) -> ServiceProcess {
    ServiceProcess::spawn(worker_binary(), args, PATIENCE)
        .await
        .unwrap_or_else(|e| panic!("faults_worker {args:?} did not start: {e}"))
}

/// A consumer's state, for messages.
pub fn describe_states(states: &[(String, Result<store::ConsumerState, String>)]) -> String {
    states
        .iter()
        .map(|(name, state)| match state {
            Ok(s) => format!(
                "{name}: pending {} unacked {} redelivered {} delivered {} waiting {}",
                s.pending, s.ack_pending, s.redelivered, s.delivered, s.waiting
            ),
            Err(e) => format!("{name}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
