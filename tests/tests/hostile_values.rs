//! Out-of-range values on the wire, end to end over a real nats-server: a timestamp past year
//! 9999 in UTC and a number too large for an `f32`, in RPC params, async calls, events and replies.
//! Each is a decode error where it arrives — a `bad_request` reply, one `undecodable` dead letter,
//! a client error — never a panic, a retry loop or `inf`. Generated from `schemas/hostile.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use natsgen::testing::NatsServer;
use natsgen::{CallError, Connection, Context, Host, HostHandle, ServiceError, Timestamp};
use natsgen_tests::hostile::{
    Events, Gauge, GaugeClient, GaugeServer, HostileMeasured, Reading, ScaleError, Tree,
};
use tokio::sync::Notify;

/// Guards every wait of a test, so a broken runtime fails the test instead of hanging it. Never
/// a measure of speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// In UTC a minute into the year 10000: not representable as an RFC 3339 UTC timestamp.
const PAST_9999: &str = "9999-12-31T23:59:59-00:01";
/// In UTC a minute before the year 0000.
const BEFORE_0000: &str = "0000-01-01T00:00:00+00:01";

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

/// What the handlers ran, in order.
#[derive(Default)]
struct Log {
    entries: Mutex<Vec<String>>,
    changed: Notify,
}

impl Log {
    fn push(&self, entry: String) {
        self.entries.lock().unwrap().push(entry);
        self.changed.notify_waiters();
    }

    fn snapshot(&self) -> Vec<String> {
        self.entries.lock().unwrap().clone()
    }

    async fn wait_for(&self, entry: &str) {
        within(async {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                if self.snapshot().iter().any(|e| e == entry) {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }
}

#[derive(Clone)]
struct GaugeImpl {
    log: Arc<Log>,
}

fn reading() -> Reading {
    Reading {
        at: Timestamp::from_unix_seconds(1_700_000_000).unwrap(),
        value: 1.5,
        samples: vec![1.0, 2.0],
        by_name: [("a".to_owned(), 0.5)].into(),
        note: None,
    }
}

impl Gauge for GaugeImpl {
    async fn scale(
        &self,
        _ctx: &Context,
        factor: f32,
        reading: Option<Reading>,
    ) -> Result<f32, ScaleError> {
        self.log.push(format!("scale {factor}"));
        let sum: f32 = reading.map_or(1.0, |r| r.samples.iter().sum());
        Ok(factor * sum)
    }

    async fn stamp(&self, _ctx: &Context, at: Timestamp) -> Result<Timestamp, ServiceError> {
        self.log.push(format!("stamp {at}"));
        Ok(at)
    }

    async fn read(&self, _ctx: &Context) -> Result<Reading, ServiceError> {
        Ok(reading())
    }

    async fn count(&self, _ctx: &Context, tree: Tree) -> Result<u32, ServiceError> {
        fn count(tree: &Tree) -> u32 {
            1 + tree.children.iter().map(count).sum::<u32>()
        }
        Ok(count(&tree))
    }

    async fn record(&self, _ctx: &Context, at: Timestamp, value: f32) -> Result<(), ServiceError> {
        self.log.push(format!("record {at} {value}"));
        Ok(())
    }

    async fn on_measured(
        &self,
        _ctx: &Context,
        event: HostileMeasured,
    ) -> Result<(), ServiceError> {
        self.log
            .push(format!("measured {} {}", event.at, event.value));
        Ok(())
    }
}

async fn serve(nats: &Connection) -> (Arc<Log>, HostHandle) {
    let log = Arc::new(Log::default());
    let server = GaugeServer::new(GaugeImpl {
        log: Arc::clone(&log),
    });
    let host = within(Host::new(nats.clone()).serve(server).start())
        .await
        .unwrap();
    (log, host)
}

/// A raw request to an RPC subject, as any NATS client could send it.
async fn raw_request(nats: &Connection, subject: &str, body: &str) -> async_nats::Message {
    within(
        nats.nats()
            .request(subject.to_owned(), Bytes::from(body.to_owned())),
    )
    .await
    .unwrap()
}

/// The params of `count` with a tree `depth` nodes deep.
fn nested_tree(depth: usize) -> String {
    format!(
        r#"{{"tree": {}{{"children": []}}{}}}"#,
        r#"{"children": ["#.repeat(depth - 1),
        "]}".repeat(depth - 1)
    )
}

/// Asserts that `reply` is a `bad_request` (400) error reply and returns its message.
fn assert_bad_request(reply: &async_nats::Message) -> String {
    let headers = reply.headers.as_ref().unwrap_or_else(|| {
        panic!(
            "not an error reply: {}",
            String::from_utf8_lossy(&reply.payload[..reply.payload.len().min(200)])
        )
    });
    assert_eq!(
        headers
            .get(natsgen::headers::SERVICE_ERROR_CODE)
            .map(|v| v.as_str()),
        Some("400"),
        "{:?}",
        String::from_utf8_lossy(&reply.payload)
    );
    let body: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["error"]["kind"], "bad_request", "{body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn rpc_params_out_of_range_are_bad_requests_and_the_service_keeps_serving() {
    let (_server, nats) = start_server().await;
    let (log, host) = serve(&nats).await;
    let reading = r#"{"at": "2026-01-01T00:00:00Z", "value": 1, "samples": [], "by_name": {}}"#;
    for (subject, body) in [
        ("gauge.rpc.scale", r#"{"factor": 1e39}"#.to_owned()),
        ("gauge.rpc.scale", r#"{"factor": -3.5e38}"#.to_owned()),
        (
            "gauge.rpc.scale",
            format!(
                r#"{{"factor": 1, "reading": {}}}"#,
                reading.replace(r#""samples": []"#, r#""samples": [1, 1e39]"#)
            ),
        ),
        (
            "gauge.rpc.scale",
            format!(
                r#"{{"factor": 1, "reading": {}}}"#,
                reading.replace(r#""by_name": {}"#, r#""by_name": {"x": 1e300}"#)
            ),
        ),
        (
            "gauge.rpc.scale",
            format!(
                r#"{{"factor": 1, "reading": {}}}"#,
                reading.replace(r#""value": 1"#, r#""value": 1, "note": 1e39"#)
            ),
        ),
        (
            "gauge.rpc.scale",
            format!(
                r#"{{"factor": 1, "reading": {}}}"#,
                reading.replace("2026-01-01T00:00:00Z", PAST_9999)
            ),
        ),
        ("gauge.rpc.stamp", format!(r#"{{"at": "{PAST_9999}"}}"#)),
        ("gauge.rpc.stamp", format!(r#"{{"at": "{BEFORE_0000}"}}"#)),
        (
            "gauge.rpc.stamp",
            r#"{"at": "9999-12-31T23:59:60-00:01"}"#.to_owned(),
        ),
        ("gauge.rpc.scale", r#"{"factor": 1e400}"#.to_owned()),
        ("gauge.rpc.count", nested_tree(50_000)),
    ] {
        let reply = raw_request(&nats, subject, &body).await;
        let message = assert_bad_request(&reply);
        assert!(!message.contains("panic"), "{message}");
    }
    let reply = raw_request(&nats, "gauge.rpc.count", &nested_tree(1000)).await;
    assert!(assert_bad_request(&reply).contains("recursion limit"));
    let reply = raw_request(&nats, "gauge.rpc.scale", r#"{"factor": 1e39}"#).await;
    assert!(assert_bad_request(&reply).contains("range of f32"));
    let reply = raw_request(
        &nats,
        "gauge.rpc.stamp",
        &format!(r#"{{"at": "{PAST_9999}"}}"#),
    )
    .await;
    assert!(assert_bad_request(&reply).contains("out of range"));
    assert!(log.snapshot().is_empty(), "{:?}", log.snapshot());

    // Nesting within the limit decodes, and an unknown field is skipped however deep it is.
    let reply = raw_request(&nats, "gauge.rpc.count", &nested_tree(60)).await;
    assert_eq!(&reply.payload[..], br#"{"result":60}"#);
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"factor": 1, "x": {deep}}}"#);
    let reply = raw_request(&nats, "gauge.rpc.scale", &body).await;
    assert_eq!(&reply.payload[..], br#"{"result":1.0}"#);

    // The service keeps serving, and values at the edges of the ranges pass.
    let client = GaugeClient::new(&nats);
    assert_eq!(within(client.scale(2.0, None)).await.unwrap(), 2.0);
    assert_eq!(
        within(client.scale(f32::MAX, None)).await.unwrap(),
        f32::MAX
    );
    let last: Timestamp = serde_json::from_str(r#""9999-12-31T23:59:59.999999999Z""#).unwrap();
    assert_eq!(within(client.stamp(last)).await.unwrap(), last);
    let reply = raw_request(
        &nats,
        "gauge.rpc.stamp",
        r#"{"at": "9999-12-31T23:59:59+00:01"}"#,
    )
    .await;
    assert_eq!(&reply.payload[..], br#"{"result":"9999-12-31T23:58:59Z"}"#);
    within(host.shutdown()).await.unwrap();
}

/// Subscribes (core NATS) to every dead letter.
async fn watch_dead_letters(nats: &Connection) -> async_nats::Subscriber {
    let subscriber = nats.nats().subscribe("natsgen.dlq.>").await.unwrap();
    nats.nats().flush().await.unwrap();
    subscriber
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|value| value.as_str())
}

/// Waits until the consumer has nothing pending and nothing unacked.
async fn wait_until_settled(nats: &Connection, stream: &str, consumer: &str) {
    let js = jetstream::new(nats.nats().clone());
    within(async {
        loop {
            let stream = js.get_stream(stream).await.unwrap();
            let mut consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer(consumer).await.unwrap();
            let info = consumer.info().await.unwrap();
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// How many dead letters `NATSGEN_DLQ` holds.
async fn stored_dead_letters(nats: &Connection) -> u64 {
    let js = jetstream::new(nats.nats().clone());
    let mut stream = within(js.get_stream(natsgen::streams::DLQ_STREAM))
        .await
        .unwrap();
    within(stream.info()).await.unwrap().state.messages
}

fn assert_undecodable(letter: &async_nats::Message, dlq_subject: &str, body: &str) {
    assert_eq!(letter.subject.as_str(), dlq_subject);
    let headers = letter.headers.as_ref().unwrap();
    assert_eq!(header(headers, "Natsgen-Dlq-Reason"), Some("undecodable"));
    assert_eq!(header(headers, "Natsgen-Dlq-Attempts"), Some("1"));
    assert_eq!(
        header(headers, "Natsgen-Dlq-Error-Kind"),
        Some("bad_request")
    );
    assert_eq!(header(headers, "Natsgen-Dlq-Error-Code"), Some("400"));
    assert_eq!(&letter.payload[..], body.as_bytes());
}

#[tokio::test]
async fn async_calls_and_events_out_of_range_are_dead_lettered_once_as_undecodable() {
    let (_server, nats) = start_server().await;
    let mut dead_letters = watch_dead_letters(&nats).await;
    let (log, host) = serve(&nats).await;
    let js = jetstream::new(nats.nats().clone());

    let calls = [
        format!(r#"{{"at": "{PAST_9999}", "value": 1}}"#),
        r#"{"at": "2026-01-01T00:00:00Z", "value": 1e39}"#.to_owned(),
    ];
    for body in &calls {
        within(js.publish("gauge.async.record", Bytes::from(body.clone())))
            .await
            .unwrap()
            .await
            .unwrap();
        let letter = within(dead_letters.next()).await.unwrap();
        assert_undecodable(&letter, "natsgen.dlq.gauge.record", body);
    }
    // A good call after them is processed, and nothing is left in the work queue.
    let client = GaugeClient::new(&nats);
    let at = Timestamp::from_unix_seconds(0).unwrap();
    within(client.record(at, 2.5)).await.unwrap();
    log.wait_for("record 1970-01-01T00:00:00Z 2.5").await;
    wait_until_settled(
        &nats,
        &natsgen::streams::async_stream_name("gauge"),
        &natsgen::streams::async_consumer_name("gauge"),
    )
    .await;

    let events = [
        format!(r#"{{"at": "{PAST_9999}", "value": 1}}"#),
        format!(r#"{{"at": "{BEFORE_0000}", "value": 1}}"#),
        r#"{"at": "2026-01-01T00:00:00Z", "value": -1e39}"#.to_owned(),
    ];
    for body in &events {
        within(js.publish("hostile.measured", Bytes::from(body.clone())))
            .await
            .unwrap()
            .await
            .unwrap();
        let letter = within(dead_letters.next()).await.unwrap();
        assert_undecodable(&letter, "natsgen.dlq.gauge.on_measured", body);
    }
    within(Events::new(&nats).hostile_measured(&HostileMeasured { at, value: 3.0 }))
        .await
        .unwrap();
    log.wait_for("measured 1970-01-01T00:00:00Z 3").await;
    wait_until_settled(
        &nats,
        &natsgen::streams::event_stream_name("hostile"),
        &natsgen::streams::event_consumer_name("gauge", "on_measured"),
    )
    .await;

    // Each was dead-lettered once: no retry, no second letter.
    assert_eq!(
        stored_dead_letters(&nats).await,
        (calls.len() + events.len()) as u64
    );
    assert_eq!(
        log.snapshot(),
        [
            "record 1970-01-01T00:00:00Z 2.5",
            "measured 1970-01-01T00:00:00Z 3"
        ]
    );
    within(host.shutdown()).await.unwrap();
    let mut more = Vec::new();
    while let Ok(Some(letter)) =
        tokio::time::timeout(Duration::from_millis(200), dead_letters.next()).await
    {
        more.push(letter.subject.to_string());
    }
    assert!(more.is_empty(), "more dead letters: {more:?}");
}

/// Answers the next request on `subject` with `headers` and `body`, as a hostile or broken
/// service would, then unsubscribes.
async fn answer_once(
    nats: &Connection,
    subject: &str,
    headers: &[(&str, &str)],
    body: String,
) -> tokio::task::JoinHandle<()> {
    let mut subscriber = nats.nats().subscribe(subject.to_owned()).await.unwrap();
    nats.nats().flush().await.unwrap();
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, *value);
    }
    let client = nats.nats().clone();
    tokio::spawn(async move {
        let request = subscriber.next().await.unwrap();
        let reply = request.reply.unwrap();
        if map.is_empty() {
            client.publish(reply, body.into()).await.unwrap();
        } else {
            client
                .publish_with_headers(reply, map, body.into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        subscriber.unsubscribe().await.unwrap();
    })
}

#[tokio::test]
async fn a_client_decoding_an_out_of_range_reply_gets_an_error_not_a_panic() {
    let (_server, nats) = start_server().await;
    let client = GaugeClient::new(&nats);
    let at = Timestamp::from_unix_seconds(0).unwrap();

    for result in [format!(r#""{PAST_9999}""#), format!(r#""{BEFORE_0000}""#)] {
        let responder = answer_once(
            &nats,
            "gauge.rpc.stamp",
            &[],
            format!(r#"{{"result":{result}}}"#),
        )
        .await;
        let error = within(client.stamp(at)).await.unwrap_err();
        assert!(
            matches!(&error, CallError::Protocol(text) if text.contains("out of range")),
            "{error:?}"
        );
        within(responder).await.unwrap();
    }

    let responder = answer_once(&nats, "gauge.rpc.scale", &[], r#"{"result":1e39}"#.into()).await;
    let error = within(client.scale(1.0, None)).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Protocol(text) if text.contains("range of f32")),
        "{error:?}"
    );
    within(responder).await.unwrap();

    for reading in [
        r#"{"at":"2026-01-01T00:00:00Z","value":1e39,"samples":[],"by_name":{}}"#,
        r#"{"at":"2026-01-01T00:00:00Z","value":1,"samples":[2,-1e39],"by_name":{}}"#,
        r#"{"at":"2026-01-01T00:00:00Z","value":1,"samples":[],"by_name":{"x":1e39}}"#,
        r#"{"at":"2026-01-01T00:00:00Z","value":1,"samples":[],"by_name":{},"note":1e39}"#,
        r#"{"at":"9999-12-31T23:59:59-00:01","value":1,"samples":[],"by_name":{}}"#,
    ] {
        let responder = answer_once(
            &nats,
            "gauge.rpc.read",
            &[],
            format!(r#"{{"result":{reading}}}"#),
        )
        .await;
        let error = within(client.read()).await.unwrap_err();
        assert!(matches!(&error, CallError::Protocol(_)), "{error:?}");
        within(responder).await.unwrap();
    }

    // A declared error whose details do not decode is the catch-all, not `inf`.
    let responder = answer_once(
        &nats,
        "gauge.rpc.scale",
        &[("Nats-Service-Error-Code", "422")],
        r#"{"error":{"kind":"Overflow","message":"Overflow","details":{"limit":1e39}}}"#.into(),
    )
    .await;
    let error = within(client.scale(1.0, None)).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Service(ScaleError::Internal(e)) if e.kind() == "Overflow"),
        "{error:?}"
    );
    within(responder).await.unwrap();
    let responder = answer_once(
        &nats,
        "gauge.rpc.scale",
        &[("Nats-Service-Error-Code", "422")],
        r#"{"error":{"kind":"Overflow","message":"Overflow","details":{"limit":3.5}}}"#.into(),
    )
    .await;
    let error = within(client.scale(1.0, None)).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Service(ScaleError::Overflow { limit }) if *limit == 3.5),
        "{error:?}"
    );
    within(responder).await.unwrap();

    // The client works against a real service afterwards.
    let (_log, host) = serve(&nats).await;
    assert_eq!(within(client.stamp(at)).await.unwrap(), at);
    within(host.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_client_survives_hostile_error_replies() {
    let (_server, nats) = start_server().await;
    let client = GaugeClient::new(&nats);
    let at = Timestamp::from_unix_seconds(0).unwrap();
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let wide = format!("[{}1]", "1,".repeat(100_000));
    let cases: Vec<(Vec<(&str, &str)>, String)> = vec![
        (
            vec![("Nats-Service-Error-Code", "99999999999")],
            "garbage".into(),
        ),
        (vec![("Nats-Service-Error-Code", "-1")], String::new()),
        (
            vec![
                ("Nats-Service-Error-Code", "abc"),
                ("Nats-Service-Error", "x"),
            ],
            "{}".into(),
        ),
        (
            vec![("Nats-Service-Error-Code", "0")],
            r#"{"error":null}"#.into(),
        ),
        (
            vec![("Nats-Service-Error-Code", "65535")],
            r#"{"error":{"kind":7}}"#.into(),
        ),
        (
            vec![("Nats-Service-Error-Code", "500")],
            format!(r#"{{"error":{{"kind":"internal","details":{deep}}}}}"#),
        ),
        (
            vec![("Nats-Service-Error-Code", "500")],
            format!(r#"{{"error":{{"kind":"internal","details":{wide}}}}}"#),
        ),
        (
            vec![],
            format!(r#"{{"error":{{"kind":"internal","details":{deep}}}}}"#),
        ),
        (
            vec![],
            r#"{"error":{"kind":"internal","message":"m","details":1e999}}"#.into(),
        ),
        (vec![], r#"{"error":[1,2,{"a":"b"}]}"#.into()),
        (vec![], format!(r#"{{"error":"{}"}}"#, "e".repeat(500_000))),
        (vec![], "\u{0}\u{1}".into()),
        (vec![], String::new()),
    ];
    for (headers, body) in cases {
        let responder = answer_once(&nats, "gauge.rpc.stamp", &headers, body).await;
        let error = within(client.stamp(at)).await.unwrap_err();
        match &error {
            CallError::Service(error) => {
                let code = headers
                    .first()
                    .and_then(|(_, code)| code.parse::<u16>().ok())
                    .unwrap_or(500);
                assert_eq!(error.code(), code, "{headers:?}: {error:?}");
            }
            CallError::Protocol(_) => assert!(headers.is_empty(), "{headers:?}: {error:?}"),
            other => panic!("{headers:?}: {other:?}"),
        }
        within(responder).await.unwrap();
    }
    // Discovery answers whatever the request body is.
    let (_log, host) = serve(&nats).await;
    for subject in ["$SRV.PING", "$SRV.INFO.gauge", "$SRV.STATS.gauge"] {
        for body in ["garbage", "\u{0}", "{\"a\":1e999}"] {
            let reply = raw_request(&nats, subject, body).await;
            let value: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
            assert_eq!(value["name"], "gauge", "{subject}: {value}");
        }
    }
    assert_eq!(within(client.stamp(at)).await.unwrap(), at);
    within(host.shutdown()).await.unwrap();
}
