//! Middleware over a real nats-server: a bearer-token check and a per-caller rate limit around
//! every handler of a host (RPC, async calls, events), middleware that sees every endpoint kind
//! and sets reply headers, client interceptors and client completion hooks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use natsgen::middleware::{Middleware, MiddlewareFuture, Next};
use natsgen::testing::NatsServer;
use natsgen::{ClientOptions, Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::seams::services::{Forwarding, Noting};
use natsgen_tests::seams::{
    BackClient, BackServer, Events, Front, FrontClient, FrontServer, SeamsNoted, WatcherServer,
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
        if name == "panic" {
            panic!("on purpose");
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

/// The bearer-token check of docs/RUNTIME.md.
struct BearerAuth {
    token: String,
}

impl Middleware for BearerAuth {
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> MiddlewareFuture<'a> {
        Box::pin(async move {
            let Some(value) = ctx.header("Authorization") else {
                return Err(ServiceError::new(
                    "unauthenticated",
                    401,
                    "a bearer token is required",
                ));
            };
            if value.strip_prefix("Bearer ") != Some(self.token.as_str()) {
                return Err(ServiceError::new(
                    "permission_denied",
                    403,
                    "the token is not valid",
                ));
            }
            next.run(ctx).await
        })
    }
}

/// The per-caller rate limit of docs/RUNTIME.md: a token bucket per `X-Caller`.
struct RateLimit {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimit {
    fn new(burst: u32, per_second: f64) -> Self {
        RateLimit {
            burst: f64::from(burst),
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, ctx: &Context) -> Result<(), ServiceError> {
        let caller = ctx.header("X-Caller").unwrap_or("anonymous").to_owned();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = buckets.entry(caller).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens < 1.0 {
            let wait = ((1.0 - *tokens) / self.per_second).ceil();
            ctx.set_reply_header("Retry-After", &format!("{wait}"))?;
            return Err(ServiceError::new(
                "rate_limited",
                429,
                "too many calls; retry later",
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

/// Records `kind method` of every call it wraps, times it into a reply header, and records
/// rejections by the middleware inside it.
struct Recorder {
    calls: mpsc::UnboundedSender<String>,
}

impl Middleware for Recorder {
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> MiddlewareFuture<'a> {
        Box::pin(async move {
            let endpoint = next.endpoint();
            let label = format!("{:?} {}.{}", endpoint.kind, next.service(), endpoint.name);
            let started = Instant::now();
            let result = next.run(ctx.clone()).await;
            ctx.set_reply_header("X-Handled-Us", &started.elapsed().as_micros().to_string())?;
            let outcome = match &result {
                Ok(_) => "ok".to_owned(),
                Err(error) => format!("{} {}", error.kind(), error.code()),
            };
            let _ = self.calls.send(format!("{label} {outcome}"));
            result
        })
    }
}

async fn start(host: Host) -> HostHandle {
    within(host.start()).await.unwrap()
}

async fn setup() -> (NatsServer, Connection) {
    let server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    (server, nats)
}

fn services(host: Host, seen: mpsc::UnboundedSender<String>) -> Host {
    host.serve(FrontServer::new(FrontImpl))
        .serve(BackServer::new(Noting))
        .serve(WatcherServer::new(Forwarding { seen }))
}

#[tokio::test]
async fn bearer_tokens_guard_rpc_async_and_event_handlers() {
    let (_server, nats) = setup().await;
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let (calls, mut calls_rx) = mpsc::unbounded_channel();
    let host = start(
        services(Host::new(nats.clone()), seen)
            .middleware(Recorder { calls })
            .middleware(BearerAuth {
                token: "s3cret".into(),
            }),
    )
    .await;

    // No token: 401; a wrong one: 403; the handler never runs.
    let error = within(FrontClient::new(&nats).hello("a".into()))
        .await
        .unwrap_err();
    let service = error.service_error().unwrap();
    assert_eq!((service.kind(), service.code()), ("unauthenticated", 401));
    let error = within(
        FrontClient::new(&nats)
            .hello("a".into())
            .header("Authorization", "Bearer nope"),
    )
    .await
    .unwrap_err();
    let service = error.service_error().unwrap();
    assert_eq!((service.kind(), service.code()), ("permission_denied", 403));
    assert_eq!(
        within(calls_rx.recv()).await.unwrap(),
        "Rpc front.hello unauthenticated 401"
    );
    assert_eq!(
        within(calls_rx.recv()).await.unwrap(),
        "Rpc front.hello permission_denied 403"
    );

    // With the token as a client-wide header, the RPC passes; the async call it makes and the
    // event that makes go through the middleware too, carrying their own headers: the nested
    // calls of a handler use the host's connection, whose client options add the token.
    let authorized =
        nats.with_client_options(ClientOptions::new().header("Authorization", "Bearer s3cret"));
    let answer = within(FrontClient::new(&authorized).hello("b".into()))
        .await
        .unwrap();
    assert_eq!(answer, "hello b");
    assert_eq!(within(calls_rx.recv()).await.unwrap(), "Rpc front.hello ok");

    // An async call without a token is refused by the middleware (and dead-lettered after its
    // single attempt); with one it runs, and so does the event handler it triggers... only when
    // the event carries a token, which `ctx.emit` does not add: it is refused too.
    within(BackClient::new(&nats).note("n1".into()))
        .await
        .unwrap();
    assert_eq!(
        within(calls_rx.recv()).await.unwrap(),
        "Async back.note unauthenticated 401"
    );
    within(BackClient::new(&authorized).note("n2".into()))
        .await
        .unwrap();
    let mut lines = vec![
        within(calls_rx.recv()).await.unwrap(),
        within(calls_rx.recv()).await.unwrap(),
    ];
    lines.sort();
    assert_eq!(
        lines,
        [
            "Async back.note ok",
            "Event watcher.seen unauthenticated 401"
        ]
    );
    assert!(seen_rx.try_recv().is_err(), "no event reached the handler");

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn middleware_sees_every_kind_and_sets_reply_headers() {
    let (_server, nats) = setup().await;
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let (calls, mut calls_rx) = mpsc::unbounded_channel();
    let host = start(services(Host::new(nats.clone()), seen).middleware(Recorder { calls })).await;

    let answer = within(FrontClient::new(&nats).relay("r1".into()))
        .await
        .unwrap();
    assert_eq!(answer, "relayed");
    assert_eq!(within(seen_rx.recv()).await.unwrap(), "r1");
    let mut lines = vec![
        within(calls_rx.recv()).await.unwrap(),
        within(calls_rx.recv()).await.unwrap(),
        within(calls_rx.recv()).await.unwrap(),
    ];
    lines.sort();
    assert_eq!(
        lines,
        [
            "Async back.note ok",
            "Event watcher.seen ok",
            "Rpc front.relay ok"
        ]
    );

    // The reply carries the middleware's header.
    let reply = within(
        nats.nats()
            .request("front.rpc.hello", r#"{"name":"x"}"#.into()),
    )
    .await
    .unwrap();
    let headers = reply.headers.expect("reply headers");
    assert!(headers
        .get("X-Handled-Us")
        .unwrap()
        .as_str()
        .parse::<u64>()
        .is_ok());

    // A handler that panics is `internal`, and the middleware around it sees that error.
    let error = within(FrontClient::new(&nats).hello("panic".into()))
        .await
        .unwrap_err();
    assert_eq!(error.service_error().unwrap().kind(), "internal");
    let _ = within(calls_rx.recv()).await.unwrap();
    assert_eq!(
        within(calls_rx.recv()).await.unwrap(),
        "Rpc front.hello internal 500"
    );

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_per_caller_rate_limit_answers_429_with_retry_after() {
    let (_server, nats) = setup().await;
    let (seen, _seen_rx) = mpsc::unbounded_channel();
    // Two calls per caller, refilled once an hour: the third call of a caller is refused.
    let limit = Arc::new(RateLimit::new(2, 1.0 / 3600.0));
    let check = Arc::clone(&limit);
    let host =
        start(services(Host::new(nats.clone()), seen).intercept(move |ctx| check.check(ctx))).await;

    let alice =
        FrontClient::new(&nats).with_options(ClientOptions::new().header("X-Caller", "alice"));
    let bob = FrontClient::new(&nats).with_options(ClientOptions::new().header("X-Caller", "bob"));
    within(alice.hello("1".into())).await.unwrap();
    within(alice.hello("2".into())).await.unwrap();
    let error = within(alice.hello("3".into())).await.unwrap_err();
    let service = error.service_error().unwrap();
    assert_eq!((service.kind(), service.code()), ("rate_limited", 429));
    // Bob has his own bucket.
    assert_eq!(within(bob.hello("1".into())).await.unwrap(), "hello 1");

    // The refusal carries Retry-After.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Caller", "alice");
    let reply = within(nats.nats().request_with_headers(
        "front.rpc.hello",
        headers,
        r#"{"name":"4"}"#.into(),
    ))
    .await
    .unwrap();
    let headers = reply.headers.expect("reply headers");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        "429"
    );
    // About an hour until the next token (a little less as time passes).
    let retry_after: u64 = headers
        .get("Retry-After")
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&retry_after), "{retry_after}");

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn client_interceptors_add_headers_and_refuse_calls() {
    let (_server, nats) = setup().await;
    let (seen, _seen_rx) = mpsc::unbounded_channel();
    let host = start(
        services(Host::new(nats.clone()), seen).middleware(BearerAuth {
            token: "from-interceptor".into(),
        }),
    )
    .await;

    let options = ClientOptions::new().intercept(|call| {
        if call.method == "relay" {
            return Err(ServiceError::new(
                "permission_denied",
                403,
                "this client may not relay",
            ));
        }
        call.headers
            .push(("Authorization".into(), "Bearer from-interceptor".into()));
        Ok(())
    });
    let client = FrontClient::new(&nats).with_options(options);
    assert_eq!(within(client.hello("i".into())).await.unwrap(), "hello i");
    let error = within(client.relay("r".into())).await.unwrap_err();
    let service = error.service_error().unwrap();
    assert_eq!((service.kind(), service.code()), ("permission_denied", 403));

    within(host.shutdown()).await.unwrap();
}

/// `ClientOptions::on_complete` sees every call a client sends — RPC, async call, event — with
/// its outcome, after it ended; a call an interceptor refused never went out and is not seen.
#[tokio::test]
async fn completion_hooks_see_every_call_with_its_outcome() {
    let (_server, nats) = setup().await;
    let (seen, mut seen_rx) = mpsc::unbounded_channel();
    let host = start(services(Host::new(nats.clone()), seen)).await;

    let completed = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&completed);
    let options = ClientOptions::new()
        .intercept(|call| match call.method {
            "relay" => Err(ServiceError::new("permission_denied", 403, "no relaying")),
            _ => Ok(()),
        })
        .on_complete(move |call| {
            assert!(call.elapsed > Duration::ZERO, "{call:?}");
            record.lock().unwrap().push(format!(
                "{}.{} {:?} {}",
                call.service, call.method, call.kind, call.outcome
            ));
        });
    let observed = nats.with_client_options(options);

    let front = FrontClient::new(&observed);
    assert_eq!(within(front.hello("a".into())).await.unwrap(), "hello a");
    let error = within(front.hello("panic".into())).await.unwrap_err();
    assert_eq!(error.service_error().unwrap().kind(), "internal");
    within(front.relay("r".into())).await.unwrap_err();
    within(BackClient::new(&observed).note("n".into()))
        .await
        .unwrap();
    let note = SeamsNoted {
        text: "t".into(),
        tenant: "acme".into(),
    };
    within(Events::new(&observed).seams_noted(&note))
        .await
        .unwrap();
    // The event reached its handler (after the note's own): the hooks ran after real sends.
    while within(seen_rx.recv()).await.unwrap() != "t" {}

    assert_eq!(
        *completed.lock().unwrap(),
        [
            "front.hello Rpc ok",
            "front.hello Rpc internal",
            "back.note Async ok",
            "seams.seams.noted Event ok",
        ]
    );
    within(host.shutdown()).await.unwrap();
}
