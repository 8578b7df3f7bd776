//! Discovery over a real nats-server: the NATS micro protocol (`$SRV.PING|INFO|STATS`) as
//! `nats micro` and other micro clients use it, with raw NATS requests, against the services of
//! `schemas/disco.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::RequestErrorKind;
use futures_util::StreamExt;
use natsgen::codegen::time::format_description::well_known::Rfc3339;
use natsgen::codegen::time::OffsetDateTime;
use natsgen::testing::NatsServer;
use natsgen::{CallError, Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::disco::{
    AddItemError, Catalog, CatalogClient, CatalogOnAnyItemEvent, CatalogServer, Item, ItemsRemoved,
    Unversioned, UnversionedServer,
};
use serde_json::Value;
use tokio::sync::Notify;

/// Guards every await of a test, so a broken runtime fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long a bare `$SRV` request collects replies.
const COLLECT_WINDOW: Duration = Duration::from_millis(500);

const PING: &str = "io.nats.micro.v1.ping_response";
const INFO: &str = "io.nats.micro.v1.info_response";
const STATS: &str = "io.nats.micro.v1.stats_response";

async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long")
}

// --- the services -------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    /// Signals that a `hold` handler started.
    holding: Notify,
    /// Releases `hold` handlers.
    release: Notify,
    /// Handler invocations.
    calls: AtomicUsize,
}

struct CatalogImpl {
    shared: Arc<Shared>,
}

impl Catalog for CatalogImpl {
    async fn add_item(&self, _ctx: &Context, item: Item) -> Result<Item, AddItemError> {
        self.shared.calls.fetch_add(1, Ordering::SeqCst);
        if item.quantity == 0 {
            return Err(AddItemError::OutOfStock { sku: item.sku });
        }
        Ok(item)
    }

    async fn count(&self, _ctx: &Context) -> Result<u64, ServiceError> {
        Ok(self.shared.calls.load(Ordering::SeqCst) as u64)
    }

    async fn crash(&self, _ctx: &Context) -> Result<String, ServiceError> {
        Err(ServiceError::internal("crashed on purpose"))
    }

    async fn hold(&self, _ctx: &Context) -> Result<String, ServiceError> {
        self.shared.holding.notify_one();
        self.shared.release.notified().await;
        Ok("released".into())
    }

    async fn reindex(&self, _ctx: &Context, _full: bool) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn on_removed(&self, _ctx: &Context, _event: ItemsRemoved) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn audit_added(&self, _ctx: &Context, _event: Item) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn on_any_item(
        &self,
        _ctx: &Context,
        _event: CatalogOnAnyItemEvent,
    ) -> Result<(), ServiceError> {
        Ok(())
    }
}

struct UnversionedImpl;

impl Unversioned for UnversionedImpl {
    async fn hello(&self, _ctx: &Context, name: String) -> Result<String, ServiceError> {
        Ok(format!("hello {name}"))
    }
}

struct Setup {
    server: NatsServer,
    /// A plain NATS client, as `nats micro` would use.
    raw: async_nats::Client,
}

async fn setup() -> Setup {
    let server = within(NatsServer::start())
        .await
        .expect("start nats-server");
    let raw = within(async_nats::connect(server.url())).await.unwrap();
    Setup { server, raw }
}

async fn connect(server: &NatsServer) -> Connection {
    within(natsgen::connect(server.url())).await.unwrap()
}

async fn start_catalog(server: &NatsServer, shared: &Arc<Shared>) -> (Connection, HostHandle) {
    let nats = connect(server).await;
    let handle = within(
        Host::new(nats.clone())
            .serve(CatalogServer::new(CatalogImpl {
                shared: Arc::clone(shared),
            }))
            .start(),
    )
    .await
    .unwrap();
    (nats, handle)
}

// --- raw micro requests --------------------------------------------------------------------

/// Sends one request on `subject` and gathers every reply for [`COLLECT_WINDOW`], as a client of
/// a bare `$SRV` subject must.
async fn collect(raw: &async_nats::Client, subject: &str) -> Vec<Value> {
    let inbox = raw.new_inbox();
    let mut replies = within(raw.subscribe(inbox.clone())).await.unwrap();
    within(raw.publish_with_reply(subject.to_owned(), inbox, "".into()))
        .await
        .unwrap();
    within(raw.flush()).await.unwrap();
    let mut collected = Vec::new();
    let until = tokio::time::Instant::now() + COLLECT_WINDOW;
    while let Ok(Some(message)) = tokio::time::timeout_at(until, replies.next()).await {
        // Without any subscriber, the server answers a "no responders" status instead.
        if message.status.is_some() {
            continue;
        }
        collected.push(serde_json::from_slice(&message.payload).expect("a JSON reply"));
    }
    collected
}

/// Sends one request on `subject` and returns the first reply.
async fn request(raw: &async_nats::Client, subject: &str) -> Value {
    let message = within(raw.request(subject.to_owned(), "".into()))
        .await
        .unwrap_or_else(|error| panic!("no answer on {subject}: {error}"));
    serde_json::from_slice(&message.payload).expect("a JSON reply")
}

fn of_service<'a>(replies: &'a [Value], name: &str) -> Vec<&'a Value> {
    replies
        .iter()
        .filter(|reply| reply["name"] == name)
        .collect()
}

// --- the micro response schemas (nats-io/jsm.go schemas/micro/v1), checked by hand ----------

fn is_basic_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_semver(text: &str) -> bool {
    let core = text.split_once('+').map_or(
        text,
        |(core, build)| {
            if build.is_empty() {
                ""
            } else {
                core
            }
        },
    );
    let core = core.split_once('-').map_or(core, |(core, _)| core);
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part.chars().all(|c| c.is_ascii_digit())
                && (*part == "0" || !part.starts_with('0'))
        })
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64()
}

/// `metadata`: absent, null, or an object whose values are strings.
fn check_metadata(what: &str, metadata: Option<&Value>) {
    match metadata {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                assert!(value.is_string(), "{what}: metadata {key} is not a string");
            }
        }
        Some(other) => panic!("{what}: metadata is not an object: {other}"),
    }
}

fn required<'a>(what: &str, object: &'a Value, field: &str) -> &'a Value {
    object
        .get(field)
        .unwrap_or_else(|| panic!("{what}: required field {field} is missing in {object}"))
}

fn required_str<'a>(what: &str, object: &'a Value, field: &str) -> &'a str {
    required(what, object, field)
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {field} is not a string in {object}"))
}

/// The fields every response has: type, name, id, version, metadata.
fn check_identity(response: &Value, kind: &str) {
    assert!(response.is_object(), "{kind}: not an object");
    assert_eq!(required_str(kind, response, "type"), kind);
    assert!(is_basic_name(required_str(kind, response, "name")));
    assert!(!required_str(kind, response, "id").is_empty());
    let version = required_str(kind, response, "version");
    assert!(
        is_semver(version),
        "{kind}: version {version:?} is not semver"
    );
    check_metadata(kind, response.get("metadata"));
}

fn check_ping(response: &Value) {
    check_identity(response, PING);
}

fn check_info(response: &Value) {
    check_identity(response, INFO);
    required_str(INFO, response, "description");
    let endpoints = required(INFO, response, "endpoints")
        .as_array()
        .expect("info endpoints is an array");
    for endpoint in endpoints {
        assert!(endpoint.is_object());
        assert!(is_basic_name(required_str(INFO, endpoint, "name")));
        assert!(!required_str(INFO, endpoint, "subject").is_empty());
        if let Some(group) = endpoint.get("queue_group") {
            assert!(group.is_string(), "queue_group is not a string");
        }
        check_metadata(INFO, endpoint.get("metadata"));
    }
    // What a Rust micro client decodes it with.
    serde_json::from_value::<async_nats::service::Info>(response.clone())
        .expect("async-nats decodes the info response");
}

fn check_stats(response: &Value) {
    check_identity(response, STATS);
    let started = required_str(STATS, response, "started");
    OffsetDateTime::parse(started, &Rfc3339)
        .unwrap_or_else(|error| panic!("started {started:?} is not RFC 3339: {error}"));
    let endpoints = required(STATS, response, "endpoints")
        .as_array()
        .expect("stats endpoints is an array");
    for endpoint in endpoints {
        assert!(endpoint.is_object());
        assert!(is_basic_name(required_str(STATS, endpoint, "name")));
        assert!(!required_str(STATS, endpoint, "subject").is_empty());
        for field in [
            "num_requests",
            "num_errors",
            "processing_time",
            "average_processing_time",
        ] {
            let value = required(STATS, endpoint, field);
            assert!(is_integer(value), "{field} is not an integer: {value}");
        }
        required_str(STATS, endpoint, "last_error");
        if let Some(data) = endpoint.get("data") {
            assert!(data.is_object(), "data is not an object");
        }
    }
    serde_json::from_value::<async_nats::service::Stats>(response.clone())
        .expect("async-nats decodes the stats response");
}

fn endpoint<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|endpoint| endpoint["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name} in {response}"))
}

fn metadata<'a>(endpoint: &'a Value, key: &str) -> &'a str {
    endpoint["metadata"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no metadata {key} in {endpoint}"))
}

// --- the tests -----------------------------------------------------------------------------

#[tokio::test]
async fn ping_info_and_stats_answer_with_the_micro_shapes() {
    let Setup { server, raw } = setup().await;
    let nats = connect(&server).await;
    let shared = Arc::new(Shared::default());
    let handle = within(
        Host::new(nats)
            .serve(CatalogServer::new(CatalogImpl {
                shared: Arc::clone(&shared),
            }))
            .serve(UnversionedServer::new(UnversionedImpl))
            .start(),
    )
    .await
    .unwrap();

    // A bare PING is answered by both services of the host, each with its own id.
    let pings = collect(&raw, "$SRV.PING").await;
    pings.iter().for_each(check_ping);
    let catalog = of_service(&pings, "catalog");
    let unversioned = of_service(&pings, "unversioned");
    assert_eq!((catalog.len(), unversioned.len()), (1, 1), "{pings:?}");
    let catalog_id = catalog[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(catalog_id, unversioned[0]["id"].as_str().unwrap());
    assert_eq!(catalog[0]["version"], "1.2.3");
    assert_eq!(catalog[0]["metadata"]["package"], "disco");
    assert_eq!(
        catalog[0]["metadata"]["natsgen_version"],
        env!("CARGO_PKG_VERSION")
    );
    // A schema without a version reports 0.0.0.
    assert_eq!(unversioned[0]["version"], "0.0.0");

    // PING by name and by name and id.
    let by_name = request(&raw, "$SRV.PING.catalog").await;
    check_ping(&by_name);
    assert_eq!(by_name["id"], catalog_id.as_str());
    let by_id = request(&raw, &format!("$SRV.PING.catalog.{catalog_id}")).await;
    check_ping(&by_id);
    assert_eq!(by_id["name"], "catalog");
    assert_eq!(by_id["id"], catalog_id.as_str());

    // INFO: every RPC method, async method and handler is an endpoint, in schema order.
    let info = request(&raw, "$SRV.INFO.catalog").await;
    check_info(&info);
    assert_eq!(info["id"], catalog_id.as_str());
    assert_eq!(info["description"], "Keeps the item catalog.");
    let names: Vec<&str> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|endpoint| endpoint["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "add_item",
            "count",
            "crash",
            "hold",
            "reindex",
            "on_removed",
            "audit_added",
            "on_any_item"
        ]
    );
    let add_item = endpoint(&info, "add_item");
    assert_eq!(add_item["subject"], "catalog.rpc.add_item");
    assert_eq!(add_item["queue_group"], "catalog");
    assert_eq!(metadata(add_item, "kind"), "rpc");
    assert_eq!(metadata(add_item, "errors"), "OutOfStock");
    assert_eq!(metadata(add_item, "timeout_ms"), "10000");
    assert_eq!(metadata(endpoint(&info, "hold"), "timeout_ms"), "30000");

    let reindex = endpoint(&info, "reindex");
    assert_eq!(reindex["subject"], "catalog.async.reindex");
    assert_eq!(reindex["queue_group"], "catalog");
    assert_eq!(metadata(reindex, "kind"), "async");
    assert_eq!(metadata(reindex, "stream"), "ASYNC_catalog");
    assert_eq!(metadata(reindex, "consumer"), "catalog");
    assert_eq!(metadata(reindex, "max_attempts"), "4");
    assert_eq!(metadata(reindex, "backoff_ms"), "500");

    let on_removed = endpoint(&info, "on_removed");
    assert_eq!(on_removed["subject"], "items.removed");
    assert_eq!(on_removed["queue_group"], "catalog_on_removed");
    assert_eq!(metadata(on_removed, "kind"), "event");
    assert_eq!(metadata(on_removed, "mode"), "shared");
    assert_eq!(metadata(on_removed, "delivery"), "durable");
    assert_eq!(metadata(on_removed, "stream"), "EVENTS_disco");
    assert_eq!(metadata(on_removed, "consumer"), "catalog_on_removed");

    let audit = endpoint(&info, "audit_added");
    assert_eq!(audit["queue_group"], "");
    assert_eq!(metadata(audit, "mode"), "broadcast");
    assert!(audit["metadata"].get("consumer").is_none());

    let wildcard = endpoint(&info, "on_any_item");
    assert_eq!(wildcard["subject"], "items.*");
    assert_eq!(wildcard["queue_group"], "catalog_on_any_item");
    assert_eq!(metadata(wildcard, "delivery"), "best_effort");
    assert!(wildcard["metadata"].get("stream").is_none());

    // Every endpoint carries the JSON Schemas of its contract, and they are JSON.
    for endpoint in info["endpoints"].as_array().unwrap() {
        for key in ["params_schema", "result_schema"] {
            let schema: Value = serde_json::from_str(metadata(endpoint, key))
                .unwrap_or_else(|error| panic!("{key} of {endpoint} is not JSON: {error}"));
            assert!(schema.is_object(), "{key} is not a JSON Schema object");
        }
    }
    let params: Value = serde_json::from_str(metadata(add_item, "params_schema")).unwrap();
    assert_eq!(params["type"], "object");
    assert_eq!(params["required"], serde_json::json!(["item"]));
    let payload: Value = serde_json::from_str(metadata(wildcard, "params_schema")).unwrap();
    assert!(
        payload["oneOf"].is_array(),
        "a wildcard handler's payload is one of its events: {payload}"
    );

    // INFO of the unversioned service by name and id; its description is empty.
    let unversioned_id = unversioned[0]["id"].as_str().unwrap();
    let info = request(&raw, &format!("$SRV.INFO.unversioned.{unversioned_id}")).await;
    check_info(&info);
    assert_eq!(info["description"], "");
    assert_eq!(info["version"], "0.0.0");

    // STATS by name, by id and bare; nothing was called yet.
    let stats = request(&raw, "$SRV.STATS.catalog").await;
    check_stats(&stats);
    assert_eq!(stats["id"], catalog_id.as_str());
    assert_eq!(stats["metadata"]["package"], "disco");
    assert_eq!(stats["endpoints"].as_array().unwrap().len(), 8);
    for endpoint in stats["endpoints"].as_array().unwrap() {
        assert_eq!(endpoint["num_requests"], 0);
        assert_eq!(endpoint["num_errors"], 0);
        assert_eq!(endpoint["last_error"], "");
        assert_eq!(endpoint["processing_time"], 0);
    }
    assert_eq!(
        endpoint(&stats, "on_any_item")["queue_group"],
        "catalog_on_any_item"
    );
    let by_id = request(&raw, &format!("$SRV.STATS.catalog.{catalog_id}")).await;
    check_stats(&by_id);
    let bare = collect(&raw, "$SRV.STATS").await;
    bare.iter().for_each(check_stats);
    assert_eq!(of_service(&bare, "catalog").len(), 1);
    assert_eq!(of_service(&bare, "unversioned").len(), 1);
    let bare_info = collect(&raw, "$SRV.INFO").await;
    bare_info.iter().for_each(check_info);
    assert_eq!(of_service(&bare_info, "catalog").len(), 1);

    within(handle.shutdown()).await.unwrap();
}

#[tokio::test]
async fn two_instances_both_answer_and_each_by_its_id() {
    let Setup { server, raw } = setup().await;
    let shared = Arc::new(Shared::default());
    let (_first_nats, first) = start_catalog(&server, &shared).await;
    let (_second_nats, second) = start_catalog(&server, &shared).await;

    let pings = collect(&raw, "$SRV.PING").await;
    pings.iter().for_each(check_ping);
    let ids: BTreeSet<&str> = of_service(&pings, "catalog")
        .iter()
        .map(|ping| ping["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "both instances answer a bare PING: {pings:?}");

    let by_name = collect(&raw, "$SRV.PING.catalog").await;
    assert_eq!(by_name.len(), 2, "{by_name:?}");

    for id in &ids {
        let one = collect(&raw, &format!("$SRV.INFO.catalog.{id}")).await;
        assert_eq!(
            one.len(),
            1,
            "only instance {id} answers by its id: {one:?}"
        );
        check_info(&one[0]);
        assert_eq!(one[0]["id"], *id);
    }

    within(first.shutdown()).await.unwrap();
    within(second.shutdown()).await.unwrap();
}

#[tokio::test]
async fn stats_count_requests_errors_and_time() {
    let Setup { server, raw } = setup().await;
    let shared = Arc::new(Shared::default());
    let (nats, handle) = start_catalog(&server, &shared).await;
    let client = CatalogClient::new(&nats);
    let item = |quantity| Item {
        sku: "sku-1".into(),
        quantity,
    };

    // add_item: 3 successes, 2 declared errors, then 1 request that does not decode.
    for _ in 0..3 {
        within(client.add_item(item(2))).await.unwrap();
    }
    for _ in 0..2 {
        match within(client.add_item(item(0))).await {
            Err(CallError::Service(AddItemError::OutOfStock { sku })) => assert_eq!(sku, "sku-1"),
            other => panic!("expected OutOfStock, got {other:?}"),
        }
    }
    let garbage = within(raw.request("catalog.rpc.add_item", "not json".into()))
        .await
        .unwrap();
    let code = garbage
        .headers
        .as_ref()
        .and_then(|headers| headers.get("Nats-Service-Error-Code"))
        .map(|value| value.as_str().to_owned());
    assert_eq!(code.as_deref(), Some("400"));
    // crash: 4 internal errors.
    for _ in 0..4 {
        let error = within(client.crash()).await.unwrap_err();
        assert!(matches!(error, CallError::Service(ref e) if e.kind() == "internal"));
    }
    // count: 1 success.
    within(client.count()).await.unwrap();

    let expected = [
        ("add_item", 6, 3),
        ("count", 1, 0),
        ("crash", 4, 4),
        ("hold", 0, 0),
        ("reindex", 0, 0),
    ];
    // A reply goes out just before its call is counted: give the counters a moment.
    let mut stats = Value::Null;
    for _ in 0..50 {
        stats = request(&raw, "$SRV.STATS.catalog").await;
        let done = expected
            .iter()
            .all(|(name, requests, _)| endpoint(&stats, name)["num_requests"] == *requests);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check_stats(&stats);
    for (name, requests, errors) in expected {
        let counters = endpoint(&stats, name);
        assert_eq!(counters["num_requests"], requests, "{name}: {counters}");
        assert_eq!(counters["num_errors"], errors, "{name}: {counters}");
        let total = counters["processing_time"].as_u64().unwrap();
        let average = counters["average_processing_time"].as_u64().unwrap();
        match total.checked_div(requests) {
            None => {
                assert_eq!((total, average), (0, 0), "{name}");
                assert_eq!(counters["last_error"], "", "{name}");
            }
            Some(expected_average) => {
                assert!(total > 0, "{name}: processing_time is counted");
                assert_eq!(
                    average, expected_average,
                    "{name}: the average is total / requests"
                );
            }
        }
    }
    let add_item = endpoint(&stats, "add_item");
    let last = add_item["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("400:bad_request"),
        "the last error is the bad request: {last}"
    );
    // An internal error's text stays in the service's log: `$SRV.STATS` answers anyone.
    assert_eq!(endpoint(&stats, "crash")["last_error"], "500:internal");
    assert_eq!(endpoint(&stats, "count")["last_error"], "");

    // The counts a Rust micro client reads.
    let decoded: async_nats::service::Stats = serde_json::from_value(stats.clone()).unwrap();
    let crash = decoded
        .endpoints
        .iter()
        .find(|endpoint| endpoint.name == "crash")
        .unwrap();
    assert_eq!((crash.requests, crash.errors), (4, 4));
    let last = crash.last_error.as_ref().unwrap();
    assert_eq!(last.code, 500);

    // `started` is this instance's start, not some other time.
    let started = OffsetDateTime::parse(stats["started"].as_str().unwrap(), &Rfc3339).unwrap();
    let age = OffsetDateTime::now_utc() - started;
    assert!(
        age >= natsgen::codegen::time::Duration::ZERO
            && age < natsgen::codegen::time::Duration::minutes(5),
        "started {started} is not recent"
    );

    within(handle.shutdown()).await.unwrap();
}

#[tokio::test]
async fn a_stopped_host_no_longer_answers() {
    let Setup { server, raw } = setup().await;
    let shared = Arc::new(Shared::default());
    let (_stay_nats, stays) = start_catalog(&server, &shared).await;
    let (_go_nats, goes) = start_catalog(&server, &shared).await;
    let ids: BTreeSet<String> = collect(&raw, "$SRV.PING.catalog")
        .await
        .iter()
        .map(|ping| ping["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);

    within(goes.shutdown()).await.unwrap();
    let after = collect(&raw, "$SRV.PING").await;
    let left: Vec<&str> = of_service(&after, "catalog")
        .iter()
        .map(|ping| ping["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        left.len(),
        1,
        "only the running instance answers: {after:?}"
    );
    assert!(ids.contains(left[0]));
    let gone = ids.iter().find(|id| *id != left[0]).unwrap();
    for verb in ["PING", "INFO", "STATS"] {
        let error = within(raw.request(format!("$SRV.{verb}.catalog.{gone}"), "".into()))
            .await
            .expect_err("a stopped instance does not answer");
        assert_eq!(error.kind(), RequestErrorKind::NoResponders, "{verb}");
    }

    within(stays.shutdown()).await.unwrap();
    let error = within(raw.request("$SRV.PING.catalog", "".into()))
        .await
        .expect_err("no instance is left");
    assert_eq!(error.kind(), RequestErrorKind::NoResponders);
    assert!(of_service(&collect(&raw, "$SRV.PING").await, "catalog").is_empty());
    drop(server);
}

#[tokio::test]
async fn discovery_answers_until_in_flight_calls_finish() {
    let Setup { server, raw } = setup().await;
    let shared = Arc::new(Shared::default());
    let (nats, handle) = start_catalog(&server, &shared).await;
    let id = request(&raw, "$SRV.PING.catalog").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let client = CatalogClient::new(&nats);
    let holding = shared.holding.notified();
    let call = tokio::spawn(async move { client.hold().await });
    within(holding).await;
    let shutdown = tokio::spawn(handle.shutdown());
    // The host stops taking calls but still finishes the held one: it stays listed meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!shutdown.is_finished());
    let ping = request(&raw, &format!("$SRV.PING.catalog.{id}")).await;
    check_ping(&ping);
    let stats = request(&raw, &format!("$SRV.STATS.catalog.{id}")).await;
    check_stats(&stats);

    shared.release.notify_one();
    assert_eq!(within(call).await.unwrap().unwrap(), "released");
    within(shutdown).await.unwrap().unwrap();
    let error = within(raw.request(format!("$SRV.PING.catalog.{id}"), "".into()))
        .await
        .expect_err("a stopped instance does not answer");
    assert_eq!(error.kind(), RequestErrorKind::NoResponders);
}
