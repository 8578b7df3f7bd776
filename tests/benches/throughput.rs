//! natsgen against raw async-nats on the same nats-server, in the same run: the ratios of
//! DESIGN.md's performance targets. A benchmark, not a test: misses are reported, never asserted.
//!
//! ```sh
//! NATS_SERVER_BIN=/path/to/nats-server cargo bench -p natsgen-tests --bench throughput
//! cargo bench -p natsgen-tests --bench throughput -- --quick     # a fifth of the counts
//! ```
//!
//! Environment: `NATSGEN_BENCH_SCALE` (default 1) scales every count; `NATSGEN_BENCH_CASES`
//! (comma-separated, see [`CASES`]) runs only some cases; `NATSGEN_BENCH_BREAKDOWN=1` adds
//! variants that show where natsgen's overhead comes from; `NATSGEN_PYTHON` (a Python with
//! nats-py) adds a Python service to the two-process case.
//!
//! The last lines of the output are one `TARGET <name> ratio=<r> goal=<g> ok|MISS` line per
//! DESIGN.md target that was measured.
//!
//! Every case runs its variants (raw, natsgen, and the breakdown's) in interleaved rounds
//! ([`ROUNDS`], or [`SEQUENTIAL_ROUNDS`] shorter ones for sequential calls) after one warm-up
//! each; the tables report the median round. See `docs/PERFORMANCE.md`.

use std::fmt::Write as _;
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, FuturesUnordered, StreamExt, TryStreamExt};
use futures_util::FutureExt;
use natsgen::middleware::{Middleware, MiddlewareFuture, Next};
use natsgen::testing::NatsServer;
use natsgen::{ClientOptions, Context, Host, HostHandle, ServiceError};
use natsgen_tests::bench::{
    BenchTick, CheckedClient, CheckedServer, Drain, DrainClient, DrainServer, EchoClient,
    EchoServer, Events, LayeredClient, LayeredServer, MirrorClient, RemoteClient, SinkClient,
    Tally, TallyServer,
};
use natsgen_tests::benchkit::{self, Answer, EchoImpl};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, Semaphore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Outcome = Result<(), BoxError>;

/// Rounds per case; the median round is reported.
const ROUNDS: usize = 3;
/// Rounds of the sequential case: shorter and more of them, so that raw and natsgen alternate
/// often and a noisy moment of the machine hits both alike.
const SEQUENTIAL_ROUNDS: usize = 9;
/// Requests in flight in the concurrent RPC cases.
const RPC_IN_FLIGHT: usize = 64;
/// Requests in flight in the wide RPC case and the memory case.
const WIDE_IN_FLIGHT: usize = 256;
/// PubAcks in flight in the durable cases.
const ACKS_IN_FLIGHT: usize = 512;
/// Length of the `body` string of every request, async call and event.
const BODY_LEN: usize = 64;
/// Length of the `body` string of the large-payload case (~10 KB requests).
const LARGE_BODY_LEN: usize = 10_000;
/// Methods of the schema of the generation case.
const GENERATED_METHODS: usize = 1_000;
/// DESIGN.md: the generated code per method at most half of the 4,872.7 bytes it took before the
/// generator wrote its output directly.
const GENERATED_BYTES_PER_METHOD_GOAL: f64 = 4_872.7 / 2.0;
/// How long one wait may take before the benchmark gives up (a hang, not a slow run).
const PATIENCE: Duration = Duration::from_secs(120);
/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// Subjects and streams of the raw side; natsgen uses none of them.
const RAW_RPC_SUBJECT: &str = "rawbench.rpc.ping";
const RAW_ASYNC_STREAM: &str = "RAWBENCH_ASYNC";
const RAW_ASYNC_SUBJECT: &str = "rawbench.async.record";
const RAW_EVENTS_STREAM: &str = "RAWBENCH_EVENTS";
const RAW_EVENT_SUBJECT: &str = "rawbench.tick";
/// Breakdown: events for raw consumers that handle them with a task per message, with plain
/// and with confirmed acks.
const RAW_EVENT_SUBJECT_TASKS: &str = "rawbench.tick_tasks";
const RAW_EVENT_SUBJECT_CONFIRMED: &str = "rawbench.tick_confirmed";
/// Breakdown: natsgen's wire contract for events, raw: a unique `Nats-Msg-Id` on every publish,
/// and every ack confirmed (AckSync).
const RAW_EVENT_SUBJECT_CONTRACT: &str = "rawbench.tick_contract";
/// Breakdown: raw responders answering from a task per request, without and with a deadline.
const RAW_RPC_SUBJECT_SPAWNED: &str = "rawbench.rpc.spawned";
const RAW_RPC_SUBJECT_DEADLINE: &str = "rawbench.rpc.deadline";
/// Breakdown: a raw responder that decodes the params and encodes its result as JSON.
const RAW_RPC_SUBJECT_JSON: &str = "rawbench.rpc.json";
/// The subject of the `mirror` service, which a raw responder answers.
const MIRROR_SUBJECT: &str = "mirror.rpc.ping";
/// The echo method written with the async-nats `service` API, in this process and in the second.
const SERVICE_SUBJECT: &str = "svcbench.ping";
const SERVICE_REMOTE_SUBJECT: &str = "svcbench.remote.ping";
/// The raw responder of the second process (`bench_host raw`).
const RAW_REMOTE_SUBJECT: &str = "rawbench.remote.ping";
/// The Python (nats-py) service, a process of its own.
const PYTHON_SUBJECT: &str = "pybench.remote.ping";
/// Durable async end-to-end: the raw side's copy of `ASYNC_drain`.
const RAW_DRAIN_STREAM: &str = "RAWBENCH_DRAIN";
const RAW_DRAIN_SUBJECT: &str = "rawbench.drain.record";

/// How many operations one round does, scaled by `NATSGEN_BENCH_SCALE`.
#[derive(Debug, Clone, Copy)]
struct Counts {
    sequential: usize,
    concurrent: usize,
    large: usize,
    durable_async: usize,
    events: usize,
}

impl Counts {
    fn new(scale: f64) -> Self {
        let scaled = |base: f64, min: usize| ((base * scale).round() as usize).max(min);
        Counts {
            sequential: scaled(400.0, 50),
            concurrent: scaled(30_000.0, 1_000),
            large: scaled(10_000.0, 500),
            durable_async: scaled(40_000.0, 1_000),
            events: scaled(30_000.0, 1_000),
        }
    }
}

fn scale() -> f64 {
    match std::env::var("NATSGEN_BENCH_SCALE") {
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(scale) if scale.is_finite() && scale > 0.0 => scale,
            _ => {
                eprintln!("NATSGEN_BENCH_SCALE={text:?} is not a positive number; using 1");
                1.0
            }
        },
        Err(_) => 1.0,
    }
}

/// `-- --quick`: the counts multiplied by this (on top of `NATSGEN_BENCH_SCALE`).
const QUICK_SCALE: f64 = 0.2;

/// The cases, by the names `NATSGEN_BENCH_CASES` takes.
const CASES: [&str; 11] = [
    "sequential",
    "concurrent",
    "middleware",
    "remote",
    "payload",
    "wide",
    "memory",
    "async",
    "async_e2e",
    "events",
    "codegen",
];

/// The cases to run: `NATSGEN_BENCH_CASES`, else all.
fn selected_cases() -> Result<Vec<&'static str>, BoxError> {
    let Ok(list) = std::env::var("NATSGEN_BENCH_CASES") else {
        return Ok(CASES.to_vec());
    };
    let mut cases = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match CASES.iter().find(|case| **case == name) {
            Some(case) => cases.push(*case),
            None => return Err(format!("unknown case {name:?}; the cases are {CASES:?}").into()),
        }
    }
    Ok(cases)
}

async fn within<F: IntoFuture>(what: &str, future: F) -> Result<F::Output, BoxError> {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .map_err(|_| format!("{what}: no progress within {PATIENCE:?}").into())
}

// ---------------------------------------------------------------------------------------------
// The natsgen services: handlers that do (next to) nothing.

/// Counts handled events and wakes the waiter when the target is reached.
#[derive(Default)]
struct Counter {
    count: AtomicU64,
    target: AtomicU64,
    done: Notify,
}

impl Counter {
    fn arm(&self, target: usize) {
        self.count.store(0, Ordering::SeqCst);
        self.target.store(target as u64, Ordering::SeqCst);
    }

    fn hit(&self) {
        let seen = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if seen == self.target.load(Ordering::Acquire) {
            self.done.notify_one();
        }
    }
}

struct TallyImpl(Arc<Counter>);

impl Tally for TallyImpl {
    async fn count(&self, _ctx: &Context, _event: BenchTick) -> Result<(), ServiceError> {
        self.0.hit();
        Ok(())
    }
}

struct DrainImpl(Arc<Counter>);

impl Drain for DrainImpl {
    async fn record(&self, _ctx: &Context, _seq: u64, _body: String) -> Result<(), ServiceError> {
        self.0.hit();
        Ok(())
    }
}

/// Middleware that only calls the handler: what an installed middleware costs.
struct PassThrough;

impl Middleware for PassThrough {
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> MiddlewareFuture<'a> {
        next.run(ctx)
    }
}

/// The hosts of the middleware case, each on its own connection: `layered` behind a
/// pass-through [`Middleware`], `checked` behind an `intercept` check that lets every call
/// through.
async fn start_middleware_hosts(url: &str) -> Result<[HostHandle; 2], BoxError> {
    let layered = Host::new(natsgen::connect(url).await?)
        .serve(LayeredServer::new(EchoImpl))
        .middleware(PassThrough)
        .start()
        .await?;
    let checked = Host::new(natsgen::connect(url).await?)
        .serve(CheckedServer::new(EchoImpl))
        .intercept(|_| Ok(()))
        .start()
        .await?;
    Ok([layered, checked])
}

async fn start_host(
    url: &str,
    counters: (&Arc<Counter>, &Arc<Counter>),
    max_concurrency: usize,
) -> Result<HostHandle, BoxError> {
    let connection = natsgen::connect(url).await?;
    Ok(Host::new(connection)
        .max_concurrency(max_concurrency)
        .serve(EchoServer::new(EchoImpl))
        .serve(TallyServer::new(TallyImpl(Arc::clone(counters.0))))
        .serve(DrainServer::new(DrainImpl(Arc::clone(counters.1))))
        .start()
        .await?)
}

/// A service in a second process (`bench_host`, or the Python service), killed when dropped.
struct Peer {
    child: tokio::process::Child,
    pid: u32,
}

impl Peer {
    /// `bench_host <kind> <url>`.
    async fn bench_host(kind: &str, url: &str) -> Result<Self, BoxError> {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bench_host"));
        command.args([kind, url]);
        Peer::start(command, kind).await
    }

    /// `$NATSGEN_PYTHON tests/python/bench_service.py <url> <subject>`.
    async fn python(python: &str, url: &str) -> Result<Self, BoxError> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/bench_service.py");
        let mut command = tokio::process::Command::new(python);
        command.args([script, url, PYTHON_SUBJECT]);
        Peer::start(command, "python").await
    }

    /// Starts `command` and waits for its `ready` line.
    async fn start(mut command: tokio::process::Command, what: &str) -> Result<Self, BoxError> {
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("the second process exited at once")?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout of the second process")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        match within(what, lines.next_line()).await?? {
            Some(line) if line.trim() == "ready" => {}
            other => return Err(format!("{what}: expected `ready`, got {other:?}").into()),
        }
        // Whatever else it prints is read and dropped, so that the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Peer { child, pid })
    }

    /// Kills the process (SIGKILL to its PID) and waits for it.
    async fn stop(mut self) -> Outcome {
        self.child.kill().await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/// CPU time (user + system) a process has used so far, from `/proc` (Linux only).
fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1_000 / TICKS_PER_SECOND))
}

/// CPU time of this process and of `peers` (the services in second processes) together; a peer
/// that has been stopped counts no more.
fn own_cpu_time(peers: &[u32]) -> Option<Duration> {
    let own = cpu_time(None)?;
    Some(
        own + peers
            .iter()
            .filter_map(|pid| cpu_time(Some(*pid)))
            .sum::<Duration>(),
    )
}

/// One measured round.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    /// Operations per second.
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Events: operations per second of the publishing alone (until the last PubAck).
    publish_rate: Option<f64>,
    /// CPU time per operation of the benchmark's processes (callers and services) and of
    /// nats-server.
    own_cpu: Option<Duration>,
    server_cpu: Option<Duration>,
}

/// Wall clock and CPU clocks at the start of a round.
struct Stopwatch<'a> {
    wall: Instant,
    own: Option<Duration>,
    server: Option<Duration>,
    server_pid: Option<u32>,
    peers: &'a [u32],
}

impl<'a> Stopwatch<'a> {
    fn start(server_pid: Option<u32>, peers: &'a [u32]) -> Self {
        Stopwatch {
            own: own_cpu_time(peers),
            server: server_pid.and_then(|pid| cpu_time(Some(pid))),
            server_pid,
            peers,
            wall: Instant::now(),
        }
    }

    fn finish(self, n: usize, latencies: Option<Vec<Duration>>) -> Sample {
        let elapsed = self.wall.elapsed();
        let per_op = |before: Option<Duration>, after: Option<Duration>| {
            Some(after?.saturating_sub(before?) / u32::try_from(n.max(1)).ok()?)
        };
        let (p50, p99) = match latencies {
            Some(mut latencies) => {
                latencies.sort_unstable();
                (percentile(&latencies, 50), percentile(&latencies, 99))
            }
            None => (Duration::ZERO, Duration::ZERO),
        };
        Sample {
            rate: rate(n, elapsed),
            p50,
            p99,
            publish_rate: None,
            own_cpu: per_op(self.own, own_cpu_time(self.peers)),
            server_cpu: per_op(
                self.server,
                self.server_pid.and_then(|pid| cpu_time(Some(pid))),
            ),
        }
    }
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        len => sorted[(len * pct / 100).min(len - 1)],
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A way of doing a case's operations, `n` at a time.
struct Variant<'a> {
    label: String,
    run: Box<dyn Fn(usize) -> BoxFuture<'a, Result<Sample, BoxError>> + 'a>,
    samples: Vec<Sample>,
}

impl<'a> Variant<'a> {
    fn new<F, Fut>(label: impl Into<String>, run: F) -> Self
    where
        F: Fn(usize) -> Fut + 'a,
        Fut: Future<Output = Result<Sample, BoxError>> + Send + 'a,
    {
        Variant {
            label: label.into(),
            run: Box::new(move |n| run(n).boxed()),
            samples: Vec::new(),
        }
    }

    fn median(&self, key: impl Fn(&Sample) -> Option<f64>) -> f64 {
        median(self.samples.iter().filter_map(key).collect())
    }

    fn rate(&self) -> f64 {
        self.median(|s| Some(s.rate))
    }

    fn micros(&self, which: fn(&Sample) -> Duration) -> f64 {
        self.median(|s| Some(which(s).as_secs_f64() * 1e6))
    }

    fn cpu_micros(&self, which: fn(&Sample) -> Option<Duration>) -> Option<f64> {
        let value = self.median(|s| which(s).map(|cpu| cpu.as_secs_f64() * 1e6));
        value.is_finite().then_some(value)
    }

    /// One line: the rounds' rates, and CPU per operation.
    fn describe(&self) -> String {
        let rates: Vec<String> = self
            .samples
            .iter()
            .map(|s| format!("{:.1}", s.rate / 1e3))
            .collect();
        let mut line = format!("    {:<58} [{}] k/s", self.label, rates.join(" "));
        let publish = self.median(|s| s.publish_rate);
        if publish.is_finite() {
            let _ = write!(line, ", publishing alone {:.1} k/s", publish / 1e3);
        }
        if let (Some(own), Some(server)) = (
            self.cpu_micros(|s| s.own_cpu),
            self.cpu_micros(|s| s.server_cpu),
        ) {
            let _ = write!(
                line,
                "; CPU/op: bench process {own:.1} µs, nats-server {server:.1} µs"
            );
        }
        line
    }
}

/// Runs every variant once with `warm_up` operations, then `rounds` interleaved rounds of
/// `count`, and prints them.
async fn measure(
    title: &str,
    (warm_up, count, rounds): (usize, usize, usize),
    variants: &mut [Variant<'_>],
) -> Result<(), BoxError> {
    println!("{title} ({rounds} rounds of {count})");
    let only = std::env::var("NATSGEN_BENCH_VARIANTS").unwrap_or_default();
    let chosen = |variant: &Variant<'_>| {
        only.trim().is_empty()
            || only
                .split(',')
                .any(|part| !part.trim().is_empty() && variant.label.contains(part.trim()))
    };
    for variant in variants.iter().filter(|variant| chosen(variant)) {
        (variant.run)(warm_up).await?;
    }
    for _ in 0..rounds {
        for variant in variants.iter_mut() {
            if !chosen(variant) {
                continue;
            }
            let sample = (variant.run)(count).await?;
            variant.samples.push(sample);
        }
    }
    for variant in variants.iter() {
        println!("{}", variant.describe());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The operations.

/// The params object every request, async call and event carries, as natsgen encodes it.
fn params(seq: u64, body: &str) -> Result<Bytes, BoxError> {
    Ok(Bytes::from(serde_json::to_vec(&serde_json::json!({
        "seq": seq,
        "body": body,
    }))?))
}

struct Bench {
    server_pid: Option<u32>,
    /// The services in second processes, whose CPU time counts as the benchmark's.
    peers: Vec<u32>,
    raw: async_nats::Client,
    raw_js: jetstream::Context,
    echo: EchoClient,
    /// Middleware case: clients of `layered` and `checked`, and of `echo` and `sink` with a
    /// client interceptor that lets every call through.
    layered: LayeredClient,
    checked: CheckedClient,
    echo_intercepted: EchoClient,
    sink_intercepted: SinkClient,
    mirror: MirrorClient,
    remote: RemoteClient,
    sink: SinkClient,
    drain: DrainClient,
    events: Events,
    tally: Arc<Counter>,
    drain_tally: Arc<Counter>,
    raw_tally: Arc<Counter>,
    raw_drain_tally: Arc<Counter>,
    raw_tasks_tally: Arc<Counter>,
    raw_confirmed_tally: Arc<Counter>,
    raw_contract_tally: Arc<Counter>,
    body: String,
    payload: Bytes,
    large_body: String,
    large_payload: Bytes,
    /// Makes every `Nats-Msg-Id` of the raw publishes with natsgen's headers unique.
    msg_ids: AtomicU64,
}

impl Bench {
    fn stopwatch(&self) -> Stopwatch<'_> {
        Stopwatch::start(self.server_pid, &self.peers)
    }

    /// `n` calls one after the other, timing each.
    async fn sequential<F, Fut>(&self, n: usize, call: F) -> Result<Sample, BoxError>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut latencies = Vec::with_capacity(n);
        let watch = self.stopwatch();
        for seq in 0..n as u64 {
            let started = Instant::now();
            call(seq).await?;
            latencies.push(started.elapsed());
        }
        Ok(watch.finish(n, Some(latencies)))
    }

    /// `n` calls, `in_flight` at a time.
    async fn concurrent<F, Fut>(
        &self,
        n: usize,
        in_flight: usize,
        call: F,
    ) -> Result<Sample, BoxError>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let watch = self.stopwatch();
        stream::iter(0..n as u64)
            .map(call)
            .buffer_unordered(in_flight)
            .try_for_each(|()| async { Ok(()) })
            .await?;
        Ok(watch.finish(n, None))
    }

    // Request-reply.

    async fn raw_request(&self, subject: &'static str) -> Outcome {
        self.raw.request(subject, self.payload.clone()).await?;
        Ok(())
    }

    async fn raw_request_large(&self, subject: &'static str) -> Outcome {
        self.raw
            .request(subject, self.large_payload.clone())
            .await?;
        Ok(())
    }

    /// Breakdown: a raw request with the wire contract's JSON, as a typed caller of async-nats
    /// writes it: the params encoded and the reply decoded with serde_json.
    async fn raw_request_json(&self, seq: u64) -> Outcome {
        let params = benchkit::PingParams {
            seq,
            body: self.body.clone(),
        };
        let payload = Bytes::from(serde_json::to_vec(&params)?);
        let reply = self.raw.request(RAW_RPC_SUBJECT_JSON, payload).await?;
        let reply: benchkit::PingReply = serde_json::from_slice(&reply.payload)?;
        if reply.result != seq {
            return Err(format!("asked for {seq}, answered {}", reply.result).into());
        }
        Ok(())
    }

    /// Breakdown: a raw request carrying the headers of a natsgen call made in a handler.
    async fn raw_request_with_headers(&self) -> Outcome {
        let request = async_nats::Request::new()
            .headers(nested_call_headers())
            .payload(self.payload.clone());
        self.raw.send_request(RAW_RPC_SUBJECT, request).await?;
        Ok(())
    }

    async fn natsgen_ping(&self, seq: u64) -> Outcome {
        self.echo.ping(seq, self.body.clone()).await?;
        Ok(())
    }

    async fn natsgen_layered_ping(&self, seq: u64) -> Outcome {
        self.layered.ping(seq, self.body.clone()).await?;
        Ok(())
    }

    async fn natsgen_checked_ping(&self, seq: u64) -> Outcome {
        self.checked.ping(seq, self.body.clone()).await?;
        Ok(())
    }

    async fn natsgen_intercepted_ping(&self, seq: u64) -> Outcome {
        self.echo_intercepted.ping(seq, self.body.clone()).await?;
        Ok(())
    }

    async fn natsgen_ping_large(&self, seq: u64) -> Outcome {
        self.echo.ping(seq, self.large_body.clone()).await?;
        Ok(())
    }

    async fn natsgen_remote_ping(&self, seq: u64) -> Outcome {
        self.remote.ping(seq, self.body.clone()).await?;
        Ok(())
    }

    async fn natsgen_mirror_ping(&self, seq: u64) -> Outcome {
        self.mirror.ping(seq, self.body.clone()).await?;
        Ok(())
    }

    // Durable publishing.

    /// Raw JetStream publishing at async-nats's fastest: publishes go out one after the other
    /// and at most [`ACKS_IN_FLIGHT`] PubAcks are awaited at a time.
    async fn raw_publish(&self, subject: &'static str, n: usize, headers: bool) -> Outcome {
        let mut acks = FuturesUnordered::new();
        for _ in 0..n {
            if acks.len() >= ACKS_IN_FLIGHT {
                if let Some(ack) = acks.next().await {
                    ack?;
                }
            }
            let ack: PublishAckFuture = if headers {
                let headers = async_call_headers(&self.next_msg_id());
                self.raw_js
                    .publish_with_headers(subject, headers, self.payload.clone())
                    .await?
            } else {
                self.raw_js.publish(subject, self.payload.clone()).await?
            };
            acks.push(ack.into_future());
        }
        while let Some(ack) = acks.next().await {
            ack?;
        }
        Ok(())
    }

    fn next_msg_id(&self) -> String {
        // As long as natsgen's `<method>:<UUIDv7>`.
        let n = self.msg_ids.fetch_add(1, Ordering::Relaxed);
        format!("record:0190b6f2-4c1e-7d3a-9f00-{n:012x}")
    }

    async fn raw_async(&self, n: usize, headers: bool) -> Result<Sample, BoxError> {
        let watch = self.stopwatch();
        self.raw_publish(RAW_ASYNC_SUBJECT, n, headers).await?;
        Ok(watch.finish(n, None))
    }

    /// Breakdown: raw publishes with natsgen's headers, one future (publish, then PubAck) per
    /// call, as a caller of natsgen writes it.
    async fn raw_async_per_call(&self, n: usize) -> Result<Sample, BoxError> {
        self.concurrent(n, ACKS_IN_FLIGHT, |_| async {
            let headers = async_call_headers(&self.next_msg_id());
            self.raw_js
                .publish_with_headers(RAW_ASYNC_SUBJECT, headers, self.payload.clone())
                .await?
                .await?;
            Ok(())
        })
        .await
    }

    async fn natsgen_async(&self, n: usize) -> Result<Sample, BoxError> {
        self.concurrent(n, ACKS_IN_FLIGHT, |seq| async move {
            self.sink.record(seq, self.body.clone()).await?;
            Ok(())
        })
        .await
    }

    async fn natsgen_async_intercepted(&self, n: usize) -> Result<Sample, BoxError> {
        self.concurrent(n, ACKS_IN_FLIGHT, |seq| async move {
            self.sink_intercepted.record(seq, self.body.clone()).await?;
            Ok(())
        })
        .await
    }

    // Events and durable async end to end: from the first publish until all `n` are handled.

    /// Runs `publish` (`n` messages) and waits until `counter` has seen all `n` handled.
    async fn until_handled<Fut>(
        &self,
        what: &str,
        counter: &Counter,
        n: usize,
        publish: Fut,
    ) -> Result<Sample, BoxError>
    where
        Fut: Future<Output = Outcome>,
    {
        counter.arm(n);
        let done = counter.done.notified();
        let watch = self.stopwatch();
        publish.await?;
        let published = watch.wall.elapsed();
        within(what, done).await?;
        Ok(Sample {
            publish_rate: Some(rate(n, published)),
            ..watch.finish(n, None)
        })
    }

    async fn raw_events(&self, n: usize, subject: &'static str) -> Result<Sample, BoxError> {
        let counter = match subject {
            RAW_EVENT_SUBJECT_TASKS => &self.raw_tasks_tally,
            RAW_EVENT_SUBJECT_CONFIRMED => &self.raw_confirmed_tally,
            RAW_EVENT_SUBJECT_CONTRACT => &self.raw_contract_tally,
            _ => &self.raw_tally,
        };
        let publish = self.raw_publish(subject, n, subject == RAW_EVENT_SUBJECT_CONTRACT);
        self.until_handled("raw events", counter, n, publish).await
    }

    async fn natsgen_events(&self, n: usize) -> Result<Sample, BoxError> {
        let publish = async {
            stream::iter(0..n as u64)
                .map(|seq| async move {
                    let event = BenchTick {
                        seq,
                        body: self.body.clone(),
                    };
                    self.events.bench_tick(&event).await
                })
                .buffer_unordered(ACKS_IN_FLIGHT)
                .try_for_each(|()| async { Ok(()) })
                .await?;
            Ok(())
        };
        self.until_handled("natsgen events", &self.tally, n, publish)
            .await
    }

    async fn raw_e2e(&self, n: usize) -> Result<Sample, BoxError> {
        let publish = self.raw_publish(RAW_DRAIN_SUBJECT, n, false);
        self.until_handled("raw async end to end", &self.raw_drain_tally, n, publish)
            .await
    }

    async fn natsgen_e2e(&self, n: usize) -> Result<Sample, BoxError> {
        let publish = async {
            stream::iter(0..n as u64)
                .map(|seq| self.drain.record(seq, self.body.clone()).into_future())
                .buffer_unordered(ACKS_IN_FLIGHT)
                .try_for_each(|_| async { Ok(()) })
                .await?;
            Ok(())
        };
        self.until_handled("natsgen async end to end", &self.drain_tally, n, publish)
            .await
    }
}

/// The headers of a natsgen call made inside a handler (caller chain, trace context; a call id
/// and a deadline too when the caller records calls or has less time than the method's
/// timeout), with fixed values. A plain call, like the bench's, sends none.
fn nested_call_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Natsgen-Call-Id", "0190b6f2-4c1e-7d3a-9f00-5c2b7e8a1d42");
    headers.insert(
        "Natsgen-Caller-Chain",
        "0190b6f2-4c1e-7d3a-9f00-5c2b7e8a1d41",
    );
    headers.insert("Natsgen-Deadline-Ms", "30000");
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    );
    headers
}

/// The headers of a natsgen async call without an idempotency key: its `Nats-Msg-Id` alone.
fn async_call_headers(msg_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", msg_id);
    headers
}

/// A durable pull consumer on a raw stream, configured like natsgen's.
async fn raw_stream_consumer(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    subject: &str,
) -> Result<PullConsumer, BoxError> {
    let stream = js.get_stream(stream).await?;
    Ok(stream
        .create_consumer(pull::Config {
            durable_name: Some(name.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: natsgen::streams::DEFAULT_ACK_WAIT,
            max_deliver: -1,
            deliver_policy: DeliverPolicy::All,
            filter_subject: subject.into(),
            ..Default::default()
        })
        .await?)
}

/// A durable pull consumer on the raw events stream, configured like natsgen's.
async fn raw_event_consumer(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
) -> Result<PullConsumer, BoxError> {
    raw_stream_consumer(js, RAW_EVENTS_STREAM, name, subject).await
}

/// The raw consumer of events (or, on `RAW_DRAIN_STREAM`, of async calls): one task reading the
/// consumer's message stream and acking every message (a plain ack, not confirmed).
async fn raw_consumer(
    url: &str,
    (stream, subject): (&str, &str),
    counter: Arc<Counter>,
) -> Outcome {
    let js = jetstream::new(async_nats::connect(url).await?);
    let name = subject.replace('.', "_");
    let consumer = raw_stream_consumer(&js, stream, &name, subject).await?;
    let mut messages = consumer.messages().await?;
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { continue };
            if message.ack().await.is_ok() {
                counter.hit();
            }
        }
    });
    Ok(())
}

/// Breakdown: a raw consumer that handles events the way natsgen does — a task per message,
/// at most [`natsgen::DEFAULT_MAX_CONCURRENCY`] at a time, acking with a plain ack or (like
/// natsgen) a confirmed one (AckSync) — but pulling with async-nats's message stream.
async fn raw_consumer_with_tasks(
    url: &str,
    subject: &str,
    confirmed: bool,
    counter: Arc<Counter>,
) -> Outcome {
    let js = jetstream::new(async_nats::connect(url).await?);
    let name = subject.replace('.', "_");
    let consumer = raw_event_consumer(&js, &name, subject).await?;
    let mut messages = consumer.messages().await?;
    let slots = Arc::new(Semaphore::new(natsgen::DEFAULT_MAX_CONCURRENCY));
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { continue };
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let acked = if confirmed {
                    message.double_ack().await
                } else {
                    message.ack().await
                };
                if acked.is_ok() {
                    counter.hit();
                }
                drop(slot);
            });
        }
    });
    Ok(())
}

/// Breakdown: a raw consumer that keeps natsgen's wire contract for events at async-nats's
/// fastest: it handles each message in the reading task and confirms its ack (AckSync) in a
/// task of its own, so confirmations never hold up the reading.
async fn raw_contract_consumer(url: &str, subject: &str, counter: Arc<Counter>) -> Outcome {
    let js = jetstream::new(async_nats::connect(url).await?);
    let name = subject.replace('.', "_");
    let consumer = raw_event_consumer(&js, &name, subject).await?;
    let mut messages = consumer.messages().await?;
    tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let Ok(message) = message else { continue };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                if message.double_ack().await.is_ok() {
                    counter.hit();
                }
            });
        }
    });
    Ok(())
}

/// Breakdown: counts the pull requests (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`) every
/// consumer sends, and the messages they ask for, by listening in on their subject.
#[derive(Default)]
struct PullSpy {
    /// Per `<stream>.<consumer>`: pull requests, and the sum of their `batch`.
    pulls: std::sync::Mutex<std::collections::BTreeMap<String, (u64, u64)>>,
}

impl PullSpy {
    async fn start(url: &str) -> Result<Arc<Self>, BoxError> {
        const PREFIX: &str = "$JS.API.CONSUMER.MSG.NEXT.";
        let client = async_nats::connect(url).await?;
        let mut requests = client.subscribe(format!("{PREFIX}>")).await?;
        client.flush().await?;
        let spy = Arc::new(PullSpy::default());
        let counting = Arc::clone(&spy);
        tokio::spawn(async move {
            let _client = client;
            while let Some(request) = requests.next().await {
                let consumer = request
                    .subject
                    .as_str()
                    .trim_start_matches(PREFIX)
                    .to_owned();
                let batch = serde_json::from_slice::<serde_json::Value>(&request.payload)
                    .ok()
                    .and_then(|body| body.get("batch").and_then(serde_json::Value::as_u64))
                    .unwrap_or(1);
                if let Ok(mut pulls) = counting.pulls.lock() {
                    let entry = pulls.entry(consumer).or_default();
                    entry.0 += 1;
                    entry.1 += batch;
                }
            }
        });
        Ok(spy)
    }

    fn take(&self) -> std::collections::BTreeMap<String, (u64, u64)> {
        self.pulls
            .lock()
            .map(|mut pulls| std::mem::take(&mut *pulls))
            .unwrap_or_default()
    }

    /// Prints and resets the counts; `events` is how many events each consumer got meanwhile.
    fn report(&self, events: usize) {
        for (consumer, (pulls, asked)) in self.take() {
            println!(
                "    pull requests of {consumer}: {pulls} for {events} events ({:.1} per 1,000 \
                 events), asking for {:.1} messages on average",
                pulls as f64 * 1_000.0 / events as f64,
                asked as f64 / pulls.max(1) as f64
            );
        }
    }
}

/// Creates stream `name` on `subjects` with the configuration of natsgen's stream `like`
/// (storage, retention, duplicate window), so raw and natsgen write to alike streams.
async fn stream_like(
    js: &jetstream::Context,
    like: &str,
    name: &str,
    subjects: &[&str],
) -> Outcome {
    let mut config = js.get_stream(like).await?.cached_info().config.clone();
    config.name = name.to_owned();
    config.subjects = subjects.iter().map(|s| (*s).to_owned()).collect();
    js.create_stream(config).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Generation time.

/// A schema of `methods` methods over 20 services: RPC methods with params and a result, some
/// with declared errors, and every fifth method async.
fn big_schema(methods: usize) -> String {
    const SERVICES: usize = 20;
    let mut yaml = String::from(
        "natsgen: 1\npackage: big\ntypes:\n  Item:\n    fields:\n      sku: string\n      \
         quantity: u32\n      price: f64\n      tags: list<string>\n      note: optional<string>\n\
         \x20 Status:\n    enum: [open, closed]\nevents:\n  big.changed:\n    fields: {sku: string}\n\
         services:\n",
    );
    let per_service = methods.div_ceil(SERVICES);
    let mut written = 0;
    for service in 0..SERVICES {
        let _ = writeln!(
            yaml,
            "  svc_{service:02}:\n    version: 1.0.0\n    methods:"
        );
        for _ in 0..per_service {
            if written == methods {
                break;
            }
            // Error enums are named after their method: method names are unique in the package.
            let name = format!("op_{written:04}");
            let _ = match written % 5 {
                0 => writeln!(
                    yaml,
                    "      {name}:\n        kind: async\n        params: {{sku: string, \
                     items: list<Item>}}"
                ),
                1 => writeln!(
                    yaml,
                    "      {name}:\n        params: {{sku: string}}\n        returns: Item\n        \
                     errors:\n          NotFound: {{fields: {{sku: string}}}}\n          Gone: {{}}"
                ),
                _ => writeln!(
                    yaml,
                    "      {name}:\n        description: Method {written} of service {service}.\n        \
                     params: {{sku: string, quantity: u32, status: Status}}\n        \
                     returns: list<Item>\n        timeout: 5s"
                ),
            };
            written += 1;
        }
    }
    yaml
}

/// Median time of `configure().generate` after a warm-up, and the generated bytes per method.
fn generation_time(breakdown: bool) -> Result<(Duration, f64), BoxError> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.yaml");
    std::fs::write(&path, big_schema(GENERATED_METHODS))?;
    let builder = natsgen_build::configure();
    let files = builder.generate(&[&path])?;
    let lines: usize = files.iter().map(|file| file.code.lines().count()).sum();
    let bytes: usize = files.iter().map(|file| file.code.len()).sum();
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        builder.generate(&[&path])?;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let millis = |t: &Duration| format!("{:.1}", t.as_secs_f64() * 1e3);
    println!(
        "generation: {GENERATED_METHODS} methods -> {lines} lines, {bytes} bytes of Rust; runs \
         (ms): {}",
        times.iter().map(millis).collect::<Vec<_>>().join(" ")
    );
    if breakdown {
        // The front end alone (YAML parsing and validation); rendering and formatting are the
        // rest.
        let mut loads = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let loaded = natsgen_build::load(std::slice::from_ref(&path));
            loads.push(started.elapsed());
            if loaded.model.is_none() {
                return Err("the generated schema does not validate".into());
            }
        }
        loads.sort_unstable();
        println!(
            "    of which parsing and validating the YAML (natsgen_build::load): {} ms",
            millis(&loads[loads.len() / 2])
        );
    }
    Ok((
        times[times.len() / 2],
        bytes as f64 / GENERATED_METHODS as f64,
    ))
}

// ---------------------------------------------------------------------------------------------
// Tables.

struct Row {
    case: String,
    raw: String,
    natsgen: String,
    ratio: String,
    target: &'static str,
    met: &'static str,
}

/// Client options whose only interceptor lets every call through.
fn pass_interceptor() -> ClientOptions {
    ClientOptions::new().intercept(|_| Ok(()))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "**no**"
    }
}

/// A throughput row: the case's first variant is raw, the second natsgen.
fn throughput_row(
    case: &str,
    variants: &[Variant<'_>],
    target: Option<(f64, &'static str)>,
) -> Row {
    let (raw, natsgen) = (variants[0].rate(), variants[1].rate());
    let ratio = natsgen / raw;
    Row {
        case: case.to_owned(),
        raw: format!("{:.1} k/s", raw / 1e3),
        natsgen: format!("{:.1} k/s", natsgen / 1e3),
        ratio: format!("{ratio:.2}×"),
        target: target.map_or("—", |(_, text)| text),
        met: target.map_or("—", |(min, _)| verdict(ratio >= min)),
    }
}

fn latency_row(
    case: &str,
    variants: &[Variant<'_>],
    which: fn(&Sample) -> Duration,
    target: Option<(f64, &'static str)>,
) -> Row {
    let (raw, natsgen) = (variants[0].micros(which), variants[1].micros(which));
    let ratio = natsgen / raw;
    Row {
        case: case.to_owned(),
        raw: format!("{raw:.0} µs"),
        natsgen: format!("{natsgen:.0} µs"),
        ratio: format!("{ratio:.2}×"),
        target: target.map_or("—", |(_, text)| text),
        met: target.map_or("—", |(max, _)| verdict(ratio <= max)),
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| case | raw async-nats | natsgen | ratio | DESIGN target | met |");
    println!("|---|---:|---:|---:|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            row.case, row.raw, row.natsgen, row.ratio, row.target, row.met
        );
    }
}

/// The breakdown: every variant of a case against the case's first variant (raw; for the
/// middleware case natsgen without middleware), whose column is headed `against`.
fn print_breakdown(cases: &[(&str, &[Variant<'_>], bool)], against: &str) {
    println!();
    println!("| case | variant | result | {against} | CPU/op bench | CPU/op nats-server |");
    println!("|---|---|---:|---:|---:|---:|");
    for (case, variants, latency) in cases {
        let Some(raw) = variants.first() else {
            continue;
        };
        for variant in variants.iter() {
            let (result, ratio) = if *latency {
                let p50 = variant.micros(|s| s.p50);
                (format!("p50 {p50:.0} µs"), p50 / raw.micros(|s| s.p50))
            } else {
                let rate = variant.rate();
                (format!("{:.1} k/s", rate / 1e3), rate / raw.rate())
            };
            let cpu = |value: Option<f64>| value.map_or("—".to_owned(), |v| format!("{v:.1} µs"));
            println!(
                "| {case} | {} | {result} | {ratio:.2}× | {} | {} |",
                variant.label,
                cpu(variant.cpu_micros(|s| s.own_cpu)),
                cpu(variant.cpu_micros(|s| s.server_cpu)),
            );
        }
    }
}

/// What users would otherwise pick: `alternatives` variants after the second against raw (the
/// first) and natsgen (the second).
fn print_alternatives(cases: &[(&str, &[Variant<'_>], usize)]) {
    println!();
    println!(
        "| case | variant | result | vs raw | vs natsgen | CPU/op bench | CPU/op nats-server |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (case, variants, alternatives) in cases {
        let [raw, natsgen, others @ ..] = variants else {
            continue;
        };
        for variant in others.iter().take(*alternatives) {
            let rate = variant.rate();
            let cpu = |value: Option<f64>| value.map_or("—".to_owned(), |v| format!("{v:.1} µs"));
            println!(
                "| {case} | {} | {:.1} k/s | {:.2}× | {:.2}× | {} | {} |",
                variant.label,
                rate / 1e3,
                rate / raw.rate(),
                rate / natsgen.rate(),
                cpu(variant.cpu_micros(|s| s.own_cpu)),
                cpu(variant.cpu_micros(|s| s.server_cpu)),
            );
        }
    }
}

/// The resident memory of a service process, idle and after calls at [`WIDE_IN_FLIGHT`].
struct MemoryRow {
    process: &'static str,
    load: &'static str,
    /// KiB: `VmRSS` idle, `VmHWM` (the peak since the process started) and `VmRSS` after the
    /// calls.
    idle: u64,
    peak: u64,
    after: u64,
    rate: f64,
}

/// Waits for the freshly started `peer` to settle, reads its memory, makes `n` calls
/// [`WIDE_IN_FLIGHT`] at a time, reads it again, and stops the peer.
async fn memory_under_load<F, Fut>(
    (process, load): (&'static str, &'static str),
    peer: Peer,
    n: usize,
    call: F,
) -> Result<MemoryRow, BoxError>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let pid = peer.pid;
    let unreadable = || format!("cannot read /proc/{pid}/status");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle, _) = benchkit::memory_kib(pid).ok_or_else(unreadable)?;
    let started = Instant::now();
    stream::iter(0..n as u64)
        .map(call)
        .buffer_unordered(WIDE_IN_FLIGHT)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    let elapsed = started.elapsed();
    let (after, peak) = benchkit::memory_kib(pid).ok_or_else(unreadable)?;
    peer.stop().await?;
    let row = MemoryRow {
        process,
        load,
        idle,
        peak,
        after,
        rate: rate(n, elapsed),
    };
    println!(
        "    {process:<58} idle {} MiB, peak {} MiB, after {} MiB ({:.1} k/s)",
        mib(idle),
        mib(peak),
        mib(after),
        row.rate / 1e3
    );
    Ok(row)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn print_memory(rows: &[MemoryRow]) {
    println!();
    println!(
        "| service process | calls ({WIDE_IN_FLIGHT} in flight) | idle VmRSS | peak VmHWM | VmRSS \
         after | calls/s |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} MiB | {} MiB | {} MiB | {:.1} k/s |",
            row.process,
            row.load,
            mib(row.idle),
            mib(row.peak),
            mib(row.after),
            row.rate / 1e3
        );
    }
}

/// One of DESIGN.md's performance targets, as measured: printed last, one `TARGET` line each.
struct Target {
    name: &'static str,
    /// The ratio to raw, or for generation the measured value (milliseconds, bytes).
    value: f64,
    /// `>=`, `<=` or `<`.
    sense: &'static str,
    goal: f64,
}

impl Target {
    fn met(&self) -> bool {
        match self.sense {
            ">=" => self.value >= self.goal,
            "<=" => self.value <= self.goal,
            _ => self.value < self.goal,
        }
    }

    fn line(&self) -> String {
        let (value, goal) = if self.goal >= 10.0 {
            (format!("{:.1}", self.value), format!("{:.0}", self.goal))
        } else {
            (format!("{:.2}", self.value), format!("{:.2}", self.goal))
        };
        let verdict = if self.met() { "ok" } else { "MISS" };
        format!(
            "TARGET {} ratio={value} goal={}{goal} {verdict}",
            self.name, self.sense
        )
    }
}

/// The ratio natsgen / raw of a throughput case (first variant raw, second natsgen).
fn throughput_ratio(variants: &[Variant<'_>]) -> f64 {
    variants[1].rate() / variants[0].rate()
}

// ---------------------------------------------------------------------------------------------

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("throughput: a benchmark; run it with `cargo bench` (see docs/PERFORMANCE.md)");
        return Ok(());
    }
    let quick = std::env::args().any(|arg| arg == "--quick");
    let scale = scale() * if quick { QUICK_SCALE } else { 1.0 };
    let counts = Counts::new(scale);
    let cases = selected_cases()?;
    let run = |case: &str| cases.contains(&case);
    let breakdown = std::env::var("NATSGEN_BENCH_BREAKDOWN").is_ok_and(|v| v == "1");
    let python = std::env::var("NATSGEN_PYTHON")
        .ok()
        .filter(|python| !python.trim().is_empty());
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "natsgen throughput benchmark: scale {scale}{}, {cpus} CPUs, median of the rounds \
         reported{}; per round: {counts:?}",
        if quick { " (--quick)" } else { "" },
        if breakdown { ", with breakdown" } else { "" }
    );

    let mut targets = Vec::new();
    // Generation first, while nothing else runs; its targets are printed last.
    let mut generation_targets = Vec::new();
    let mut generation_row = None;
    if run("codegen") {
        let (time, bytes_per_method) = generation_time(breakdown)?;
        let generation_ms = time.as_secs_f64() * 1e3;
        generation_row = Some(Row {
            case: format!("generate a {GENERATED_METHODS}-method schema"),
            raw: "—".into(),
            natsgen: format!("{generation_ms:.1} ms"),
            ratio: "—".into(),
            target: "< 100 ms",
            met: verdict(generation_ms < 100.0),
        });
        generation_targets.push(Target {
            name: "generation_release_ms",
            value: generation_ms,
            sense: "<",
            goal: 100.0,
        });
        generation_targets.push(Target {
            name: "generated_bytes_per_method",
            value: bytes_per_method,
            sense: "<=",
            goal: GENERATED_BYTES_PER_METHOD_GOAL,
        });
    }
    if cases.iter().all(|case| *case == "codegen") {
        print_table(&generation_row.into_iter().collect::<Vec<_>>());
        print_targets(&generation_targets);
        return Ok(());
    }

    let server = within("starting nats-server", NatsServer::start()).await??;
    let url = server.url();
    println!("nats-server {} at {url}", server.binary().display());

    // natsgen: a host on its own connection, callers on another. Raw: responders on their own
    // connections, callers on another.
    let tally = Arc::new(Counter::default());
    let drain_tally = Arc::new(Counter::default());
    let host = start_host(
        &url,
        (&tally, &drain_tally),
        natsgen::DEFAULT_MAX_CONCURRENCY,
    )
    .await?;
    let client = natsgen::connect(url.as_str()).await?;
    benchkit::raw_responder(&url, RAW_RPC_SUBJECT, Answer::Inline).await?;
    benchkit::raw_responder(&url, MIRROR_SUBJECT, Answer::Inline).await?;
    benchkit::service_responder(&url, SERVICE_SUBJECT).await?;
    if breakdown {
        benchkit::raw_responder(&url, RAW_RPC_SUBJECT_SPAWNED, Answer::Spawned).await?;
        benchkit::raw_responder(&url, RAW_RPC_SUBJECT_DEADLINE, Answer::SpawnedWithDeadline)
            .await?;
        benchkit::raw_responder(&url, RAW_RPC_SUBJECT_JSON, Answer::Json).await?;
    }
    let raw = async_nats::connect(url.as_str()).await?;

    // The services in second processes: raw, natsgen, the async-nats service API, Python.
    // Stopped after the two-process case; the memory case starts its own.
    let mut peers = Vec::new();
    if run("remote") {
        for kind in ["raw", "natsgen", "service"] {
            peers.push(Peer::bench_host(kind, &url).await?);
        }
        if let Some(python) = &python {
            peers.push(Peer::python(python, &url).await?);
        }
    }

    let body = "x".repeat(BODY_LEN);
    let large_body = "x".repeat(LARGE_BODY_LEN);
    let bench = Bench {
        server_pid: server.pid(),
        peers: peers.iter().map(|peer| peer.pid).collect(),
        payload: params(1_000, &body)?,
        large_payload: params(1_000, &large_body)?,
        raw_js: jetstream::new(raw.clone()),
        raw,
        echo: EchoClient::new(&client),
        layered: LayeredClient::new(&client),
        checked: CheckedClient::new(&client),
        echo_intercepted: EchoClient::new(&client).with_options(pass_interceptor()),
        sink_intercepted: SinkClient::new(&client).with_options(pass_interceptor()),
        mirror: MirrorClient::new(&client),
        remote: RemoteClient::new(&client),
        sink: SinkClient::new(&client),
        drain: DrainClient::new(&client),
        events: Events::new(&client),
        tally,
        drain_tally,
        raw_tally: Arc::new(Counter::default()),
        raw_drain_tally: Arc::new(Counter::default()),
        raw_tasks_tally: Arc::new(Counter::default()),
        raw_confirmed_tally: Arc::new(Counter::default()),
        raw_contract_tally: Arc::new(Counter::default()),
        body,
        large_body,
        msg_ids: AtomicU64::new(0),
    };

    // The first async calls and the host create natsgen's streams; the raw ones copy them.
    within("first async call", bench.sink.record(0, bench.body.clone())).await??;
    within(
        "first drained call",
        bench.drain.record(0, bench.body.clone()),
    )
    .await??;
    stream_like(
        &bench.raw_js,
        "ASYNC_sink",
        RAW_ASYNC_STREAM,
        &["rawbench.async.*"],
    )
    .await?;
    stream_like(
        &bench.raw_js,
        "ASYNC_drain",
        RAW_DRAIN_STREAM,
        &["rawbench.drain.*"],
    )
    .await?;
    stream_like(
        &bench.raw_js,
        "EVENTS_bench",
        RAW_EVENTS_STREAM,
        &[
            RAW_EVENT_SUBJECT,
            RAW_EVENT_SUBJECT_TASKS,
            RAW_EVENT_SUBJECT_CONFIRMED,
            RAW_EVENT_SUBJECT_CONTRACT,
        ],
    )
    .await?;
    raw_consumer(
        &url,
        (RAW_EVENTS_STREAM, RAW_EVENT_SUBJECT),
        Arc::clone(&bench.raw_tally),
    )
    .await?;
    raw_consumer(
        &url,
        (RAW_DRAIN_STREAM, RAW_DRAIN_SUBJECT),
        Arc::clone(&bench.raw_drain_tally),
    )
    .await?;
    if breakdown {
        raw_consumer_with_tasks(
            &url,
            RAW_EVENT_SUBJECT_TASKS,
            false,
            Arc::clone(&bench.raw_tasks_tally),
        )
        .await?;
        raw_consumer_with_tasks(
            &url,
            RAW_EVENT_SUBJECT_CONFIRMED,
            true,
            Arc::clone(&bench.raw_confirmed_tally),
        )
        .await?;
        raw_contract_consumer(
            &url,
            RAW_EVENT_SUBJECT_CONTRACT,
            Arc::clone(&bench.raw_contract_tally),
        )
        .await?;
    }

    let warm = |n: usize| (n / 10).max(50);
    let b = &bench;
    let mut rows = Vec::new();
    // Per case: its variants, and how many after raw and natsgen are what users would otherwise
    // pick (the async-nats service API, Python).
    let mut alternatives: Vec<(&str, Vec<Variant<'_>>, usize)> = Vec::new();

    let mut sequential = vec![
        Variant::new("raw request → raw responder", |n| {
            b.sequential(n, |_| b.raw_request(RAW_RPC_SUBJECT))
        }),
        Variant::new("natsgen call → natsgen host", |n| {
            b.sequential(n, |seq| b.natsgen_ping(seq))
        }),
    ];
    let mut concurrent = vec![
        Variant::new("raw request → raw responder", |n| {
            b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request(RAW_RPC_SUBJECT))
        }),
        Variant::new("natsgen call → natsgen host", |n| {
            b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_ping(seq))
        }),
        Variant::new("raw request → async-nats service API", |n| {
            b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request(SERVICE_SUBJECT))
        }),
    ];
    if breakdown {
        sequential.extend([
            Variant::new(
                "raw request + a nested call's headers → raw responder",
                |n| b.sequential(n, |_| b.raw_request_with_headers()),
            ),
            Variant::new("raw request → natsgen host", |n| {
                b.sequential(n, |_| b.raw_request("echo.rpc.ping"))
            }),
            Variant::new("natsgen call → raw responder", |n| {
                b.sequential(n, |seq| b.natsgen_mirror_ping(seq))
            }),
        ]);
        concurrent.extend([
            Variant::new("raw request → raw responder, a task per request", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request(RAW_RPC_SUBJECT_SPAWNED))
            }),
            Variant::new(
                "raw request → raw responder, a task + deadline timer",
                |n| {
                    b.concurrent(n, RPC_IN_FLIGHT, |_| {
                        b.raw_request(RAW_RPC_SUBJECT_DEADLINE)
                    })
                },
            ),
            Variant::new(
                "raw request + a nested call's headers → raw responder",
                |n| b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request_with_headers()),
            ),
            Variant::new("raw request → natsgen host", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request("echo.rpc.ping"))
            }),
            Variant::new("natsgen call → raw responder", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_mirror_ping(seq))
            }),
            Variant::new(CONTRACT_RPC, |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.raw_request_json(seq))
            }),
        ]);
    }
    if run("sequential") {
        measure(
            "sequential request-reply",
            (
                warm(counts.sequential * SEQUENTIAL_ROUNDS),
                counts.sequential,
                SEQUENTIAL_ROUNDS,
            ),
            &mut sequential,
        )
        .await?;
        rows.push(throughput_row(
            "sequential request-reply, throughput",
            &sequential,
            None,
        ));
        rows.push(latency_row(
            "sequential request-reply, p50 latency",
            &sequential,
            |s| s.p50,
            Some((1.1, "p50 ≤ 1.1×")),
        ));
        rows.push(latency_row(
            "sequential request-reply, p99 latency",
            &sequential,
            |s| s.p99,
            None,
        ));
        targets.push(Target {
            name: "sequential_p50",
            value: sequential[1].micros(|s| s.p50) / sequential[0].micros(|s| s.p50),
            sense: "<=",
            goal: 1.1,
        });
    }
    if run("concurrent") {
        let title = format!("request-reply, {RPC_IN_FLIGHT} in flight");
        measure(
            &title,
            (warm(counts.concurrent), counts.concurrent, ROUNDS),
            &mut concurrent,
        )
        .await?;
        rows.push(throughput_row(&title, &concurrent, Some((0.9, "≥ 0.9×"))));
        targets.push(Target {
            name: "rpc_64_in_flight",
            value: throughput_ratio(&concurrent),
            sense: ">=",
            goal: 0.9,
        });
    }

    // What middleware costs: the same call with none, with a pass-through `Middleware` or an
    // `intercept` check on the host, and with a client interceptor.
    let mut middleware = Vec::new();
    if run("middleware") {
        let hosts = start_middleware_hosts(&url).await?;
        let mut sequential = vec![
            Variant::new("no middleware", |n| {
                b.sequential(n, |seq| b.natsgen_ping(seq))
            }),
            Variant::new("host: a pass-through Middleware", |n| {
                b.sequential(n, |seq| b.natsgen_layered_ping(seq))
            }),
            Variant::new("host: an intercept check that passes", |n| {
                b.sequential(n, |seq| b.natsgen_checked_ping(seq))
            }),
            Variant::new("client: an interceptor that passes", |n| {
                b.sequential(n, |seq| b.natsgen_intercepted_ping(seq))
            }),
        ];
        measure(
            "middleware: sequential request-reply",
            (
                warm(counts.sequential * SEQUENTIAL_ROUNDS),
                counts.sequential,
                SEQUENTIAL_ROUNDS,
            ),
            &mut sequential,
        )
        .await?;
        let mut concurrent = vec![
            Variant::new("no middleware", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_ping(seq))
            }),
            Variant::new("host: a pass-through Middleware", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_layered_ping(seq))
            }),
            Variant::new("host: an intercept check that passes", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_checked_ping(seq))
            }),
            Variant::new("client: an interceptor that passes", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_intercepted_ping(seq))
            }),
        ];
        measure(
            &format!("middleware: request-reply, {RPC_IN_FLIGHT} in flight"),
            (warm(counts.concurrent), counts.concurrent, ROUNDS),
            &mut concurrent,
        )
        .await?;
        let mut accepted = vec![
            Variant::new("no middleware", |n| b.natsgen_async(n)),
            Variant::new("client: an interceptor that passes", |n| {
                b.natsgen_async_intercepted(n)
            }),
        ];
        measure(
            &format!("middleware: durable async acceptance, {ACKS_IN_FLIGHT} in flight"),
            (warm(counts.durable_async), counts.durable_async, ROUNDS),
            &mut accepted,
        )
        .await?;
        for host in hosts {
            host.shutdown().await?;
        }
        middleware = vec![
            ("sequential", sequential, true),
            ("64 in flight", concurrent, false),
            ("async acceptance", accepted, false),
        ];
    }

    if run("remote") {
        let mut remote = vec![
            Variant::new("raw request → raw responder (2nd process)", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request(RAW_REMOTE_SUBJECT))
            }),
            Variant::new("natsgen call → natsgen host (2nd process)", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_remote_ping(seq))
            }),
            Variant::new(
                "raw request → async-nats service API (2nd process)",
                |n| b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request(SERVICE_REMOTE_SUBJECT)),
            ),
        ];
        if python.is_some() {
            remote.push(Variant::new(
                "raw request → Python nats-py micro service (2nd process)",
                |n| b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request(PYTHON_SUBJECT)),
            ));
        }
        let title = format!("request-reply, {RPC_IN_FLIGHT} in flight, service in a 2nd process");
        measure(
            &title,
            (warm(counts.concurrent), counts.concurrent, ROUNDS),
            &mut remote,
        )
        .await?;
        rows.push(throughput_row(&title, &remote, None));
        let others = remote.len() - 2;
        alternatives.push(("2nd process", remote, others));
        for peer in peers.drain(..) {
            peer.stop().await?;
        }
    }
    if run("payload") {
        let mut large = vec![
            Variant::new("raw request → raw responder", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |_| b.raw_request_large(RAW_RPC_SUBJECT))
            }),
            Variant::new("natsgen call → natsgen host", |n| {
                b.concurrent(n, RPC_IN_FLIGHT, |seq| b.natsgen_ping_large(seq))
            }),
        ];
        let title = format!(
            "request-reply, ~{} KB requests, {RPC_IN_FLIGHT} in flight",
            bench.large_payload.len() / 1_000
        );
        measure(
            &title,
            (warm(counts.large), counts.large, ROUNDS),
            &mut large,
        )
        .await?;
        rows.push(throughput_row(&title, &large, None));
    }
    if run("wide") {
        let mut wide = vec![
            Variant::new("raw request → raw responder", |n| {
                b.concurrent(n, WIDE_IN_FLIGHT, |_| b.raw_request(RAW_RPC_SUBJECT))
            }),
            Variant::new("natsgen call → natsgen host", |n| {
                b.concurrent(n, WIDE_IN_FLIGHT, |seq| b.natsgen_ping(seq))
            }),
        ];
        let title = format!("request-reply, {WIDE_IN_FLIGHT} in flight");
        measure(
            &title,
            (warm(counts.concurrent), counts.concurrent, ROUNDS),
            &mut wide,
        )
        .await?;
        rows.push(throughput_row(&title, &wide, None));
    }

    let mut memory = Vec::new();
    if run("memory") {
        println!("peak memory of a service process, {WIDE_IN_FLIGHT} calls in flight");
        let n = counts.concurrent;
        let labels = ("raw async-nats responder", "raw requests");
        let peer = Peer::bench_host("raw", &url).await?;
        memory
            .push(memory_under_load(labels, peer, n, |_| b.raw_request(RAW_REMOTE_SUBJECT)).await?);
        let labels = ("async-nats service API", "raw requests");
        let peer = Peer::bench_host("service", &url).await?;
        memory.push(
            memory_under_load(labels, peer, n, |_| b.raw_request(SERVICE_REMOTE_SUBJECT)).await?,
        );
        if let Some(python) = &python {
            let labels = ("Python nats-py micro service", "raw requests");
            let peer = Peer::python(python, &url).await?;
            memory
                .push(memory_under_load(labels, peer, n, |_| b.raw_request(PYTHON_SUBJECT)).await?);
        }
        let labels = ("natsgen host, 1 service (`remote`)", "natsgen calls");
        let peer = Peer::bench_host("natsgen", &url).await?;
        memory.push(memory_under_load(labels, peer, n, |seq| b.natsgen_remote_ping(seq)).await?);
        let orders = generated_example::ecommerce::OrderServiceClient::new(&client);
        let labels = (
            "natsgen host, the 10 ecommerce services",
            "`order_service.process_payment`",
        );
        let payments = |seq: u64| {
            let call = orders.process_payment(format!("order_{seq}"), 10.0);
            async move {
                call.await?;
                Ok(())
            }
        };
        let peer = Peer::bench_host("ecommerce", &url).await?;
        memory.push(memory_under_load(labels, peer, n, payments).await?);
    }

    let mut durable = vec![
        Variant::new("raw JetStream publish", |n| b.raw_async(n, false)),
        Variant::new("natsgen async call", |n| b.natsgen_async(n)),
    ];
    if breakdown {
        durable.extend([
            Variant::new(
                "raw publish + natsgen's header (a unique Nats-Msg-Id)",
                |n| b.raw_async(n, true),
            ),
            Variant::new(CONTRACT_ASYNC, |n| b.raw_async_per_call(n)),
        ]);
    }
    if run("async") {
        let title = format!("durable async acceptance, {ACKS_IN_FLIGHT} in flight");
        measure(
            &title,
            (warm(counts.durable_async), counts.durable_async, ROUNDS),
            &mut durable,
        )
        .await?;
        rows.push(throughput_row(&title, &durable, Some((0.8, "≥ 0.8×"))));
        targets.push(Target {
            name: "async_acceptance",
            value: throughput_ratio(&durable),
            sense: ">=",
            goal: 0.8,
        });
    }
    if run("async_e2e") {
        let mut e2e = vec![
            Variant::new("raw publish → raw pull consumer (plain ack)", |n| {
                b.raw_e2e(n)
            }),
            Variant::new("natsgen async call → natsgen host", |n| b.natsgen_e2e(n)),
        ];
        let title = format!(
            "durable async end to end (publish → handler → ack), {ACKS_IN_FLIGHT} in flight"
        );
        measure(
            &title,
            (warm(counts.durable_async), counts.durable_async, ROUNDS),
            &mut e2e,
        )
        .await?;
        rows.push(throughput_row(&title, &e2e, None));
    }

    let mut events = vec![
        Variant::new("raw publish → raw pull consumer (plain ack)", |n| {
            b.raw_events(n, RAW_EVENT_SUBJECT)
        }),
        Variant::new("natsgen publish → natsgen durable handler", |n| {
            b.natsgen_events(n)
        }),
    ];
    if breakdown {
        events.extend([
            Variant::new("raw publish → raw consumer, 64 tasks, plain acks", |n| {
                b.raw_events(n, RAW_EVENT_SUBJECT_TASKS)
            }),
            Variant::new(
                "raw publish → raw consumer, 64 tasks, confirmed acks",
                |n| b.raw_events(n, RAW_EVENT_SUBJECT_CONFIRMED),
            ),
            Variant::new(CONTRACT_EVENTS, |n| {
                b.raw_events(n, RAW_EVENT_SUBJECT_CONTRACT)
            }),
        ]);
    }
    let spy = match breakdown && run("events") {
        true => Some(PullSpy::start(&url).await?),
        false => None,
    };
    if run("events") {
        measure(
            "event fan-out",
            (warm(counts.events), counts.events, ROUNDS),
            &mut events,
        )
        .await?;
        if let Some(spy) = &spy {
            spy.report(warm(counts.events) + ROUNDS * counts.events);
        }
        rows.push(throughput_row(
            "event fan-out (publish → durable handler)",
            &events,
            Some((0.9, "≥ 0.9×")),
        ));
        targets.push(Target {
            name: "event_fanout",
            value: throughput_ratio(&events),
            sense: ">=",
            goal: 0.9,
        });
    }
    rows.extend(generation_row);
    if !rows.is_empty() {
        print_table(&rows);
    }
    if run("concurrent") {
        alternatives.insert(0, ("64 in flight", concurrent, 1));
    }
    if !alternatives.is_empty() {
        let cases: Vec<(&str, &[Variant<'_>], usize)> = alternatives
            .iter()
            .map(|(case, variants, others)| (*case, variants.as_slice(), *others))
            .collect();
        print_alternatives(&cases);
    }
    if !memory.is_empty() {
        print_memory(&memory);
    }
    if !middleware.is_empty() {
        let sections: Vec<(&str, &[Variant<'_>], bool)> = middleware
            .iter()
            .map(|(case, variants, latency)| (*case, variants.as_slice(), *latency))
            .collect();
        print_breakdown(&sections, "vs none");
    }

    if breakdown {
        // The same host with more handler slots: how much the slot limit bounds the events.
        host.shutdown().await?;
        let _host = start_host(&url, (&bench.tally, &bench.drain_tally), 512).await?;
        let mut wide = vec![
            Variant::new("raw publish → raw pull consumer (plain ack)", |n| {
                b.raw_events(n, RAW_EVENT_SUBJECT)
            }),
            Variant::new("natsgen, host with max_concurrency(512)", |n| {
                b.natsgen_events(n)
            }),
        ];
        if run("events") {
            measure(
                "event fan-out, 512 handler slots",
                (warm(counts.events), counts.events, ROUNDS),
                &mut wide,
            )
            .await?;
            if let Some(spy) = &spy {
                spy.report(warm(counts.events) + ROUNDS * counts.events);
            }
        }
        let mut sections: Vec<(&str, &[Variant<'_>], bool)> = Vec::new();
        if run("sequential") {
            sections.push(("sequential", &sequential, true));
        }
        if let Some((_, concurrent, _)) = alternatives
            .iter()
            .find(|(case, _, _)| *case == "64 in flight")
        {
            sections.push(("64 in flight", concurrent, false));
        }
        if run("async") {
            sections.push(("async acceptance", &durable, false));
        }
        if run("events") {
            sections.push(("event fan-out", &events, false));
            sections.push(("event fan-out, 512 slots", &wide, false));
        }
        print_breakdown(&sections, "vs raw");
    }
    if breakdown {
        let mut remainders = Vec::new();
        if let Some((_, concurrent, _)) = alternatives
            .iter()
            .find(|(case, _, _)| *case == "64 in flight")
        {
            remainders.push(Remainder::of("rpc_64_in_flight", concurrent, CONTRACT_RPC));
        }
        if run("async") {
            remainders.push(Remainder::of("async_acceptance", &durable, CONTRACT_ASYNC));
        }
        if run("events") {
            remainders.push(Remainder::of("event_fanout", &events, CONTRACT_EVENTS));
        }
        print_remainders(&remainders.into_iter().flatten().collect::<Vec<_>>());
    }
    targets.extend(generation_targets);
    print_targets(&targets);
    Ok(())
}

/// Breakdown: the variant that does, with raw async-nats, what natsgen's wire contract asks of
/// request-reply (JSON params and result, encoded and decoded with serde_json).
const CONTRACT_RPC: &str =
    "contract: raw request, serde_json both ways → raw responder, serde_json";
/// Breakdown: what natsgen's wire contract asks of an async call's publish, raw.
const CONTRACT_ASYNC: &str = "contract: raw publish + a unique Nats-Msg-Id, one future per call";
/// Breakdown: what natsgen's wire contract asks of a durable event, raw.
const CONTRACT_EVENTS: &str =
    "contract: raw publish + a unique Nats-Msg-Id → raw consumer, confirmed acks";

/// Where the rest of a target's gap lies: raw async-nats doing what natsgen's wire contract
/// asks (the `contract` variant), against raw and against natsgen.
struct Remainder {
    name: &'static str,
    /// contract / raw: what the wire contract costs by itself.
    contract: f64,
    /// natsgen / contract: what natsgen's code costs beyond it.
    natsgen: f64,
    /// Whose work the contract's cost is.
    owner: &'static str,
}

impl Remainder {
    /// From a case's variants: raw first, natsgen second, and the one labelled `contract`.
    fn of(name: &'static str, variants: &[Variant<'_>], contract: &str) -> Option<Remainder> {
        let raw = variants.first()?.rate();
        let natsgen = variants.get(1)?.rate();
        let floor = variants.iter().find(|v| v.label == contract)?.rate();
        let owner = match name {
            "rpc_64_in_flight" => {
                "serde_json: the params and result the wire contract sends as JSON, encoded and \
                 decoded on both sides"
            }
            "async_acceptance" => {
                "nats-server: duplicate tracking of every Nats-Msg-Id; and a PubAck awaited in \
                 each call's own future, where raw pipelines its publishes"
            }
            _ => {
                "nats-server: duplicate tracking of every Nats-Msg-Id and an AckSync reply per \
                 event; async-nats: a request per confirmed ack"
            }
        };
        Some(Remainder {
            name,
            contract: floor / raw,
            natsgen: natsgen / floor,
            owner,
        })
    }
}

/// One `REMAINDER` line per missed target the breakdown measured, before the `TARGET` lines.
fn print_remainders(remainders: &[Remainder]) {
    if remainders.is_empty() {
        return;
    }
    println!();
    for r in remainders {
        println!(
            "REMAINDER {} contract/raw={:.2} natsgen/contract={:.2} contract_cost={}",
            r.name, r.contract, r.natsgen, r.owner
        );
    }
}

/// The `TARGET` lines, last.
fn print_targets(targets: &[Target]) {
    println!();
    for target in targets {
        println!("{}", target.line());
    }
}
