//! Client resilience over real nats-server processes: the circuit breaker, retries, async calls
//! when JetStream or the connection is away, and a server restart in the middle of a run.
//!
//! Nothing here asserts on timing: waits are bounded by [`within`] only so that a broken runtime
//! fails a test instead of hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use natsgen::testing::{NatsCluster, NatsServer};
use natsgen::{
    CallError, CallRetry, CircuitBreakerConfig, CircuitState, ClientOptions, ConnectOptions,
    Connection, Context, Host, HostHandle, ServiceError,
};
use natsgen_tests::flaky::{
    FlakyService, FlakyServiceClient, FlakyServiceServer, JournalServiceClient, RejectError,
    SteadyServiceClient,
};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

const ECHO: &str = "flaky_service.rpc.echo";
const RECORD: &str = "journal_service.async.record";

/// Bounds every wait of a test, so a runtime that hangs fails the test instead.
const PATIENCE: Duration = Duration::from_secs(60);

async fn within<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long: something hangs")
}

// ---------------------------------------------------------------------------------------------
// The service and the fixtures
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Counters {
    echoes: AtomicUsize,
    held: Notify,
    release: Notify,
}

struct Flaky(Arc<Counters>);

impl FlakyService for Flaky {
    async fn echo(&self, _ctx: &Context, text: String) -> Result<String, ServiceError> {
        self.0.echoes.fetch_add(1, Ordering::SeqCst);
        Ok(format!("echo {text}"))
    }

    async fn hold(&self, _ctx: &Context, text: String) -> Result<String, ServiceError> {
        self.0.held.notify_one();
        self.0.release.notified().await;
        Ok(format!("held {text}"))
    }

    async fn stall(&self, _ctx: &Context, text: String) -> Result<String, ServiceError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(format!("stalled {text}"))
    }

    async fn reject(&self, _ctx: &Context, text: String) -> Result<String, RejectError> {
        Err(RejectError::Rejected { reason: text })
    }
}

async fn start_server() -> NatsServer {
    within(NatsServer::start())
        .await
        .expect("nats-server starts")
}

async fn connect_with(url: impl natsgen::ServerUrls, options: ConnectOptions) -> Connection {
    within(options.connect(url)).await.expect("connects")
}

/// A connection whose breaker opens after `threshold` failures and stays open for `open_for`.
async fn connect_breaking(server: &NatsServer, threshold: u32, open_for: Duration) -> Connection {
    connect_with(
        server.url(),
        ConnectOptions::new().circuit_breaker(
            CircuitBreakerConfig::new()
                .failure_threshold(threshold)
                .open_for(open_for),
        ),
    )
    .await
}

async fn serve(nats: &Connection) -> (Arc<Counters>, HostHandle) {
    let counters = Arc::new(Counters::default());
    let host = within(
        Host::new(nats.clone())
            .serve(FlakyServiceServer::new(Flaky(Arc::clone(&counters))))
            .start(),
    )
    .await
    .expect("the host starts");
    (counters, host)
}

/// A raw subscriber on `subject` standing in for a sick instance: it counts every request it
/// gets and answers the first `busy_first` of them `busy` (503), later ones with `ok_reply`.
struct RawResponder {
    seen: Arc<AtomicUsize>,
    task: JoinHandle<()>,
    nats: async_nats::Client,
}

impl RawResponder {
    async fn start(url: &str, subject: &str, busy_first: usize, ok_reply: Option<&str>) -> Self {
        let nats = within(async_nats::connect(url)).await.unwrap();
        let mut requests = within(nats.subscribe(subject.to_owned())).await.unwrap();
        round_trip(&nats).await;
        let seen = Arc::new(AtomicUsize::new(0));
        let ok_reply = ok_reply.map(|reply| bytes::Bytes::from(reply.to_owned()));
        let task = tokio::spawn({
            let nats = nats.clone();
            let seen = Arc::clone(&seen);
            async move {
                while let Some(request) = requests.next().await {
                    let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
                    let Some(reply) = request.reply else { continue };
                    if n <= busy_first {
                        let mut headers = HeaderMap::new();
                        headers.insert("Nats-Service-Error-Code", "503");
                        headers.insert("Nats-Service-Error", "at capacity");
                        let _ = nats
                            .publish_with_headers(reply, headers, bytes::Bytes::new())
                            .await;
                    } else if let Some(body) = &ok_reply {
                        let _ = nats.publish(reply, body.clone()).await;
                    }
                    // Without a reply body configured, later requests are never answered.
                }
            }
        });
        RawResponder { seen, task, nats }
    }

    fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Unsubscribes and waits until the server knows.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        round_trip(&self.nats).await;
    }
}

/// Returns once the server has processed everything `nats` sent before (a flush only empties the
/// client's buffer): a request nobody answers comes back as "no responders" from the server.
async fn round_trip(nats: &async_nats::Client) {
    let result = within(nats.request(nats.new_inbox(), bytes::Bytes::new())).await;
    assert!(
        matches!(&result, Err(e) if e.kind() == async_nats::client::RequestErrorKind::NoResponders),
        "{result:?}"
    );
}

fn expect_busy<T: std::fmt::Debug>(result: Result<T, CallError>) {
    match result {
        Err(CallError::Service(error)) => {
            assert_eq!((error.kind(), error.code()), ("busy", 503), "{error}");
        }
        other => panic!("expected a busy reply, got {other:?}"),
    }
}

fn expect_circuit_open<T: std::fmt::Debug, E: std::fmt::Debug>(
    result: Result<T, CallError<E>>,
    service: &str,
) {
    match result {
        Err(CallError::CircuitOpen {
            service: s,
            retry_after: _,
        }) => assert_eq!(s, service),
        other => panic!("expected CircuitOpen for {service}, got {other:?}"),
    }
}

/// Calls `echo` until a call is let through the open breaker (the probe), and returns its result.
async fn call_until_probed(client: &FlakyServiceClient) -> Result<String, CallError> {
    within(async {
        loop {
            match client.echo("probe".into()).await {
                Err(CallError::CircuitOpen { .. }) => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                other => return other,
            }
        }
    })
    .await
}

/// A request through `nats` that the raw responder answers: everything `nats` published before
/// it has reached the responder once it is answered (NATS keeps one publisher's order).
async fn marker_request(nats: &Connection) {
    let _ = within(nats.nats().request(ECHO, r#"{"text":"marker"}"#.into())).await;
}

// ---------------------------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_breaker_opens_after_consecutive_failures_and_then_sends_nothing() {
    let server = start_server().await;
    let nats = connect_breaking(&server, 3, Duration::from_secs(3600)).await;
    let sick = RawResponder::start(&server.url(), ECHO, usize::MAX, None).await;
    let client = FlakyServiceClient::new(&nats);

    for n in 1..=3 {
        assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Closed);
        expect_busy(within(client.echo(format!("call {n}"))).await);
    }
    assert_eq!(sick.seen(), 3);
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Open);

    // Open: the calls fail at once, without a request going out.
    let open = within(client.echo("rejected".into())).await;
    match &open {
        Err(CallError::CircuitOpen {
            service,
            retry_after,
        }) => {
            assert_eq!(*service, "flaky_service");
            assert!(*retry_after <= Duration::from_secs(3600), "{retry_after:?}");
            let message = open.as_ref().unwrap_err().to_string();
            assert!(
                message.contains("circuit breaker for flaky_service is open"),
                "{message}"
            );
        }
        other => panic!("expected CircuitOpen, got {other:?}"),
    }
    // Every client of the service on this connection shares the breaker, also through a handle
    // with other client options; the mockable trait path goes through it too.
    let other_client = FlakyServiceClient::new(&nats);
    expect_circuit_open(within(other_client.echo("x".into())).await, "flaky_service");
    let retrying = FlakyServiceClient::new(
        &nats.with_client_options(ClientOptions::new().retry(CallRetry::new())),
    );
    expect_circuit_open(within(retrying.echo("x".into())).await, "flaky_service");
    expect_circuit_open(
        within(client.hold("x".into()).timeout(Duration::from_secs(1))).await,
        "flaky_service",
    );
    marker_request(&nats).await;
    assert_eq!(
        sick.seen(),
        4,
        "only the marker request reached the subject after the breaker opened"
    );

    // Another service's breaker is its own.
    assert_eq!(nats.circuit_state("steady_service"), CircuitState::Closed);
    let steady = within(SteadyServiceClient::new(&nats).ping()).await;
    assert!(
        matches!(steady, Err(CallError::ServiceUnavailable { .. })),
        "{steady:?}"
    );
    // And another connection's breaker too.
    let fresh = connect_with(server.url(), ConnectOptions::new()).await;
    expect_busy(within(FlakyServiceClient::new(&fresh).echo("x".into())).await);
    assert_eq!(sick.seen(), 5);
    sick.stop().await;
}

#[tokio::test]
async fn an_open_breaker_lets_one_probe_through_and_closes_once_the_service_is_back() {
    let server = start_server().await;
    let nats = connect_breaking(&server, 2, Duration::from_millis(200)).await;
    let sick = RawResponder::start(&server.url(), ECHO, usize::MAX, None).await;
    let client = FlakyServiceClient::new(&nats);
    expect_busy(within(client.echo("1".into())).await);
    expect_busy(within(client.echo("2".into())).await);
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Open);

    // The probe reaches the still sick instance and fails: the breaker opens again.
    expect_busy(call_until_probed(&client).await);
    assert_eq!(sick.seen(), 3);
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Open);

    // A healthy instance replaces the sick one; the next probe succeeds and closes the breaker.
    sick.stop().await;
    let (counters, _host) = serve(&nats).await;
    assert_eq!(
        within(call_until_probed(&client)).await.unwrap(),
        "echo probe"
    );
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Closed);
    assert_eq!(
        within(client.echo("after".into())).await.unwrap(),
        "echo after"
    );
    assert_eq!(counters.echoes.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn timeouts_count_as_failures_but_answers_and_no_responders_do_not() {
    let server = start_server().await;
    let nats = connect_breaking(&server, 3, Duration::from_secs(3600)).await;
    let (_counters, _host) = serve(&nats).await;
    let client = FlakyServiceClient::new(&nats);

    // A declared error is an answer: the service is up.
    for _ in 0..5 {
        let result = within(client.reject("no".into())).await;
        assert_eq!(
            result,
            Err(CallError::Service(RejectError::Rejected {
                reason: "no".into()
            }))
        );
    }
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Closed);

    // No responders is not counted by default ...
    let steady = SteadyServiceClient::new(&nats);
    for _ in 0..5 {
        let result = within(steady.ping()).await;
        assert!(
            matches!(result, Err(CallError::ServiceUnavailable { .. })),
            "{result:?}"
        );
    }
    assert_eq!(nats.circuit_state("steady_service"), CircuitState::Closed);

    // ... nor are a caller's own timeouts shorter than the method's schema timeout (30 s for
    // `hold`): the service is healthy, the caller impatient ...
    for _ in 0..10 {
        let result = within(client.hold("late".into()).timeout(Duration::from_millis(5))).await;
        assert!(
            matches!(result, Err(CallError::Timeout { .. })),
            "{result:?}"
        );
    }
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Closed);
    assert_eq!(within(client.echo("x".into())).await.unwrap(), "echo x");

    // ... but a service that does not answer within the method's own timeout is failing.
    for _ in 0..3 {
        let result = within(client.stall("late".into())).await;
        assert!(
            matches!(&result, Err(CallError::Timeout { .. }))
                || matches!(&result, Err(CallError::Service(e)) if e.code() == 504),
            "{result:?}"
        );
    }
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Open);
    expect_circuit_open(within(client.echo("x".into())).await, "flaky_service");

    // Counting no responders is a setting.
    let counting = connect_with(
        server.url(),
        ConnectOptions::new().circuit_breaker(
            CircuitBreakerConfig::new()
                .failure_threshold(2)
                .open_for(Duration::from_secs(3600))
                .count_no_responders(true),
        ),
    )
    .await;
    let steady = SteadyServiceClient::new(&counting);
    for _ in 0..2 {
        let result = within(steady.ping()).await;
        assert!(
            matches!(result, Err(CallError::ServiceUnavailable { .. })),
            "{result:?}"
        );
    }
    expect_circuit_open(within(steady.ping()).await, "steady_service");
}

#[tokio::test]
async fn a_disabled_breaker_never_opens() {
    let server = start_server().await;
    let nats = connect_with(
        server.url(),
        ConnectOptions::new().circuit_breaker(CircuitBreakerConfig::disabled()),
    )
    .await;
    let sick = RawResponder::start(&server.url(), ECHO, usize::MAX, None).await;
    let client = FlakyServiceClient::new(&nats);
    for _ in 0..(natsgen::resilience::DEFAULT_FAILURE_THRESHOLD * 2) {
        expect_busy(within(client.echo("x".into())).await);
    }
    assert_eq!(nats.circuit_state("flaky_service"), CircuitState::Closed);
    assert_eq!(
        sick.seen(),
        natsgen::resilience::DEFAULT_FAILURE_THRESHOLD as usize * 2
    );
    sick.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------------

/// The number of messages the server has received (`/varz` `in_msgs`).
async fn server_in_msgs(server: &NatsServer) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = server.monitor_url().expect("monitoring is on");
    let address = url.trim_start_matches("http://").to_owned();
    let mut stream = within(tokio::net::TcpStream::connect(address))
        .await
        .unwrap();
    within(stream.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"))
        .await
        .unwrap();
    let mut response = Vec::new();
    within(stream.read_to_end(&mut response)).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let varz: serde_json::Value = serde_json::from_str(body).unwrap();
    varz["in_msgs"].as_u64().expect("in_msgs")
}

#[tokio::test]
async fn retries_on_no_responders_succeed_once_the_service_starts() {
    let server = within(NatsServer::builder().monitoring(true).start())
        .await
        .unwrap();
    let nats = connect_with(server.url(), ConnectOptions::new()).await;
    let client = FlakyServiceClient::new(&nats);

    // Without a retry policy, no responders fails at once.
    let result = within(client.echo("alone".into())).await;
    assert!(
        matches!(result, Err(CallError::ServiceUnavailable { .. })),
        "{result:?}"
    );

    let before = server_in_msgs(&server).await;
    let call = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .echo("patient".into())
                .timeout(Duration::from_secs(30))
                .retry(
                    CallRetry::until_deadline()
                        .backoff(Duration::from_millis(10), Duration::from_millis(100)),
                )
                .await
        }
    });
    // Two requests reached the server while nothing served the method: the call is retrying.
    within(async {
        while server_in_msgs(&server).await < before + 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(!call.is_finished(), "the call gave up: {:?}", call.await);

    let (counters, _host) = serve(&nats).await;
    assert_eq!(within(call).await.unwrap().unwrap(), "echo patient");
    assert_eq!(counters.echoes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn busy_replies_are_retried_when_asked_and_attempts_are_bounded() {
    let server = start_server().await;
    // A breaker would stop the busy replies below; here the retries are under test.
    let nats = connect_with(
        server.url(),
        ConnectOptions::new().circuit_breaker(CircuitBreakerConfig::disabled()),
    )
    .await;
    let client = FlakyServiceClient::new(&nats);
    let fast = CallRetry::new().backoff(Duration::from_millis(5), Duration::from_millis(20));

    // Busy twice, then fine: three attempts get the result.
    let sick = RawResponder::start(&server.url(), ECHO, 2, Some(r#"{"result":"finally"}"#)).await;
    assert_eq!(
        within(client.echo("x".into()).retry(fast)).await.unwrap(),
        "finally"
    );
    assert_eq!(sick.seen(), 3);
    sick.stop().await;

    // Without retries (the default) the first busy reply is the answer.
    let sick = RawResponder::start(&server.url(), ECHO, 2, Some(r#"{"result":"finally"}"#)).await;
    expect_busy(within(client.echo("x".into())).await);
    assert_eq!(sick.seen(), 1);
    // `on_busy(false)` does not retry it either.
    expect_busy(within(client.echo("x".into()).retry(fast.on_busy(false))).await);
    assert_eq!(sick.seen(), 2);
    sick.stop().await;

    // Always busy: exactly `max_attempts` requests, then the busy error.
    let sick = RawResponder::start(&server.url(), ECHO, usize::MAX, None).await;
    expect_busy(within(client.echo("x".into()).retry(fast.max_attempts(4))).await);
    assert_eq!(sick.seen(), 4);
    // Until the deadline: bounded by the call's timeout. It ends with the last busy reply, or
    // with a timeout when the deadline cut the last attempt short.
    let before = sick.seen();
    let result = within(
        client
            .echo("x".into())
            .timeout(Duration::from_secs(1))
            .retry(
                CallRetry::until_deadline()
                    .backoff(Duration::from_millis(5), Duration::from_millis(20)),
            ),
    )
    .await;
    match result {
        Err(CallError::Timeout { after, .. }) => assert_eq!(after, Duration::from_secs(1)),
        other => expect_busy(other),
    }
    assert!(
        sick.seen() - before >= 2,
        "{} requests",
        sick.seen() - before
    );
    sick.stop().await;
}

#[tokio::test]
async fn client_defaults_retry_per_service_and_method_and_calls_override_them() {
    let server = start_server().await;
    let fast = CallRetry::new().backoff(Duration::from_millis(5), Duration::from_millis(20));
    let nats = connect_with(
        server.url(),
        ConnectOptions::new()
            .circuit_breaker(CircuitBreakerConfig::disabled())
            .client_options(ClientOptions::new().retry_for("flaky_service", fast)),
    )
    .await;
    let sick = RawResponder::start(&server.url(), ECHO, usize::MAX, None).await;
    let client = FlakyServiceClient::new(&nats);

    expect_busy(within(client.echo("x".into())).await);
    assert_eq!(sick.seen(), 3, "the service default: three attempts");
    expect_busy(within(client.echo("x".into()).retry(CallRetry::none())).await);
    assert_eq!(sick.seen(), 4, "the call turned retries off");

    let per_method = nats.with_client_options(
        ClientOptions::new()
            .retry(fast.max_attempts(2))
            .retry_for("flaky_service.echo", fast.max_attempts(5)),
    );
    expect_busy(within(FlakyServiceClient::new(&per_method).echo("x".into())).await);
    assert_eq!(
        sick.seen(),
        9,
        "the method default wins over the general one"
    );
    // Through the mockable trait with options as a value.
    let options = natsgen::CallOptions::new().retry(fast.max_attempts(2));
    expect_busy(
        within(natsgen_tests::flaky::FlakyServiceApi::echo(
            &client,
            "x".into(),
            options,
        ))
        .await,
    );
    assert_eq!(sick.seen(), 11);
    sick.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Async calls
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn async_calls_without_jetstream_fail_clearly_and_retries_stay_bounded() {
    let server = within(NatsServer::builder().jetstream(false).start())
        .await
        .unwrap();
    let nats = connect_with(server.url(), ConnectOptions::new()).await;
    let journal = JournalServiceClient::new(&nats);
    let result = within(journal.record("x".into())).await;
    match &result {
        Err(CallError::JetStreamUnavailable {
            service, method, ..
        }) => {
            assert_eq!((*service, *method), ("journal_service", "record"));
            let message = result.as_ref().unwrap_err().to_string();
            assert!(message.contains("JetStream enabled"), "{message}");
        }
        other => panic!("expected JetStreamUnavailable, got {other:?}"),
    }
    let result = within(
        journal
            .record("x".into())
            .timeout(Duration::from_millis(300))
            .retry(CallRetry::until_deadline()),
    )
    .await;
    assert!(
        matches!(result, Err(CallError::JetStreamUnavailable { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn async_calls_retry_jetstream_errors_with_one_message_id_and_time_out_without_an_ack() {
    // No JetStream here: a raw subscriber plays it, answering like an unready JetStream twice,
    // then with a PubAck.
    let server = within(NatsServer::builder().jetstream(false).start())
        .await
        .unwrap();
    let nats = connect_with(server.url(), ConnectOptions::new()).await;
    let journal = JournalServiceClient::new(&nats);
    let unready = r#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#;
    let fake = RawResponder::start(&server.url(), RECORD, 0, Some(unready)).await;
    let result = within(journal.record("x".into())).await;
    assert!(
        matches!(result, Err(CallError::JetStreamUnavailable { .. })),
        "{result:?}"
    );
    assert_eq!(fake.seen(), 1);
    fake.stop().await;

    // Unready twice, then stored.
    let fake = JetStreamFake::start(&server.url(), 2, unready).await;
    within(
        journal
            .record("x".into())
            .idempotency_key("k1")
            .retry(CallRetry::new().backoff(Duration::from_millis(5), Duration::from_millis(20))),
    )
    .await
    .unwrap();
    let ids = fake.msg_ids.lock().await.clone();
    assert_eq!(ids, ["record:k1", "record:k1", "record:k1"]);
    fake.stop().await;

    // Nobody acks: the call times out with `Timeout` within its own timeout.
    let silent = RawResponder::start(&server.url(), RECORD, 0, None).await;
    let result = within(
        journal
            .record("x".into())
            .timeout(Duration::from_millis(300)),
    )
    .await;
    match result {
        Err(CallError::Timeout {
            service,
            method,
            after,
        }) => {
            assert_eq!((service, method), ("journal_service", "record"));
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(silent.seen(), 1);
    silent.stop().await;
}

/// A raw subscriber answering the first `failures` publishes with `error` and later ones with a
/// PubAck, recording each `Nats-Msg-Id`.
struct JetStreamFake {
    msg_ids: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
    nats: async_nats::Client,
}

impl JetStreamFake {
    async fn start(url: &str, failures: usize, error: &str) -> Self {
        let nats = within(async_nats::connect(url)).await.unwrap();
        let mut requests = within(nats.subscribe(RECORD)).await.unwrap();
        round_trip(&nats).await;
        let msg_ids = Arc::new(Mutex::new(Vec::new()));
        let error = bytes::Bytes::from(error.to_owned());
        let task = tokio::spawn({
            let msg_ids = Arc::clone(&msg_ids);
            let nats = nats.clone();
            async move {
                let mut n = 0;
                while let Some(request) = requests.next().await {
                    n += 1;
                    let id = request
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    msg_ids.lock().await.push(id);
                    let Some(reply) = request.reply else { continue };
                    let body = if n <= failures {
                        error.clone()
                    } else {
                        bytes::Bytes::from(format!(
                            r#"{{"stream":"ASYNC_journal_service","seq":{n}}}"#
                        ))
                    };
                    let _ = nats.publish(reply, body).await;
                }
            }
        });
        JetStreamFake {
            msg_ids,
            task,
            nats,
        }
    }

    /// Unsubscribes and waits until the server knows.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        round_trip(&self.nats).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Outages
// ---------------------------------------------------------------------------------------------

fn is_outage_error<T: std::fmt::Debug>(result: &Result<T, CallError>) -> bool {
    matches!(
        result,
        Err(CallError::Disconnected | CallError::Timeout { .. })
    )
}

#[tokio::test]
async fn after_a_server_restart_services_reconnect_and_calls_in_the_gap_fail_without_hanging() {
    let mut server = start_server().await;
    // The service and the caller on connections of their own: both must reconnect.
    let service_nats = connect_with(server.url(), ConnectOptions::new().name("flaky-host")).await;
    let caller_nats = connect_with(server.url(), ConnectOptions::new().name("flaky-caller")).await;
    let (counters, host) = serve(&service_nats).await;
    let client = FlakyServiceClient::new(&caller_nats);
    let journal = JournalServiceClient::new(&caller_nats);
    assert_eq!(
        within(client.echo("before".into())).await.unwrap(),
        "echo before"
    );
    within(journal.record("before".into())).await.unwrap();

    // A call in flight when the server goes away fails within its timeout.
    let held = counters.held.notified();
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .hold("in flight".into())
                .timeout(Duration::from_secs(3))
                .await
        }
    });
    within(held).await;
    server.stop().await;
    let result = within(in_flight).await.unwrap();
    assert!(is_outage_error(&result), "{result:?}");

    // Calls during the gap fail (at once once the client noticed), none hangs.
    for _ in 0..3 {
        let result = within(client.echo("gap".into()).timeout(Duration::from_secs(2))).await;
        assert!(is_outage_error(&result), "{result:?}");
        let result = within(journal.record("gap".into()).timeout(Duration::from_secs(2))).await;
        assert!(is_outage_error(&result), "{result:?}");
    }
    // Once the client knows the connection is down, a call fails at once with `Disconnected`
    // (with an hour's timeout, nothing else would end it in time).
    within(async {
        while caller_nats.is_connected() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let result = within(client.echo("gap".into()).timeout(Duration::from_secs(3600))).await;
    assert_eq!(result, Err(CallError::Disconnected));
    let result = within(
        journal
            .record("gap".into())
            .timeout(Duration::from_secs(3600)),
    )
    .await;
    assert_eq!(result, Err(CallError::Disconnected));

    // Same port, same store: everything reconnects without help, and the host serves again.
    within(server.restart()).await.unwrap();
    let patient = CallRetry::until_deadline()
        .on_disconnected(true)
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    let result = within(
        client
            .echo("after".into())
            .timeout(Duration::from_secs(30))
            .retry(patient),
    )
    .await;
    assert_eq!(result.unwrap(), "echo after");
    within(
        journal
            .record("after".into())
            .timeout(Duration::from_secs(30))
            .retry(patient),
    )
    .await
    .unwrap();
    // Only the host serves `echo`, so its connection and subscriptions are back too.
    assert!(service_nats.is_connected());
    assert_eq!(
        within(client.echo("again".into())).await.unwrap(),
        "echo again"
    );
    assert!(counters.echoes.load(Ordering::SeqCst) >= 3);
    counters.release.notify_waiters();
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn with_several_urls_a_client_fails_over_to_another_cluster_node() {
    let mut cluster = within(NatsCluster::builder().size(3).jetstream(false).start())
        .await
        .unwrap();
    let urls = cluster.urls();
    // The service on the first node only; the caller knows the other two.
    let service_nats = connect_with(urls[0].as_str(), ConnectOptions::new()).await;
    let caller_nats = connect_with(&urls[1..], ConnectOptions::new()).await;
    let (_counters, _host) = serve(&service_nats).await;
    let client = FlakyServiceClient::new(&caller_nats);
    let patient = CallRetry::until_deadline()
        .on_disconnected(true)
        .backoff(Duration::from_millis(20), Duration::from_millis(200));
    // Interest propagates between nodes shortly after the host subscribed.
    let result = within(
        client
            .echo("before".into())
            .timeout(Duration::from_secs(30))
            .retry(patient),
    )
    .await;
    assert_eq!(result.unwrap(), "echo before");

    let port = caller_nats.nats().server_info().port;
    let index = cluster
        .nodes()
        .iter()
        .position(|node| node.port() == port)
        .expect("the caller is on a node of the cluster");
    assert_ne!(index, 0, "the caller was given the other nodes only");
    within(cluster.node_mut(index).unwrap().stop()).await;

    let result = within(
        client
            .echo("after".into())
            .timeout(Duration::from_secs(30))
            .retry(patient),
    )
    .await;
    assert_eq!(result.unwrap(), "echo after");
    assert_ne!(caller_nats.nats().server_info().port, port);
}
