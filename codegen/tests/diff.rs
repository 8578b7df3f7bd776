//! `natsgen diff`: one test per rule, each an edit of one base schema.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use natsgen_build::diff::{diff, is_breaking, to_json, Change, Severity};
use natsgen_build::model::Model;

const BASE: &str = r#"natsgen: 1
package: shop
types:
  Item:
    description: A line.
    fields: {sku: string, qty: u32, note: optional<string>}
  Status:
    enum: [open, closed]
events:
  orders.created:
    payload: Item
  orders.closed:
    fields: {id: string}
services:
  orders:
    version: 1.0.0
    methods:
      get:
        params: {id: string, verbose: optional<bool>}
        returns: Item
        timeout: 5s
        errors:
          NotFound: {fields: {id: string}}
        emits: [orders.created]
      status:
        params: {id: string}
        returns: Status
      notify:
        kind: async
        params: {id: string}
    timers:
      report: {every: 30s}
      refresh: {every: 1m, scope: instance}
  audit:
    handles:
      orders.created: record
      "orders.*": {handler: any, delivery: best_effort}
  archive:
    handles:
      orders.closed: store
"#;

fn model(text: &str) -> Model {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("shop.yaml");
    std::fs::write(&path, text).expect("write");
    let loaded = natsgen_build::load(&[path]);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}\n{text}",
        loaded.diagnostics.render()
    );
    loaded.model.expect("model")
}

/// The base schema with `from` replaced by `to` (which must be there).
fn edit(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} is not in the base schema");
        text = text.replacen(from, to, 1);
    }
    text
}

fn changes(edits: &[(&str, &str)]) -> Vec<Change> {
    diff(&model(BASE), &model(&edit(edits)))
}

/// Asserts the edit yields a change by `rule` at `path` with `severity`, and returns them all.
fn expect(edits: &[(&str, &str)], rule: &str, path: &str, severity: Severity) -> Vec<Change> {
    let all = changes(edits);
    assert!(
        all.iter()
            .any(|c| c.rule == rule && c.path == path && c.severity == severity),
        "expected {severity:?} {rule} at {path}, got:\n{}",
        all.iter().map(|c| format!("{c}\n")).collect::<String>()
    );
    all
}

fn breaking(edits: &[(&str, &str)], rule: &str, path: &str) {
    let all = expect(edits, rule, path, Severity::Breaking);
    assert!(is_breaking(&all));
}

/// A compatible change, and nothing else breaks.
fn compatible(edits: &[(&str, &str)], rule: &str, path: &str) {
    let all = expect(edits, rule, path, Severity::Compatible);
    assert!(!is_breaking(&all), "{all:#?}");
}

#[test]
fn the_same_schema_has_no_changes() {
    assert_eq!(changes(&[]), Vec::new());
}

#[test]
fn descriptions_are_not_wire_changes() {
    assert_eq!(
        changes(&[("description: A line.", "description: One line.")]),
        Vec::new()
    );
}

#[test]
fn method_removed() {
    breaking(
        &[(
            "      status:\n        params: {id: string}\n        returns: Status\n",
            "",
        )],
        "method_removed",
        "orders.status",
    );
}

#[test]
fn method_added() {
    compatible(
        &[(
            "      notify:",
            "      ping:\n        params: {}\n      notify:",
        )],
        "method_added",
        "orders.ping",
    );
}

#[test]
fn method_kind_changed() {
    breaking(
        &[("        kind: async\n", "        kind: rpc\n")],
        "method_kind_changed",
        "orders.notify",
    );
}

#[test]
fn returns_changed() {
    breaking(
        &[("        returns: Status", "        returns: string")],
        "returns_changed",
        "orders.status",
    );
}

#[test]
fn required_param_added() {
    breaking(
        &[(
            "{id: string, verbose: optional<bool>}",
            "{id: string, verbose: optional<bool>, shop: string}",
        )],
        "field_added_required",
        "orders.get.shop",
    );
}

#[test]
fn optional_param_added() {
    compatible(
        &[(
            "{id: string, verbose: optional<bool>}",
            "{id: string, verbose: optional<bool>, shop: optional<string>}",
        )],
        "field_added_optional",
        "orders.get.shop",
    );
}

#[test]
fn optional_param_removed() {
    compatible(
        &[("{id: string, verbose: optional<bool>}", "{id: string}")],
        "field_removed_optional",
        "orders.get.verbose",
    );
}

#[test]
fn required_field_removed() {
    breaking(
        &[(
            "{sku: string, qty: u32, note: optional<string>}",
            "{sku: string, note: optional<string>}",
        )],
        "field_removed",
        "shop.Item.qty",
    );
}

#[test]
fn optional_to_required() {
    breaking(
        &[("note: optional<string>}", "note: string}")],
        "optional_to_required",
        "shop.Item.note",
    );
}

#[test]
fn required_to_optional() {
    breaking(
        &[("qty: u32,", "qty: optional<u32>,")],
        "required_to_optional",
        "shop.Item.qty",
    );
}

#[test]
fn field_type_changed() {
    breaking(
        &[("qty: u32,", "qty: i64,")],
        "type_changed",
        "shop.Item.qty",
    );
}

#[test]
fn enum_value_added() {
    breaking(
        &[("[open, closed]", "[open, closed, lost]")],
        "enum_value_added",
        "shop.Status",
    );
}

#[test]
fn enum_value_removed() {
    breaking(
        &[("[open, closed]", "[open]")],
        "enum_value_removed",
        "shop.Status",
    );
}

#[test]
fn type_kind_changed() {
    breaking(
        &[("    enum: [open, closed]", "    fields: {open: bool}")],
        "type_kind_changed",
        "shop.Status",
    );
}

#[test]
fn type_removed() {
    breaking(
        &[
            ("  Status:\n    enum: [open, closed]\n", ""),
            ("        returns: Status", "        returns: string"),
        ],
        "type_removed",
        "shop.Status",
    );
}

#[test]
fn type_added() {
    compatible(
        &[("types:\n", "types:\n  Extra:\n    enum: [x]\n")],
        "type_added",
        "shop.Extra",
    );
}

#[test]
fn error_added() {
    breaking(
        &[(
            "          NotFound:",
            "          Gone: {}\n          NotFound:",
        )],
        "error_added",
        "orders.get.Gone",
    );
}

#[test]
fn error_removed() {
    breaking(
        &[(
            "        errors:\n          NotFound: {fields: {id: string}}\n",
            "",
        )],
        "error_removed",
        "orders.get.NotFound",
    );
}

#[test]
fn error_details_follow_the_field_rules() {
    breaking(
        &[(
            "NotFound: {fields: {id: string}}",
            "NotFound: {fields: {id: string, at: string}}",
        )],
        "field_added_required",
        "orders.get.NotFound.at",
    );
}

#[test]
fn timeout_changed() {
    compatible(
        &[("timeout: 5s", "timeout: 30s")],
        "timeout_changed",
        "orders.get",
    );
}

#[test]
fn retry_changed() {
    compatible(
        &[(
            "        kind: async\n",
            "        kind: async\n        retry: {max_attempts: 5, backoff: 2s}\n",
        )],
        "retry_changed",
        "orders.notify",
    );
}

#[test]
fn emits_changed() {
    compatible(
        &[(
            "emits: [orders.created]",
            "emits: [orders.created, orders.closed]",
        )],
        "emits_changed",
        "orders.get",
    );
}

#[test]
fn event_removed() {
    breaking(
        &[
            ("  orders.closed:\n    fields: {id: string}\n", ""),
            ("  archive:\n    handles:\n      orders.closed: store\n", ""),
        ],
        "event_removed",
        "orders.closed",
    );
}

#[test]
fn event_added() {
    // A new topic outside the wildcard pattern of `audit.any`.
    compatible(
        &[(
            "events:\n",
            "events:\n  stock.low:\n    fields: {sku: string}\n",
        )],
        "event_added",
        "stock.low",
    );
}

#[test]
fn event_renamed() {
    breaking(
        &[
            ("  orders.closed:\n", "  orders.finished:\n"),
            ("      orders.closed: store", "      orders.finished: store"),
        ],
        "event_renamed",
        "orders.closed",
    );
}

#[test]
fn payload_changed() {
    breaking(
        &[("    payload: Item", "    payload: Status")],
        "payload_changed",
        "orders.created",
    );
}

#[test]
fn inline_payload_fields_follow_the_field_rules() {
    breaking(
        &[(
            "fields: {id: string}\nservices",
            "fields: {id: u64}\nservices",
        )],
        "type_changed",
        "orders.closed.id",
    );
}

#[test]
fn the_same_fields_inline_instead_of_a_type_are_no_change() {
    let all = changes(&[(
        "    payload: Item",
        "    fields: {sku: string, qty: u32, note: optional<string>}",
    )]);
    assert!(!is_breaking(&all), "{all:#?}");
}

#[test]
fn service_with_methods_removed() {
    breaking(
        &[(
            "  orders:\n    version: 1.0.0\n    methods:\n",
            "  gone:\n    version: 1.0.0\n    methods:\n",
        )],
        "service_removed",
        "orders",
    );
}

#[test]
fn service_with_only_handlers_removed() {
    compatible(
        &[("  archive:\n    handles:\n      orders.closed: store\n", "")],
        "service_removed",
        "archive",
    );
}

#[test]
fn service_added() {
    compatible(
        &[(
            "services:\n",
            "services:\n  billing:\n    methods:\n      bill: {params: {id: string}}\n",
        )],
        "service_added",
        "billing",
    );
}

#[test]
fn version_changed() {
    compatible(
        &[("version: 1.0.0", "version: 1.1.0")],
        "version_changed",
        "orders",
    );
}

#[test]
fn handler_added() {
    compatible(
        &[(
            "      orders.closed: store\n",
            "      orders.closed: store\n      orders.created: index\n",
        )],
        "handler_added",
        "archive.index",
    );
}

#[test]
fn handler_removed() {
    compatible(
        &[("      orders.created: record\n", "")],
        "handler_removed",
        "audit.record",
    );
}

#[test]
fn handler_renamed() {
    breaking(
        &[("orders.created: record", "orders.created: log")],
        "handler_renamed",
        "audit.record",
    );
}

#[test]
fn handler_pattern_changed() {
    breaking(
        &[("      orders.closed: store", "      \"orders.>\": store")],
        "handler_pattern_changed",
        "archive.store",
    );
}

#[test]
fn handler_mode_changed() {
    breaking(
        &[(
            "orders.closed: store",
            "orders.closed: {handler: store, mode: broadcast}",
        )],
        "handler_mode_changed",
        "archive.store",
    );
}

#[test]
fn handler_delivery_changed() {
    breaking(
        &[("{handler: any, delivery: best_effort}", "{handler: any}")],
        "handler_delivery_changed",
        "audit.any",
    );
}

#[test]
fn handler_retry_changed() {
    compatible(
        &[(
            "orders.closed: store",
            "orders.closed: {handler: store, retry: {max_attempts: 9}}",
        )],
        "retry_changed",
        "archive.store",
    );
}

#[test]
fn a_new_event_under_a_wildcard_handler_breaks_it() {
    breaking(
        &[(
            "events:\n",
            "events:\n  orders.lost:\n    fields: {id: string}\n",
        )],
        "handler_matches_changed",
        "audit.any",
    );
}

#[test]
fn package_renamed() {
    breaking(
        &[("package: shop", "package: store")],
        "package_renamed",
        "store",
    );
}

#[test]
fn the_json_report_counts_both_kinds() {
    let all = changes(&[
        ("version: 1.0.0", "version: 2.0.0"),
        ("[open, closed]", "[open]"),
    ]);
    let json = to_json(&all);
    assert_eq!(json["breaking"], true);
    assert_eq!(json["summary"]["breaking"], 1);
    assert_eq!(json["summary"]["compatible"], 1);
    assert_eq!(json["changes"][0]["severity"], "breaking");
    assert_eq!(json["changes"][0]["rule"], "enum_value_removed");
    assert_eq!(json["changes"][1]["rule"], "version_changed");
}

/// Loads the schemas `files` (name, text) written into one folder; the first is the root.
fn models(files: &[(&str, &str)]) -> Model {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    let loaded = natsgen_build::load(&[dir.path().join(files[0].0)]);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        loaded.diagnostics.render()
    );
    loaded.model.expect("model")
}

const COMMON: &str = "natsgen: 1\npackage: common\nevents:\n  stock.low: {fields: {sku: string}}\n";
const APP: &str = "natsgen: 1\npackage: app\nimports: [common.yaml]\nservices:\n  watcher:\n    handles:\n      stock.low: alert\n";

#[test]
fn event_moved_to_another_package() {
    let old = models(&[("app.yaml", APP), ("common.yaml", COMMON)]);
    let moved = "natsgen: 1\npackage: app\nevents:\n  stock.low: {fields: {sku: string}}\nservices:\n  watcher:\n    handles:\n      stock.low: alert\n";
    let new = models(&[("app.yaml", moved)]);
    let all = diff(&old, &new);
    assert!(
        all.iter().any(|c| c.rule == "event_moved"
            && c.path == "stock.low"
            && c.severity == Severity::Breaking),
        "{all:#?}"
    );
}

#[test]
fn package_removed_and_added() {
    let other = "natsgen: 1\npackage: other\nevents:\n  stock.high: {fields: {sku: string}}\n";
    let app = APP
        .replace("stock.low: alert", "stock.high: alert")
        .replace("common.yaml", "other.yaml");
    let old = models(&[("app.yaml", APP), ("common.yaml", COMMON)]);
    let new = models(&[("app.yaml", &app), ("other.yaml", other)]);
    let all = diff(&old, &new);
    // Two packages in each version with one of them swapped is a removal and an addition, not a
    // rename.
    let find = |rule: &str, path: &str| {
        all.iter()
            .find(|c| c.rule == rule && c.path == path)
            .map(|c| c.severity)
    };
    assert_eq!(
        find("package_removed", "common"),
        Some(Severity::Breaking),
        "{all:#?}"
    );
    assert_eq!(
        find("package_added", "other"),
        Some(Severity::Compatible),
        "{all:#?}"
    );
    assert_eq!(find("package_renamed", "other"), None, "{all:#?}");
}

#[test]
fn service_moved_to_another_package_keeps_its_subjects() {
    let old = models(&[("app.yaml", APP), ("common.yaml", COMMON)]);
    let app = "natsgen: 1\npackage: app\nimports: [common.yaml]\n";
    let common = format!("{COMMON}services:\n  watcher:\n    handles:\n      stock.low: alert\n");
    let new = models(&[("app.yaml", app), ("common.yaml", &common)]);
    let all = diff(&old, &new);
    assert!(
        all.iter()
            .any(|c| c.rule == "service_moved" && c.path == "watcher"),
        "{all:#?}"
    );
    assert!(!is_breaking(&all), "{all:#?}");
    assert!(!all.iter().any(|c| c.rule == "service_added"), "{all:#?}");
}

#[test]
fn timer_added() {
    compatible(
        &[(
            "      report: {every: 30s}\n",
            "      report: {every: 30s}\n      sweep: 1h\n",
        )],
        "timer_added",
        "orders.sweep",
    );
}

#[test]
fn timer_removed() {
    compatible(
        &[("      report: {every: 30s}\n", "")],
        "timer_removed",
        "orders.report",
    );
}

#[test]
fn timer_period_changed() {
    compatible(
        &[("report: {every: 30s}", "report: {every: 1m}")],
        "timer_period_changed",
        "orders.report",
    );
}

#[test]
fn timer_scope_changed() {
    breaking(
        &[(
            "report: {every: 30s}",
            "report: {every: 30s, scope: instance}",
        )],
        "timer_scope_changed",
        "orders.report",
    );
}

#[test]
fn timer_retry_changed() {
    compatible(
        &[(
            "report: {every: 30s}",
            "report: {every: 30s, retry: {max_attempts: 5}}",
        )],
        "retry_changed",
        "orders.report",
    );
}
