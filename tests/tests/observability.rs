//! Metrics and readiness over a real nats-server: per-endpoint counters and latency histograms
//! through the `metrics` facade (read back with `metrics-util`'s debugging recorder), and
//! `HostHandle::readiness` through connection loss and shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use natsgen::testing::NatsServer;
use natsgen::{Context, Host, ServiceError};
use natsgen_tests::seams::services::{Forwarding, Noting};
use natsgen_tests::seams::{
    BackClient, BackServer, Front, FrontClient, FrontServer, WatcherServer,
};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("finished in time")
}

struct FrontImpl;

impl Front for FrontImpl {
    async fn hello(&self, _ctx: &Context, name: String) -> Result<String, ServiceError> {
        if name == "fail" {
            return Err(ServiceError::new("teapot", 418, "short and stout"));
        }
        Ok(format!("hello {name}"))
    }

    async fn relay(&self, ctx: &Context, text: String) -> Result<String, ServiceError> {
        ctx.client::<BackClient>()
            .note(text)
            .await
            .map_err(|error| ServiceError::internal(error.to_string()))?;
        Ok("relayed".into())
    }
}

fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this test binary");
        snapshotter
    })
}

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// What was recorded since the last snapshot (taking one resets the counters).
fn snapshot() -> Snapshot {
    snapshotter().snapshot().into_vec()
}

/// The value of metric `name` whose labels include all of `labels`.
fn metric<'a>(
    snapshot: &'a Snapshot,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot
        .iter()
        .find(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && labels.iter().all(|(k, v)| {
                    key.labels()
                        .any(|label| label.key() == *k && label.value() == *v)
                })
        })
        .map(|(_, _, _, value)| value)
}

fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
    match metric(snapshot, name, labels) {
        Some(DebugValue::Counter(value)) => *value,
        _ => 0,
    }
}

#[tokio::test]
async fn endpoints_report_counters_and_latency_histograms() {
    snapshotter();
    let server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let host = within(
        Host::new(nats.clone())
            .serve(FrontServer::new(FrontImpl))
            .serve(BackServer::new(Noting))
            .serve(WatcherServer::new(Forwarding { seen }))
            .start(),
    )
    .await
    .unwrap();

    let front = FrontClient::new(&nats);
    within(front.hello("a".into())).await.unwrap();
    within(front.hello("b".into())).await.unwrap();
    within(front.hello("fail".into())).await.unwrap_err();
    within(front.relay("r".into())).await.unwrap();
    assert_eq!(within(seen_rx.recv()).await.unwrap(), "r");

    let hello = [("service", "front"), ("endpoint", "hello"), ("kind", "rpc")];
    let recorded = snapshot();
    assert_eq!(counter(&recorded, "natsgen_handled_total", &hello), 3);
    assert_eq!(
        counter(
            &recorded,
            "natsgen_handled_errors_total",
            &[
                ("service", "front"),
                ("endpoint", "hello"),
                ("error", "teapot"),
                ("code", "418")
            ]
        ),
        1
    );
    match metric(&recorded, "natsgen_handled_duration_seconds", &hello) {
        Some(DebugValue::Histogram(values)) => {
            assert_eq!(values.len(), 3);
            assert!(values.iter().all(|value| value.into_inner() >= 0.0));
        }
        other => panic!("no latency histogram for front.hello: {other:?}"),
    }
    // The async call and the event are recorded once their handlers returned.
    let note = [("service", "back"), ("endpoint", "note"), ("kind", "async")];
    let seen = [
        ("service", "watcher"),
        ("endpoint", "seen"),
        ("kind", "event"),
    ];
    let (mut notes, mut events) = (
        counter(&recorded, "natsgen_handled_total", &note),
        counter(&recorded, "natsgen_handled_total", &seen),
    );
    within(async {
        while notes < 1 || events < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let recorded = snapshot();
            notes += counter(&recorded, "natsgen_handled_total", &note);
            events += counter(&recorded, "natsgen_handled_total", &seen);
        }
    })
    .await;
    assert_eq!((notes, events), (1, 1));

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn readiness_follows_the_connection_and_shutdown() {
    snapshotter();
    let mut server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    let (seen, _seen_rx) = mpsc::unbounded_channel();
    let host = within(
        Host::new(nats.clone())
            .serve(WatcherServer::new(Forwarding { seen }))
            .start(),
    )
    .await
    .unwrap();
    let readiness = host.readiness();
    assert!(readiness.is_ready());

    // The server goes away: not ready until the connection is back.
    server.kill().await;
    // The client notices a dead server when it next writes.
    within(async {
        while readiness.is_connected() {
            let _ = tokio::time::timeout(Duration::from_millis(100), nats.nats().flush()).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(!readiness.is_ready());
    assert!(!readiness.is_draining());
    within(server.restart()).await.unwrap();
    within(async {
        while !readiness.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    // Shutting down: draining, never ready again.
    within(host.shutdown()).await.unwrap();
    assert!(readiness.is_draining());
    assert!(!readiness.is_ready());
}
