//! Events end to end over a real nats-server: shared durable handlers (one copy per service),
//! broadcast handlers (one copy per instance), delivery after downtime, best effort, wildcard
//! handlers and dead letters. Generated from `schemas/jobs.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use natsgen::testing::NatsServer;
use natsgen::{Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::jobs::{
    Auditor, AuditorOnJobEvent, AuditorServer, Dashboard, DashboardServer, Events, JobsFailed,
    JobsFinished, JobsPoisoned, Ledger, LedgerServer, Mailer, MailerServer, Metrics, MetricsServer,
    Tail, TailServer,
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

/// Who received what: `(receiver, what)` pairs in arrival order, and a way to wait for them.
#[derive(Default)]
struct Inbox {
    entries: Mutex<Vec<(String, String)>>,
    changed: Notify,
}

impl Inbox {
    fn new() -> Arc<Self> {
        Arc::new(Inbox::default())
    }

    fn push(&self, receiver: impl Into<String>, what: impl Into<String>) {
        self.entries
            .lock()
            .unwrap()
            .push((receiver.into(), what.into()));
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Vec<(String, String)> {
        self.entries.lock().unwrap().clone()
    }

    /// What each receiver got, sorted.
    fn by_receiver(&self) -> BTreeMap<String, Vec<String>> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (receiver, what) in self.snapshot() {
            map.entry(receiver).or_default().push(what);
        }
        for list in map.values_mut() {
            list.sort();
        }
        map
    }

    async fn wait_until(&self, done: impl Fn(&[(String, String)]) -> bool) {
        within(async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                if done(&self.entries.lock().unwrap()) {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }

    /// Waits until `receiver` got `count` entries.
    async fn wait_for(&self, receiver: &str, count: usize) {
        self.wait_until(|entries| entries.iter().filter(|(r, _)| r == receiver).count() >= count)
            .await;
    }
}

/// One instance of the handling services; every handler writes `(<service>, <seq>)`, or
/// `(<service>@<instance>, <seq>)` for broadcast handlers, into the shared inbox.
#[derive(Clone)]
struct Instance {
    name: &'static str,
    inbox: Arc<Inbox>,
}

fn seq(event: &JobsFinished) -> String {
    format!("{:03}", event.seq)
}

impl Ledger for Instance {
    async fn record(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.inbox.push("ledger", seq(&event));
        Ok(())
    }

    async fn on_poisoned(&self, ctx: &Context, event: JobsPoisoned) -> Result<(), ServiceError> {
        let what = format!(
            "{} attempt {} id {}",
            event.job_id,
            ctx.attempt(),
            ctx.message_id().unwrap_or("-")
        );
        self.inbox.push("ledger.on_poisoned", what);
        Err(ServiceError::internal(format!(
            "cannot digest {}",
            event.job_id
        )))
    }
}

impl Mailer for Instance {
    async fn notify(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.inbox.push("mailer", seq(&event));
        Ok(())
    }
}

impl Metrics for Instance {
    async fn count(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.inbox.push("metrics", seq(&event));
        Ok(())
    }
}

impl Dashboard for Instance {
    async fn refresh(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.inbox
            .push(format!("dashboard@{}", self.name), seq(&event));
        Ok(())
    }
}

impl Tail for Instance {
    async fn follow(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.inbox.push("tail", seq(&event));
        Ok(())
    }
}

impl Auditor for Instance {
    async fn on_job_event(
        &self,
        ctx: &Context,
        event: AuditorOnJobEvent,
    ) -> Result<(), ServiceError> {
        let what = match &event {
            AuditorOnJobEvent::JobsFinished(e) => format!("finished {} {}", e.job_id, e.seq),
            AuditorOnJobEvent::JobsFailed(e) => format!("failed {} {}", e.job_id, e.error),
            AuditorOnJobEvent::JobsPoisoned(e) => format!("poisoned {}", e.job_id),
        };
        // The variant is the one the subject names.
        assert_eq!(event.topic(), ctx.subject());
        self.inbox.push("auditor", what);
        Ok(())
    }
}

/// Starts one host (one instance) over its own connection, serving what `serve` adds.
async fn start_instance(
    server: &NatsServer,
    instance: &Instance,
    serve: impl FnOnce(Host, &Instance) -> Host,
) -> HostHandle {
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    within(serve(Host::new(nats), instance).start())
        .await
        .unwrap()
}

fn finished(seq: u32) -> JobsFinished {
    JobsFinished {
        job_id: format!("job-{seq}"),
        seq,
    }
}

fn seqs(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| format!("{n:03}")).collect()
}

#[tokio::test]
async fn each_service_gets_one_copy_of_each_event_shared_by_its_instances() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let mut hosts = Vec::new();
    for name in ["a", "b"] {
        let instance = Instance {
            name,
            inbox: Arc::clone(&inbox),
        };
        hosts.push(
            start_instance(&server, &instance, |host, i| {
                host.serve(LedgerServer::new(i.clone()))
                    .serve(MailerServer::new(i.clone()))
                    .serve(MetricsServer::new(i.clone()))
            })
            .await,
        );
    }
    let events = Events::new(&nats);
    const COUNT: u32 = 30;
    for n in 0..COUNT {
        within(events.jobs_finished(&finished(n))).await.unwrap();
    }
    for service in ["ledger", "mailer", "metrics"] {
        inbox.wait_for(service, COUNT as usize).await;
    }
    // A last event through every service: anything duplicated would have arrived before it.
    within(events.jobs_finished(&finished(COUNT)))
        .await
        .unwrap();
    for service in ["ledger", "mailer", "metrics"] {
        inbox
            .wait_until(|entries| entries.contains(&(service.to_owned(), format!("{COUNT:03}"))))
            .await;
    }
    let got = inbox.by_receiver();
    for service in ["ledger", "mailer", "metrics"] {
        assert_eq!(got[service], seqs(0..COUNT + 1), "{service}");
    }
    for host in hosts {
        within(host.shutdown()).await.unwrap();
    }
}

#[tokio::test]
async fn a_broadcast_handler_gets_every_event_in_every_instance() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let mut hosts = Vec::new();
    for name in ["a", "b", "c"] {
        let instance = Instance {
            name,
            inbox: Arc::clone(&inbox),
        };
        hosts.push(
            start_instance(&server, &instance, |host, i| {
                host.serve(DashboardServer::new(i.clone()))
            })
            .await,
        );
    }
    let events = Events::new(&nats);
    const COUNT: u32 = 10;
    for n in 0..COUNT {
        within(events.jobs_finished(&finished(n))).await.unwrap();
    }
    for name in ["a", "b", "c"] {
        inbox
            .wait_for(&format!("dashboard@{name}"), COUNT as usize)
            .await;
    }
    let got = inbox.by_receiver();
    assert_eq!(got.len(), 3);
    for name in ["a", "b", "c"] {
        assert_eq!(got[&format!("dashboard@{name}")], seqs(0..COUNT), "{name}");
    }
    for host in hosts {
        within(host.shutdown()).await.unwrap();
    }
}

#[tokio::test]
async fn a_durable_handler_gets_the_events_published_while_it_was_stopped() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let instance = Instance {
        name: "a",
        inbox: Arc::clone(&inbox),
    };
    let serve = |host: Host, i: &Instance| host.serve(LedgerServer::new(i.clone()));
    // The first start creates the consumer; from then on the service misses nothing.
    let host = start_instance(&server, &instance, serve).await;
    within(host.shutdown()).await.unwrap();

    let events = Events::new(&nats);
    for n in 0..100 {
        within(events.jobs_finished(&finished(n))).await.unwrap();
    }
    assert!(inbox.snapshot().is_empty());

    let host = start_instance(&server, &instance, serve).await;
    inbox.wait_for("ledger", 100).await;
    within(events.jobs_finished(&finished(100))).await.unwrap();
    inbox.wait_for("ledger", 101).await;
    assert_eq!(inbox.by_receiver()["ledger"], seqs(0..101));
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_best_effort_handler_misses_events_published_while_it_was_down() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let instance = Instance {
        name: "a",
        inbox: Arc::clone(&inbox),
    };
    let serve = |host: Host, i: &Instance| host.serve(TailServer::new(i.clone()));
    let events = Events::new(&nats);

    let host = start_instance(&server, &instance, serve).await;
    within(events.jobs_finished(&finished(0))).await.unwrap();
    inbox.wait_for("tail", 1).await;
    within(host.shutdown()).await.unwrap();

    for n in 1..6 {
        within(events.jobs_finished(&finished(n))).await.unwrap();
    }

    let host = start_instance(&server, &instance, serve).await;
    within(events.jobs_finished(&finished(6))).await.unwrap();
    inbox
        .wait_until(|entries| entries.contains(&("tail".into(), "006".into())))
        .await;
    assert_eq!(inbox.by_receiver()["tail"], ["000", "006"]);
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_best_effort_handler_shares_events_between_instances() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let mut hosts = Vec::new();
    for name in ["a", "b"] {
        let instance = Instance {
            name,
            inbox: Arc::clone(&inbox),
        };
        hosts.push(
            start_instance(&server, &instance, |host, i| {
                host.serve(TailServer::new(i.clone()))
            })
            .await,
        );
    }
    // A raw core subscriber sees every event, so it tells when all have passed the server.
    let mut raw = nats.nats().subscribe("jobs.finished").await.unwrap();
    nats.nats().flush().await.unwrap();
    let events = Events::new(&nats);
    const COUNT: u32 = 20;
    for n in 0..COUNT {
        within(events.jobs_finished(&finished(n))).await.unwrap();
    }
    for _ in 0..COUNT {
        within(raw.next()).await.unwrap();
    }
    inbox.wait_for("tail", COUNT as usize).await;
    // The queue group gives each event to one instance; a marker flushes out any duplicate.
    within(events.jobs_finished(&finished(COUNT)))
        .await
        .unwrap();
    inbox
        .wait_until(|entries| entries.contains(&("tail".into(), format!("{COUNT:03}"))))
        .await;
    assert_eq!(inbox.by_receiver()["tail"], seqs(0..COUNT + 1));
    for host in hosts {
        within(host.shutdown()).await.unwrap();
    }
}

#[tokio::test]
async fn a_wildcard_handler_gets_the_right_variants() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let instance = Instance {
        name: "a",
        inbox: Arc::clone(&inbox),
    };
    let host = start_instance(&server, &instance, |host, i| {
        host.serve(AuditorServer::new(i.clone()))
    })
    .await;
    let events = Events::new(&nats);
    within(events.jobs_finished(&finished(1))).await.unwrap();
    within(events.jobs_failed(&JobsFailed {
        job_id: "job-2".into(),
        error: "disk full".into(),
    }))
    .await
    .unwrap();
    within(events.jobs_poisoned(&JobsPoisoned {
        job_id: "job-3".into(),
    }))
    .await
    .unwrap();
    inbox.wait_for("auditor", 3).await;
    assert_eq!(
        inbox.by_receiver()["auditor"],
        [
            "failed job-2 disk full",
            "finished job-1 1",
            "poisoned job-3"
        ]
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_failing_durable_handler_is_retried_then_dead_lettered() {
    let (server, nats) = start_server().await;
    let mut dead_letters = nats.nats().subscribe("natsgen.dlq.>").await.unwrap();
    nats.nats().flush().await.unwrap();
    let inbox = Inbox::new();
    let instance = Instance {
        name: "a",
        inbox: Arc::clone(&inbox),
    };
    let host = start_instance(&server, &instance, |host, i| {
        host.serve(LedgerServer::new(i.clone()))
    })
    .await;
    let events = Events::new(&nats);
    within(
        events
            .jobs_poisoned(&JobsPoisoned {
                job_id: "job-9".into(),
            })
            .event_id("poison-1"),
    )
    .await
    .unwrap();

    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(letter.subject.as_str(), "natsgen.dlq.ledger.on_poisoned");
    let headers = letter.headers.as_ref().unwrap();
    let header = |name: &str| headers.get(name).map(|value| value.as_str().to_owned());
    assert_eq!(header("Natsgen-Dlq-Reason").as_deref(), Some("failed"));
    assert_eq!(
        header("Natsgen-Dlq-Subject").as_deref(),
        Some("jobs.poisoned")
    );
    assert_eq!(header("Natsgen-Dlq-Stream").as_deref(), Some("EVENTS_jobs"));
    assert_eq!(header("Natsgen-Dlq-Attempts").as_deref(), Some("2"));
    assert_eq!(
        header("Natsgen-Dlq-Error-Message").as_deref(),
        Some("cannot digest job-9")
    );
    assert_eq!(header("Natsgen-Dlq-Msg-Id").as_deref(), Some("poison-1"));
    // max_attempts: 2 in the schema.
    assert_eq!(
        inbox.by_receiver()["ledger.on_poisoned"],
        ["job-9 attempt 1 id poison-1", "job-9 attempt 2 id poison-1"]
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn wildcard_and_topic_handlers_share_a_stream_whichever_starts_first() {
    for auditor_first in [true, false] {
        let (server, nats) = start_server().await;
        let inbox = Inbox::new();
        let instance = Instance {
            name: "a",
            inbox: Arc::clone(&inbox),
        };
        // The first handler creates `EVENTS_jobs` with its own filter (`jobs.*` or
        // `jobs.finished`); the second finds it; the publisher adds the topics it lacks.
        let host = start_instance(&server, &instance, |host, i| {
            if auditor_first {
                host.serve(AuditorServer::new(i.clone()))
                    .serve(LedgerServer::new(i.clone()))
            } else {
                host.serve(LedgerServer::new(i.clone()))
                    .serve(AuditorServer::new(i.clone()))
            }
        })
        .await;
        let events = Events::new(&nats);
        within(events.jobs_failed(&JobsFailed {
            job_id: "job-1".into(),
            error: "oops".into(),
        }))
        .await
        .unwrap();
        within(events.jobs_finished(&finished(2))).await.unwrap();
        inbox.wait_for("auditor", 2).await;
        inbox.wait_for("ledger", 1).await;
        let got = inbox.by_receiver();
        assert_eq!(
            got["auditor"],
            ["failed job-1 oops", "finished job-2 2"],
            "auditor first: {auditor_first}"
        );
        assert_eq!(got["ledger"], ["002"], "auditor first: {auditor_first}");
        within(host.shutdown()).await.unwrap();
    }
}

/// The dead letters stored in `NATSGEN_DLQ`, by subject, waiting (boundedly) until there are
/// `count` of them.
async fn stored_dead_letters(nats: &Connection, count: u64) -> BTreeMap<String, u64> {
    let js = async_nats::jetstream::new(nats.nats().clone());
    within(async {
        loop {
            if let Ok(mut stream) = js.get_stream("NATSGEN_DLQ").await {
                if let Ok(info) = stream.info().await {
                    if info.state.messages >= count {
                        break;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let stream = js.get_stream("NATSGEN_DLQ").await.unwrap();
    let mut subjects = BTreeMap::new();
    let mut pages = stream.info_with_subjects("natsgen.dlq.>").await.unwrap();
    while let Some(entry) = pages.next().await {
        let (subject, n) = entry.unwrap();
        subjects.insert(subject, n as u64);
    }
    subjects
}

#[tokio::test]
async fn an_undecodable_event_leaves_one_dead_letter_per_handler() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let instance = Instance {
        name: "a",
        inbox: Arc::clone(&inbox),
    };
    let host = start_instance(&server, &instance, |host, i| {
        host.serve(LedgerServer::new(i.clone()))
            .serve(MailerServer::new(i.clone()))
            .serve(MetricsServer::new(i.clone()))
    })
    .await;
    // Any client may publish anything on a topic; this one does not decode into `JobsFinished`.
    let js = async_nats::jetstream::new(nats.nats().clone());
    within(async {
        js.publish("jobs.finished", r#"{"job_id": 5}"#.into())
            .await
            .unwrap()
            .await
            .unwrap()
    })
    .await;
    let letters = stored_dead_letters(&nats, 3).await;
    // A good event through every handler after it: a fourth letter would have come by then.
    within(Events::new(&nats).jobs_finished(&finished(1)))
        .await
        .unwrap();
    for service in ["ledger", "mailer", "metrics"] {
        inbox.wait_for(service, 1).await;
    }
    let letters_after = stored_dead_letters(&nats, 3).await;
    assert_eq!(letters, letters_after);
    let expected: BTreeMap<String, u64> = [
        "natsgen.dlq.ledger.record",
        "natsgen.dlq.mailer.notify",
        "natsgen.dlq.metrics.count",
    ]
    .into_iter()
    .map(|subject| (subject.to_owned(), 1))
    .collect();
    assert_eq!(letters, expected);
    within(host.shutdown()).await.unwrap();
    drop(server);
}

/// Resumes a stopped process when dropped, so a failing test leaves no frozen server behind.
struct Frozen(u32);

impl Frozen {
    fn stop(pid: u32) -> Frozen {
        let status = std::process::Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        // The signal stops each thread when the kernel next gets hold of it: wait until all are.
        let all_stopped = || {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
            tasks.flatten().all(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                })
            })
        };
        for _ in 0..1000 {
            if all_stopped() {
                return Frozen(pid);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("nats-server {pid} did not stop");
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

#[tokio::test]
async fn a_publish_to_an_unresponsive_server_fails_within_its_timeout() {
    let (server, nats) = start_server().await;
    let events = Events::new(&nats);
    within(events.jobs_finished(&finished(1))).await.unwrap();
    // A frozen server keeps the TCP connection open: the client still counts as connected, and
    // no PubAck ever comes.
    let frozen = Frozen::stop(server.pid().unwrap());
    let short = within(
        events
            .jobs_finished(&finished(2))
            .timeout(Duration::from_millis(300)),
    )
    .await;
    assert!(
        matches!(&short, Err(natsgen::Error::Publish { .. })),
        "{short:?}"
    );
    // Without a timeout of its own, a publish gives up after the default.
    let default = within(events.jobs_finished(&finished(3))).await;
    assert!(
        matches!(&default, Err(natsgen::Error::Publish { .. })),
        "{default:?}"
    );
    drop(frozen);
    // Once the server answers again, publishing works again.
    within(async {
        loop {
            if events.jobs_finished(&finished(4)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// A best-effort handler that holds every event until the test opens the gate.
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    inbox: Arc<Inbox>,
}

impl Tail for Gated {
    async fn follow(&self, _ctx: &Context, event: JobsFinished) -> Result<(), ServiceError> {
        self.inbox.push("started", seq(&event));
        let _open = self.gate.acquire().await.map_err(ServiceError::from)?;
        self.inbox.push("tail", seq(&event));
        Ok(())
    }
}

/// The `num_errors` `$SRV.STATS` reports for endpoint `name` of `service`.
async fn endpoint_errors(nats: &Connection, service: &str, name: &str) -> u64 {
    let reply = within(
        nats.nats()
            .request(format!("$SRV.STATS.{service}"), bytes::Bytes::new()),
    )
    .await
    .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|endpoint| endpoint["name"] == name)
        .map(|endpoint| endpoint["num_errors"].as_u64().unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_best_effort_handler_drops_what_its_bounded_queue_cannot_hold_and_counts_it() {
    let (server, nats) = start_server().await;
    let inbox = Inbox::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let host_nats = within(natsgen::connect(server.url())).await.unwrap();
    let host = within(
        Host::new(host_nats)
            .max_concurrency(1)
            .max_queue(2)
            .serve(TailServer::new(Gated {
                gate: Arc::clone(&gate),
                inbox: Arc::clone(&inbox),
            }))
            .start(),
    )
    .await
    .unwrap();
    let events = Events::new(&nats);
    const SENT: u32 = 20;
    for n in 0..SENT {
        within(events.jobs_finished(&finished(n))).await.unwrap();
    }
    // One runs, two wait in the queue, the rest are dropped and counted, not buffered.
    within(async {
        while endpoint_errors(&nats, "tail", "follow").await < u64::from(SENT) - 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        endpoint_errors(&nats, "tail", "follow").await,
        u64::from(SENT) - 3
    );
    gate.add_permits(1000);
    inbox.wait_for("tail", 3).await;
    // A last event: it comes after every earlier one on the subscription.
    within(events.jobs_finished(&finished(SENT))).await.unwrap();
    inbox.wait_for("tail", 4).await;
    assert_eq!(
        inbox.by_receiver()["tail"],
        ["000", "001", "002", format!("{SENT:03}").as_str()]
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn concurrent_writers_extending_an_event_stream_all_keep_their_topics() {
    let (server, nats) = start_server().await;
    let settings = natsgen::StreamSettings::new();
    // The stream exists; eight processes (connections) add a topic each at the same moment.
    let js = async_nats::jetstream::new(nats.nats().clone());
    within(natsgen::streams::ensure_event_stream(
        &js,
        &settings,
        "race",
        &["race.zero"],
    ))
    .await
    .unwrap();
    let topics: Vec<String> = (1..=8).map(|n| format!("race.topic{n}")).collect();
    let mut writers = Vec::new();
    for topic in &topics {
        let connection = within(natsgen::connect(server.url())).await.unwrap();
        let topic = topic.clone();
        let settings = settings.clone();
        writers.push(tokio::spawn(async move {
            let js = async_nats::jetstream::new(connection.nats().clone());
            let topic: &str = &topic;
            natsgen::streams::ensure_event_stream(&js, &settings, "race", &[topic])
                .await
                .unwrap();
        }));
    }
    for writer in writers {
        within(writer).await.unwrap();
    }
    let mut stream = within(js.get_stream("EVENTS_race")).await.unwrap();
    let subjects = within(stream.info()).await.unwrap().config.subjects.clone();
    for topic in topics.iter().map(String::as_str).chain(["race.zero"]) {
        assert!(
            subjects.iter().any(|s| s == topic),
            "{topic} lost: {subjects:?}"
        );
    }
    // A full event stream refuses new events rather than dropping stored ones.
    let config = within(stream.info()).await.unwrap().config.clone();
    assert_eq!(config.max_age, natsgen::streams::EVENT_MAX_AGE);
    assert_eq!(
        config.discard,
        async_nats::jetstream::stream::DiscardPolicy::New
    );
}
