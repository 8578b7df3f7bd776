//! Timers end to end over a real nats-server: `scope: instance` ticks on every instance,
//! `scope: service` runs each tick on one instance of two, a failed tick is retried, a tick that
//! outlasts its period does not overlap the next one on an instance, a tick whose instance is
//! killed mid-run is run by another, discovery lists timers, and a shutdown stops them. Generated from `schemas/timers.yaml`. The assertions count ticks and
//! compare their ids; none measures time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use natsgen::testing::NatsServer;
use natsgen::{Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::timers::{
    CrashTicker, CrashTickerServer, LocalTicker, LocalTickerServer, RetryingTicker,
    RetryingTickerServer, SharedTicker, SharedTickerServer, SlowTicker, SlowTickerServer,
};
use tokio::sync::Notify;

/// Guards every wait of a test, so a broken runtime fails the test instead of hanging it. Never
/// a measure of speed.
const PATIENCE: Duration = Duration::from_secs(60);

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long")
}

async fn start_server() -> (NatsServer, Connection) {
    let server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    (server, nats)
}

/// One run of a tick, as its handler saw it.
#[derive(Debug, Clone, PartialEq)]
struct Run {
    /// Which host ran it.
    instance: usize,
    /// `<timer>:<tick>`.
    tick_id: String,
    attempt: u32,
    call_id: String,
}

impl Run {
    fn tick(&self) -> u64 {
        self.tick_id
            .rsplit(':')
            .next()
            .and_then(|tick| tick.parse().ok())
            .unwrap_or_else(|| panic!("a tick id ends in its number: {}", self.tick_id))
    }
}

/// Every run, with a way to wait for a condition on them.
#[derive(Default)]
struct Log {
    runs: Mutex<Vec<Run>>,
    changed: Notify,
}

impl Log {
    fn record(&self, instance: usize, ctx: &Context) {
        let run = Run {
            instance,
            tick_id: ctx
                .message_id()
                .expect("a tick has a message id")
                .to_owned(),
            attempt: ctx.attempt(),
            call_id: ctx.call_id().to_owned(),
        };
        self.runs.lock().unwrap().push(run);
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    async fn wait_until(&self, done: impl Fn(&[Run]) -> bool) -> Vec<Run> {
        within(async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                {
                    let runs = self.runs.lock().unwrap();
                    if done(&runs) {
                        return runs.clone();
                    }
                }
                changed.await;
            }
        })
        .await
    }
}

/// Every timer of every service of `schemas/timers.yaml`, recording its runs.
#[derive(Clone)]
struct Ticks {
    instance: usize,
    log: Arc<Log>,
    /// Per slow timer (`slow_local`, `slow_shared`): runs under way, and the most at once.
    running: Arc<[AtomicUsize; 2]>,
    most_at_once: Arc<[AtomicUsize; 2]>,
}

impl Ticks {
    fn new(instance: usize, log: &Arc<Log>) -> Self {
        Ticks {
            instance,
            log: Arc::clone(log),
            running: Arc::default(),
            most_at_once: Arc::default(),
        }
    }

    /// Runs for `ms`, counting how many runs of slow timer `which` overlap on this instance.
    async fn slow(&self, ctx: &Context, which: usize, ms: u64) {
        let now = self.running[which].fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once[which].fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.running[which].fetch_sub(1, Ordering::SeqCst);
        self.log.record(self.instance, ctx);
    }
}

impl LocalTicker for Ticks {
    async fn local(&self, ctx: &Context) -> Result<(), ServiceError> {
        self.log.record(self.instance, ctx);
        Ok(())
    }
}

impl SharedTicker for Ticks {
    async fn shared(&self, ctx: &Context) -> Result<(), ServiceError> {
        self.log.record(self.instance, ctx);
        Ok(())
    }
}

impl RetryingTicker for Ticks {
    async fn flaky(&self, ctx: &Context) -> Result<(), ServiceError> {
        self.log.record(self.instance, ctx);
        if ctx.attempt() == 1 {
            return Err(ServiceError::internal(
                "the first attempt of every tick fails",
            ));
        }
        Ok(())
    }
}

impl SlowTicker for Ticks {
    async fn slow_local(&self, ctx: &Context) -> Result<(), ServiceError> {
        self.slow(ctx, 0, 350).await;
        Ok(())
    }

    async fn slow_shared(&self, ctx: &Context) -> Result<(), ServiceError> {
        self.slow(ctx, 1, 350).await;
        Ok(())
    }
}

impl CrashTicker for Ticks {
    async fn nightly(&self, ctx: &Context) -> Result<(), ServiceError> {
        self.log.record(self.instance, ctx);
        Ok(())
    }
}

async fn start(host: Host) -> HostHandle {
    within(host.start()).await.unwrap()
}

/// Runs per instance: `instance → tick ids in the order they ran`.
fn by_instance(runs: &[Run]) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for run in runs {
        out.entry(run.instance)
            .or_default()
            .push(run.tick_id.clone());
    }
    out
}

#[tokio::test]
async fn an_instance_scope_timer_ticks_on_every_instance() {
    let (_server, nats) = start_server().await;
    let log = Arc::new(Log::default());
    let first =
        start(Host::new(nats.clone()).serve(LocalTickerServer::new(Ticks::new(1, &log)))).await;
    let second =
        start(Host::new(nats.clone()).serve(LocalTickerServer::new(Ticks::new(2, &log)))).await;

    log.wait_until(|runs| {
        let per = by_instance(runs);
        per.len() == 2 && per.values().all(|ticks| ticks.len() >= 3)
    })
    .await;
    within(first.shutdown()).await.unwrap();
    within(second.shutdown()).await.unwrap();

    let runs = log.snapshot();
    for (instance, ticks) in by_instance(&runs) {
        assert!(
            ticks.iter().all(|id| id.starts_with("local:")),
            "instance {instance}: {ticks:?}"
        );
        // Each instance runs each tick once, in order.
        let numbers: Vec<u64> = runs
            .iter()
            .filter(|run| run.instance == instance)
            .map(Run::tick)
            .collect();
        assert!(
            numbers.windows(2).all(|pair| pair[0] < pair[1]),
            "instance {instance}: {numbers:?}"
        );
    }
    // An instance tick is a first attempt with a call id of its own.
    assert!(runs.iter().all(|run| run.attempt == 1), "{runs:?}");
    let mut call_ids: Vec<&str> = runs.iter().map(|run| run.call_id.as_str()).collect();
    call_ids.sort_unstable();
    call_ids.dedup();
    assert_eq!(call_ids.len(), runs.len(), "{runs:?}");

    // Stopped hosts tick no more.
    let stopped = runs.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(log.snapshot().len(), stopped);
}

#[tokio::test]
async fn a_service_scope_timer_runs_each_tick_on_one_instance() {
    let (server, nats) = start_server().await;
    let log = Arc::new(Log::default());
    // Two instances on connections of their own, as two processes would have.
    let other = within(natsgen::connect(server.url())).await.unwrap();
    let first =
        start(Host::new(nats.clone()).serve(SharedTickerServer::new(Ticks::new(1, &log)))).await;
    let second = start(Host::new(other).serve(SharedTickerServer::new(Ticks::new(2, &log)))).await;

    log.wait_until(|runs| {
        let mut ticks: Vec<&str> = runs.iter().map(|run| run.tick_id.as_str()).collect();
        ticks.sort_unstable();
        ticks.dedup();
        ticks.len() >= 8
    })
    .await;
    within(first.shutdown()).await.unwrap();
    within(second.shutdown()).await.unwrap();

    let runs = log.snapshot();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for run in &runs {
        *counts.entry(run.tick_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "ticks run more than once: {twice:?}\n{runs:?}"
    );
    assert!(
        runs.iter().all(|run| run.tick_id.starts_with("shared:")),
        "{runs:?}"
    );
    assert!(runs.iter().all(|run| run.attempt == 1), "{runs:?}");
}

#[tokio::test]
async fn a_failed_service_scope_tick_is_retried() {
    let (_server, nats) = start_server().await;
    let log = Arc::new(Log::default());
    let host =
        start(Host::new(nats.clone()).serve(RetryingTickerServer::new(Ticks::new(1, &log)))).await;

    let runs = log
        .wait_until(|runs| runs.iter().any(|run| run.attempt == 2))
        .await;
    within(host.shutdown()).await.unwrap();

    let retried = runs.iter().find(|run| run.attempt == 2).unwrap();
    let attempts: Vec<u32> = runs
        .iter()
        .filter(|run| run.tick_id == retried.tick_id)
        .map(|run| run.attempt)
        .collect();
    assert_eq!(attempts, [1, 2], "{runs:?}");
    // The retry is the same call.
    let first = runs
        .iter()
        .find(|run| run.tick_id == retried.tick_id && run.attempt == 1)
        .unwrap();
    assert_eq!(first.call_id, retried.call_id);
}

#[tokio::test]
async fn a_tick_longer_than_its_period_does_not_overlap_the_next_on_an_instance() {
    let (_server, nats) = start_server().await;
    let log = Arc::new(Log::default());
    let ticks = Ticks::new(1, &log);
    let host = start(Host::new(nats.clone()).serve(SlowTickerServer::new(ticks.clone()))).await;

    let runs = log
        .wait_until(|runs| {
            ["slow_local:", "slow_shared:"].iter().all(|timer| {
                runs.iter()
                    .filter(|run| run.tick_id.starts_with(timer))
                    .count()
                    >= 3
            })
        })
        .await;
    within(host.shutdown()).await.unwrap();

    for (which, timer) in ["slow_local:", "slow_shared:"].into_iter().enumerate() {
        assert_eq!(
            ticks.most_at_once[which].load(Ordering::SeqCst),
            1,
            "{timer} ran beside itself: {runs:?}"
        );
        let numbers: Vec<u64> = runs
            .iter()
            .filter(|run| run.tick_id.starts_with(timer))
            .map(Run::tick)
            .collect();
        assert!(
            numbers.windows(2).all(|pair| pair[0] < pair[1]),
            "{timer} {numbers:?}"
        );
    }
    // An instance's own loop waits for its run: a run of 350 ms at a period of 100 ms skips the
    // ticks that fell due meanwhile. (A service-scope tick arrives whenever the queue delivers it,
    // so which of those ran depends on the timing; that none overlapped is checked above.)
    let local: Vec<u64> = runs
        .iter()
        .filter(|run| run.tick_id.starts_with("slow_local:"))
        .map(Run::tick)
        .collect();
    assert!(
        local.windows(2).all(|pair| pair[1] > pair[0] + 1),
        "{local:?}"
    );
}

#[tokio::test]
async fn discovery_lists_timers_with_their_period_and_scope() {
    let (_server, nats) = start_server().await;
    let log = Arc::new(Log::default());
    let host = start(
        Host::new(nats.clone())
            .serve(SharedTickerServer::new(Ticks::new(1, &log)))
            .serve(LocalTickerServer::new(Ticks::new(1, &log))),
    )
    .await;

    let info = |service: &'static str| {
        let client = nats.nats().clone();
        async move {
            let reply = within(client.request(format!("$SRV.INFO.{service}"), "".into()))
                .await
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let shared = info("shared_ticker").await;
    let endpoint = &shared["endpoints"][0];
    assert_eq!(endpoint["name"], "shared", "{shared}");
    assert_eq!(endpoint["subject"], "shared_ticker.async.shared");
    assert_eq!(endpoint["queue_group"], "shared_ticker");
    let metadata = &endpoint["metadata"];
    assert_eq!(metadata["kind"], "timer");
    assert_eq!(metadata["every_ms"], "200");
    assert_eq!(metadata["scope"], "service");
    assert_eq!(metadata["stream"], "ASYNC_shared_ticker");
    assert_eq!(metadata["consumer"], "shared_ticker");

    let local = info("local_ticker").await;
    let endpoint = &local["endpoints"][0];
    assert_eq!(endpoint["name"], "local", "{local}");
    assert_eq!(endpoint["subject"], "");
    let metadata = &endpoint["metadata"];
    assert_eq!(metadata["kind"], "timer");
    assert_eq!(metadata["scope"], "instance");
    assert!(metadata.get("stream").is_none(), "{local}");

    // Ticks are counted in the stats like other work.
    log.wait_until(|runs| runs.len() >= 2).await;
    let reply = within(nats.nats().request("$SRV.STATS.local_ticker", "".into()))
        .await
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert!(
        stats["endpoints"][0]["num_requests"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_tick_whose_instance_is_killed_mid_run_is_run_by_another_instance() {
    let (server, nats) = start_server().await;
    let mut started = nats.nats().subscribe("ticks_test.started").await.unwrap();
    nats.nats().flush().await.unwrap();
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_tick_worker"))
        .arg(server.url())
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("the tick_worker binary starts");
    let message = within(started.next()).await.unwrap();
    let body = String::from_utf8(message.payload.to_vec()).unwrap();
    let (tick_id, attempt) = body.split_once(' ').unwrap();
    assert_eq!(attempt, "1", "{body}");
    // A crash, not a shutdown: SIGKILL, so the tick is neither acked nor nak'd.
    worker.start_kill().unwrap();
    within(worker.wait()).await.unwrap();

    let log = Arc::new(Log::default());
    let host =
        start(Host::new(nats.clone()).serve(CrashTickerServer::new(Ticks::new(2, &log)))).await;
    // The ack wait (10 s) after its last in-progress ack, the tick comes to this instance.
    let runs = log
        .wait_until(|runs| runs.iter().any(|run| run.tick_id == tick_id))
        .await;
    within(host.shutdown()).await.unwrap();
    let rerun = runs.iter().find(|run| run.tick_id == tick_id).unwrap();
    assert_eq!(rerun.attempt, 2, "{runs:?}");
}
