//! Async calls end to end over a real nats-server: durable acceptance, retries, dead letters,
//! idempotency, raw publishes, a worker process killed mid-call, in-progress acks, the shared
//! concurrency limit and graceful shutdown. Generated from `schemas/jobs.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use natsgen::testing::NatsServer;
use natsgen::{Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::jobs::{
    Events, JobRunner, JobRunnerClient, JobRunnerServer, JobsFailed, Throttled, ThrottledClient,
    ThrottledServer,
};
use tokio::sync::{Notify, Semaphore};

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

/// What handlers saw, in order, with a way to wait for a condition on it.
struct Log<T> {
    entries: Mutex<Vec<T>>,
    changed: Notify,
}

impl<T: Clone> Log<T> {
    fn new() -> Arc<Self> {
        Arc::new(Log {
            entries: Mutex::new(Vec::new()),
            changed: Notify::new(),
        })
    }

    fn push(&self, entry: T) {
        self.entries.lock().unwrap().push(entry);
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Vec<T> {
        self.entries.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the entries, and returns them.
    async fn wait_until(&self, done: impl Fn(&[T]) -> bool) -> Vec<T> {
        within(async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                {
                    let entries = self.entries.lock().unwrap();
                    if done(&entries) {
                        return entries.clone();
                    }
                }
                changed.await;
            }
        })
        .await
    }
}

/// One attempt of a job, as its handler saw it.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    method: &'static str,
    job_id: String,
    attempt: u32,
    message_id: Option<String>,
    call_id: String,
    has_deadline: bool,
    subject: String,
    /// False when the attempt starts, true when it finished (successfully or not).
    finished: bool,
}

/// Whether this is the first time any host of this test process runs `job_id`.
fn first_run(job_id: &str) -> bool {
    static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap();
    if seen.iter().any(|seen| seen == job_id) {
        return false;
    }
    seen.push(job_id.to_owned());
    true
}

/// The in-process `job_runner`: records every attempt; the first run of a job in this process
/// sleeps `sleep_ms` (a job whose id starts with `forever` sleeps on every run); attempts up to
/// `fail_times` fail.
struct Jobs {
    log: Arc<Log<Attempt>>,
}

impl Jobs {
    async fn job(
        &self,
        ctx: &Context,
        job_id: String,
        fail_times: u32,
        sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        let mut attempt = Attempt {
            method: ctx.method(),
            job_id,
            attempt: ctx.attempt(),
            message_id: ctx.message_id().map(str::to_owned),
            call_id: ctx.call_id().to_owned(),
            has_deadline: ctx.deadline().is_some(),
            subject: ctx.subject().to_owned(),
            finished: false,
        };
        self.log.push(attempt.clone());
        if first_run(&attempt.job_id) || attempt.job_id.starts_with("forever") {
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        }
        attempt.finished = true;
        self.log.push(attempt.clone());
        if attempt.job_id.starts_with("reject") {
            // The handler's own verdict on its input: retried like any failure, unlike a body
            // the runtime cannot decode.
            return Err(ServiceError::bad_request(format!(
                "{} is not a job this runner takes",
                attempt.job_id
            )));
        }
        if ctx.attempt() <= fail_times {
            return Err(ServiceError::internal(format!(
                "attempt {} of {} fails on purpose",
                attempt.attempt, attempt.job_id
            )));
        }
        Ok(())
    }
}

impl JobRunner for Jobs {
    async fn run(
        &self,
        ctx: &Context,
        job_id: String,
        fail_times: u32,
        sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        self.job(ctx, job_id, fail_times, sleep_ms).await
    }

    async fn run_once(
        &self,
        ctx: &Context,
        job_id: String,
        fail_times: u32,
        sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        self.job(ctx, job_id, fail_times, sleep_ms).await
    }

    async fn echo(
        &self,
        ctx: &Context,
        text: String,
        sleep_ms: u64,
    ) -> Result<String, ServiceError> {
        let started = Attempt {
            method: ctx.method(),
            job_id: text.clone(),
            attempt: ctx.attempt(),
            message_id: None,
            call_id: ctx.call_id().to_owned(),
            has_deadline: ctx.deadline().is_some(),
            subject: ctx.subject().to_owned(),
            finished: false,
        };
        self.log.push(started.clone());
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        self.log.push(Attempt {
            finished: true,
            ..started
        });
        Ok(text)
    }
}

async fn serve_jobs(
    nats: &Connection,
    configure: impl FnOnce(Host) -> Host,
) -> (Arc<Log<Attempt>>, HostHandle) {
    let log = Log::new();
    let server = JobRunnerServer::new(Jobs {
        log: Arc::clone(&log),
    });
    let host = configure(Host::new(nats.clone()).serve(server));
    (log, within(host.start()).await.unwrap())
}

fn attempts_of(log: &[Attempt], job_id: &str, finished: bool) -> Vec<u32> {
    log.iter()
        .filter(|a| a.job_id == job_id && a.finished == finished)
        .map(|a| a.attempt)
        .collect()
}

/// Waits until the work queue of `job_runner` holds nothing: every call acked (or
/// dead-lettered and acked).
async fn wait_until_drained(nats: &Connection, stream: &str) {
    let js = jetstream::new(nats.nats().clone());
    within(async {
        loop {
            let mut stream = js.get_stream(stream).await.unwrap();
            if stream.info().await.unwrap().state.messages == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn header<'a>(headers: &'a async_nats::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.as_str())
}

/// Subscribes (core NATS) to every dead letter.
async fn watch_dead_letters(nats: &Connection) -> async_nats::Subscriber {
    let subscriber = nats.nats().subscribe("natsgen.dlq.>").await.unwrap();
    nats.nats().flush().await.unwrap();
    subscriber
}

/// The dead letter stored in `NATSGEN_DLQ` on `subject` (the last one).
async fn stored_dead_letter(
    nats: &Connection,
    subject: &str,
) -> async_nats::jetstream::message::StreamMessage {
    let js = jetstream::new(nats.nats().clone());
    let stream = within(js.get_stream(natsgen::streams::DLQ_STREAM))
        .await
        .unwrap();
    within(stream.get_last_raw_message_by_subject(subject))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_call_is_accepted_while_no_worker_runs_and_processed_once_one_starts() {
    let (_server, nats) = start_server().await;
    let client = JobRunnerClient::new(&nats);
    // Nothing serves job_runner: the call is stored anyway (the client creates the stream).
    within(client.run("early".into(), 0, 0)).await.unwrap();
    let js = jetstream::new(nats.nats().clone());
    let mut stream = within(js.get_stream("ASYNC_job_runner")).await.unwrap();
    assert_eq!(within(stream.info()).await.unwrap().state.messages, 1);

    let (log, host) = serve_jobs(&nats, |host| host).await;
    let seen = log
        .wait_until(|log| attempts_of(log, "early", true) == [1])
        .await;
    assert_eq!(attempts_of(&seen, "early", false), [1]);
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_handler_failing_twice_then_succeeding_is_seen_three_times() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let client = JobRunnerClient::new(&nats);
    within(client.run("flaky".into(), 2, 0).idempotency_key("flaky-1"))
        .await
        .unwrap();

    let seen = log
        .wait_until(|log| attempts_of(log, "flaky", true) == [1, 2, 3])
        .await;
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    let seen: Vec<_> = seen.into_iter().filter(|a| a.job_id == "flaky").collect();
    assert_eq!(attempts_of(&seen, "flaky", false), [1, 2, 3]);
    // Every attempt is the same call: same message id and call id, no deadline.
    for attempt in &seen {
        assert_eq!(attempt.method, "run");
        assert_eq!(attempt.subject, "job_runner.async.run");
        assert_eq!(attempt.message_id.as_deref(), Some("run:flaky-1"));
        assert_eq!(attempt.call_id, seen[0].call_id);
        assert!(!attempt.has_deadline, "async calls have no deadline");
    }
    // It succeeded in the end, so nothing was dead-lettered (a later dead letter would arrive
    // before the drained work queue was observed: dead-lettering happens before the ack).
    assert!(
        futures_util::FutureExt::now_or_never(dead_letters.next()).is_none(),
        "a call that succeeded was dead-lettered"
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_handler_that_always_fails_is_dead_lettered_after_max_attempts() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let client = JobRunnerClient::new(&nats);
    within(
        client
            .run("doomed".into(), u32::MAX, 0)
            .idempotency_key("doomed-1")
            .header("X-Tenant", "acme"),
    )
    .await
    .unwrap();

    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(letter.subject.as_str(), "natsgen.dlq.job_runner.run");
    // max_attempts is 3 in the schema: three attempts ran, no fourth.
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    assert_eq!(attempts_of(&log.snapshot(), "doomed", true), [1, 2, 3]);

    let stored = stored_dead_letter(&nats, "natsgen.dlq.job_runner.run").await;
    let headers = &stored.headers;
    assert_eq!(header(headers, "Natsgen-Dlq-Reason"), Some("failed"));
    assert_eq!(
        header(headers, "Natsgen-Dlq-Subject"),
        Some("job_runner.async.run")
    );
    assert_eq!(
        header(headers, "Natsgen-Dlq-Stream"),
        Some("ASYNC_job_runner")
    );
    assert_eq!(header(headers, "Natsgen-Dlq-Attempts"), Some("3"));
    assert_eq!(header(headers, "Natsgen-Dlq-Error-Kind"), Some("internal"));
    assert_eq!(header(headers, "Natsgen-Dlq-Error-Code"), Some("500"));
    assert_eq!(
        header(headers, "Natsgen-Dlq-Error-Message"),
        Some("attempt 3 of doomed fails on purpose")
    );
    assert_eq!(header(headers, "Natsgen-Dlq-Msg-Id"), Some("run:doomed-1"));
    assert!(header(headers, "Natsgen-Dlq-Sequence").is_some());
    // The original headers travel along; JetStream's own do not (the dead letter has its own id).
    assert!(header(headers, "Natsgen-Call-Id").is_some());
    assert_eq!(header(headers, "X-Tenant"), Some("acme"));
    assert_ne!(header(headers, "Nats-Msg-Id"), Some("run:doomed-1"));
    // The payload is the call, unchanged.
    let call: serde_json::Value = serde_json::from_slice(&stored.payload).unwrap();
    assert_eq!(
        call,
        serde_json::json!({"job_id": "doomed", "fail_times": u32::MAX, "sleep_ms": 0})
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_bad_request_from_the_handler_is_retried_and_dead_lettered_as_failed() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let client = JobRunnerClient::new(&nats);
    within(client.run("reject-1".into(), 0, 0)).await.unwrap();
    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(letter.subject.as_str(), "natsgen.dlq.job_runner.run");
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    assert_eq!(attempts_of(&log.snapshot(), "reject-1", true), [1, 2, 3]);
    let stored = stored_dead_letter(&nats, "natsgen.dlq.job_runner.run").await;
    assert_eq!(
        header(&stored.headers, "Natsgen-Dlq-Reason"),
        Some("failed")
    );
    assert_eq!(
        header(&stored.headers, "Natsgen-Dlq-Error-Kind"),
        Some("bad_request")
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn undecodable_calls_and_unknown_methods_are_dead_lettered_at_once() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let js = jetstream::new(nats.nats().clone());

    within(js.publish("job_runner.async.run", r#"{"job_id": 5}"#.into()))
        .await
        .unwrap()
        .await
        .unwrap();
    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(letter.subject.as_str(), "natsgen.dlq.job_runner.run");
    let headers = letter.headers.as_ref().unwrap();
    assert_eq!(header(headers, "Natsgen-Dlq-Reason"), Some("undecodable"));
    assert_eq!(header(headers, "Natsgen-Dlq-Attempts"), Some("1"));
    assert_eq!(
        header(headers, "Natsgen-Dlq-Error-Kind"),
        Some("bad_request")
    );
    assert_eq!(header(headers, "Natsgen-Dlq-Error-Code"), Some("400"));
    assert_eq!(&letter.payload[..], br#"{"job_id": 5}"#);

    within(js.publish("job_runner.async.no_such_method", "{}".into()))
        .await
        .unwrap()
        .await
        .unwrap();
    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(
        letter.subject.as_str(),
        "natsgen.dlq.job_runner.no_such_method"
    );
    let headers = letter.headers.as_ref().unwrap();
    assert_eq!(
        header(headers, "Natsgen-Dlq-Reason"),
        Some("unknown_method")
    );
    assert_eq!(header(headers, "Natsgen-Dlq-Attempts"), Some("1"));

    wait_until_drained(&nats, "ASYNC_job_runner").await;
    assert!(
        log.snapshot().is_empty(),
        "no handler ran: {:?}",
        log.snapshot()
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_message_close_to_max_payload_still_gets_its_dead_letter() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let js = jetstream::new(nats.nats().clone());
    let max_payload = nats.max_payload();

    // A foreign publisher's call that does not decode and leaves no room for a letter's headers:
    // the letter drops the copied headers, then cuts the body, and says so.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Foreign", "x".repeat(200).as_str());
    let body = format!(
        r#"{{"job_id": 5, "pad": "{}"}}"#,
        "p".repeat(max_payload - 400)
    );
    within(js.publish_with_headers("job_runner.async.run", headers, body.clone().into()))
        .await
        .unwrap()
        .await
        .unwrap();
    let letter = within(dead_letters.next()).await.unwrap();
    let letter_headers = letter.headers.as_ref().unwrap();
    assert_eq!(
        header(letter_headers, "Natsgen-Dlq-Reason"),
        Some("undecodable")
    );
    assert_eq!(
        header(letter_headers, "Natsgen-Dlq-Headers-Dropped"),
        Some("1")
    );
    assert_eq!(
        header(letter_headers, "Natsgen-Dlq-Truncated"),
        Some(body.len().to_string().as_str())
    );
    assert!(header(letter_headers, "X-Foreign").is_none());
    assert!(body.as_bytes().starts_with(&letter.payload));
    assert!(letter.payload.len() + 4096 > body.len());
    wait_until_drained(&nats, "ASYNC_job_runner").await;

    // natsgen's own clients refuse a call too large to be dead-lettered, before sending it.
    let client = JobRunnerClient::new(&nats);
    let too_large = "j".repeat(max_payload - 1000);
    match within(client.run(too_large, 0, 0)).await {
        Err(natsgen::CallError::Encode(message)) => {
            assert!(message.contains("payload_too_large"), "{message}")
        }
        other => panic!("expected the call to be refused, got {other:?}"),
    }
    let events = Events::new(&nats);
    let refused = within(events.jobs_failed(&JobsFailed {
        job_id: "j".into(),
        error: "e".repeat(max_payload - 1000),
    }))
    .await;
    assert!(
        matches!(&refused, Err(natsgen::Error::Publish { reason, .. }) if reason.contains("payload_too_large")),
        "{refused:?}"
    );
    assert!(log.snapshot().is_empty(), "{:?}", log.snapshot());
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn the_same_idempotency_key_twice_is_processed_once() {
    let (_server, nats) = start_server().await;
    let client = JobRunnerClient::new(&nats);
    for _ in 0..2 {
        within(
            client
                .run("twice".into(), 0, 0)
                .idempotency_key("order-7/confirm"),
        )
        .await
        .unwrap();
    }
    // A different key is a different call.
    within(
        client
            .run("other".into(), 0, 0)
            .idempotency_key("order-8/confirm"),
    )
    .await
    .unwrap();
    let js = jetstream::new(nats.nats().clone());
    let mut stream = within(js.get_stream("ASYNC_job_runner")).await.unwrap();
    let state = within(stream.info()).await.unwrap().state.clone();
    assert_eq!((state.messages, state.last_sequence), (2, 2));

    let (log, host) = serve_jobs(&nats, |host| host).await;
    log.wait_until(|log| {
        attempts_of(log, "twice", true).len() == 1 && attempts_of(log, "other", true).len() == 1
    })
    .await;
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    let seen = log.snapshot();
    assert_eq!(attempts_of(&seen, "twice", false), [1]);
    assert_eq!(attempts_of(&seen, "other", false), [1]);
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_plain_core_publish_is_processed() {
    let (_server, nats) = start_server().await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    // What the seed framework's `call_async` does: a core publish, no headers, no PubAck.
    nats.nats()
        .publish(
            "job_runner.async.run",
            r#"{"job_id":"raw","fail_times":1,"sleep_ms":0}"#.into(),
        )
        .await
        .unwrap();
    let seen = log
        .wait_until(|log| attempts_of(log, "raw", true) == [1, 2])
        .await;
    let first = seen.iter().find(|a| a.job_id == "raw").unwrap();
    assert_eq!(first.message_id, None);
    assert!(!first.call_id.is_empty());
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn an_async_call_carries_its_id_once_and_the_service_reads_it_from_the_message_id() {
    let (_server, nats) = start_server().await;
    let mut published = nats.nats().subscribe("job_runner.async.run").await.unwrap();
    within(nats.nats().flush()).await.unwrap();
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let client = JobRunnerClient::new(&nats);

    // Without a key, the call id is the key: one header, `Nats-Msg-Id: run:<call id>`.
    within(client.run("plain".into(), 0, 0)).await.unwrap();
    let message = within(published.next()).await.unwrap();
    let headers: Vec<(String, String)> = message
        .headers
        .iter()
        .flat_map(|headers| headers.iter())
        .map(|(name, values)| (name.to_string(), values[0].as_str().to_owned()))
        .collect();
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers[0].0, "Nats-Msg-Id");
    let call_id = headers[0].1.strip_prefix("run:").expect("run:<call id>");
    let seen = log
        .wait_until(|log| attempts_of(log, "plain", true) == [1])
        .await;
    let attempt = seen.iter().find(|a| a.job_id == "plain").unwrap();
    assert_eq!(attempt.call_id, call_id, "the handler's call id is the key");

    // With a key, the call id travels on its own.
    within(
        client
            .run("keyed".into(), 0, 0)
            .idempotency_key("order-9/confirm"),
    )
    .await
    .unwrap();
    let message = within(published.next()).await.unwrap();
    let headers = message.headers.unwrap();
    assert_eq!(header(&headers, "Nats-Msg-Id"), Some("run:order-9/confirm"));
    let call_id = header(&headers, "Natsgen-Call-Id").expect("a call id header");
    let seen = log
        .wait_until(|log| attempts_of(log, "keyed", true) == [1])
        .await;
    let attempt = seen.iter().find(|a| a.job_id == "keyed").unwrap();
    assert_eq!(attempt.call_id, call_id);
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    within(host.shutdown()).await.unwrap();
}

/// A `worker` process (`src/bin/worker.rs`) serving `job_runner` against `url`.
fn spawn_worker(url: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg(url)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("the worker binary starts")
}

#[tokio::test]
async fn a_worker_killed_mid_call_leaves_the_call_to_a_restarted_worker() {
    let (server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let mut events = nats.nats().subscribe("jobs_test.>").await.unwrap();
    nats.nats().flush().await.unwrap();
    let client = JobRunnerClient::new(&nats);
    // Both first attempts would sleep for ten minutes.
    within(client.run("survivor".into(), 0, 600_000))
        .await
        .unwrap();
    within(client.run_once("casualty".into(), 0, 600_000))
        .await
        .unwrap();

    let mut worker = spawn_worker(&server.url());
    let mut started = Vec::new();
    while started.len() < 2 {
        let message = within(events.next()).await.unwrap();
        assert!(message.subject.ends_with(".started"), "{}", message.subject);
        started.push(message.subject.to_string());
    }
    started.sort();
    assert_eq!(
        started,
        ["jobs_test.casualty.started", "jobs_test.survivor.started"]
    );
    // A crash, not a shutdown: SIGKILL, so nothing is acked or nak'd.
    worker.start_kill().unwrap();
    within(worker.wait()).await.unwrap();

    let mut restarted = spawn_worker(&server.url());
    // The ack wait (10 s) later, the survivor runs again, as attempt 2, and completes.
    let mut seen = Vec::new();
    loop {
        let message = within(events.next()).await.unwrap();
        let attempt = String::from_utf8(message.payload.to_vec()).unwrap();
        seen.push(format!("{} {attempt}", message.subject));
        if message.subject.as_str() == "jobs_test.survivor.done" {
            break;
        }
    }
    assert_eq!(
        seen,
        ["jobs_test.survivor.started 2", "jobs_test.survivor.done 2"]
    );
    // run_once allows one attempt, and it died with its worker: dead-lettered without running.
    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(letter.subject.as_str(), "natsgen.dlq.job_runner.run_once");
    let headers = letter.headers.as_ref().unwrap();
    assert_eq!(header(headers, "Natsgen-Dlq-Reason"), Some("abandoned"));
    assert_eq!(header(headers, "Natsgen-Dlq-Attempts"), Some("2"));
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    assert!(
        futures_util::FutureExt::now_or_never(events.next()).is_none(),
        "the dead-lettered call ran again"
    );
    restarted.start_kill().unwrap();
    within(restarted.wait()).await.unwrap();
}

#[tokio::test]
async fn a_long_handler_keeps_its_message_with_in_progress_acks() {
    let (_server, nats) = start_server().await;
    // An ack wait of 600 ms and a handler of 3 s: without in-progress acks the call would be
    // delivered again (as attempt 2) while it runs.
    let (log, host) = serve_jobs(&nats, |host| host.ack_wait(Duration::from_millis(600))).await;
    let client = JobRunnerClient::new(&nats);
    within(client.run("slow".into(), 0, 3_000)).await.unwrap();
    log.wait_until(|log| attempts_of(log, "slow", true).contains(&1))
        .await;
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    assert_eq!(
        attempts_of(&log.snapshot(), "slow", false),
        [1],
        "delivered again while running"
    );
    within(host.shutdown()).await.unwrap();
}

/// `throttled`: every handler counts itself in and waits at a gate the test opens.
struct Gate {
    running: AtomicUsize,
    most: AtomicUsize,
    done: AtomicUsize,
    open: Semaphore,
    changed: Notify,
}

impl Gate {
    async fn pass(&self) {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        self.changed.notify_waiters();
        let permit = self.open.acquire().await.unwrap();
        permit.forget();
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    async fn wait_until(&self, done: impl Fn(&Gate) -> bool) {
        within(async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                if done(self) {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }
}

struct Throttle(Arc<Gate>);

impl Throttled for Throttle {
    async fn work(&self, _ctx: &Context, n: u32) -> Result<u32, ServiceError> {
        self.0.pass().await;
        Ok(n)
    }

    async fn work_later(&self, _ctx: &Context, _n: u32) -> Result<(), ServiceError> {
        self.0.pass().await;
        Ok(())
    }

    async fn on_failed(&self, _ctx: &Context, _event: JobsFailed) -> Result<(), ServiceError> {
        self.0.pass().await;
        Ok(())
    }
}

#[tokio::test]
async fn rpc_async_and_event_work_share_max_concurrency() {
    let (_server, nats) = start_server().await;
    let gate = Arc::new(Gate {
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        open: Semaphore::new(0),
        changed: Notify::new(),
    });
    let host = within(
        Host::new(nats.clone())
            .max_concurrency(2)
            .serve(ThrottledServer::new(Throttle(Arc::clone(&gate))))
            .start(),
    )
    .await
    .unwrap();
    let client = ThrottledClient::new(&nats);
    let events = Events::new(&nats);
    const EACH: usize = 4;
    let mut rpcs = Vec::new();
    for n in 0..EACH as u32 {
        within(client.work_later(n)).await.unwrap();
        let failed = JobsFailed {
            job_id: n.to_string(),
            error: "x".into(),
        };
        within(events.jobs_failed(&failed)).await.unwrap();
        let client = client.clone();
        rpcs.push(tokio::spawn(async move { client.work(n).await }));
    }

    // Two handlers run and hold their slots; give a third every chance to start, then check.
    gate.wait_until(|gate| gate.running.load(Ordering::SeqCst) == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gate.most.load(Ordering::SeqCst), 2);

    gate.open.add_permits(3 * EACH);
    gate.wait_until(|gate| gate.done.load(Ordering::SeqCst) == 3 * EACH)
        .await;
    for (n, rpc) in rpcs.into_iter().enumerate() {
        assert_eq!(within(rpc).await.unwrap().unwrap(), n as u32);
    }
    assert_eq!(
        gate.most.load(Ordering::SeqCst),
        2,
        "never more than two at once"
    );
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_rpc_and_async_calls() {
    let (_server, nats) = start_server().await;
    let (log, host) = serve_jobs(&nats, |host| host).await;
    let client = JobRunnerClient::new(&nats);
    within(client.run("in-flight".into(), 0, 1_000))
        .await
        .unwrap();
    let rpc = tokio::spawn({
        let client = client.clone();
        async move { client.echo("answer".into(), 1_000).await }
    });
    log.wait_until(|log| {
        log.iter().any(|a| a.job_id == "in-flight") && log.iter().any(|a| a.job_id == "answer")
    })
    .await;

    within(host.shutdown()).await.unwrap();
    // Both finished before the shutdown returned: the caller got its answer and the async call
    // was acked (the work queue is empty).
    assert_eq!(within(rpc).await.unwrap().unwrap(), "answer");
    let seen = log.snapshot();
    assert_eq!(attempts_of(&seen, "in-flight", true), [1]);
    assert_eq!(attempts_of(&seen, "answer", true), [1]);
    let js = jetstream::new(nats.nats().clone());
    let mut stream = within(js.get_stream("ASYNC_job_runner")).await.unwrap();
    assert_eq!(within(stream.info()).await.unwrap().state.messages, 0);
}

#[tokio::test]
async fn a_call_still_running_after_the_grace_period_is_returned_at_once() {
    let (_server, nats) = start_server().await;
    // A long ack wait: only a nak at shutdown can bring the call back before the test gives up.
    let configure = |host: Host| {
        host.grace_period(Duration::from_millis(300))
            .ack_wait(Duration::from_secs(120))
    };
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve_jobs(&nats, configure).await;
    let client = JobRunnerClient::new(&nats);
    // `run_once` allows one attempt: one lost to a shutdown must not use it up.
    within(client.run_once("stuck".into(), 0, 600_000))
        .await
        .unwrap();
    log.wait_until(|log| attempts_of(log, "stuck", false) == [1])
        .await;
    let result = within(host.shutdown()).await;
    assert!(
        matches!(result, Err(natsgen::Error::GracePeriodExceeded { .. })),
        "{result:?}"
    );

    let (log, host) = serve_jobs(&nats, configure).await;
    // The delivery the shutdown returned was not an attempt: this is still attempt 1 of 1.
    let seen = log
        .wait_until(|log| attempts_of(log, "stuck", true) == [1])
        .await;
    assert_eq!(attempts_of(&seen, "stuck", false), [1]);
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    within(host.shutdown()).await.unwrap();
    assert!(
        futures_util::FutureExt::now_or_never(dead_letters.next()).is_none(),
        "a call with its attempt left was dead-lettered"
    );
}

#[tokio::test]
async fn a_call_never_handled_is_dead_lettered_at_the_max_deliver_backstop() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let configure = |host: Host| {
        host.grace_period(Duration::from_millis(50))
            .ack_wait(Duration::from_secs(120))
    };
    let client = JobRunnerClient::new(&nats);
    within(
        client
            .run("forever".into(), 0, 600_000)
            .idempotency_key("forever-1"),
    )
    .await
    .unwrap();
    // `run` allows 3 attempts; its consumer's max_deliver is 3 + 10. Every delivery is cut short
    // by a shutdown, so none counts as an attempt, until the server gives up delivering it.
    let max_deliver = 3 + natsgen::streams::REDELIVERY_ALLOWANCE as usize;
    for delivery in 1..=max_deliver {
        let (log, host) = serve_jobs(&nats, configure).await;
        log.wait_until(|log| !log.is_empty()).await;
        let seen = log.snapshot();
        assert_eq!(
            attempts_of(&seen, "forever", false),
            [1],
            "delivery {delivery}"
        );
        let result = within(host.shutdown()).await;
        assert!(result.is_err(), "{result:?}");
    }
    // The last shutdown's nak made the call reach its max_deliver: the server sent its
    // max-deliveries advisory, and the stopping host dead-lettered the call from the stream.
    let letter = within(dead_letters.next()).await.unwrap();
    assert_eq!(letter.subject.as_str(), "natsgen.dlq.job_runner.run");
    let headers = letter.headers.as_ref().unwrap();
    assert_eq!(header(headers, "Natsgen-Dlq-Reason"), Some("undeliverable"));
    assert_eq!(header(headers, "Natsgen-Dlq-Msg-Id"), Some("run:forever-1"));
    assert_eq!(
        header(headers, "Natsgen-Dlq-Attempts"),
        Some(max_deliver.to_string().as_str())
    );
    let call: serde_json::Value = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(call["job_id"], "forever");
    // The work queue is empty: the call is in the dead-letter stream now; a new host gets
    // nothing.
    wait_until_drained(&nats, "ASYNC_job_runner").await;
    let (log, host) = serve_jobs(&nats, configure).await;
    let _ = within(JobRunnerClient::new(&nats).echo("ping".into(), 0)).await;
    assert!(attempts_of(&log.snapshot(), "forever", false).is_empty());
    within(host.shutdown()).await.unwrap();
}
