//! Sync RPC end to end: the code generated from `schemas/e2e.yaml`, served by a `natsgen::Host`
//! and called through the generated client over a real nats-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natsgen::testing::NatsServer;
use natsgen::{CallError, Connection, Context, HostHandle, ServiceError};
use natsgen_tests::e2e::{GreetError, Greeter, GreeterClient, GreeterServer, Greeting};

struct GreeterImpl {
    instance: String,
    served: Arc<Mutex<Vec<String>>>,
}

impl Greeter for GreeterImpl {
    async fn greet(&self, ctx: &Context, name: String) -> Result<Greeting, GreetError> {
        self.served.lock().unwrap().push(self.instance.clone());
        match name.as_str() {
            "mallory" => Err(GreetError::NameRejected {
                name,
                reason: "blocked".into(),
            }),
            "" => Err(GreetError::Shy),
            _ => Ok(Greeting {
                message: format!("hello {name}"),
                instance: self.instance.clone(),
                caller_chain: ctx.caller_chain().to_vec(),
                remaining_ms: ctx
                    .remaining()
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                traceparent: Some(ctx.trace_parent().to_string()),
            }),
        }
    }

    async fn slow(&self, _ctx: &Context, millis: u64) -> Result<String, ServiceError> {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok("done".into())
    }

    async fn crash(&self, _ctx: &Context) -> Result<String, ServiceError> {
        panic!("the handler crashed on purpose")
    }

    async fn relay(&self, ctx: &Context, name: String) -> Result<Greeting, ServiceError> {
        // A client from the context: its calls join this call's chain, trace and deadline.
        let mut greeting = ctx.client::<GreeterClient>().greet(name).await?;
        greeting.message = format!("{} (relayed by call {})", greeting.message, ctx.call_id());
        Ok(greeting)
    }
}

async fn serve(
    connection: &Connection,
    instance: &str,
    served: &Arc<Mutex<Vec<String>>>,
) -> HostHandle {
    natsgen::Host::new(connection.clone())
        .serve(GreeterServer::new(GreeterImpl {
            instance: instance.into(),
            served: Arc::clone(served),
        }))
        .start()
        .await
        .expect("host starts")
}

async fn setup() -> (NatsServer, Connection, HostHandle, Arc<Mutex<Vec<String>>>) {
    let server = NatsServer::start().await.expect("nats-server starts");
    let connection = natsgen::connect(server.url().as_str())
        .await
        .expect("connect");
    let served = Arc::new(Mutex::new(Vec::new()));
    let host = serve(&connection, "a", &served).await;
    (server, connection, host, served)
}

#[tokio::test]
async fn typed_round_trip() {
    let (_server, connection, _host, _) = setup().await;
    let greeting = GreeterClient::new(&connection)
        .greet("ada".into())
        .await
        .expect("greet");
    assert_eq!(greeting.message, "hello ada");
    assert_eq!(greeting.instance, "a");
    assert!(
        greeting.caller_chain.is_empty(),
        "a top-level call has no callers"
    );
    let remaining = greeting.remaining_ms.expect("the handler sees a deadline");
    assert!(
        remaining <= 5_000,
        "the schema's 5s timeout bounds the deadline, saw {remaining} ms"
    );
}

#[tokio::test]
async fn two_instances_share_the_calls() {
    let (_server, connection, _host_a, served) = setup().await;
    let _host_b = serve(&connection, "b", &served).await;
    let client = GreeterClient::new(&connection);
    for i in 0..60 {
        client.greet(format!("caller {i}")).await.expect("greet");
    }
    let instances: BTreeSet<String> = served.lock().unwrap().iter().cloned().collect();
    assert_eq!(
        instances,
        BTreeSet::from(["a".to_string(), "b".to_string()]),
        "both instances serve"
    );
    assert_eq!(
        served.lock().unwrap().len(),
        60,
        "each call is served exactly once"
    );
}

#[tokio::test]
async fn declared_errors_arrive_as_their_typed_variant() {
    let (_server, connection, _host, _) = setup().await;
    let client = GreeterClient::new(&connection);
    match client.greet("mallory".into()).await {
        Err(CallError::Service(GreetError::NameRejected { name, reason })) => {
            assert_eq!(name, "mallory");
            assert_eq!(reason, "blocked");
        }
        other => panic!("expected NameRejected, got {other:?}"),
    }
    match client.greet(String::new()).await {
        Err(CallError::Service(GreetError::Shy)) => {}
        other => panic!("expected Shy, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_handler_times_out_and_a_per_call_timeout_overrides_the_schema() {
    let (_server, connection, _host, _) = setup().await;
    let client = GreeterClient::new(&connection);
    match client.slow(2_000).await {
        Err(CallError::Timeout { method, .. }) => assert_eq!(method, "slow"),
        other => panic!("expected a timeout after the schema's 200ms, got {other:?}"),
    }
    let done = client
        .slow(50)
        .timeout(Duration::from_secs(5))
        .await
        .expect("a longer per-call timeout");
    assert_eq!(done, "done");
}

#[tokio::test]
async fn no_responders_is_service_unavailable() {
    let server = NatsServer::start().await.expect("nats-server starts");
    let connection = natsgen::connect(server.url().as_str())
        .await
        .expect("connect");
    let result = GreeterClient::new(&connection)
        .greet("anyone".into())
        .timeout(Duration::from_secs(30))
        .await;
    match result {
        Err(CallError::ServiceUnavailable { service, method }) => {
            assert_eq!((service, method), ("greeter", "greet"));
        }
        other => panic!("expected ServiceUnavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_json_gets_a_400_and_the_service_keeps_serving() {
    let (_server, connection, _host, _) = setup().await;
    let raw = connection.nats().clone();
    let reply = raw
        .request("greeter.rpc.greet", "{not json".into())
        .await
        .expect("an error reply");
    let headers = reply.headers.as_ref().expect("error headers");
    assert_eq!(
        headers.get("Nats-Service-Error-Code").map(|v| v.as_str()),
        Some("400")
    );
    assert!(headers.get("Nats-Service-Error").is_some());
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).expect("JSON body");
    assert_eq!(body["error"]["kind"], "bad_request");
    let wrong_type = raw
        .request("greeter.rpc.greet", r#"{"name": 5}"#.into())
        .await
        .expect("reply");
    let body: serde_json::Value = serde_json::from_slice(&wrong_type.payload).expect("JSON body");
    assert_eq!(body["error"]["kind"], "bad_request");
    let greeting = GreeterClient::new(&connection)
        .greet("after".into())
        .await
        .expect("still serving");
    assert_eq!(greeting.message, "hello after");
}

#[tokio::test]
async fn a_panicking_handler_gets_a_500_and_the_service_keeps_serving() {
    let (_server, connection, _host, _) = setup().await;
    let client = GreeterClient::new(&connection);
    match client.crash().await {
        Err(CallError::Service(error)) => {
            assert_eq!(error.kind(), "internal");
            assert_eq!(error.code(), 500);
            // The panic message stays in the service's log.
            assert!(!error.message().contains("on purpose"), "{error}");
            assert!(error.message().contains("call id"), "{error}");
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
    let greeting = client
        .greet("after the crash".into())
        .await
        .expect("still serving");
    assert_eq!(greeting.message, "hello after the crash");
}

#[tokio::test]
async fn a_nested_call_carries_the_chain_the_trace_and_the_deadline() {
    let (_server, connection, _host, _) = setup().await;
    let root = Context::new(&connection).with_timeout(Duration::from_secs(3));
    let greeting = GreeterClient::new(&connection)
        .relay("ada".into())
        .context(&root)
        .await
        .expect("relay");
    assert!(
        greeting.message.starts_with("hello ada (relayed by call "),
        "{}",
        greeting.message
    );
    let relay_call = greeting
        .message
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert_eq!(
        greeting.caller_chain.last().map(String::as_str),
        Some(relay_call),
        "the relay is the caller"
    );
    assert!(
        greeting.caller_chain.contains(&root.call_id().to_string()),
        "the root call heads the chain"
    );
    let remaining = greeting.remaining_ms.expect("deadline");
    assert!(
        remaining <= 3_000,
        "the nested call inherits the root's 3s, not the schema's default: {remaining}"
    );
    let trace = greeting.traceparent.expect("traceparent");
    let root_trace = root.trace_parent().to_string();
    assert_eq!(
        trace.split('-').nth(1),
        root_trace.split('-').nth(1),
        "same trace id end to end"
    );
}

/// The natsgen headers (and any other) of the next request on `subscriber`, a plain
/// subscription beside the service's queue group, so it sees a copy of every request.
async fn next_request_headers(subscriber: &mut async_nats::Subscriber) -> Vec<(String, String)> {
    use futures_util::StreamExt;
    let message = tokio::time::timeout(Duration::from_secs(30), subscriber.next())
        .await
        .expect("the request arrives")
        .expect("subscribed");
    let mut headers: Vec<(String, String)> = message
        .headers
        .iter()
        .flat_map(|headers| headers.iter())
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.to_string(), value.as_str().to_owned()))
        })
        .collect();
    headers.sort();
    headers
}

fn names(headers: &[(String, String)]) -> Vec<&str> {
    headers.iter().map(|(name, _)| name.as_str()).collect()
}

#[tokio::test]
async fn a_plain_call_sends_no_headers_and_a_nested_call_sends_what_the_service_needs() {
    let (_server, connection, _host, _) = setup().await;
    let mut requests = connection
        .nats()
        .subscribe("greeter.rpc.greet")
        .await
        .unwrap();
    connection.nats().flush().await.unwrap();
    let client = GreeterClient::new(&connection);

    // No context, the schema's timeout, no tracing subscriber: nothing to say.
    let greeting = client.greet("ada".into()).await.expect("greet");
    assert!(greeting.caller_chain.is_empty());
    let remaining = greeting.remaining_ms.expect("the schema's timeout applies");
    assert!(remaining <= 5_000, "{remaining}");
    assert_eq!(
        next_request_headers(&mut requests).await,
        [],
        "a plain call carries no header block"
    );

    // A shorter timeout is sent; the caller's own headers too.
    client
        .greet("bob".into())
        .timeout(Duration::from_secs(2))
        .header("X-Tenant", "acme")
        .await
        .expect("greet");
    let headers = next_request_headers(&mut requests).await;
    assert_eq!(names(&headers), ["Natsgen-Deadline-Ms", "X-Tenant"]);
    let deadline: u64 = headers[0].1.parse().unwrap();
    assert!(
        (1..=2_000).contains(&deadline),
        "the deadline is the call's timeout: {deadline}"
    );

    // A nested call: the relay's call to greet carries the chain, the trace and the root's
    // shorter deadline; the greeter makes the call id.
    let root = Context::new(&connection).with_timeout(Duration::from_secs(3));
    let relayed = client
        .relay("cy".into())
        .context(&root)
        .await
        .expect("relay");
    let headers = next_request_headers(&mut requests).await;
    assert_eq!(
        names(&headers),
        ["Natsgen-Caller-Chain", "Natsgen-Deadline-Ms", "traceparent"]
    );
    assert_eq!(headers[0].1, relayed.caller_chain.join(","));
    assert_eq!(
        relayed.caller_chain.first(),
        Some(&root.call_id().to_owned())
    );
    let trace = natsgen::TraceParent::parse(&headers[2].1).expect("a traceparent");
    assert_eq!(trace.trace_id(), root.trace_parent().trace_id());
}
