//! A Python service and Rust callers: `tests/python/ledger.py` implements `bookkeeper` of
//! `tests/schemas/polyglot.yaml` on the base class `natsgen generate --lang python` writes and
//! serves it with the Python runtime's `Host`; the Rust client generated from the same schema
//! calls it (RPC, declared errors, an async method retried and dead-lettered) and Rust-published
//! events reach its handlers, over a real nats-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use natsgen::testing::NatsServer;
use natsgen::{CallError, Connection, Timestamp};
use natsgen_tests::polyglot::{AddError, BookkeeperClient, EntriesCleared, Entry, Events};

#[path = "../python/provision.rs"]
mod provision;

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Generates the Python of `polyglot.yaml` into `dir/gen_polyglot` and starts `ledger.py`.
async fn serve_python(url: &str, dir: &Path) -> Serving {
    let python = provision::python_with(&["nats", "pydantic"]);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/polyglot.yaml");
    let model = natsgen_build::load(&[schema])
        .model
        .expect("polyglot.yaml loads");
    let package = dir.join("gen_polyglot");
    std::fs::create_dir_all(&package).unwrap();
    for file in natsgen_build::python::generate(&model) {
        std::fs::write(package.join(&file.file_name), file.code).unwrap();
    }
    let path = std::env::join_paths([provision::runtime_source(), dir.to_path_buf()]).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/ledger.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(url)
        .env("PYTHONPATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ledger.py");
    let stdout = child.stdout.take().unwrap();
    let serving = Serving(child);
    let (ready, serving_line) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "serving" {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), serving_line)
        .await
        .expect("ledger.py serves in time")
        .expect("ledger.py exited before serving");
    serving
}

/// Waits until `seen()` of the Python service lists `what`.
async fn wait_for_seen(client: &BookkeeperClient, what: &str) -> Vec<String> {
    let started = Instant::now();
    loop {
        let seen = client.seen().await.unwrap();
        if seen.iter().any(|line| line == what) {
            return seen;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the Python service never saw {what:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn entry(id: &str, amount: i64) -> Entry {
    Entry {
        id: id.into(),
        amount,
        // Python's datetime keeps microseconds: a time in whole ones goes there and back exactly.
        at: Timestamp::from_unix_nanos(1_767_225_600_123_456_000).unwrap(),
        tags: BTreeMap::from([("b".into(), "2".into()), ("a".into(), "1".into())]),
        note: None,
    }
}

/// The last dead letter on `subject`, once there is one.
async fn dead_letter(nats: &Connection, subject: &str) -> jetstream::message::StreamMessage {
    let js = jetstream::new(nats.nats().clone());
    let started = Instant::now();
    loop {
        if let Ok(mut stream) = js.get_stream(natsgen::streams::DLQ_STREAM).await {
            if let Ok(message) = stream.get_last_raw_message_by_subject(subject).await {
                return message;
            }
            let _ = stream.info().await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no dead letter on {subject}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header<'a>(message: &'a jetstream::message::StreamMessage, name: &str) -> &'a str {
    message.headers.get(name).map_or("", |value| value.as_str())
}

#[tokio::test(flavor = "multi_thread")]
async fn rust_calls_a_python_service_and_its_handlers_get_rust_events() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _python = serve_python(&server.url(), dir.path()).await;
    let nats = natsgen::connect(&server.url()).await.unwrap();
    let ledger = BookkeeperClient::new(&nats);

    // RPC: the entry goes there and back with its timestamp, map and absent optional intact.
    let first = entry("e1", 250);
    let stored = ledger.add(first.clone()).await.unwrap();
    assert_eq!(stored, first);
    ledger.add(entry("e2", -50)).await.unwrap();
    assert_eq!(ledger.total().await.unwrap(), 200);

    // Declared errors, raised as Python exceptions, arrive as the method's typed variants.
    match ledger.add(entry("e1", 1)).await {
        Err(CallError::Service(AddError::Duplicate { id })) => assert_eq!(id, "e1"),
        other => panic!("expected Duplicate, got {other:?}"),
    }
    match ledger.add(entry("closed", 1)).await {
        Err(CallError::Service(AddError::Closed)) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
    // Any other exception is `internal`, and its text stays in the service's log.
    match ledger.add(entry("boom", 1)).await {
        Err(CallError::Service(AddError::Internal(error))) => {
            assert_eq!((error.kind(), error.code()), ("internal", 500));
            assert!(!error.message().contains("secret"), "{error}");
            assert!(error.message().contains("call id"), "{error}");
        }
        other => panic!("expected internal, got {other:?}"),
    }
    // A shorter deadline than the handler needs is still served when the handler is quick.
    ledger
        .total()
        .timeout(Duration::from_millis(500))
        .await
        .unwrap();

    // Async: fails once, succeeds on the retry.
    ledger.audit("a1".into(), 1).await.unwrap();
    let seen = wait_for_seen(&ledger, "audit:a1:attempt 2").await;
    assert!(seen.contains(&"audit:a1:attempt 1".to_string()), "{seen:?}");

    // Async: fails every attempt; the third goes to NATSGEN_DLQ as a Rust worker writes it.
    ledger
        .audit("a2".into(), 5)
        .idempotency_key("a2-key")
        .await
        .unwrap();
    let letter = dead_letter(&nats, "natsgen.dlq.bookkeeper.audit").await;
    assert_eq!(header(&letter, "Natsgen-Dlq-Reason"), "failed");
    assert_eq!(header(&letter, "Natsgen-Dlq-Attempts"), "3");
    assert_eq!(
        header(&letter, "Natsgen-Dlq-Subject"),
        "bookkeeper.async.audit"
    );
    assert_eq!(header(&letter, "Natsgen-Dlq-Stream"), "ASYNC_bookkeeper");
    assert_eq!(header(&letter, "Natsgen-Dlq-Error-Kind"), "internal");
    assert_eq!(header(&letter, "Natsgen-Dlq-Error-Code"), "500");
    assert_eq!(
        header(&letter, "Natsgen-Dlq-Error-Message"),
        "audit a2 fails attempt 3"
    );
    assert_eq!(header(&letter, "Natsgen-Dlq-Msg-Id"), "audit:a2-key");
    let sequence = header(&letter, "Natsgen-Dlq-Sequence");
    assert_eq!(
        header(&letter, "Nats-Msg-Id"),
        format!("dlq:ASYNC_bookkeeper:{sequence}:bookkeeper")
    );
    let body: serde_json::Value = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(body, serde_json::json!({"id": "a2", "fail_times": 5}));
    let seen = ledger.seen().await.unwrap();
    let attempts = seen.iter().filter(|s| s.starts_with("audit:a2:")).count();
    assert_eq!(attempts, 3, "{seen:?}");

    // Events published from Rust reach the Python handlers: shared and broadcast.
    let events = Events::new(&nats);
    events.entries_added(&entry("e3", 7)).await.unwrap();
    wait_for_seen(&ledger, "added:e3:entries.added").await;
    events
        .entries_cleared(&EntriesCleared {
            reason: "year end".into(),
        })
        .await
        .unwrap();
    wait_for_seen(&ledger, "cleared:year end").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_service_answers_the_micro_protocol_like_a_rust_host() {
    let server = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let _python = serve_python(&server.url(), dir.path()).await;
    let nats = natsgen::connect(&server.url()).await.unwrap();
    let ask = |subject: &'static str| {
        let client = nats.nats().clone();
        async move {
            let reply = client.request(subject, "".into()).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
        }
    };
    let ping = ask("$SRV.PING.bookkeeper").await;
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    assert_eq!(ping["version"], "1.2.3");
    assert_eq!(ping["metadata"]["package"], "polyglot");
    assert_eq!(ping["id"].as_str().unwrap().len(), 32);

    let info = ask("$SRV.INFO.bookkeeper").await;
    assert_eq!(info["description"], "Books entries; written in Python.");
    let endpoints: Vec<(String, String, String)> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["subject"].as_str().unwrap().to_owned(),
                e["queue_group"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("add", "bookkeeper.rpc.add", "bookkeeper"),
        ("total", "bookkeeper.rpc.total", "bookkeeper"),
        ("seen", "bookkeeper.rpc.seen", "bookkeeper"),
        ("audit", "bookkeeper.async.audit", "bookkeeper"),
        ("on_added", "entries.added", "bookkeeper_on_added"),
        ("on_cleared", "entries.cleared", ""),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect();
    assert_eq!(endpoints, expected);
    let add = &info["endpoints"][0]["metadata"];
    assert_eq!(add["kind"], "rpc");
    assert_eq!(add["timeout_ms"], "5000");
    assert_eq!(add["errors"], "Duplicate,Closed");
    assert!(add["params_schema"]
        .as_str()
        .unwrap()
        .contains("polyglot.Entry"));
    let audit = &info["endpoints"][3]["metadata"];
    assert_eq!(
        (
            &audit["stream"],
            &audit["consumer"],
            &audit["max_attempts"],
            &audit["backoff_ms"]
        ),
        (
            &"ASYNC_bookkeeper".into(),
            &"bookkeeper".into(),
            &"3".into(),
            &"100".into()
        )
    );
    let on_added = &info["endpoints"][4]["metadata"];
    assert_eq!(on_added["stream"], "EVENTS_polyglot");
    assert_eq!(on_added["consumer"], "bookkeeper_on_added");

    // The JetStream side matches what a Rust host creates.
    let js = jetstream::new(nats.nats().clone());
    let stream = js.get_stream("ASYNC_bookkeeper").await.unwrap();
    let consumer = stream
        .consumer_info("bookkeeper")
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(consumer.filter_subject, "bookkeeper.async.*");
    assert_eq!(consumer.max_deliver, 13);
    assert_eq!(consumer.ack_wait, Duration::from_secs(10));

    BookkeeperClient::new(&nats).total().await.unwrap();
    let stats = ask("$SRV.STATS.bookkeeper").await;
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response");
    assert_eq!(stats["endpoints"][1]["name"], "total");
    assert_eq!(stats["endpoints"][1]["num_requests"], 1);
}
