//! The broken-schema corpus: every entry file under `tests/fixtures/invalid/` must fail to load,
//! every diagnostic must point at a real position (`path:line:col:`), the rendered report is
//! snapshotted, and each problem family is pinned by its code, position and hint so the test fails
//! when a family stops being detected.
//!
//! Entry files are the `*.yaml` files directly in the folder; the sub-folders hold the files they
//! import. Paths are relative to the crate directory (cargo runs integration tests there), so the
//! rendered output is the same on every machine.
//!
//! To update snapshots: `INSTA_UPDATE=always cargo test -p natsgen-build --test diagnostics`, then
//! read every changed `tests/snapshots/diagnostics__*.snap`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use natsgen_build::{load, Diagnostic, Loaded};

const INVALID: &str = "tests/fixtures/invalid";

/// One expected diagnostic: its code, the source text its label starts at, a part of its message
/// and a part of its help ("" = not checked).
type Expect = (&'static str, &'static str, &'static str, &'static str);

fn fixture(stem: &str) -> PathBuf {
    Path::new(INVALID).join(format!("{stem}.yaml"))
}

fn entry_stems() -> BTreeSet<String> {
    std::fs::read_dir(INVALID)
        .expect("fixture folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (u32::try_from(line).unwrap(), u32::try_from(column).unwrap())
}

/// The text a diagnostic's label covers (or, for an empty label, the rest of its line).
fn span_text(d: &Diagnostic) -> String {
    let text = read(d.path());
    let end = if d.loc.len == 0 {
        text[d.loc.offset..]
            .find('\n')
            .map_or(text.len(), |i| d.loc.offset + i)
    } else {
        d.loc.offset + d.loc.len
    };
    text[d.loc.offset..end].to_string()
}

/// Every diagnostic names a fixture file by its relative path, with a position that exists and
/// agrees with the byte offset miette uses for the label.
fn check_positions(stem: &str, loaded: &Loaded) {
    assert!(
        loaded.model.is_none(),
        "{stem}: a broken schema produced a model"
    );
    assert!(!loaded.diagnostics.is_empty(), "{stem}: no diagnostics");
    for d in &loaded.diagnostics.0 {
        let shown = d.to_string();
        let prefix = format!("{}:{}:{}: ", d.path(), d.loc.line, d.loc.column);
        assert!(
            shown.starts_with(&prefix),
            "{stem}: `{shown}` does not start with `{prefix}`"
        );
        assert!(
            d.loc.line >= 1 && d.loc.column >= 1,
            "{stem}: position below 1:1 in `{shown}`"
        );
        assert!(
            d.path().starts_with(INVALID),
            "{stem}: `{shown}` names a path not relative to the crate dir"
        );
        assert!(
            d.code.starts_with("natsgen::"),
            "{stem}: code `{}` of `{shown}`",
            d.code
        );
        assert!(!d.message.is_empty(), "{stem}: empty message");
        let text = read(d.path());
        let end = d.loc.offset + d.loc.len;
        assert!(
            end <= text.len(),
            "{stem}: span {}+{} beyond the file in `{shown}`",
            d.loc.offset,
            d.loc.len
        );
        assert!(
            text.is_char_boundary(d.loc.offset) && text.is_char_boundary(end),
            "{stem}: span {}+{} splits a character in `{shown}`",
            d.loc.offset,
            d.loc.len
        );
        assert_eq!(
            line_col(&text, d.loc.offset),
            (d.loc.line, d.loc.column),
            "{stem}: line:col of `{shown}` disagrees with its byte offset {}",
            d.loc.offset
        );
    }
}

fn check_expected(stem: &str, loaded: &Loaded, expected: &[Expect]) {
    let all = loaded
        .diagnostics
        .0
        .iter()
        .map(|d| {
            format!(
                "  [{}] {d} (at {:?}; help: {:?})",
                d.code,
                span_text(d),
                d.help
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    for &(code, at, message, help) in expected {
        let found = loaded.diagnostics.0.iter().any(|d| {
            d.code == code
                && d.message.contains(message)
                && read(d.path())[d.loc.offset..].starts_with(at)
                && (help.is_empty() || d.help.as_deref().is_some_and(|h| h.contains(help)))
        });
        assert!(
            found,
            "{stem}: expected [{code}] at {at:?} with message containing {message:?} and help containing \
             {help:?}; got:\n{all}"
        );
    }
    // The families a fixture shows are exactly the expected ones: no silent cascade of extra codes.
    let want: BTreeSet<&str> = expected.iter().map(|e| e.0).collect();
    let got: BTreeSet<&str> = loaded.diagnostics.0.iter().map(|d| d.code).collect();
    assert_eq!(got, want, "{stem}: diagnostic codes differ; got:\n{all}");
}

fn run(stem: &str, expected: &[Expect]) {
    let path = fixture(stem);
    assert!(path.is_file(), "missing fixture {}", path.display());
    let loaded = load(&[path]);
    check_positions(stem, &loaded);
    check_expected(stem, &loaded, expected);
    // The report shows each problem as `path:line:col: message` (miette wraps long lines).
    let rendered = loaded.diagnostics.render();
    let flat = flatten(&rendered);
    for d in &loaded.diagnostics.0 {
        assert!(
            flat.contains(&flatten(&d.to_string())),
            "{stem}: `{d}` is not in the rendered report:\n{rendered}"
        );
    }
    insta::assert_snapshot!(stem.to_string(), rendered);
}

/// Text without miette's line wrapping (`│` continuation lines, which may break inside a word) and
/// without any whitespace, for "does the report contain this message" checks.
fn flatten(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect()
}

macro_rules! fixtures {
    ($($test:ident $(: $file:literal)? => [$($e:expr),* $(,)?];)*) => {
        $(
            #[test]
            fn $test() {
                #[allow(unused_variables)]
                let stem = stringify!($test);
                $(let stem = $file;)?
                run(stem, &[$($e),*]);
            }
        )*

        /// Every entry file in the folder has a test above, and every test has its file.
        #[test]
        fn every_fixture_has_a_test() {
            let listed: BTreeSet<String> = [$({
                #[allow(unused_variables)]
                let stem = stringify!($test);
                $(let stem = $file;)?
                stem.to_string()
            }),*].into_iter().collect();
            let on_disk = entry_stems();
            assert_eq!(listed, on_disk, "fixtures on disk and tests listed differ");
            assert!(on_disk.len() >= 20, "the corpus should hold at least 20 broken schemas");
        }
    };
}

const HELP_TYPES: &str = "types are a name, `package.Type`, `list<T>`, `map<T>` or `optional<T>`";
const HELP_DURATION: &str = "write a positive number with a unit";

fixtures! {
    syntax_error => [
        ("natsgen::syntax", ":", "invalid YAML", ""),
    ];
    syntax_error_indent => [
        ("natsgen::syntax", "user_id", "invalid YAML: while parsing a block mapping", ""),
    ];
    syntax_error_unicode => [
        ("natsgen::syntax", "", "invalid YAML", ""),
    ];
    empty => [
        ("natsgen::wrong_shape", "", "a schema file must be a mapping, found null", ""),
    ];
    not_a_mapping => [
        ("natsgen::wrong_shape", "-", "a schema file must be a mapping, found a list", ""),
    ];
    unknown_type => [
        ("natsgen::unknown_type", "Strng", "unknown type 'Strng'", "did you mean 'string'?"),
        ("natsgen::unknown_type", "f46", "unknown type 'f46'", ""),
        ("natsgen::unknown_type", "list<OrderIten>", "unknown type 'OrderIten'", ""),
        ("natsgen::unknown_type", "optional<strin>", "unknown type 'strin'", "did you mean 'string'?"),
        ("natsgen::unknown_type", "map<Zebra>", "unknown type 'Zebra'", ""),
        ("natsgen::unknown_type", "Ordr", "unknown type 'Ordr'", "did you mean 'Order'?"),
        ("natsgen::unknown_type", "Oder", "unknown type 'Oder'", "did you mean 'Order'?"),
        ("natsgen::unknown_type", "common.Order", "unknown package 'common'", "imports"),
    ];
    unknown_package => [
        ("natsgen::unknown_type", "common.Money", "unknown package 'common' in type 'common.Money'", "import"),
        ("natsgen::unknown_type", "unknown_package.Itm", "unknown type 'Itm' in package 'unknown_package'", ""),
        // `owner: unknown_package.Order` is this file's own `Order`, held directly.
        ("natsgen::infinite_type", "Order:", "type 'Order' contains itself", ""),
    ];
    unicode_positions => [
        ("natsgen::name_case", "Café", "type name 'Café' is not PascalCase", ""),
        ("natsgen::invalid_name", "naïve", "'naïve' cannot be made into a Rust field name", ""),
        ("natsgen::invalid_type_expr", "\"ü€\"", "malformed type 'ü€': expected a type name, found 'ü'", ""),
        ("natsgen::unknown_type", "Ordr", "unknown type 'Ordr'", "did you mean 'Order'?"),
    ];
    unknown_key => [
        ("natsgen::unknown_key", "pakage", "unknown key 'pakage' in a schema file", "did you mean 'package'?"),
        ("natsgen::unknown_key", "feilds", "unknown key 'feilds' in type 'Order'", "did you mean 'fields'?"),
        ("natsgen::missing_key", "Order", "type 'Order' needs 'fields' or 'enum'", ""),
        ("natsgen::unknown_key", "descripton", "in field 'sku'", "did you mean 'description'?"),
        ("natsgen::unknown_key", "topic", "unknown key 'topic' in event 'orders.created'", "allowed keys: description, payload, fields"),
        ("natsgen::unknown_key", "verison", "in service 'order_service'", "did you mean 'version'?"),
        ("natsgen::unknown_key", "parms", "unknown key 'parms' in method 'order_service.create_order'", "did you mean 'params'?"),
        ("natsgen::unknown_key", "retuns", "unknown key 'retuns'", "did you mean 'returns'?"),
        ("natsgen::wrong_shape", "{", "has no retry policy", ""),
        ("natsgen::unknown_key", "moed", "unknown key 'moed' in the handler of 'orders.created'", ""),
    ];
    duplicate_names => [
        ("natsgen::rust_name_clash", "orderId", "both become the Rust name 'order_id'", "rename one of them"),
        ("natsgen::rust_name_clash", "OrderID", "both become the Rust name 'order_id'", ""),
        ("natsgen::duplicate_name", "Order:", "'Order' is declared twice in types", ""),
        ("natsgen::duplicate_name", "Active", "enum values 'active' and 'Active' both become the Rust variant 'Active'", ""),
        ("natsgen::duplicate_name", "paused]", "enum value 'paused' is declared twice", ""),
        ("natsgen::rust_name_clash", "userId", "'user_id' and 'userId' in the params of method 'order_service.create_order'", ""),
        ("natsgen::duplicate_name", "create_order:\n        returns", "'create_order' is declared twice in the methods of service 'order_service'", ""),
        ("natsgen::duplicate_name", "returns: Order}", "key 'returns' is given twice in method 'order_service.cancel_order'", ""),
        ("natsgen::duplicate_name", "on_created\n", "'on_created' is declared twice in service 'order_service' (methods, handlers and timers share one trait)", ""),
        ("natsgen::duplicate_name", "order_service:\n    methods: {}", "'order_service' is declared twice in services", ""),
    ];
    timers => [
        ("natsgen::invalid_duration", "soon", "malformed duration 'soon' for every", "`10s`"),
        ("natsgen::unknown_kind", "cluster", "unknown timer scope 'cluster'", "scopes: service"),
        ("natsgen::invalid_value", "10ms", "the period of timer 'inventory_service.heartbeat' is shorter than 100ms", "every: 1s"),
        ("natsgen::duplicate_name", "restock: {every", "'restock' is declared twice in service 'inventory_service'", ""),
        ("natsgen::missing_key", "{scope: instance}", "timer 'inventory_service.sweep' needs a period", "every: 30s"),
        ("natsgen::duplicate_name", "sweep: 30s", "'sweep' is declared twice in the timers of service 'inventory_service'", ""),
        ("natsgen::wrong_shape", "{max_attempts: 2}", "runs on every instance and is not retried", "remove `retry`"),
        ("natsgen::name_case", "Nightly", "timer name 'Nightly' is not snake_case", "write it 'nightly'"),
        ("natsgen::unknown_key", "evry", "unknown key 'evry' in timer 'inventory_service.audit'", "did you mean 'every'?"),
    ];
    duplicate_package => [
        ("natsgen::duplicate_name", "twice", "package 'twice' is also declared by", ""),
    ];
    invalid_subject_tokens => [
        ("natsgen::invalid_name", "order service", "service name 'order service' is not a valid NATS subject token (contains ' ')", "snake_case"),
        ("natsgen::invalid_name", "orders.v2", "service name 'orders.v2' is not a valid NATS subject token (contains '.')", ""),
        ("natsgen::invalid_name", "create.order", "(contains '.')", ""),
        ("natsgen::invalid_name", "\"create*\"", "(contains '*')", ""),
        ("natsgen::invalid_name", "\"create>\"", "(contains '>')", ""),
        ("natsgen::invalid_name", "$create", "(contains '$')", ""),
        ("natsgen::invalid_name", "\"tab\\there\"", "(contains '\\t')", ""),
    ];
    invalid_field_names => [
        ("natsgen::invalid_name", "2fa", "'2fa' cannot be made into a Rust field name", "rename the field"),
        ("natsgen::invalid_name", "\"\"", "'' cannot be made into a Rust field name", ""),
        ("natsgen::invalid_name", "\"-\"", "'-' cannot be made into a Rust field name", ""),
        ("natsgen::invalid_name", "\"héllo\"", "'héllo' cannot be made into a Rust field name", ""),
    ];
    wrong_case => [
        ("natsgen::name_case", "Shop", "package name 'Shop' is not snake_case", "write it 'shop'"),
        ("natsgen::name_case", "order_item", "type name 'order_item' is not PascalCase", "write it 'OrderItem'"),
        ("natsgen::name_case", "orderStatus", "type name 'orderStatus' is not PascalCase", "write it 'OrderStatus'"),
        ("natsgen::name_case", "OrderService", "service name 'OrderService' is not snake_case", "write it 'order_service'"),
        ("natsgen::name_case", "createOrder", "method name 'createOrder' is not snake_case", "write it 'create_order'"),
        ("natsgen::name_case", "payment_declined", "error name 'payment_declined' is not PascalCase", "write it 'PaymentDeclined'"),
        ("natsgen::name_case", "inventoryService", "service name 'inventoryService'", "write it 'inventory_service'"),
        ("natsgen::name_case", "OnOrderCreated", "handler name 'OnOrderCreated' is not snake_case", "write it 'on_order_created'"),
    ];
    bad_file_name: "Bad-Package" => [
        ("natsgen::invalid_name", "", "the file name gives package name 'Bad-Package', which is not snake_case", "add `package: bad_package`"),
    ];
    unknown_event => [
        ("natsgen::unknown_event", "orders.craeted", "unknown event 'orders.craeted'", "did you mean 'orders.created'?"),
        ("natsgen::unknown_event", "orders.shipped", "unknown event 'orders.shipped'", "declare it under `events:`"),
        ("natsgen::unknown_event", "emails.snet", "unknown event 'emails.snet'", "did you mean 'emails.sent'?"),
        ("natsgen::unknown_event", "orders.creatd", "unknown event 'orders.creatd'", "did you mean 'orders.created'?"),
        ("natsgen::unknown_event", "payments.received", "unknown event 'payments.received'", ""),
    ];
    unmatched_wildcard => [
        ("natsgen::unmatched_wildcard", "\"payments.*\"", "pattern 'payments.*' matches no declared event", "declare the events"),
        ("natsgen::unmatched_wildcard", "\"orders.*.*.*\"", "pattern 'orders.*.*.*' matches no declared event", ""),
        ("natsgen::invalid_topic", "\"orders.x*\"", "malformed pattern 'orders.x*'", "e.g. 'orders.*' or 'orders.>'"),
        ("natsgen::invalid_topic", "\">.orders\"", "malformed pattern '>.orders'", ""),
    ];
    topic_overlap => [
        ("natsgen::topic_overlap", "order_service.rpc.create_order", "overlaps the rpc subjects of service 'order_service'", "<service>.rpc."),
        ("natsgen::topic_overlap", "notification_service.async.send_email", "overlaps the async subjects of service 'notification_service'", ""),
        ("natsgen::topic_overlap", "order_service.rpc.anything", "overlaps the rpc subjects", ""),
    ];
    async_returns => [
        ("natsgen::async_returns", "Receipt", "async method 'notification_service.send_email' cannot return a value", "remove `returns`"),
        ("natsgen::wrong_shape", "5s", "async method 'notification_service.send_sms' has no timeout", ""),
        ("natsgen::wrong_shape", "NoSignal", "async method 'notification_service.send_sms' cannot declare errors", "dead-lettered"),
        ("natsgen::wrong_shape", "{max_attempts", "rpc method 'notification_service.ping' has no retry policy", ""),
    ];
    infinite_type => [
        ("natsgen::infinite_type", "Node", "type 'Node' contains itself with no optional, list or map in between", "optional<...>"),
        ("natsgen::infinite_type", "Husband", "type 'Husband' contains itself", ""),
        ("natsgen::infinite_type", "Wife", "type 'Wife' contains itself", ""),
    ];
    malformed_type_expr => [
        ("natsgen::invalid_type_expr", "list<string\n", "malformed type 'list<string': missing '>' to close list<", HELP_TYPES),
        ("natsgen::invalid_type_expr", "map<string, i32>", "map<...> takes one type parameter (map keys are always strings)", ""),
        ("natsgen::invalid_type_expr", "list\n", "list needs a type parameter: list<T>", ""),
        ("natsgen::invalid_type_expr", "string<i32>", "'string' takes no type parameter", ""),
        ("natsgen::invalid_type_expr", "a.b.c", "'a.b.c' is not a type name", ""),
        ("natsgen::invalid_type_expr", "\"\"", "malformed type '': expected a type name", ""),
        ("natsgen::invalid_type_expr", "list<>", "expected a type name, found '>'", ""),
        ("natsgen::invalid_type_expr", "optional<string>>", "unexpected '>' after the type", ""),
        ("natsgen::wrong_shape", "42", "a type must be written as a string, found an integer", ""),
        ("natsgen::wrong_shape", "[string]", "a type must be written as a string, found a list", ""),
        ("natsgen::invalid_type_expr", "list<list<list<", "nested too deeply", ""),
    ];
    malformed_duration => [
        ("natsgen::invalid_duration", "10 parsecs", "malformed duration '10 parsecs' for timeout", HELP_DURATION),
        ("natsgen::invalid_duration", "fast", "malformed duration 'fast' for timeout", HELP_DURATION),
        ("natsgen::invalid_duration", "0s", "malformed duration '0s'", ""),
        ("natsgen::invalid_duration", "10\n", "malformed duration '10'", ""),
        ("natsgen::invalid_duration", "-5s", "malformed duration '-5s'", ""),
        ("natsgen::invalid_value", "0,", "max_attempts must be a positive integer", ""),
        ("natsgen::invalid_duration", "soon", "malformed duration 'soon' for backoff", ""),
        ("natsgen::invalid_value", "-1,", "max_attempts must be a positive integer", ""),
        ("natsgen::invalid_duration", "1.5ms", "malformed duration '1.5ms'", ""),
    ];
    invalid_version => [
        ("natsgen::invalid_version", "\"1.0\"", "version \"1.0\" is not semantic versioning", "1.0.0"),
        ("natsgen::invalid_version", "v1", "version 'v1' is not semantic versioning", ""),
        // `version: 1.0` is a YAML float; see the report for the message showing '1'.
        ("natsgen::invalid_version", "1.0\n", "is not semantic versioning", ""),
        ("natsgen::invalid_version", "01.0.0", "version '01.0.0'", ""),
        ("natsgen::invalid_version", "1.0.0-", "version '1.0.0-'", ""),
        ("natsgen::invalid_version", "2\n", "version '2'", ""),
    ];
    import_cycle => [
        ("natsgen::import_cycle", "../import_cycle.yaml", "import cycle: tests/fixtures/invalid/import_cycle.yaml → tests/fixtures/invalid/import_cycle/b.yaml → tests/fixtures/invalid/import_cycle.yaml", "both import"),
    ];
    missing_import => [
        ("natsgen::missing_import", "common.yaml", "cannot import 'common.yaml'", "relative to the importing file"),
        ("natsgen::missing_import", "missing_import/nope.yaml", "cannot import 'missing_import/nope.yaml'", ""),
        ("natsgen::wrong_shape", "42", "an import must be a string, found an integer", ""),
        ("natsgen::unknown_type", "common.Money", "unknown package 'common'", ""),
    ];
    unknown_kind => [
        ("natsgen::unknown_kind", "asnyc", "unknown method kind 'asnyc'", "kinds: rpc (the default), async"),
        ("natsgen::unknown_kind", "stream", "unknown method kind 'stream'", ""),
        ("natsgen::unknown_kind", "RPC", "unknown method kind 'RPC'", "did you mean 'rpc'?"),
        ("natsgen::unknown_kind", "1\n", "unknown method kind", ""),
    ];
    unknown_handler_mode => [
        ("natsgen::unknown_kind", "broadcst", "unknown handler mode 'broadcst'", "did you mean 'broadcast'?"),
        ("natsgen::unknown_kind", "at_least_once", "unknown delivery 'at_least_once'", "deliveries: durable (the default), best_effort"),
        ("natsgen::unknown_kind", "fanout", "unknown handler mode 'fanout'", "modes: shared (the default), broadcast"),
        ("natsgen::unknown_kind", "besteffort", "unknown delivery 'besteffort'", "did you mean 'best_effort'?"),
        ("natsgen::missing_key", "{mode", "the handler of 'orders.created' needs a 'handler' name", ""),
    ];
    missing_format_version => [
        ("natsgen::format_version", "package", "missing 'natsgen: 1'", "add `natsgen: 1`"),
    ];
    wrong_format_version => [
        ("natsgen::format_version", "2", "unsupported schema format '2'", "write `natsgen: 1`"),
    ];
    format_version_string => [
        ("natsgen::format_version", "\"1\"", "unsupported schema format", "write `natsgen: 1`"),
    ];
    reserved_names => [
        ("natsgen::reserved_name", "OrderServiceClient", "type name 'OrderServiceClient' is reserved for the client of service 'order_service'", "OrderServiceClientData"),
        ("natsgen::reserved_name", "OrderServiceServer", "reserved for the server of service 'order_service'", ""),
        ("natsgen::reserved_name", "OrderServiceApi", "reserved for the api of service 'order_service'", ""),
        ("natsgen::reserved_name", "OrderService:", "reserved for the trait of service 'order_service'", ""),
        ("natsgen::reserved_name", "Events", "type name 'Events' is reserved for the package's event publisher", ""),
        ("natsgen::reserved_name", "AuditServiceOnOrderEvent", "reserved for the events of handler 'audit_service.on_order'", ""),
        ("natsgen::reserved_name", "new:\n    fields", "topic 'new' would make the publisher method 'new'", ""),
        ("natsgen::reserved_name", "new:\n        params", "'new' is reserved in service 'order_service'", ""),
        ("natsgen::reserved_name", "Internal", "error name 'Internal' is reserved", ""),
        ("natsgen::reserved_name", "BadRequest", "error name 'BadRequest' is reserved", ""),
    ];
    double_underscore => [
        ("natsgen::name_case", "a__pkg", "package name 'a__pkg' has '__' inside", "write it 'a_pkg'"),
        ("natsgen::rust_name_clash", "a__b", "'a_b' and 'a__b' in service 's' both become the Rust method 'a_b'", "rename one of them"),
        ("natsgen::rust_name_clash", "on_created", "'on__created' and 'on_created' in service 's' both become the Rust method 'on_created'", ""),
    ];
    reserved_topic => [
        ("natsgen::invalid_topic", "natsgen.dlq.orders", "topics may not start with 'natsgen.' or '$'", ""),
        ("natsgen::invalid_topic", "$SYS.orders", "topics may not start with 'natsgen.' or '$'", ""),
        ("natsgen::invalid_topic", "$orders.created", "topics may not start with 'natsgen.' or '$'", ""),
    ];
    invalid_topic => [
        ("natsgen::invalid_topic", "Orders.Created", "token 'Orders' is not lowercase", "'orders.created'"),
        ("natsgen::invalid_topic", "orders..created", "empty token", ""),
        ("natsgen::invalid_topic", "orders.*", "wildcard '*' in a declared topic", ""),
        ("natsgen::invalid_topic", "orders.>", "wildcard '>' in a declared topic", ""),
        ("natsgen::invalid_topic", "orders created", "token 'orders created' is not lowercase", ""),
        ("natsgen::invalid_topic", ".orders", "empty token", ""),
    ];
    wrong_shape => [
        ("natsgen::wrong_shape", "[not", "description must be a string, found a list", ""),
        ("natsgen::wrong_shape", "common.yaml", "imports must be a list of paths, found a string", ""),
        ("natsgen::wrong_shape", "string", "type 'Order' must be a mapping, found a string", ""),
        ("natsgen::wrong_shape", "[sku", "the fields of type 'Item' must be a mapping, found a list", ""),
        ("natsgen::wrong_shape", "[a]", "type 'Both' has both 'fields' and 'enum'", ""),
        ("natsgen::missing_key", "Neither", "type 'Neither' needs 'fields' or 'enum'", ""),
        ("natsgen::wrong_shape", "[]", "the enum of type 'Empty' has no values", ""),
        ("natsgen::wrong_shape", "{nested", "an enum value must be a string, found a mapping", ""),
        ("natsgen::invalid_name", "1st", "enum value '1st' cannot be a Rust variant name", "start the value with a letter"),
        ("natsgen::invalid_name", "42", "enum value '42' cannot be a Rust variant name", ""),
        ("natsgen::wrong_shape", "[orders.created]", "events must be a mapping, found a list", ""),
        ("natsgen::wrong_shape", "orders.created\n", "emits must be a list of topics", ""),
        ("natsgen::wrong_shape", "[sku]", "must be a mapping, found a list", ""),
        ("natsgen::wrong_shape", "just a string", "service 'notification_service' must be a mapping, found a string", ""),
    ];
    // Several families in one file: all of them are reported together.
    many_problems => [
        ("natsgen::unknown_type", "Strng", "unknown type 'Strng'", "did you mean 'string'?"),
        ("natsgen::invalid_type_expr", "list<string", "missing '>'", ""),
        ("natsgen::duplicate_name", "Order:\n    fields: {}", "'Order' is declared twice in types", ""),
        ("natsgen::invalid_topic", "natsgen.internal", "topics may not start with 'natsgen.'", ""),
        ("natsgen::invalid_version", "\"1.0\"", "version \"1.0\"", ""),
        ("natsgen::unknown_key", "parms", "unknown key 'parms'", "did you mean 'params'?"),
        ("natsgen::unknown_event", "orders.craeted", "unknown event 'orders.craeted'", "did you mean 'orders.created'?"),
        ("natsgen::invalid_duration", "fast", "malformed duration 'fast'", ""),
        ("natsgen::invalid_name", "send.receipt", "(contains '.')", ""),
        ("natsgen::async_returns", "Order", "cannot return a value", ""),
        ("natsgen::unmatched_wildcard", "\"payments.*\"", "matches no declared event", ""),
        ("natsgen::unknown_kind", "broadcst", "unknown handler mode 'broadcst'", "did you mean 'broadcast'?"),
    ];
}

/// The corpus is only meaningful if a good schema passes: no false positives on the example.
#[test]
fn the_example_schema_is_clean() {
    let loaded = load(&[PathBuf::from("../schemas/ecommerce.yaml")]);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        loaded.diagnostics.render()
    );
    assert!(loaded.model.is_some());
}

/// Loading every broken file in one call reports (at least) what each reports alone.
#[test]
fn problems_of_many_files_are_reported_together() {
    let stems = entry_stems();
    let paths: Vec<PathBuf> = stems.iter().map(|s| fixture(s)).collect();
    let together = load(&paths);
    assert!(together.model.is_none());
    let all: BTreeSet<String> = together
        .diagnostics
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    for (stem, path) in stems.iter().zip(&paths) {
        for d in &load(std::slice::from_ref(path)).diagnostics.0 {
            // The recursion check only runs on otherwise clean input (reported as a bug), so it
            // cannot show up next to the other files' problems.
            if d.code == "natsgen::infinite_type" {
                continue;
            }
            assert!(
                all.contains(&d.to_string()),
                "{stem}: `{d}` is missing when loaded with the others"
            );
        }
    }
}

// Regressions: problems once found in the diagnostics.

/// Writes `text` to a temporary schema and loads it.
fn load_text(text: &str) -> Loaded {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("schema.yaml");
    std::fs::write(&path, text).expect("write schema");
    load(&[path])
}

/// An infinite type is only looked for when nothing else is wrong, so it is not reported with the
/// file's other problems ("all errors of a file are reported together").
#[test]
fn infinite_type_is_reported_with_other_problems() {
    let loaded = load_text("natsgen: 1\ntypes:\n  Node:\n    fields: {next: Node, name: Strng}\n");
    let codes: BTreeSet<&str> = loaded.diagnostics.0.iter().map(|d| d.code).collect();
    assert!(codes.contains("natsgen::unknown_type"), "{codes:?}");
    assert!(codes.contains("natsgen::infinite_type"), "{codes:?}");
}

/// `path:line:col` in the message counts characters; the `[path:line:col]` miette prints above the
/// snippet counts bytes, so the two disagree after any non-ASCII character on the line.
#[test]
fn rendered_snippet_column_matches_the_message() {
    let loaded = load(&[fixture("unicode_positions")]);
    let rendered = loaded.diagnostics.render();
    for d in &loaded.diagnostics.0 {
        let header = format!("[{}:{}:{}]", d.path(), d.loc.line, d.loc.column);
        assert!(
            rendered.contains(&header),
            "`{header}` missing from:\n{rendered}"
        );
    }
}

/// Messages quote the value as written, not a re-printed YAML number or the value's kind.
#[test]
fn messages_quote_values_as_written() {
    let loaded = load_text(
        "natsgen: 1\nservices:\n  s:\n    version: 1.0\n    methods:\n      m: {kind: 1}\n",
    );
    let messages: Vec<&str> = loaded
        .diagnostics
        .0
        .iter()
        .map(|d| d.message.as_str())
        .collect();
    assert!(messages.iter().any(|m| m.contains("'1.0'")), "{messages:?}");
    assert!(
        !messages.iter().any(|m| m.contains("'an integer'")),
        "{messages:?}"
    );
}

/// The "e.g. '...'" hint of an invalid topic is itself an invalid topic for reserved prefixes,
/// empty tokens and wildcards.
#[test]
fn topic_hints_suggest_valid_topics() {
    let loaded = load(&[fixture("reserved_topic"), fixture("invalid_topic")]);
    for d in loaded
        .diagnostics
        .0
        .iter()
        .filter(|d| d.code == "natsgen::invalid_topic")
    {
        let help = d.help.as_deref().unwrap_or_default();
        let Some(suggested) = help.split('\'').nth(1) else {
            continue;
        };
        let valid = !suggested.starts_with("natsgen.")
            && suggested.split('.').all(|t| {
                !t.is_empty()
                    && t.chars().any(|c| c.is_ascii_alphanumeric())
                    && t.chars()
                        .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
            });
        assert!(valid, "`{d}` suggests {suggested:?}");
    }
}

/// The real `natsgen` binary: `check` prints every problem and exits 1, or prints one summary line.
#[cfg(feature = "cli")]
mod cli {
    use std::process::{Command, Output};

    use super::*;

    fn natsgen(args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_natsgen"))
            .args(args)
            .output()
            .expect("run natsgen")
    }

    #[test]
    fn check_reports_every_problem_and_fails() {
        let path = fixture("many_problems");
        let out = natsgen(&["check", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "exit status of `natsgen check` on a broken schema"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        // miette wraps long messages at 100 columns behind a `│`.
        let flat = flatten(&stderr);
        let expected = load(&[path]).diagnostics;
        assert!(expected.len() >= 10);
        for d in &expected.0 {
            assert!(
                flat.contains(&flatten(&d.to_string())),
                "`{d}` missing from:\n{stderr}"
            );
            let at = format!("[{}:{}:{}]", d.path(), d.loc.line, d.loc.column);
            assert!(
                stderr.contains(&at),
                "position `{at}` missing from:\n{stderr}"
            );
            assert!(
                stderr.contains(d.code),
                "code `{}` missing from:\n{stderr}",
                d.code
            );
        }
        assert!(stderr.contains("did you mean 'string'?"), "{stderr}");
        assert!(
            stderr
                .trim_end()
                .ends_with(&format!("error: {} problem(s) found", expected.len())),
            "{stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn check_of_several_files_reports_each() {
        let a = fixture("unknown_type");
        let b = fixture("async_returns");
        let out = natsgen(&[
            "check",
            a.to_str().unwrap(),
            "../schemas/ecommerce.yaml",
            b.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unknown type 'Strng'"), "{stderr}");
        assert!(stderr.contains("cannot return a value"), "{stderr}");
    }

    #[test]
    fn check_of_a_missing_file_fails() {
        let out = natsgen(&["check", "tests/fixtures/invalid/does_not_exist.yaml"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("does_not_exist.yaml"), "{stderr}");
        assert!(stderr.contains("cannot read schema"), "{stderr}");
    }

    #[test]
    fn check_of_a_valid_schema_prints_one_summary_line() {
        let out = natsgen(&["check", "../schemas/ecommerce.yaml"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "stdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(stderr.is_empty(), "stderr: {stderr}");
        assert_eq!(
            stdout.lines().count(),
            1,
            "one summary line, got:\n{stdout}"
        );
        assert!(
            stdout.starts_with("ok: 1 file(s), 1 package(s), "),
            "{stdout}"
        );
        assert!(
            stdout.contains(" service(s), ") && stdout.contains(" event(s)"),
            "{stdout}"
        );
    }

    #[test]
    fn generate_of_a_broken_schema_fails_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = natsgen(&[
            "generate",
            fixture("many_problems").to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown type 'Strng'"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
