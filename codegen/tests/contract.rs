//! The schema as a contract: the Markdown reference, the AsyncAPI document and the JSON Schema

#![allow(clippy::expect_used, clippy::unwrap_used)]
//! of the schema format, checked against the published AsyncAPI 3.0 schema and the fixtures.

use std::path::{Path, PathBuf};

use natsgen_build::model::Model;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn model(path: &Path) -> Model {
    let loaded = natsgen_build::load(&[path.to_path_buf()]);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}: {}",
        path.display(),
        loaded.diagnostics.render()
    );
    loaded.model.unwrap_or(Model {
        packages: Vec::new(),
    })
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every schema the project keeps that `natsgen check` accepts.
fn good_schemas() -> Vec<PathBuf> {
    let root = repo();
    let mut all = yaml_files(&root.join("schemas"));
    all.extend(yaml_files(&root.join("tests/schemas")));
    all.extend(yaml_files(&root.join("codegen/tests/fixtures/valid")));
    assert!(all.len() >= 10, "fixtures not found: {all:?}");
    all
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A compiled JSON Schema (through `boon`, which leaves serde_json's features as the
/// workspace sets them).
struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    /// Compiles `schema`, or the subschema at `pointer` (`""` for the whole) of it.
    fn new(schema: Value, pointer: &str) -> Validator {
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.enable_format_assertions();
        let url = "file:///schema.json";
        compiler
            .add_resource(url, schema)
            .unwrap_or_else(|e| panic!("{e:#}"));
        let index = compiler
            .compile(&format!("{url}#{pointer}"), &mut schemas)
            .unwrap_or_else(|e| panic!("{pointer}: {e:#}"));
        Validator { schemas, index }
    }

    fn is_valid(&self, instance: &Value) -> bool {
        self.schemas.validate(instance, self.index).is_ok()
    }
}

fn errors(validator: &Validator, instance: &Value) -> Vec<String> {
    match validator.schemas.validate(instance, validator.index) {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!("{e:#}")],
    }
}

// ---------------------------------------------------------------------------------------------
// natsgen docs

#[test]
fn the_kept_reference_of_the_example_is_current() {
    let schema = repo().join("schemas/ecommerce.yaml");
    let model = model(&schema);
    for package in &model.packages {
        let path = repo().join(format!("docs/reference/{}.md", package.name));
        let kept = std::fs::read_to_string(&path).unwrap_or_default();
        let fresh = natsgen_build::docs::markdown(&model, package);
        assert!(
            kept == fresh,
            "{} is stale; run `cargo run -p natsgen-build --features cli -- docs schemas/ecommerce.yaml --out docs/reference`",
            path.display()
        );
    }
}

#[test]
fn the_reference_shows_methods_events_and_who_handles_them() {
    let model = model(&repo().join("schemas/ecommerce.yaml"));
    let page = natsgen_build::docs::markdown(&model, &model.packages[0]);
    for expected in [
        "#### `order_service.process_payment` (RPC)",
        "Request-reply on `order_service.rpc.process_payment`, queue group `order_service`; timeout 10s",
        "| `PaymentDeclined` | 422 | `reason`: `string` | The gateway declined the payment. |",
        "| `order_id` | `string` | yes |  |",
        "Failed attempts are retried 2s apart, 5 attempt(s) in all; then the call is dead-lettered on `natsgen.dlq.notification_service.send_email`.",
        "Errors: the declared ones below, and the runtime's `bad_request` (400)",
        "| [`orders.created`](#event-orderscreated) | `order_service.create_order` | `inventory_service.reserve_inventory`, `email_service.send_order_confirmation`, `analytics_service.track_order` |",
        "| [`batch.item_processed`](#event-batchitem_processed) | `batch_service.process_item` | `batch_monitor.on_item_processed` (broadcast) |",
        "| [`shipping.scheduled`](#event-shippingscheduled) | `shipping_service.schedule_shipping` | — |",
        "```mermaid\nflowchart LR\n",
        "    s0 -- create_order --> e0\n",
        "    e0 -- reserve_inventory --> s2\n",
        "### Type OrderStatus\n\nA string, one of `\"created\"`, `\"paid\"`, `\"cancelled\"`.",
        "Returns list<[`BatchItemResult`](#type-batchitemresult)>.",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in\n{page}");
    }
}

#[test]
fn the_reference_links_types_and_events_of_imported_packages() {
    let model = model(&repo().join("codegen/tests/fixtures/valid/everything.yaml"));
    let names: Vec<&str> = model.packages.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"common"), "{names:?}");
    let everything = model
        .packages
        .iter()
        .find(|p| p.name == "everything")
        .expect("the importing package");
    let page = natsgen_build::docs::markdown(&model, everything);
    assert!(page.contains("Imports [`common`](common.md)."), "{page}");
    assert!(
        page.contains("[`common.Money`](common.md#type-money)"),
        "{page}"
    );
}

#[test]
fn the_reference_shows_wildcard_best_effort_and_broadcast_handlers() {
    let model = model(&repo().join("codegen/tests/fixtures/valid/everything.yaml"));
    let pages: String = model
        .packages
        .iter()
        .map(|p| natsgen_build::docs::markdown(&model, p))
        .collect();
    assert!(pages.contains("broadcast (every instance)"), "{pages}");
    assert!(pages.contains("best effort"), "{pages}");
    assert!(pages.contains("none (logged)"), "{pages}");
}

// ---------------------------------------------------------------------------------------------
// natsgen asyncapi

fn asyncapi_validator() -> Validator {
    let path = repo().join("codegen/tests/fixtures/asyncapi/asyncapi-3.0.0.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    Validator::new(schema, "")
}

/// Follows a local `$ref` (`#/a/b`, percent-encoded as a URI fragment) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(&reference.strip_prefix('#')?.replace("%3E", ">"))
}

fn all_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => all_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

#[test]
fn asyncapi_documents_of_every_good_schema_are_valid_asyncapi_3() {
    let validator = asyncapi_validator();
    for path in good_schemas() {
        let model = model(&path);
        let package = natsgen_build::asyncapi::root_package(&model, &path).expect("a package");
        let doc = natsgen_build::asyncapi::document(&model, package);
        let problems = errors(&validator, &doc);
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
        let mut refs = Vec::new();
        all_refs(&doc, &mut refs);
        for r in refs {
            assert!(
                resolve(&doc, &r).is_some(),
                "{}: dangling $ref {r}",
                path.display()
            );
        }
    }
}

#[test]
fn the_asyncapi_schema_rejects_a_broken_document() {
    // The validator is only worth something if it can fail.
    let validator = asyncapi_validator();
    let model = model(&repo().join("schemas/ecommerce.yaml"));
    let mut doc = natsgen_build::asyncapi::document(&model, &model.packages[0]);
    assert!(validator.is_valid(&doc));
    doc["operations"]["order_service.process_payment"]["action"] = "answer".into();
    assert!(!validator.is_valid(&doc));
}

#[test]
fn asyncapi_has_a_channel_per_subject_and_nats_queue_groups() {
    let model = model(&repo().join("schemas/ecommerce.yaml"));
    let doc = natsgen_build::asyncapi::document(&model, &model.packages[0]);
    let channels = doc["channels"].as_object().expect("channels");
    for subject in [
        "order_service.rpc.process_payment",
        "notification_service.async.send_email",
        "orders.created",
        "natsgen.dlq.notification_service.send_email",
        "natsgen.dlq.inventory_service.reserve_inventory",
    ] {
        assert_eq!(channels[subject]["address"], subject, "{subject}");
    }
    let ops = &doc["operations"];
    let rpc = &ops["order_service.process_payment"];
    assert_eq!(rpc["action"], "receive");
    assert_eq!(rpc["bindings"]["nats"]["queue"], "order_service");
    assert_eq!(
        rpc["reply"]["channel"]["$ref"],
        "#/channels/order_service.rpc.process_payment.reply"
    );
    let error = resolve(
        &doc,
        "#/components/messages/order_service.process_payment.error",
    )
    .expect("error message");
    let kinds = &error["payload"]["properties"]["error"]["properties"]["kind"]["enum"];
    assert!(kinds
        .as_array()
        .expect("kinds")
        .contains(&"PaymentDeclined".into()));
    assert_eq!(
        ops["inventory_service.reserve_inventory"]["bindings"]["nats"]["queue"],
        "inventory_service_reserve_inventory"
    );
    // Broadcast: every instance gets a copy, so no queue group.
    assert!(ops["batch_monitor.on_item_processed"]["bindings"]["nats"]
        .get("queue")
        .is_none());
    assert_eq!(
        ops["order_service.create_order.emits.orders.created"]["action"],
        "send"
    );
    assert_eq!(
        ops["notification_service.send_email.dead_letter"]["action"],
        "send"
    );
    let order = &doc["components"]["schemas"]["ecommerce.Order"];
    assert_eq!(
        order["properties"]["items"]["items"]["$ref"],
        "#/components/schemas/ecommerce.OrderItem"
    );
}

// ---------------------------------------------------------------------------------------------
// natsgen json-schema

fn format_validator() -> Validator {
    Validator::new(natsgen_build::json_schema::schema_format(), "")
}

#[test]
fn every_good_schema_matches_the_format_schema() {
    let validator = format_validator();
    let mut files = good_schemas();
    files.extend(yaml_files(
        &repo().join("codegen/tests/fixtures/invalid/import_cycle"),
    ));
    for path in files {
        let problems = errors(&validator, &yaml(&path));
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
    }
}

#[test]
fn fixtures_broken_in_shape_do_not_match_the_format_schema() {
    let validator = format_validator();
    let dir = repo().join("codegen/tests/fixtures/invalid");
    for name in [
        "async_returns",
        "empty",
        "format_version_string",
        "malformed_duration",
        "missing_format_version",
        "not_a_mapping",
        "unknown_handler_mode",
        "unknown_key",
        "unknown_kind",
        "wrong_format_version",
        "wrong_shape",
        "invalid_version",
    ] {
        let path = dir.join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let value: Value = serde_saphyr::from_str(&text).unwrap_or(Value::Null);
        assert!(
            !validator.is_valid(&value),
            "{name}.yaml matches the format schema"
        );
    }
}

#[test]
fn the_format_schema_completes_keys_with_their_documentation() {
    let schema = natsgen_build::json_schema::schema_format();
    let method = &schema["definitions"]["method"]["properties"];
    assert_eq!(method["kind"]["enum"], serde_json::json!(["rpc", "async"]));
    assert!(method["timeout"]["description"].is_string());
    let handler = &schema["definitions"]["handler"]["anyOf"][1]["properties"];
    assert_eq!(
        handler["mode"]["enum"],
        serde_json::json!(["shared", "broadcast"])
    );
}

#[test]
fn the_kept_format_schema_is_current() {
    let path = repo().join("schemas/natsgen.schema.json");
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    let fresh = serde_json::to_string_pretty(&natsgen_build::json_schema::schema_format())
        .unwrap_or_default()
        + "\n";
    assert!(
        kept == fresh,
        "{} is stale; run `cargo run -p natsgen-build --features cli -- json-schema --out schemas/natsgen.schema.json`",
        path.display()
    );
}

/// Whether `instance` matches the payload of component message `message` of `doc`.
fn payload_accepts(doc: &Value, message: &str, instance: &Value) -> bool {
    Validator::new(
        doc.clone(),
        &format!("/components/messages/{message}/payload"),
    )
    .is_valid(instance)
}

#[test]
fn asyncapi_payload_schemas_accept_the_wire_format_and_reject_other_shapes() {
    let model = model(&repo().join("schemas/ecommerce.yaml"));
    let doc = natsgen_build::asyncapi::document(&model, &model.packages[0]);
    let pay = "order_service.process_payment";
    let params = format!("{pay}.params");
    assert!(payload_accepts(
        &doc,
        &params,
        &serde_json::json!({"order_id": "o1", "amount": 5})
    ));
    assert!(!payload_accepts(
        &doc,
        &params,
        &serde_json::json!({"order_id": 1, "amount": 5})
    ));
    assert!(!payload_accepts(
        &doc,
        &params,
        &serde_json::json!({"order_id": "o1"})
    ));
    let result = serde_json::json!({"result": {
        "order_id": "o1", "amount": 5.0, "status": "completed", "transaction_id": "txn_1",
        "processed_at": "2026-01-02T03:04:05Z"}});
    assert!(payload_accepts(&doc, &format!("{pay}.result"), &result));
    let mut wrong = result.clone();
    wrong["result"]["status"] = "refunded".into();
    assert!(!payload_accepts(&doc, &format!("{pay}.result"), &wrong));
    let declined = serde_json::json!({"error": {"kind": "PaymentDeclined",
        "message": "The gateway declined the payment.", "details": {"reason": "limit"}}});
    assert!(payload_accepts(&doc, &format!("{pay}.error"), &declined));
    let busy = serde_json::json!({"error": {"kind": "busy", "message": "queue full"}});
    assert!(payload_accepts(&doc, &format!("{pay}.error"), &busy));
    let unknown = serde_json::json!({"error": {"kind": "Teapot", "message": "?"}});
    assert!(!payload_accepts(&doc, &format!("{pay}.error"), &unknown));
    let order = serde_json::json!({"order_id": "o1", "user_id": "u1", "total": 1.5,
        "status": "created", "created_at": "2026-01-02T03:04:05Z",
        "items": [{"sku": "s", "name": "n", "quantity": 1, "unit_price": 1.5}]});
    assert!(payload_accepts(&doc, "event.orders.created", &order));
    let mut negative = order.clone();
    negative["items"][0]["quantity"] = (-1).into();
    assert!(!payload_accepts(&doc, "event.orders.created", &negative));
}
