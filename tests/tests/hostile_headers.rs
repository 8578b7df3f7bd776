//! Malformed header blocks and non-UTF-8 subjects on the wire, over a real nats-server.
//!
//! A raw TCP client speaks the NATS text protocol and publishes what no NATS library would: header
//! blocks that are not UTF-8, header lines without `:`, a block without the `NATS/1.0` version
//! line, a header value holding a lone `\r`, and reply subjects and subjects that are not UTF-8.
//! nats-server forwards each byte for byte, and JetStream stores each. async-nats 0.51 as
//! published takes the first kinds for a protocol error and drops the connection (the lone `\r`
//! kills its connection task for good); this workspace carries a patched copy (`vendor/`), under
//! which such a message is delivered with its unreadable parts dropped. These tests show, for an
//! RPC subject, `$SRV.PING` (where every instance listens) and an async method's stream subject,
//! that the services keep their connections, answer, and process or dead-letter each stored
//! message exactly once. They fail against the unpatched async-nats.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use natsgen::testing::NatsServer;
use natsgen::{Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::e2e::{GreetError, Greeter, GreeterClient, GreeterServer, Greeting};
use natsgen_tests::jobs::{JobRunner, JobRunnerClient, JobRunnerServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Guards every wait of a test, so a broken client fails the test instead of hanging it. Never a
/// measure of speed.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long")
}

/// Header blocks that async-nats 0.51 as published refuses, each with what is wrong with it.
/// Every one also carries a readable field, `X-Readable: yes`.
const HOSTILE_BLOCKS: [(&str, &[u8]); 5] = [
    (
        "a header value that is not UTF-8",
        b"NATS/1.0\r\nX-Readable: yes\r\nX-Hostile: \xff\xfe\r\n\r\n",
    ),
    (
        "a header line without a colon",
        b"NATS/1.0\r\nX-Readable: yes\r\nX-Hostile no colon\r\n\r\n",
    ),
    (
        "a header name with a space",
        b"NATS/1.0\r\nX-Readable: yes\r\nX Hostile: 1\r\n\r\n",
    ),
    (
        "a lone carriage return in a header value",
        b"NATS/1.0\r\nX-Readable: yes\r\nX-Hostile: a\rb\r\n\r\n",
    ),
    (
        "a block without a NATS/1.0 version line, not UTF-8",
        b"\xff\xfe/1.0\r\nX-Readable: yes\r\n\r\n",
    ),
];

/// The number of times `connection` has connected (1 unless it reconnected).
fn connects(connection: &Connection) -> u64 {
    connection
        .nats()
        .statistics()
        .connects
        .load(Ordering::Relaxed)
}

/// How often each connection has connected, for failure messages.
fn connect_counts(connections: &[&Connection]) -> String {
    let counts: Vec<u64> = connections.iter().map(|c| connects(c)).collect();
    format!("(connects so far: {counts:?})")
}

fn assert_still_connected(connection: &Connection, who: &str) {
    assert_eq!(
        connects(connection),
        1,
        "{who}'s connection reconnected: a message from another publisher dropped it"
    );
    assert!(connection.is_connected(), "{who} is not connected");
}

// --- a raw NATS client ----------------------------------------------------------------------

/// A message as the raw client received it.
#[derive(Debug)]
struct RawMessage {
    subject: Vec<u8>,
    payload: Vec<u8>,
}

/// A NATS client on a bare TCP stream, speaking the text protocol.
struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    received: VecDeque<RawMessage>,
    next_sid: u64,
}

impl RawClient {
    async fn connect(server: &NatsServer) -> RawClient {
        let stream = within(TcpStream::connect(("127.0.0.1", server.port())))
            .await
            .unwrap();
        let (reader, writer) = stream.into_split();
        let mut client = RawClient {
            reader: BufReader::new(reader),
            writer,
            received: VecDeque::new(),
            next_sid: 1,
        };
        let info = client.line().await;
        assert!(
            info.starts_with(b"INFO "),
            "{}",
            String::from_utf8_lossy(&info)
        );
        client
            .send(br#"CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}"#)
            .await;
        client.send(b"\r\n").await;
        client.ping().await;
        client
    }

    async fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        within(self.reader.read_until(b'\n', &mut line))
            .await
            .unwrap();
        assert!(line.ends_with(b"\r\n"), "the server closed the connection");
        line.truncate(line.len() - 2);
        line
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Reads one operation from the server: keeps messages, answers pings, fails on `-ERR`.
    /// Returns whether it was a `PONG`.
    async fn read_op(&mut self) -> bool {
        let line = self.line().await;
        let text = String::from_utf8_lossy(&line).into_owned();
        if line.starts_with(b"MSG ") || line.starts_with(b"HMSG ") {
            let args: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let total: usize = std::str::from_utf8(args[args.len() - 1])
                .unwrap()
                .parse()
                .unwrap();
            let header_len: usize = if line.starts_with(b"HMSG ") {
                std::str::from_utf8(args[args.len() - 2])
                    .unwrap()
                    .parse()
                    .unwrap()
            } else {
                0
            };
            let mut body = vec![0; total + 2];
            within(self.reader.read_exact(&mut body)).await.unwrap();
            body.truncate(total);
            self.received.push_back(RawMessage {
                subject: args[1].to_vec(),
                payload: body.split_off(header_len),
            });
            false
        } else if line == b"PING" {
            self.send(b"PONG\r\n").await;
            false
        } else if line == b"PONG" {
            true
        } else if line.starts_with(b"INFO ") || line == b"+OK" {
            false
        } else {
            panic!("the server refused the raw client: {text}");
        }
    }

    /// Round trip: once it returns, the server has processed everything sent before.
    async fn ping(&mut self) {
        self.send(b"PING\r\n").await;
        while !self.read_op().await {}
    }

    async fn subscribe(&mut self, subject: &str) {
        let sub = format!("SUB {subject} {}\r\n", self.next_sid);
        self.next_sid += 1;
        self.send(sub.as_bytes()).await;
        self.ping().await;
    }

    /// Publishes with a header block given byte for byte (`HPUB`), and waits for the server to
    /// have taken it.
    async fn hpub(&mut self, subject: &[u8], reply: &[u8], header: &[u8], payload: &[u8]) {
        let mut op = b"HPUB ".to_vec();
        op.extend_from_slice(subject);
        if !reply.is_empty() {
            op.push(b' ');
            op.extend_from_slice(reply);
        }
        let lengths = format!(" {} {}\r\n", header.len(), header.len() + payload.len());
        op.extend_from_slice(lengths.as_bytes());
        op.extend_from_slice(header);
        op.extend_from_slice(payload);
        op.extend_from_slice(b"\r\n");
        self.send(&op).await;
        self.ping().await;
    }

    /// Publishes without headers (`PUB`).
    async fn publish(&mut self, subject: &[u8], reply: &[u8], payload: &[u8]) {
        let mut op = b"PUB ".to_vec();
        op.extend_from_slice(subject);
        op.push(b' ');
        op.extend_from_slice(reply);
        op.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
        op.extend_from_slice(payload);
        op.extend_from_slice(b"\r\n");
        self.send(&op).await;
        self.ping().await;
    }

    /// The next message received on one of the raw client's subscriptions; `missing` says what
    /// it is when none comes.
    async fn next_message(&mut self, missing: impl FnOnce() -> String) -> RawMessage {
        let next = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(message) = self.received.pop_front() {
                    return message;
                }
                self.read_op().await;
            }
        });
        match next.await {
            Ok(message) => message,
            Err(_) => panic!("{} never came", missing()),
        }
    }
}

// --- the services ---------------------------------------------------------------------------

struct GreeterImpl;

impl Greeter for GreeterImpl {
    async fn greet(&self, _ctx: &Context, name: String) -> Result<Greeting, GreetError> {
        Ok(Greeting {
            message: format!("hello {name}"),
            instance: String::new(),
            caller_chain: Vec::new(),
            remaining_ms: None,
            traceparent: None,
        })
    }

    async fn slow(&self, _ctx: &Context, millis: u64) -> Result<String, ServiceError> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok("done".into())
    }

    async fn crash(&self, _ctx: &Context) -> Result<String, ServiceError> {
        Err(ServiceError::internal("not in these tests"))
    }

    async fn relay(&self, _ctx: &Context, _name: String) -> Result<Greeting, ServiceError> {
        Err(ServiceError::internal("not in these tests"))
    }
}

/// What `job_runner`'s handlers saw: (job id or echo text, attempt), and a way to wait on it.
#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<(String, u32)>>,
    changed: Notify,
}

impl Seen {
    fn push(&self, job_id: String, attempt: u32) {
        self.attempts.lock().unwrap().push((job_id, attempt));
        self.changed.notify_waiters();
    }

    fn attempts_of(&self, job_id: &str) -> Vec<u32> {
        let attempts = self.attempts.lock().unwrap();
        attempts
            .iter()
            .filter(|(id, _)| id == job_id)
            .map(|(_, attempt)| *attempt)
            .collect()
    }

    async fn wait_for(&self, job_id: &str, worker: &Connection) {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                if !self.attempts_of(job_id).is_empty() {
                    return;
                }
                changed.await;
            }
        });
        if waited.await.is_err() {
            let counts = connect_counts(&[worker]);
            panic!("{job_id} never ran {counts}");
        }
    }
}

struct Jobs {
    seen: Arc<Seen>,
}

impl JobRunner for Jobs {
    async fn run(
        &self,
        ctx: &Context,
        job_id: String,
        _fail_times: u32,
        _sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        self.seen.push(job_id, ctx.attempt());
        Ok(())
    }

    async fn run_once(
        &self,
        ctx: &Context,
        job_id: String,
        _fail_times: u32,
        _sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        self.seen.push(job_id, ctx.attempt());
        Ok(())
    }

    async fn echo(
        &self,
        ctx: &Context,
        text: String,
        sleep_ms: u64,
    ) -> Result<String, ServiceError> {
        self.seen.push(text.clone(), ctx.attempt());
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(text)
    }
}

async fn connect(server: &NatsServer) -> Connection {
    within(natsgen::connect(server.url())).await.unwrap()
}

async fn serve_greeter(connection: &Connection) -> HostHandle {
    within(
        Host::new(connection.clone())
            .serve(GreeterServer::new(GreeterImpl))
            .start(),
    )
    .await
    .unwrap()
}

async fn serve_jobs(connection: &Connection, seen: &Arc<Seen>) -> HostHandle {
    let jobs = JobRunnerServer::new(Jobs {
        seen: Arc::clone(seen),
    });
    within(Host::new(connection.clone()).serve(jobs).start())
        .await
        .unwrap()
}

/// Publishes a call into `job_runner`'s stream from the raw client, asking for JetStream's ack,
/// which shows the message was stored.
async fn store(raw: &mut RawClient, subject: &[u8], block: &[u8], payload: &[u8]) {
    raw.hpub(subject, b"hostile.ack", block, payload).await;
    let ack = raw
        .next_message(|| "JetStream's ack of a raw publish".to_owned())
        .await;
    assert_eq!(ack.subject, b"hostile.ack");
    let ack = json(&ack.payload);
    assert_eq!(ack["stream"], "ASYNC_job_runner", "not stored: {ack}");
}

fn json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(payload)))
}

// --- the tests ------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_headers_on_an_rpc_subject_get_a_reply_and_keep_the_host_connected() {
    let server = within(NatsServer::start()).await.unwrap();
    let service = connect(&server).await;
    let seen = Arc::new(Seen::default());
    let greeter = serve_greeter(&service).await;
    let jobs = serve_jobs(&service, &seen).await;
    let caller = connect(&server).await;

    // A normal call in flight on the same connection while the hostile messages arrive.
    let in_flight = tokio::spawn({
        let client = JobRunnerClient::new(&caller);
        async move { client.echo("in flight".into(), 1_000).await }
    });
    seen.wait_for("in flight", &service).await;

    let mut raw = RawClient::connect(&server).await;
    raw.subscribe("hostile.>").await;
    for (index, (what, block)) in HOSTILE_BLOCKS.iter().enumerate() {
        let reply = format!("hostile.reply.{index}");
        raw.hpub(
            b"greeter.rpc.greet",
            reply.as_bytes(),
            block,
            br#"{"name": "eve"}"#,
        )
        .await;
        let answer = raw
            .next_message(|| {
                let counts = connect_counts(&[&service]);
                format!("the reply to a request with {what} {counts}")
            })
            .await;
        assert_eq!(answer.subject, reply.as_bytes(), "{what}");
        assert_eq!(
            json(&answer.payload)["result"]["message"],
            "hello eve",
            "{what}: {}",
            String::from_utf8_lossy(&answer.payload)
        );
    }
    // A reply subject that is not UTF-8, with headers and without: the answer goes to the subject
    // with the invalid bytes replaced by U+FFFD.
    raw.hpub(
        b"greeter.rpc.greet",
        b"hostile.reply.\xff",
        b"NATS/1.0\r\nX-Readable: yes\r\n\r\n",
        br#"{"name": "eve"}"#,
    )
    .await;
    let answer = raw
        .next_message(|| {
            let counts = connect_counts(&[&service]);
            format!("the reply to a request with a non-UTF-8 reply subject {counts}")
        })
        .await;
    assert_eq!(answer.subject, "hostile.reply.\u{FFFD}".as_bytes());
    assert_eq!(json(&answer.payload)["result"]["message"], "hello eve");
    raw.publish(
        b"greeter.rpc.greet",
        b"hostile.reply.\xfe",
        br#"{"name": "eve"}"#,
    )
    .await;
    let answer = raw
        .next_message(|| {
            let counts = connect_counts(&[&service]);
            format!("the reply to a headerless request with a non-UTF-8 reply subject {counts}")
        })
        .await;
    assert_eq!(answer.subject, "hostile.reply.\u{FFFD}".as_bytes());

    assert_eq!(
        within(in_flight).await.unwrap().unwrap(),
        "in flight",
        "the call in flight got no reply"
    );
    let greeting = within(GreeterClient::new(&caller).greet("bob".into()))
        .await
        .unwrap();
    assert_eq!(greeting.message, "hello bob");
    assert_still_connected(&service, "the host");

    within(greeter.shutdown()).await.unwrap();
    within(jobs.shutdown()).await.unwrap();
}

#[tokio::test]
async fn malformed_headers_on_srv_ping_keep_every_instance_connected() {
    let server = within(NatsServer::start()).await.unwrap();
    let instances = [connect(&server).await, connect(&server).await];
    let mut hosts = Vec::new();
    for connection in &instances {
        hosts.push(serve_greeter(connection).await);
    }

    let mut raw = RawClient::connect(&server).await;
    raw.subscribe("hostile.>").await;
    let mut probes: Vec<(&str, &[u8], &[u8])> = HOSTILE_BLOCKS
        .iter()
        .map(|(what, block)| (*what, &b"$SRV.PING"[..], *block))
        .collect();
    probes.push((
        "a malformed block on $SRV.PING.<name>",
        b"$SRV.PING.greeter",
        HOSTILE_BLOCKS[0].1,
    ));
    for (index, (what, subject, block)) in probes.into_iter().enumerate() {
        let reply = format!("hostile.ping.{index}");
        raw.hpub(subject, reply.as_bytes(), block, b"").await;
        // Each instance answers.
        for _ in &instances {
            let answer = raw
                .next_message(|| {
                    let counts = connect_counts(&[&instances[0], &instances[1]]);
                    format!("a ping response to {what} {counts}")
                })
                .await;
            assert_eq!(answer.subject, reply.as_bytes(), "{what}");
            assert_eq!(
                json(&answer.payload)["type"],
                "io.nats.micro.v1.ping_response",
                "{what}"
            );
        }
    }
    // A reply subject that is not UTF-8.
    raw.publish(b"$SRV.PING", b"hostile.ping.\xff", b"").await;
    for _ in &instances {
        let answer = raw
            .next_message(|| {
                let counts = connect_counts(&[&instances[0], &instances[1]]);
                format!("a ping response to a non-UTF-8 reply subject {counts}")
            })
            .await;
        assert_eq!(answer.subject, "hostile.ping.\u{FFFD}".as_bytes());
    }

    let caller = connect(&server).await;
    for _ in 0..4 {
        let greeting = within(GreeterClient::new(&caller).greet("bob".into()))
            .await
            .unwrap();
        assert_eq!(greeting.message, "hello bob");
    }
    for (index, connection) in instances.iter().enumerate() {
        assert_still_connected(connection, &format!("instance {index}"));
    }
    for host in hosts {
        within(host.shutdown()).await.unwrap();
    }
}

#[tokio::test]
async fn stored_async_calls_with_malformed_headers_are_processed_or_dead_lettered_once() {
    let server = within(NatsServer::start()).await.unwrap();
    let observer = connect(&server).await;
    let mut dead_letters = observer.nats().subscribe("natsgen.dlq.>").await.unwrap();
    within(observer.nats().flush()).await.unwrap();
    let service = connect(&server).await;
    let seen = Arc::new(Seen::default());
    let host = serve_jobs(&service, &seen).await;

    let mut raw = RawClient::connect(&server).await;
    raw.subscribe("hostile.>").await;
    for (index, (_, block)) in HOSTILE_BLOCKS.iter().enumerate() {
        let call = format!(r#"{{"job_id": "hostile-{index}", "fail_times": 0, "sleep_ms": 0}}"#);
        store(&mut raw, b"job_runner.async.run", block, call.as_bytes()).await;
    }
    // An undecodable call with a malformed block, and a call on a subject that is not UTF-8
    // (an unknown method once its invalid bytes are replaced).
    store(
        &mut raw,
        b"job_runner.async.run",
        HOSTILE_BLOCKS[0].1,
        br#"{"job_id": 5}"#,
    )
    .await;
    store(
        &mut raw,
        b"job_runner.async.\xff",
        b"NATS/1.0\r\nX-Readable: yes\r\n\r\n",
        b"{}",
    )
    .await;

    // Every call ran, once.
    for index in 0..HOSTILE_BLOCKS.len() {
        let job_id = format!("hostile-{index}");
        seen.wait_for(&job_id, &service).await;
    }
    // Both others were dead-lettered, once.
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let letter = within(dead_letters.next()).await.unwrap();
        let headers = letter.headers.as_ref().unwrap();
        reasons.push((
            letter.subject.to_string(),
            headers
                .get(natsgen::streams::DLQ_REASON)
                .map(|v| v.as_str().to_owned()),
        ));
    }
    reasons.sort();
    assert_eq!(
        reasons,
        [
            (
                "natsgen.dlq.job_runner.run".to_owned(),
                Some("undecodable".to_owned())
            ),
            (
                "natsgen.dlq.job_runner.\u{FFFD}".to_owned(),
                Some("unknown_method".to_owned())
            ),
        ]
    );

    // The work queue is empty and nothing waits for an ack or was redelivered.
    let js = jetstream::new(observer.nats().clone());
    within(async {
        loop {
            let mut stream = js.get_stream("ASYNC_job_runner").await.unwrap();
            if stream.info().await.unwrap().state.messages == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let mut consumer: jetstream::consumer::PullConsumer = within(js.get_consumer_from_stream(
        natsgen::streams::async_consumer_name("job_runner"),
        "ASYNC_job_runner",
    ))
    .await
    .unwrap();
    let info = within(consumer.info()).await.unwrap();
    assert_eq!(
        (info.num_pending, info.num_ack_pending, info.num_redelivered),
        (0, 0, 0),
        "{info:?}"
    );
    for index in 0..HOSTILE_BLOCKS.len() {
        assert_eq!(seen.attempts_of(&format!("hostile-{index}")), [1]);
    }
    // No further dead letter (one would have been published before its message was acked).
    assert!(
        futures_util::FutureExt::now_or_never(dead_letters.next()).is_none(),
        "a third dead letter"
    );
    let mut dlq = within(js.get_stream(natsgen::streams::DLQ_STREAM))
        .await
        .unwrap();
    assert_eq!(within(dlq.info()).await.unwrap().state.messages, 2);
    assert_still_connected(&service, "the worker");
    within(host.shutdown()).await.unwrap();
}
