//! OpenTelemetry over a real nats-server (feature `otel`): one trace across an RPC, the async
//! call its handler makes from a task of its own and the event that call's handler emits, with
//! the SDK's in-memory exporter and W3C propagator; `tracestate` carried; a caller's own
//! `traceparent` sent as it is; an unsampled root recording nothing and saying so downstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::time::Duration;

use natsgen::testing::NatsServer;
use natsgen::{ClientOptions, Connection, Context, HostHandle, ServiceError};
use natsgen_tests::seams::{
    Back, BackClient, BackServer, Events, Front, FrontClient, FrontServer, SeamsNoted, Watcher,
    WatcherServer,
};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(20);

/// The global propagator and tracer provider are the process's: one test at a time installs
/// and uses them.
static GLOBAL_TELEMETRY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("finished in time")
}

/// Installs the W3C propagator and a tracer provider with `sampler` that keeps finished spans
/// in memory.
fn install(sampler: Sampler) -> (InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(sampler)
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    (exporter, provider)
}

/// What a handler saw of the trace: the headers it got and its own `ctx.trace_parent()`.
#[derive(Debug)]
struct Seen {
    traceparent: String,
    tracestate: String,
    own: natsgen::TraceParent,
}

fn seen(ctx: &Context) -> Seen {
    Seen {
        traceparent: ctx.header("traceparent").unwrap_or("-").to_owned(),
        tracestate: ctx.header("tracestate").unwrap_or("-").to_owned(),
        own: ctx.trace_parent(),
    }
}

struct FrontImpl;

impl Front for FrontImpl {
    /// Answers with the `traceparent` and `tracestate` it got and its own trace context.
    async fn hello(&self, ctx: &Context, _name: String) -> Result<String, ServiceError> {
        // Recorded only where a `tracing` subscriber bridges spans into OpenTelemetry.
        drop(tracing::info_span!("hello.work").entered());
        let seen = seen(ctx);
        Ok(format!(
            "{} {} {}",
            seen.traceparent, seen.tracestate, seen.own
        ))
    }

    /// Makes the async call from a task of its own, where no OpenTelemetry context is current:
    /// the handler's context carries the trace there. Answers with its own trace context.
    async fn relay(&self, ctx: &Context, text: String) -> Result<String, ServiceError> {
        let spawned = ctx.clone();
        tokio::spawn(async move { spawned.client::<BackClient>().note(text).await })
            .await
            .map_err(|error| ServiceError::internal(error.to_string()))?
            .map_err(|error| ServiceError::internal(error.to_string()))?;
        Ok(ctx.trace_parent().to_string())
    }
}

/// Emits without `.context(ctx)`: the current OpenTelemetry context (the handler's) carries the
/// trace.
struct BackImpl;

impl Back for BackImpl {
    async fn note(&self, ctx: &Context, text: String) -> Result<(), ServiceError> {
        ctx.emit::<Events>()
            .seams_noted(&SeamsNoted {
                text,
                tenant: String::new(),
            })
            .await
            .map_err(|error| ServiceError::internal(error.to_string()))
    }
}

struct WatcherImpl {
    seen: mpsc::UnboundedSender<Seen>,
}

impl Watcher for WatcherImpl {
    async fn seen(&self, ctx: &Context, _event: SeamsNoted) -> Result<(), ServiceError> {
        let _ = self.seen.send(seen(ctx));
        Ok(())
    }
}

async fn setup() -> (
    NatsServer,
    Connection,
    HostHandle,
    mpsc::UnboundedReceiver<Seen>,
) {
    let server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    let (seen, seen_rx) = mpsc::unbounded_channel();
    let host = within(
        natsgen::Host::new(nats.clone())
            .serve(FrontServer::new(FrontImpl))
            .serve(BackServer::new(BackImpl))
            .serve(WatcherServer::new(WatcherImpl { seen }))
            .start(),
    )
    .await
    .unwrap();
    (server, nats, host, seen_rx)
}

/// A remote parent with a `tracestate`, as an incoming request of the application would have.
fn remote_parent(trace_id: u128, span_id: u64) -> opentelemetry::Context {
    let state = TraceState::from_key_value([("vendor", "opaque")]).unwrap();
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        TraceFlags::SAMPLED,
        true,
        state,
    ))
}

/// The finished spans, once there are `count` of them.
async fn spans(exporter: &InMemorySpanExporter, count: usize) -> Vec<SpanData> {
    within(async {
        loop {
            let spans = exporter.get_finished_spans().unwrap();
            if spans.len() >= count {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn the<'a>(spans: &'a [SpanData], name: &str, kind: SpanKind) -> &'a SpanData {
    let found: Vec<_> = spans
        .iter()
        .filter(|span| span.name == name && span.span_kind == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind:?} span {name}: {spans:#?}");
    found[0]
}

#[tokio::test]
async fn one_trace_across_rpc_async_call_and_event() {
    let _global = GLOBAL_TELEMETRY.lock().await;
    let (exporter, _provider) = install(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let (_server, nats, host, mut seen) = setup().await;

    let trace_id = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128;
    let remote_span = 0x00f0_67aa_0ba9_02b7_u64;
    let relayed = within(
        FrontClient::new(&nats)
            .relay("n1".into())
            .into_future()
            .with_context(remote_parent(trace_id, remote_span)),
    )
    .await
    .unwrap();
    let watcher_saw = within(seen.recv()).await.unwrap();
    let spans = spans(&exporter, 6).await;
    within(host.shutdown()).await.unwrap();

    let client = the(&spans, "front/relay", SpanKind::Client);
    let server = the(&spans, "front/relay", SpanKind::Server);
    let send_call = the(&spans, "send back.async.note", SpanKind::Producer);
    let process_call = the(&spans, "process back.async.note", SpanKind::Consumer);
    let send_event = the(&spans, "send seams.noted", SpanKind::Producer);
    let process_event = the(&spans, "process seams.noted", SpanKind::Consumer);
    assert_eq!(spans.len(), 6, "{spans:#?}");

    // One trace, each span the child of the one before, every span with the caller's tracestate.
    let chain = [
        client,
        server,
        send_call,
        process_call,
        send_event,
        process_event,
    ];
    let mut parent = SpanId::from(remote_span);
    for span in chain {
        let context = &span.span_context;
        assert_eq!(context.trace_id(), TraceId::from(trace_id), "{span:#?}");
        assert_eq!(span.parent_span_id, parent, "{span:#?}");
        assert!(context.is_sampled(), "{span:#?}");
        assert_eq!(context.trace_state().header(), "vendor=opaque", "{span:#?}");
        parent = context.span_id();
    }
    // Across the wire the parent is remote; inside a process it is not.
    for span in [server, process_call, process_event] {
        assert!(span.parent_span_is_remote, "{span:#?}");
    }
    for span in [send_call, send_event] {
        assert!(!span.parent_span_is_remote, "{span:#?}");
    }

    // What the event handler got on the wire, and its natsgen trace context: its span's.
    assert_eq!(
        watcher_saw.traceparent,
        format!(
            "00-{trace_id:032x}-{}-01",
            send_event.span_context.span_id()
        )
    );
    assert_eq!(watcher_saw.tracestate, "vendor=opaque");
    assert_eq!(watcher_saw.own.trace_id(), trace_id);
    assert_eq!(
        SpanId::from(watcher_saw.own.span_id()),
        process_event.span_context.span_id()
    );
    assert_eq!(
        relayed,
        format!("00-{trace_id:032x}-{}-01", server.span_context.span_id())
    );
}

#[tokio::test]
async fn a_callers_own_traceparent_is_sent_as_it_is() {
    let _global = GLOBAL_TELEMETRY.lock().await;
    let (exporter, _provider) = install(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let (_server, nats, host, mut seen) = setup().await;

    let current = remote_parent(0xaaaa_u128 << 64 | 0x1, 0xbbbb);
    let own = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let answer = within(
        FrontClient::new(&nats)
            .hello("a".into())
            .header("traceparent", own)
            .into_future()
            .with_context(current.clone()),
    )
    .await
    .unwrap();
    // The propagator added nothing: no other traceparent, not the current context's tracestate.
    let mut parts = answer.split(' ');
    assert_eq!(parts.next(), Some(own), "{answer}");
    assert_eq!(parts.next(), Some("-"), "{answer}");

    // A client-wide traceparent, the same way.
    let other = "00-0af7651916cd43dd8448eb211c80319d-b7ad6b7169203332-01";
    let client =
        FrontClient::new(&nats).with_options(ClientOptions::new().header("traceparent", other));
    let answer = within(client.hello("b".into()).into_future().with_context(current))
        .await
        .unwrap();
    assert!(answer.starts_with(&format!("{other} - ")), "{answer}");

    // An event published with its own traceparent, the same way.
    let third = "00-0af7651916cd43dd8448eb211c80319e-b7ad6b7169203333-01";
    let event = SeamsNoted {
        text: "n".into(),
        tenant: String::new(),
    };
    within(
        Events::new(&nats)
            .seams_noted(&event)
            .header("traceparent", third)
            .into_future()
            .with_context(remote_parent(0xcccc, 0xdddd)),
    )
    .await
    .unwrap();
    let watcher_saw = within(seen.recv()).await.unwrap();
    assert_eq!(
        (
            watcher_saw.traceparent.as_str(),
            watcher_saw.tracestate.as_str()
        ),
        (third, "-")
    );

    let spans = spans(&exporter, 6).await;
    within(host.shutdown()).await.unwrap();
    // The service's span continues the caller's own trace context.
    let servers: Vec<_> = spans
        .iter()
        .filter(|span| span.span_kind == SpanKind::Server)
        .collect();
    assert_eq!(servers.len(), 2, "{spans:#?}");
    let first = servers
        .iter()
        .find(|span| {
            span.span_context.trace_id()
                == TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
        })
        .expect("the service's span is in the caller's own trace");
    assert_eq!(
        first.parent_span_id,
        SpanId::from_hex("b7ad6b7169203331").unwrap()
    );
}

#[tokio::test]
async fn an_unsampled_root_records_nothing_and_says_so() {
    let _global = GLOBAL_TELEMETRY.lock().await;
    let (exporter, _provider) = install(Sampler::AlwaysOff);
    let (_server, nats, host, mut seen) = setup().await;

    // Calls made outside any span start traces, which the sampler drops.
    let front = FrontClient::new(&nats);
    let answer = within(front.hello("a".into())).await.unwrap();
    let mut parts = answer.split(' ');
    let sent = natsgen::TraceParent::parse(parts.next().unwrap()).expect(&answer);
    assert_eq!(sent.flags(), 0, "{answer}");
    let _state = parts.next();
    let own = natsgen::TraceParent::parse(parts.next().unwrap()).expect(&answer);
    assert_eq!(
        (own.trace_id(), own.flags()),
        (sent.trace_id(), 0),
        "{answer}"
    );

    within(front.relay("n1".into())).await.unwrap();
    let watcher_saw = within(seen.recv()).await.unwrap();
    let sent = natsgen::TraceParent::parse(&watcher_saw.traceparent).expect("a traceparent");
    assert_eq!(sent.flags(), 0, "{watcher_saw:?}");
    assert_eq!(watcher_saw.own.flags(), 0, "{watcher_saw:?}");

    within(host.shutdown()).await.unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert!(spans.is_empty(), "{spans:#?}");
}

#[tokio::test]
async fn tracing_spans_join_through_tracing_opentelemetry() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing::Instrument as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::Layer as _;

    let _global = GLOBAL_TELEMETRY.lock().await;
    let (exporter, provider) = install(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    // As docs/RUNTIME.md recommends: natsgen's own `tracing` spans stay out of the bridge. This
    // test runs on one thread (`#[tokio::test]`'s default), host included, so a thread-local
    // subscriber sees everything.
    let not_natsgen = tracing_subscriber::filter::filter_fn(|meta| {
        meta.target() != "natsgen" && !meta.target().starts_with("natsgen::")
    });
    let subscriber = tracing_subscriber::registry().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("app"))
            .with_filter(not_natsgen),
    );
    let _subscriber = tracing::subscriber::set_default(subscriber);
    let (_server, nats, host, _seen) = setup().await;

    within(
        FrontClient::new(&nats)
            .hello("a".into())
            .into_future()
            .instrument(tracing::info_span!("app.request")),
    )
    .await
    .unwrap();
    let spans = spans(&exporter, 4).await;
    within(host.shutdown()).await.unwrap();

    let request = the(&spans, "app.request", SpanKind::Internal);
    let client = the(&spans, "front/hello", SpanKind::Client);
    let server = the(&spans, "front/hello", SpanKind::Server);
    let work = the(&spans, "hello.work", SpanKind::Internal);
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let trace_id = request.span_context.trace_id();
    let mut parent = request.span_context.span_id();
    for span in [client, server, work] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{span:#?}");
        assert_eq!(span.parent_span_id, parent, "{span:#?}");
        parent = span.span_context.span_id();
    }
}
