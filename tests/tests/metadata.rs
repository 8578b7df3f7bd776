//! Request metadata over a real nats-server: handlers read the headers of RPC requests, async
//! calls and events; RPC handlers set headers on their replies; clients set headers per call and
//! per client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::time::Duration;

use natsgen::testing::NatsServer;
use natsgen::{ClientOptions, Connection, Context, HostHandle, ServiceError};
use natsgen_tests::seams::{
    Back, BackClient, BackServer, Front, FrontClient, FrontServer, SeamsNoted, Watcher,
    WatcherServer,
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
    async fn hello(&self, ctx: &Context, name: String) -> Result<String, ServiceError> {
        ctx.set_reply_header("X-Served-By", "front")?;
        if name == "fail" {
            return Err(ServiceError::new("teapot", 418, "short and stout"));
        }
        Ok(format!(
            "{name} tenant={} default={}",
            ctx.header("X-Tenant").unwrap_or("-"),
            ctx.header("X-Default").unwrap_or("-"),
        ))
    }

    async fn relay(&self, ctx: &Context, text: String) -> Result<String, ServiceError> {
        let tenant = ctx.header("X-Tenant").unwrap_or("-").to_owned();
        ctx.client::<BackClient>()
            .note(text)
            .header("X-Tenant", tenant)
            .await
            .map_err(|error| ServiceError::internal(error.to_string()))?;
        Ok("relayed".into())
    }
}

struct BackImpl {
    seen: mpsc::UnboundedSender<String>,
}

impl Back for BackImpl {
    async fn note(&self, ctx: &Context, text: String) -> Result<(), ServiceError> {
        let tenant = ctx.header("X-Tenant").unwrap_or("-").to_owned();
        let _ = self.seen.send(format!("note {text} tenant={tenant}"));
        ctx.emit::<natsgen_tests::seams::Events>()
            .seams_noted(&SeamsNoted {
                text,
                tenant: tenant.clone(),
            })
            .header("X-Tenant", tenant)
            .context(ctx)
            .await
            .map_err(|error| ServiceError::internal(error.to_string()))
    }
}

struct WatcherImpl {
    seen: mpsc::UnboundedSender<String>,
}

impl Watcher for WatcherImpl {
    async fn seen(&self, ctx: &Context, event: SeamsNoted) -> Result<(), ServiceError> {
        let header = ctx.header("X-Tenant").unwrap_or("-");
        let all = ctx.headers().map_or(0, |headers| headers.len());
        let _ = self.seen.send(format!(
            "event {} tenant={header} headers={}",
            event.text,
            all > 0
        ));
        Ok(())
    }
}

async fn setup() -> (
    NatsServer,
    Connection,
    HostHandle,
    mpsc::UnboundedReceiver<String>,
) {
    let server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    let (seen, seen_rx) = mpsc::unbounded_channel();
    let host = within(
        natsgen::Host::new(nats.clone())
            .serve(FrontServer::new(FrontImpl))
            .serve(BackServer::new(BackImpl { seen: seen.clone() }))
            .serve(WatcherServer::new(WatcherImpl { seen }))
            .start(),
    )
    .await
    .unwrap();
    (server, nats, host, seen_rx)
}

#[tokio::test]
async fn rpc_handlers_read_call_and_client_headers() {
    let (_server, nats, host, _seen) = setup().await;

    let plain = FrontClient::new(&nats);
    let answer = within(plain.hello("a".into()).header("X-Tenant", "acme"))
        .await
        .unwrap();
    assert_eq!(answer, "a tenant=acme default=-");

    // A client-wide header goes with every call; the call's own header of the same name wins.
    let defaults = FrontClient::new(&nats).with_options(
        ClientOptions::new()
            .header("X-Default", "everywhere")
            .header("X-Tenant", "fallback"),
    );
    let answer = within(defaults.hello("b".into())).await.unwrap();
    assert_eq!(answer, "b tenant=fallback default=everywhere");
    let answer = within(defaults.hello("c".into()).header("X-Tenant", "mine"))
        .await
        .unwrap();
    assert_eq!(answer, "c tenant=mine default=everywhere");

    // The same through a connection handle with client options, and `CallOptions`.
    let handle = nats.with_client_options(ClientOptions::new().header("X-Default", "conn"));
    let answer = within(
        FrontClient::new(&handle)
            .hello("d".into())
            .options(natsgen::CallOptions::new().header("X-Tenant", "opts")),
    )
    .await
    .unwrap();
    assert_eq!(answer, "d tenant=opts default=conn");

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn rpc_handlers_set_reply_headers_on_results_and_errors() {
    let (_server, nats, host, _seen) = setup().await;
    let raw = nats.nats();

    let reply = within(raw.request("front.rpc.hello", r#"{"name":"x"}"#.into()))
        .await
        .unwrap();
    let headers = reply.headers.expect("the reply has headers");
    assert_eq!(headers.get("X-Served-By").unwrap().as_str(), "front");
    assert!(String::from_utf8_lossy(&reply.payload).contains("\"result\""));

    let reply = within(raw.request("front.rpc.hello", r#"{"name":"fail"}"#.into()))
        .await
        .unwrap();
    let headers = reply.headers.expect("the error reply has headers");
    assert_eq!(headers.get("X-Served-By").unwrap().as_str(), "front");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").unwrap().as_str(),
        "418"
    );

    // A client sees the custom kind and code.
    let error = within(FrontClient::new(&nats).hello("fail".into()))
        .await
        .unwrap_err();
    let service = error.service_error().expect("a service error");
    assert_eq!((service.kind(), service.code()), ("teapot", 418));

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn async_and_event_handlers_read_headers() {
    let (_server, nats, host, mut seen) = setup().await;

    let answer = within(
        FrontClient::new(&nats)
            .relay("n1".into())
            .header("X-Tenant", "globex"),
    )
    .await
    .unwrap();
    assert_eq!(answer, "relayed");
    let mut lines = vec![
        within(seen.recv()).await.unwrap(),
        within(seen.recv()).await.unwrap(),
    ];
    lines.sort();
    assert_eq!(
        lines,
        [
            "event n1 tenant=globex headers=true",
            "note n1 tenant=globex",
        ]
    );

    // A client-wide header reaches an async handler too.
    let back =
        BackClient::new(&nats).with_options(ClientOptions::new().header("X-Tenant", "initech"));
    within(back.note("n2".into())).await.unwrap();
    let mut lines = vec![
        within(seen.recv()).await.unwrap(),
        within(seen.recv()).await.unwrap(),
    ];
    lines.sort();
    assert_eq!(
        lines,
        [
            "event n2 tenant=initech headers=true",
            "note n2 tenant=initech",
        ]
    );

    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn invalid_header_names_are_absent_not_a_panic() {
    let (_server, nats, host, _seen) = setup().await;
    // A lookup by a name NATS cannot carry finds nothing (async-nats would panic on it).
    let ctx = Context::new(&nats);
    assert_eq!(ctx.header("bad name:"), None);
    assert!(ctx.set_reply_header("bad name:", "v").is_err());
    assert!(ctx.set_reply_header("Good", "line\nbreak").is_err());
    within(host.shutdown()).await.unwrap();
}
