//! natsgen on a three-node JetStream cluster with replicated (R3) streams: one node is killed
//! (SIGKILL) in the middle of a run of sync calls, async calls and events. Nothing stored is
//! lost, sync calls succeed again by themselves, and the host is never restarted by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natsgen::testing::NatsCluster;
use natsgen::{CallRetry, ConnectOptions, Connection, Context, Host, ServiceError, StreamSettings};
use natsgen_tests::jobs::{
    Events, JobRunner, JobRunnerClient, JobRunnerServer, JobsFinished, JobsPoisoned, Ledger,
    LedgerServer,
};

const PATIENCE: Duration = Duration::from_secs(120);

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long: something hangs")
}

/// What the services saw: job ids run, event sequence numbers recorded.
#[derive(Default)]
struct Seen {
    jobs: Mutex<BTreeSet<String>>,
    events: Mutex<BTreeSet<u32>>,
}

#[derive(Clone)]
struct Services(Arc<Seen>);

impl JobRunner for Services {
    async fn run(
        &self,
        _ctx: &Context,
        job_id: String,
        _fail_times: u32,
        _sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        self.0.jobs.lock().unwrap().insert(job_id);
        Ok(())
    }

    async fn run_once(
        &self,
        ctx: &Context,
        job_id: String,
        fail_times: u32,
        sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        self.run(ctx, job_id, fail_times, sleep_ms).await
    }

    async fn echo(
        &self,
        _ctx: &Context,
        text: String,
        _sleep_ms: u64,
    ) -> Result<String, ServiceError> {
        Ok(text)
    }
}

impl Ledger for Services {
    async fn record(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.0.events.lock().unwrap().insert(event.seq);
        Ok(())
    }

    async fn on_poisoned(&self, _ctx: &Context, _event: JobsPoisoned) -> Result<(), ServiceError> {
        Ok(())
    }
}

async fn connect(urls: &[String]) -> Connection {
    within(
        ConnectOptions::new()
            .streams(StreamSettings::new().replicas(3))
            .connect(urls),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn losing_one_node_of_three_loses_nothing_stored_and_calls_recover() {
    let mut cluster = within(NatsCluster::builder().size(3).start())
        .await
        .unwrap();
    let urls = cluster.urls();
    let seen = Arc::new(Seen::default());
    let host_nats = connect(&urls).await;
    // Creating R3 streams right after the cluster formed can take the meta leader longer than a
    // JetStream request's timeout on a busy machine: the start is tried again (the kill comes
    // much later; from then on nothing is restarted by hand).
    let mut started = None;
    for _ in 0..5 {
        match within(
            Host::new(host_nats.clone())
                .serve(JobRunnerServer::new(Services(Arc::clone(&seen))))
                .serve(LedgerServer::new(Services(Arc::clone(&seen))))
                .start(),
        )
        .await
        {
            Ok(host) => {
                started = Some(host);
                break;
            }
            Err(error) => {
                eprintln!("the host did not start yet: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let host = started.expect("the host starts on the cluster");
    // The caller sits on another node than the host, so both sides see the failover.
    let caller_nats = connect(&urls).await;
    let client = JobRunnerClient::new(&caller_nats);
    let events = Events::new(&caller_nats);
    let patient = CallRetry::until_deadline()
        .on_disconnected(true)
        .backoff(Duration::from_millis(50), Duration::from_millis(500));

    // Every stream natsgen made is replicated three times.
    let js = async_nats::jetstream::new(caller_nats.nats().clone());
    within(
        client
            .run("warm-up".into(), 0, 0)
            .timeout(Duration::from_secs(30))
            .retry(patient),
    )
    .await
    .unwrap();
    within(
        events
            .jobs_finished(&JobsFinished {
                job_id: "warm-up".into(),
                seq: 0,
            })
            .timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    for stream in ["ASYNC_job_runner", "EVENTS_jobs"] {
        let mut stream = within(js.get_stream(stream)).await.unwrap();
        assert_eq!(within(stream.info()).await.unwrap().config.num_replicas, 3);
    }

    const ROUNDS: u32 = 150;
    const KILL_AT: u32 = 50;
    let mut accepted_jobs = BTreeSet::new();
    let mut accepted_events = BTreeSet::from([0]);
    let mut sync_failures_after_kill = 0u32;
    let mut last_sync_ok = 0;
    for round in 1..=ROUNDS {
        if round == KILL_AT {
            let port = host_nats.nats().server_info().port;
            let index = cluster
                .nodes()
                .iter()
                .position(|node| node.port() == port)
                .expect("the host is on a node of the cluster");
            within(cluster.node_mut(index).unwrap().kill()).await;
        }
        let echo = within(
            client
                .echo(format!("round {round}"), 0)
                .timeout(Duration::from_secs(10))
                .retry(patient),
        )
        .await;
        match echo {
            Ok(text) => {
                assert_eq!(text, format!("round {round}"));
                last_sync_ok = round;
            }
            Err(_) if round >= KILL_AT => sync_failures_after_kill += 1,
            Err(error) => panic!("a sync call failed before any fault: {error}"),
        }
        let job = format!("job-{round}");
        let stored = within(
            client
                .run(job.clone(), 0, 0)
                .idempotency_key(job.clone())
                .timeout(Duration::from_secs(10))
                .retry(patient),
        )
        .await;
        if stored.is_ok() {
            accepted_jobs.insert(job);
        }
        let event = JobsFinished {
            job_id: format!("event-{round}"),
            seq: round,
        };
        let published = within(
            events
                .jobs_finished(&event)
                .event_id(format!("event-{round}"))
                .timeout(Duration::from_secs(10)),
        )
        .await;
        if published.is_ok() {
            accepted_events.insert(round);
        }
    }
    // Sync calls work again by themselves: the last rounds all succeeded.
    assert_eq!(last_sync_ok, ROUNDS, "sync calls did not recover");
    // Nearly everything was accepted despite the kill (retries ride out the failover).
    assert!(
        accepted_jobs.len() as u32 >= ROUNDS - 10,
        "only {} of {ROUNDS} async calls were accepted",
        accepted_jobs.len()
    );

    // Every accepted call and event is handled: nothing stored was lost with the node.
    within(async {
        loop {
            let jobs_done = accepted_jobs.is_subset(&seen.jobs.lock().unwrap());
            let events_done = accepted_events.is_subset(&seen.events.lock().unwrap());
            if jobs_done && events_done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    println!(
        "rounds {ROUNDS}, async accepted {}, events accepted {}, sync failures after the kill {}",
        accepted_jobs.len(),
        accepted_events.len() - 1,
        sync_failures_after_kill
    );
    within(host.shutdown()).await.unwrap();
}
