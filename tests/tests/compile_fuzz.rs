//! Compile property test: every schema `natsgen check` accepts generates code that compiles
//! without warnings in a user's crate.
//!
//! Schemas are built at random (seeded, so a failure reproduces) from adversarial names: Rust
//! keywords and reserved words, prelude and std names, every local, field, parameter and generic
//! name the generated code uses, names that meet only after case conversion, names of generated
//! items and their suffixes, with wildcard handlers, timers, imports, nested and recursive types
//! and every scalar. Each is run through `load` (what `natsgen check` runs); every accepted one is generated
//! and compiled, a few dozen to a crate, under `#![deny(warnings, missing_docs)]` with clippy's
//! default and pedantic lints (and every other crate also under `#![no_implicit_prelude]`). A schema that fails is shrunk —
//! services, methods, handlers, types, fields, ... dropped while it still fails — and the test
//! prints the smallest schema that reproduces the failure, with the compiler's messages.
//!
//! The crates live in `$CARGO_TARGET_TMPDIR/compile-fuzz/` and share one target folder there, so
//! the runtime and its dependencies are checked once. By default the test compiles
//! `BATCHES` crates of `PER_BATCH` schemas; `NATSGEN_COMPILE_FUZZ_SCALE=<n>` multiplies the number
//! of crates (for long runs) and `NATSGEN_COMPILE_FUZZ_SEED=<u64>` picks other schemas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use natsgen_build::{configure, load};

/// Crates compiled by default (each one `cargo` run over `PER_BATCH` schemas).
const BATCHES: usize = 3;
const PER_BATCH: usize = 30;

// ---------------------------------------------------------------------------------------------
// Randomness

/// xorshift64*: small, fast and reproducible.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1);
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Adversarial names

/// Snake_case names for packages, services, methods and handlers.
const SNAKE: &[&str] = &[
    // Rust keywords, reserved words and names that cannot be raw identifiers.
    "as",
    "async",
    "await",
    "box",
    "break",
    "const",
    "crate",
    "dyn",
    "else",
    "enum",
    "fn",
    "gen",
    "if",
    "impl",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "try",
    "type",
    "union",
    "unsafe",
    "use",
    "where",
    "yield",
    "abstract",
    "become",
    "final",
    "override",
    "priv",
    "typeof",
    "virtual",
    // Methods the generated code (or a user) calls on `Arc<T>`, clients and publishers.
    "clone",
    "clone_from",
    "into",
    "try_into",
    "to_owned",
    "as_ref",
    "borrow",
    "deref",
    "drop",
    "default",
    "cmp",
    "eq",
    "ne",
    "hash",
    "fmt",
    "to_string",
    "from",
    "try_from",
    "into_future",
    "poll",
    "len",
    "is_empty",
    "iter",
    "next",
    "into_iter",
    "from_str",
    "from_iter",
    "add",
    "index",
    "neg",
    "not",
    "as_str",
    "unwrap",
    // Modules and crates.
    "std",
    "core",
    "alloc",
    "natsgen",
    "serde",
    "tokio",
    // Primitive types: a module of such a name would hide the type.
    "u32",
    "str",
    "bool",
    "usize",
    // Locals, parameters, fields and items of the generated code.
    "t",
    "ctx",
    "options",
    "inner",
    "params",
    "payload",
    "event",
    "result",
    "value",
    "error",
    "endpoint",
    "details",
    "core_fn",
    "publisher",
    "connection",
    "f",
    "other",
    "subject",
    "descriptor",
    "call",
    "from_core",
    "from_arc",
    "new",
    "with_options",
    "with_retry",
    "decode",
    "topic",
    "emit",
    "publish",
    "into_service_error",
    "from_service_error",
    "encode_params",
    "rpc",
    "send",
    "events",
    "service",
    "client",
    "server",
    "api",
    // Ordinary names, and names that meet after case conversion or `_` folding.
    "a",
    "b",
    "a_b",
    "a__b",
    "a___b",
    "a_",
    "a__",
    "ab",
    "x1",
    "x_1",
    "order",
    "orders",
    "get_order",
    "get__order",
    "on_event",
    "on__event",
    "order_service",
    "s",
    "on",
];

/// PascalCase names for types and errors.
const PASCAL: &[&str] = &[
    "T",
    "A",
    "B",
    "AB",
    "Impl",
    "Self",
    "Result",
    "Option",
    "String",
    "Vec",
    "Box",
    "Arc",
    "Some",
    "None",
    "Ok",
    "Err",
    "Send",
    "Sync",
    "Sized",
    "Unpin",
    "Future",
    "IntoFuture",
    "Pin",
    "Clone",
    "Copy",
    "Debug",
    "Display",
    "Default",
    "PartialEq",
    "Eq",
    "Hash",
    "Ord",
    "Drop",
    "From",
    "Into",
    "Fn",
    "Iterator",
    "Formatter",
    "Serialize",
    "Deserialize",
    "Value",
    "Uuid",
    "Timestamp",
    "Binary",
    "Bytes",
    "BTreeMap",
    "HashMap",
    "Duration",
    "Context",
    "ServiceError",
    "Service",
    "BoxFuture",
    "RpcCall",
    "AsyncCall",
    "CallOptions",
    "CallError",
    "ClientCore",
    "EventPublisher",
    "Publish",
    "MethodError",
    "GeneratedClient",
    "EventSet",
    "Connection",
    "Host",
    "Error",
    "Events",
    "Internal",
    "BadRequest",
    "Details",
    "Params",
    "Order",
    "Tree",
    "Money",
    "SServer",
    "SClient",
    "SApi",
    "TServer",
    "OrderError",
    "GetOrderError",
    "AError",
    "OnEventEvent",
    "SOnEventEvent",
    "OrdersCreated",
    "Crate",
    "Super",
    "Type",
    "Match",
];

/// Wire names of fields and params.
const WIRE: &[&str] = &[
    "id",
    "orderId",
    "order_id",
    "OrderID",
    "HTTPStatus",
    "http_status",
    "type",
    "self",
    "self_",
    "Self",
    "super",
    "crate",
    "fn",
    "match",
    "async",
    "await",
    "where",
    "gen",
    "ref",
    "ctx",
    "ctx_",
    "options",
    "options_",
    "inner",
    "params",
    "payload",
    "event",
    "result",
    "value",
    "error",
    "details",
    "endpoint",
    "f",
    "other",
    "subject",
    "core",
    "std",
    "natsgen",
    "connection",
    "publisher",
    "a",
    "b",
    "a_b",
    "aB",
    "a__b",
    "_a",
    "a_",
    "x1",
    "x_1",
    "Ok",
    "Some",
    "r",
    "T",
    "__natsgen",
    "e",
    "s",
    "v",
];

/// Tokens of topics.
const TOKENS: &[&str] = &[
    "orders", "created", "a", "b", "t", "type", "self", "crate", "super", "x1", "a-b", "a_b",
    "a__b", "rpc", "async", "events", "new", "clone", "cmp", "fn", "ctx", "v2", "s", "on",
];

const ENUM_VALUES: &[&str] = &[
    "a",
    "b",
    "red",
    "dark_green",
    "dark-green",
    "darkGreen",
    "self",
    "Self",
    "type",
    "crate",
    "super",
    "none",
    "Some",
    "ok",
    "err",
    "internal",
    "x1",
    "ALL",
    "as_str",
    "default",
];

const PRIMITIVES: &[&str] = &[
    "bool",
    "string",
    "bytes",
    "i32",
    "i64",
    "u32",
    "u64",
    "f32",
    "f64",
    "timestamp",
    "uuid",
    "json",
];

const DESCRIPTIONS: &[&str] = &[
    "Plain text.",
    "`code`, [a link](http://x), <b>html</b> and *stars*.",
    "multi\nline\n\nwith a blank line",
    "control \u{0} \r \u{7} characters",
    "quotes \" and \\ backslash */ }",
];

// ---------------------------------------------------------------------------------------------
// Schemas as data, so a failing one can be shrunk

type Fields = Vec<(String, String)>;

#[derive(Clone, Debug)]
struct Schema {
    common: Option<Package>,
    main: Package,
}

#[derive(Clone, Debug)]
struct Package {
    /// The file stem (the package name when `name` is not given).
    file: String,
    name: Option<String>,
    description: Option<String>,
    imports_common: bool,
    types: Vec<TypeDecl>,
    events: Vec<EventDecl>,
    services: Vec<ServiceDecl>,
}

#[derive(Clone, Debug)]
struct TypeDecl {
    name: String,
    description: Option<String>,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    Fields(Fields),
    Enum(Vec<String>),
}

#[derive(Clone, Debug)]
struct EventDecl {
    topic: String,
    payload: Payload,
}

#[derive(Clone, Debug)]
enum Payload {
    Named(String),
    Inline(Fields),
}

#[derive(Clone, Debug)]
struct ServiceDecl {
    name: String,
    description: Option<String>,
    methods: Vec<MethodDecl>,
    handlers: Vec<HandlerDecl>,
    /// Timers: name and the rest of the mapping (`every: 1s, scope: instance`).
    timers: Vec<(String, &'static str)>,
}

#[derive(Clone, Debug)]
struct MethodDecl {
    name: String,
    is_async: bool,
    description: Option<String>,
    params: Fields,
    returns: Option<String>,
    emits: Vec<String>,
    errors: Vec<(String, Fields)>,
}

#[derive(Clone, Debug)]
struct HandlerDecl {
    pattern: String,
    name: String,
    options: Option<&'static str>,
}

/// A YAML scalar for any string: plain when that is unambiguous, double-quoted otherwise.
fn q(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '<' | '>' | '-'))
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_fields(out: &mut String, indent: &str, key: &str, fields: &Fields) {
    if fields.is_empty() {
        let _ = writeln!(out, "{indent}{key}: {{}}");
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for (name, ty) in fields {
        let _ = writeln!(out, "{indent}  {}: {}", q(name), q(ty));
    }
}

fn write_description(out: &mut String, indent: &str, description: &Option<String>) {
    if let Some(d) = description {
        let _ = writeln!(out, "{indent}description: {}", q(d));
    }
}

impl Package {
    fn path_name(&self) -> String {
        format!("{}.yaml", self.file)
    }

    fn yaml(&self, common_file: Option<&str>) -> String {
        let mut out = String::from("natsgen: 1\n");
        if let Some(name) = &self.name {
            let _ = writeln!(out, "package: {}", q(name));
        }
        write_description(&mut out, "", &self.description);
        if let (true, Some(file)) = (self.imports_common, common_file) {
            let _ = writeln!(out, "imports: [{}]", q(file));
        }
        if !self.types.is_empty() {
            out.push_str("types:\n");
            for t in &self.types {
                let _ = writeln!(out, "  {}:", q(&t.name));
                write_description(&mut out, "    ", &t.description);
                match &t.body {
                    Body::Fields(fields) => write_fields(&mut out, "    ", "fields", fields),
                    Body::Enum(values) => {
                        let values: Vec<String> = values.iter().map(|v| q(v)).collect();
                        let _ = writeln!(out, "    enum: [{}]", values.join(", "));
                    }
                }
            }
        }
        if !self.events.is_empty() {
            out.push_str("events:\n");
            for e in &self.events {
                let _ = writeln!(out, "  {}:", q(&e.topic));
                match &e.payload {
                    Payload::Named(ty) => {
                        let _ = writeln!(out, "    payload: {}", q(ty));
                    }
                    Payload::Inline(fields) => write_fields(&mut out, "    ", "fields", fields),
                }
            }
        }
        if !self.services.is_empty() {
            out.push_str("services:\n");
            for s in &self.services {
                if s.methods.is_empty()
                    && s.handlers.is_empty()
                    && s.timers.is_empty()
                    && s.description.is_none()
                {
                    let _ = writeln!(out, "  {}: {{}}", q(&s.name));
                    continue;
                }
                let _ = writeln!(out, "  {}:", q(&s.name));
                write_description(&mut out, "    ", &s.description);
                if !s.methods.is_empty() {
                    out.push_str("    methods:\n");
                }
                for m in &s.methods {
                    let _ = writeln!(out, "      {}:", q(&m.name));
                    if m.is_async {
                        out.push_str("        kind: async\n");
                    }
                    write_description(&mut out, "        ", &m.description);
                    write_fields(&mut out, "        ", "params", &m.params);
                    if let Some(r) = &m.returns {
                        let _ = writeln!(out, "        returns: {}", q(r));
                    }
                    if !m.emits.is_empty() {
                        let emits: Vec<String> = m.emits.iter().map(|t| q(t)).collect();
                        let _ = writeln!(out, "        emits: [{}]", emits.join(", "));
                    }
                    if !m.errors.is_empty() {
                        out.push_str("        errors:\n");
                        for (name, fields) in &m.errors {
                            if fields.is_empty() {
                                let _ = writeln!(out, "          {}: {{}}", q(name));
                            } else {
                                let _ = writeln!(out, "          {}:", q(name));
                                write_fields(&mut out, "            ", "fields", fields);
                            }
                        }
                    }
                }
                if !s.handlers.is_empty() {
                    out.push_str("    handles:\n");
                }
                for h in &s.handlers {
                    match h.options {
                        None => {
                            let _ = writeln!(out, "      {}: {}", q(&h.pattern), q(&h.name));
                        }
                        Some(options) => {
                            let _ = writeln!(
                                out,
                                "      {}: {{handler: {}, {options}}}",
                                q(&h.pattern),
                                q(&h.name)
                            );
                        }
                    }
                }
                if !s.timers.is_empty() {
                    out.push_str("    timers:\n");
                }
                for (name, options) in &s.timers {
                    let _ = writeln!(out, "      {}: {{{options}}}", q(name));
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// The generator

struct Gen {
    rng: Rng,
}

impl Gen {
    fn snake(&mut self) -> String {
        if self.rng.chance(15) {
            format!("{}_{}", self.rng.pick(SNAKE), self.rng.pick(SNAKE))
        } else {
            (*self.rng.pick(SNAKE)).to_string()
        }
    }

    fn pascal(&mut self) -> String {
        if self.rng.chance(15) {
            format!("{}{}", self.rng.pick(PASCAL), self.rng.pick(PASCAL))
        } else {
            (*self.rng.pick(PASCAL)).to_string()
        }
    }

    fn description(&mut self, percent: u64) -> Option<String> {
        self.rng
            .chance(percent)
            .then(|| (*self.rng.pick(DESCRIPTIONS)).to_string())
    }

    /// Distinct names drawn by `draw` (mostly distinct: a repeat now and then is a diagnostic).
    fn distinct(&mut self, n: usize, draw: impl Fn(&mut Self) -> String) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for _ in 0..n {
            let name = draw(self);
            if !out.contains(&name) || self.rng.chance(3) {
                out.push(name);
            }
        }
        out
    }

    fn type_expr(&mut self, named: &[String], depth: usize) -> String {
        let roll = self.rng.below(100);
        if depth < 3 && roll < 25 {
            let wrapper = *self.rng.pick(&["list", "map", "optional"]);
            return format!("{wrapper}<{}>", self.type_expr(named, depth + 1));
        }
        if roll < 60 && !named.is_empty() {
            return self.rng.pick(named).clone();
        }
        (*self.rng.pick(PRIMITIVES)).to_string()
    }

    fn fields(&mut self, max: usize, named: &[String]) -> Fields {
        let n = self.rng.below(max + 1);
        let names = self.distinct(n, |g| (*g.rng.pick(WIRE)).to_string());
        names
            .into_iter()
            .map(|name| {
                let ty = self.type_expr(named, 0);
                (name, ty)
            })
            .collect()
    }

    fn topic(&mut self) -> String {
        let n = 1 + self.rng.below(3);
        (0..n)
            .map(|_| *self.rng.pick(TOKENS))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn pattern(&mut self, topics: &[String]) -> String {
        let topic = self.rng.pick(topics).clone();
        let mut tokens: Vec<&str> = topic.split('.').collect();
        match self.rng.below(5) {
            0 | 1 => topic,
            2 => {
                let i = self.rng.below(tokens.len());
                tokens[i] = "*";
                tokens.join(".")
            }
            3 => {
                tokens.truncate(self.rng.below(tokens.len()));
                tokens.push(">");
                tokens.join(".")
            }
            _ => ">".into(),
        }
    }

    /// A package; `imported` are the types and topics of the package it imports.
    fn package(&mut self, imported: Option<(&str, &[String], &[String])>) -> Package {
        let file = self.snake();
        let name = self.rng.chance(60).then(|| self.snake());
        let n_types = self.rng.below(6);
        let type_names = self.distinct(n_types, Self::pascal);
        let mut named: Vec<String> = type_names.clone();
        let mut topics: Vec<String> = Vec::new();
        if let Some((package, types, events)) = imported {
            named.extend(types.iter().map(|t| format!("{package}.{t}")));
            topics.extend(events.iter().cloned());
        }
        let types = type_names
            .iter()
            .enumerate()
            .map(|(index, name)| TypeDecl {
                name: name.clone(),
                description: self.description(15),
                body: if self.rng.chance(25) {
                    let n = 1 + self.rng.below(4);
                    Body::Enum(self.distinct(n, |g| (*g.rng.pick(ENUM_VALUES)).to_string()))
                } else {
                    let mut fields = self.fields(5, &named);
                    // A field holding this type or a later one directly may close a cycle with
                    // no indirection (an infinite type, rejected): mostly put it in `optional`.
                    for (_, ty) in &mut fields {
                        let later = type_names[index..].contains(ty);
                        if later && self.rng.chance(85) {
                            *ty = format!("optional<{ty}>");
                        }
                    }
                    Body::Fields(fields)
                },
            })
            .collect();
        let n_events = self.rng.below(5);
        let own_topics = self.distinct(n_events, Self::topic);
        let events: Vec<EventDecl> = own_topics
            .iter()
            .map(|topic| EventDecl {
                topic: topic.clone(),
                payload: if self.rng.chance(40) && !named.is_empty() {
                    Payload::Named(self.type_expr(&named, 1))
                } else {
                    Payload::Inline(self.fields(3, &named))
                },
            })
            .collect();
        topics.extend(own_topics);
        let n_services = self.rng.below(4);
        let service_names = self.distinct(n_services, Self::snake);
        let services = service_names
            .into_iter()
            .map(|name| {
                let n_methods = self.rng.below(5);
                let method_names = self.distinct(n_methods, Self::snake);
                let methods = method_names
                    .into_iter()
                    .map(|name| {
                        let is_async = self.rng.chance(25);
                        let n_errors = if is_async || self.rng.chance(70) {
                            0
                        } else {
                            1 + self.rng.below(3)
                        };
                        let error_names = self.distinct(n_errors, Self::pascal);
                        MethodDecl {
                            name,
                            is_async,
                            description: self.description(15),
                            params: self.fields(4, &named),
                            returns: (!is_async && self.rng.chance(70))
                                .then(|| self.type_expr(&named, 0)),
                            emits: if !topics.is_empty() && self.rng.chance(30) {
                                vec![self.rng.pick(&topics).clone()]
                            } else {
                                Vec::new()
                            },
                            errors: error_names
                                .into_iter()
                                .map(|e| (e, self.fields(3, &named)))
                                .collect(),
                        }
                    })
                    .collect();
                let n_handlers = if topics.is_empty() {
                    0
                } else {
                    self.rng.below(4)
                };
                let handlers = (0..n_handlers)
                    .map(|_| HandlerDecl {
                        pattern: self.pattern(&topics),
                        name: self.snake(),
                        options: self.rng.chance(30).then(|| {
                            *self.rng.pick(&[
                                "mode: broadcast",
                                "delivery: best_effort",
                                "retry: {max_attempts: 2, backoff: 10ms}",
                            ])
                        }),
                    })
                    .collect();
                let n_timers = if self.rng.chance(20) {
                    1 + self.rng.below(2)
                } else {
                    0
                };
                let timers = (0..n_timers)
                    .map(|_| {
                        let options = *self.rng.pick(&[
                            "every: 1s",
                            "every: 30s, scope: instance",
                            "every: 2m, description: A \"timer\" */ {}",
                            "every: 1h, retry: {max_attempts: 2, backoff: 10ms}",
                        ]);
                        (self.snake(), options)
                    })
                    .collect();
                ServiceDecl {
                    name,
                    description: self.description(10),
                    methods,
                    handlers,
                    timers,
                }
            })
            .collect();
        Package {
            file,
            name,
            description: self.description(10),
            imports_common: imported.is_some(),
            types,
            events,
            services,
        }
    }

    fn schema(&mut self) -> Schema {
        if self.rng.chance(30) {
            let common = self.package(None);
            let package = common.name.clone().unwrap_or_else(|| common.file.clone());
            let types: Vec<String> = common.types.iter().map(|t| t.name.clone()).collect();
            let topics: Vec<String> = common.events.iter().map(|e| e.topic.clone()).collect();
            let mut main = self.package(Some((&package, &types, &topics)));
            if main.file == common.file {
                main.file.push_str("_main");
            }
            Schema {
                common: Some(common),
                main,
            }
        } else {
            Schema {
                common: None,
                main: self.package(None),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shrinking: every schema one step smaller

fn smaller_fields(fields: &Fields, out: &mut Vec<Fields>) {
    for i in 0..fields.len() {
        let mut f = fields.clone();
        f.remove(i);
        out.push(f);
    }
}

fn smaller_packages(p: &Package) -> Vec<Package> {
    let mut out = Vec::new();
    let mut with = |f: &dyn Fn(&mut Package)| {
        let mut c = p.clone();
        f(&mut c);
        out.push(c);
    };
    for i in 0..p.services.len() {
        with(&|c| {
            c.services.remove(i);
        });
    }
    for i in 0..p.types.len() {
        with(&|c| {
            c.types.remove(i);
        });
    }
    for i in 0..p.events.len() {
        with(&|c| {
            c.events.remove(i);
        });
    }
    if p.description.is_some() {
        with(&|c| c.description = None);
    }
    if p.name.is_some() {
        with(&|c| c.name = None);
    }
    for (si, s) in p.services.iter().enumerate() {
        for i in 0..s.methods.len() {
            with(&|c| {
                c.services[si].methods.remove(i);
            });
        }
        for i in 0..s.handlers.len() {
            with(&|c| {
                c.services[si].handlers.remove(i);
            });
        }
        for i in 0..s.timers.len() {
            with(&|c| {
                c.services[si].timers.remove(i);
            });
        }
        if s.description.is_some() {
            with(&|c| c.services[si].description = None);
        }
        for (mi, m) in s.methods.iter().enumerate() {
            let mut params = Vec::new();
            smaller_fields(&m.params, &mut params);
            for f in params {
                with(&|c| c.services[si].methods[mi].params = f.clone());
            }
            if m.returns.is_some() {
                with(&|c| c.services[si].methods[mi].returns = None);
            }
            if !m.emits.is_empty() {
                with(&|c| c.services[si].methods[mi].emits.clear());
            }
            if m.description.is_some() {
                with(&|c| c.services[si].methods[mi].description = None);
            }
            for ei in 0..m.errors.len() {
                with(&|c| {
                    c.services[si].methods[mi].errors.remove(ei);
                });
                let mut fields = Vec::new();
                smaller_fields(&m.errors[ei].1, &mut fields);
                for f in fields {
                    with(&|c| c.services[si].methods[mi].errors[ei].1 = f.clone());
                }
            }
        }
        for (hi, h) in s.handlers.iter().enumerate() {
            if h.options.is_some() {
                with(&|c| c.services[si].handlers[hi].options = None);
            }
        }
    }
    for (ti, t) in p.types.iter().enumerate() {
        if t.description.is_some() {
            with(&|c| c.types[ti].description = None);
        }
        match &t.body {
            Body::Fields(fields) => {
                let mut smaller = Vec::new();
                smaller_fields(fields, &mut smaller);
                for f in smaller {
                    with(&|c| c.types[ti].body = Body::Fields(f.clone()));
                }
            }
            Body::Enum(values) if values.len() > 1 => {
                for i in 0..values.len() {
                    let mut v = values.clone();
                    v.remove(i);
                    with(&|c| c.types[ti].body = Body::Enum(v.clone()));
                }
            }
            Body::Enum(_) => {}
        }
    }
    for (ei, e) in p.events.iter().enumerate() {
        if let Payload::Inline(fields) = &e.payload {
            let mut smaller = Vec::new();
            smaller_fields(fields, &mut smaller);
            for f in smaller {
                with(&|c| c.events[ei].payload = Payload::Inline(f.clone()));
            }
        }
    }
    out
}

fn smaller(schema: &Schema) -> Vec<Schema> {
    let mut out = Vec::new();
    if schema.common.is_some() {
        let mut main = schema.main.clone();
        main.imports_common = false;
        out.push(Schema { common: None, main });
    }
    for main in smaller_packages(&schema.main) {
        out.push(Schema {
            common: schema.common.clone(),
            main,
        });
    }
    if let Some(common) = &schema.common {
        for common in smaller_packages(common) {
            out.push(Schema {
                common: Some(common),
                main: schema.main.clone(),
            });
        }
    }
    out
}

impl Schema {
    fn yaml(&self) -> String {
        let mut out = String::new();
        if let Some(common) = &self.common {
            let _ = writeln!(out, "# {}\n{}", common.path_name(), common.yaml(None));
        }
        let common_file = self.common.as_ref().map(Package::path_name);
        let _ = write!(
            out,
            "# {}\n{}",
            self.main.path_name(),
            self.main.yaml(common_file.as_deref())
        );
        out
    }

    /// The generated files when `load` accepts the schema (`None` when it reports a problem).
    fn generate(&self, dir: &Path) -> Option<Vec<natsgen_build::GeneratedFile>> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let common_file = self.common.as_ref().map(Package::path_name);
        if let Some(common) = &self.common {
            std::fs::write(dir.join(common.path_name()), common.yaml(None)).unwrap();
        }
        let main = dir.join(self.main.path_name());
        std::fs::write(&main, self.main.yaml(common_file.as_deref())).unwrap();
        let loaded = load(std::slice::from_ref(&main));
        if let Some(d) = loaded.diagnostics.0.first() {
            REJECTED.with(|r| *r.borrow_mut().entry(d.code).or_insert(0) += 1);
            return None;
        }
        match configure().generate(&[&main]) {
            Ok(files) => Some(files),
            Err(e) => panic!(
                "load accepted this schema but generate failed: {e}\n{}",
                self.yaml()
            ),
        }
    }
}

thread_local! {
    /// How many generated schemas `load` rejected, by the code of their first diagnostic.
    static REJECTED: std::cell::RefCell<std::collections::BTreeMap<&'static str, usize>> =
        std::cell::RefCell::default();
}

// ---------------------------------------------------------------------------------------------
// Compiling generated code as a user's crate

/// How a user names the module of a package: the package name, escaped like every other name
/// (`match` → `r#match`, `self` → `self_`).
fn module_name(package: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
        "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
        "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async",
        "await", "dyn", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
        "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if matches!(package, "self" | "super" | "crate") {
        format!("{package}_")
    } else if KEYWORDS.contains(&package) {
        format!("r#{package}")
    } else {
        package.to_string()
    }
}

struct Compiler {
    root: PathBuf,
    target: PathBuf,
    cargo: String,
    clippy: bool,
}

/// Failures by schema index, with the compiler's messages.
type Failures = Vec<(usize, String)>;

impl Compiler {
    fn new() -> Self {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-fuzz");
        let target = root.join("target");
        std::fs::create_dir_all(&target).unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let clippy = Command::new(&cargo)
            .args(["clippy", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        Compiler {
            root,
            target,
            cargo,
            clippy,
        }
    }

    /// Compiles the generated files of each schema as one module of a crate named `name`;
    /// returns the schemas whose code has errors or warnings.
    fn compile(
        &self,
        name: &str,
        schemas: &[Vec<natsgen_build::GeneratedFile>],
        hygiene: bool,
    ) -> Failures {
        let dir = self.root.join(name);
        let src = dir.join("src");
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src).unwrap();
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let runtime = workspace.join("runtime").canonicalize().unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"natsgen-compile-fuzz-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\nnatsgen = {{ path = {:?} }}\n\n[workspace]\n",
                runtime.display().to_string()
            ),
        )
        .unwrap();
        // The workspace's lock file, so the crate resolves to the versions already downloaded.
        if !dir.join("Cargo.lock").exists() {
            std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        }
        let mut lib =
            String::from("//! Generated code of random schemas (see `tests/compile_fuzz.rs`).\n");
        lib.push_str(
            "#![deny(warnings, rust_2018_idioms, missing_debug_implementations, missing_docs)]\n",
        );
        lib.push_str("#![warn(clippy::pedantic)]\n");
        if hygiene {
            lib.push_str("#![no_implicit_prelude]\n");
        }
        for (i, files) in schemas.iter().enumerate() {
            let _ = writeln!(lib, "/// Schema {i}.\npub mod s{i} {{");
            std::fs::create_dir_all(src.join(format!("s{i}"))).unwrap();
            for file in files {
                std::fs::write(src.join(format!("s{i}")).join(&file.file_name), &file.code)
                    .unwrap();
                let _ = writeln!(
                    lib,
                    "    /// A package.\n    pub mod {} {{\n        ::core::include!(\"s{i}/{}\");\n    }}",
                    module_name(&file.package),
                    file.file_name
                );
            }
            lib.push_str("}\n");
        }
        std::fs::write(src.join("lib.rs"), lib).unwrap();
        let output = Command::new(&self.cargo)
            .arg(if self.clippy { "clippy" } else { "check" })
            .args(["--quiet", "--message-format=short", "--color=never"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &self.target)
            .env_remove("CARGO_MANIFEST_DIR")
            .output()
            .expect("run cargo");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let mut failures: Failures = Vec::new();
        let mut unattributed = Vec::new();
        for line in stderr.lines() {
            if !(line.contains("error") || line.contains("warning")) {
                continue;
            }
            let index = line
                .strip_prefix("src/s")
                .and_then(|rest| rest.split('/').next())
                .and_then(|n| n.parse::<usize>().ok());
            match index {
                Some(i) => match failures.iter_mut().find(|(j, _)| *j == i) {
                    Some((_, text)) => {
                        text.push_str(line);
                        text.push('\n');
                    }
                    None => failures.push((i, format!("{line}\n"))),
                },
                None => unattributed.push(line.to_string()),
            }
        }
        if !output.status.success() && failures.is_empty() {
            // Not pinned to a schema (or cargo itself failed): blame them all, to be narrowed.
            let text = format!("{stderr}\n");
            failures = (0..schemas.len()).map(|i| (i, text.clone())).collect();
        }
        failures
    }
}

/// The smallest schema (by greedy one-step reductions) that still passes `load` and still fails
/// to compile, with the compiler's messages for it.
fn shrink(
    compiler: &Compiler,
    work: &Path,
    mut schema: Schema,
    mut messages: String,
) -> (Schema, String) {
    for _round in 0..200 {
        let candidates: Vec<(Schema, Vec<natsgen_build::GeneratedFile>)> = smaller(&schema)
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let files = s.generate(&work.join(format!("shrink-{i}")))?;
                Some((s, files))
            })
            .collect();
        if candidates.is_empty() {
            break;
        }
        let files: Vec<_> = candidates.iter().map(|(_, f)| f.clone()).collect();
        let failing = compiler.compile("shrink", &files, false);
        // The first failing candidate that is not merely one of many blamed by an unattributed
        // failure; any failing candidate will do.
        let Some((i, text)) = failing.into_iter().next() else {
            break;
        };
        if failing_all_blamed(&text) && candidates.len() > 1 {
            // Cargo itself failed without pointing at a module; stop here.
            break;
        }
        schema = candidates[i].0.clone();
        messages = text;
    }
    (schema, messages)
}

/// Failures are shrunk and reported for this many kinds of failure at most.
const MAX_REPORTS: usize = 4;

/// What a failure is, without names: the first message with its quoted names and numbers blanked.
fn failure_kind(messages: &str) -> String {
    let line = messages.lines().next().unwrap_or_default();
    let message = line.split_once(": ").map_or(line, |(_, m)| m);
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars() {
        if c == '`' {
            quoted = !quoted;
            out.push(c);
        } else if !quoted && !c.is_ascii_digit() {
            out.push(c);
        }
    }
    out
}

fn failing_all_blamed(text: &str) -> bool {
    !text.lines().any(|l| l.starts_with("src/s"))
}

#[test]
fn every_accepted_schema_compiles_without_warnings() {
    let scale = env_u64("NATSGEN_COMPILE_FUZZ_SCALE").unwrap_or(1).max(1);
    let seed = env_u64("NATSGEN_COMPILE_FUZZ_SEED").unwrap_or(0x636F_6D70_696C_6531);
    let batches = BATCHES * usize::try_from(scale).unwrap();
    let compiler = Compiler::new();
    let work = tempfile::tempdir().expect("tempdir");
    let mut report = String::new();
    let (mut tried, mut accepted) = (0usize, 0usize);
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    for batch in 0..batches {
        let mut schemas: Vec<(u64, Schema, Vec<natsgen_build::GeneratedFile>)> = Vec::new();
        let mut n = 0u64;
        while schemas.len() < PER_BATCH {
            let schema_seed = seed.wrapping_add((batch as u64) << 32).wrapping_add(n);
            n += 1;
            tried += 1;
            let schema = Gen {
                rng: Rng::new(schema_seed),
            }
            .schema();
            if let Some(files) = schema.generate(&work.path().join(format!("b{batch}-{n}"))) {
                accepted += 1;
                schemas.push((schema_seed, schema, files));
            }
            assert!(
                tried < 50 * PER_BATCH * batches,
                "the generator makes almost no schema that `check` accepts ({accepted} of {tried})"
            );
        }
        let files: Vec<_> = schemas.iter().map(|(_, _, f)| f.clone()).collect();
        let started = std::time::Instant::now();
        let failures = compiler.compile("batch", &files, batch % 2 == 1);
        eprintln!(
            "compile fuzz: crate {batch} of {batches}: {} schemas compiled in {:.1?}, {} failed",
            files.len(),
            started.elapsed(),
            failures.len()
        );
        for (i, messages) in failures {
            let (schema_seed, schema, _) = &schemas[i];
            // One report per kind of failure: shrinking takes a cargo run per round.
            if !kinds.insert(failure_kind(&messages)) || kinds.len() > MAX_REPORTS {
                continue;
            }
            let (small, messages) = shrink(&compiler, work.path(), schema.clone(), messages);
            let _ = write!(
                report,
                "\n--- schema of seed {schema_seed} (batch {batch}), shrunk:\n{}\n--- compiler:\n{messages}",
                small.yaml()
            );
        }
    }
    eprintln!(
        "compile fuzz: {accepted} of {tried} schemas accepted by check, all compiled ({batches} crates, clippy: {})",
        compiler.clippy
    );
    eprintln!(
        "compile fuzz: rejected by their first diagnostic: {:?}",
        REJECTED.with(|r| r.borrow().clone())
    );
    assert!(
        report.is_empty(),
        "schemas that `check` accepts generate code that does not compile cleanly:{report}"
    );
}
