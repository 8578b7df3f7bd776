//! The AsyncAPI 3.0 document of a package: what `natsgen asyncapi` prints.
//!
//! The document describes the package's services as the application: it *receives* RPC calls
//! (request-reply, with the result and error replies), async calls and events for its handlers,
//! and *sends* the events its methods emit and the dead letters of calls and events it gives up
//! on. A timer with `scope: service` is a channel the service both sends (each instance offers
//! every tick) and receives (one instance runs it); a `scope: instance` timer sends nothing over
//! NATS and is left out. Every subject is a channel, payloads are JSON Schema, and operations carry NATS bindings
//! with their queue group. Types of every package the schema reaches are `components.schemas`,
//! named `<package>.<Type>`.

use serde_json::{json, Map, Value};

use crate::contract;
pub use crate::contract::root_package;
use crate::model::{
    Delivery, EventPayload, Field, Method, MethodKind, Mode, Model, Package, Primitive, Service,
    Timer, TimerScope, TypeBody, TypeRef,
};

/// The version of the AsyncAPI NATS bindings used.
const NATS_BINDING_VERSION: &str = "0.1.0";

/// The runtime's error kinds any RPC can reply with, besides the method's declared errors.
const RUNTIME_ERROR_KINDS: [&str; 5] = [
    "bad_request",
    "payload_too_large",
    "internal",
    "busy",
    "deadline_exceeded",
];

/// The AsyncAPI 3.0 document of `package`, one of `model`'s packages.
pub fn document(model: &Model, package: &Package) -> Value {
    let mut doc = Doc {
        model,
        channels: Map::new(),
        operations: Map::new(),
        messages: Map::new(),
    };
    for s in &package.services {
        for m in &s.methods {
            doc.method(s, m);
        }
        for h in &s.handlers {
            doc.handler(s, h);
        }
        for t in &s.timers {
            doc.timer(s, t);
        }
    }
    for e in &package.events {
        doc.event_channel(&e.topic);
    }
    let mut schemas = Map::new();
    for p in &model.packages {
        for t in &p.types {
            let mut schema = match &t.body {
                TypeBody::Struct(fields) => object_schema(fields),
                TypeBody::Enum(values) => json!({"type": "string", "enum": values}),
            };
            describe(&mut schema, t.description.as_deref());
            schemas.insert(format!("{}.{}", p.name, t.name), schema);
        }
    }
    let mut info = json!({
        "title": package.name,
        "version": api_version(package),
    });
    describe(&mut info, package.description.as_deref());
    let mut components = Map::new();
    if !schemas.is_empty() {
        components.insert("schemas".into(), Value::Object(schemas));
    }
    if !doc.messages.is_empty() {
        components.insert("messages".into(), Value::Object(doc.messages));
    }
    json!({
        "asyncapi": "3.0.0",
        "id": format!("urn:natsgen:{}", package.name),
        "info": info,
        "defaultContentType": "application/json",
        "channels": doc.channels,
        "operations": doc.operations,
        "components": components,
    })
}

/// The services' version when they agree on one, else `0.0.0`.
fn api_version(package: &Package) -> String {
    let mut versions = package.services.iter().filter_map(|s| s.version.as_deref());
    match versions.next() {
        Some(first) if versions.all(|v| v == first) => first.to_string(),
        _ => "0.0.0".to_string(),
    }
}

fn describe(value: &mut Value, description: Option<&str>) {
    if let (Some(d), Value::Object(obj)) = (description, value) {
        obj.insert("description".into(), json!(d.trim()));
    }
}

/// JSON Schema of a type expression; named types point into `components.schemas`.
fn schema_of(ty: &TypeRef) -> Value {
    match ty {
        TypeRef::Primitive(p) => match p {
            Primitive::Bool => json!({"type": "boolean"}),
            Primitive::String => json!({"type": "string"}),
            Primitive::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Primitive::I32 => json!({"type": "integer", "format": "int32"}),
            Primitive::I64 => json!({"type": "integer", "format": "int64"}),
            Primitive::U32 => json!({"type": "integer", "format": "int32", "minimum": 0}),
            Primitive::U64 => json!({"type": "integer", "format": "int64", "minimum": 0}),
            Primitive::F32 => json!({"type": "number", "format": "float"}),
            Primitive::F64 => json!({"type": "number", "format": "double"}),
            Primitive::Timestamp => json!({"type": "string", "format": "date-time"}),
            Primitive::Uuid => json!({"type": "string", "format": "uuid"}),
            Primitive::Json => json!({}),
        },
        TypeRef::List(t) => json!({"type": "array", "items": schema_of(t)}),
        TypeRef::Map(t) => json!({"type": "object", "additionalProperties": schema_of(t)}),
        TypeRef::Optional(t) => json!({"oneOf": [schema_of(t), {"type": "null"}]}),
        TypeRef::Named { package, name } => {
            json!({"$ref": format!("#/components/schemas/{package}.{name}")})
        }
    }
}

/// An object of `fields`; the non-optional ones are required.
fn object_schema(fields: &[Field]) -> Value {
    let mut properties = Map::new();
    for f in fields {
        let mut schema = schema_of(&f.ty);
        if let Some(d) = &f.description {
            schema = match schema {
                Value::Object(mut obj) if !obj.contains_key("$ref") => {
                    obj.insert("description".into(), json!(d.trim()));
                    Value::Object(obj)
                }
                other => json!({"allOf": [other], "description": d.trim()}),
            };
        }
        properties.insert(f.name.clone(), schema);
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| !matches!(f.ty, TypeRef::Optional(_)))
        .map(|f| f.name.as_str())
        .collect();
    let mut obj = json!({"type": "object", "properties": properties});
    if !required.is_empty() {
        obj["required"] = json!(required);
    }
    obj
}

fn headers(names: &[(&str, &str)]) -> Value {
    let properties: Map<String, Value> = names
        .iter()
        .map(|(n, d)| {
            (
                (*n).to_string(),
                json!({"type": "string", "description": d}),
            )
        })
        .collect();
    json!({"type": "object", "properties": properties})
}

fn call_headers(durable: bool) -> Value {
    let mut names = vec![
        ("Natsgen-Call-Id", "The id of this call, a UUIDv7."),
        (
            "Natsgen-Caller-Chain",
            "Comma-separated call ids of the calls that led to this one, outermost first.",
        ),
        ("traceparent", "W3C trace context."),
    ];
    if durable {
        names.push((
            "Nats-Msg-Id",
            "Deduplication id: `<method>:<idempotency key>` for async calls, the event id for events.",
        ));
    } else {
        names.push((
            "Natsgen-Deadline-Ms",
            "Milliseconds the caller still waits; can shorten the method's timeout, never lengthen it.",
        ));
    }
    headers(&names)
}

fn nats_binding(queue: Option<&str>) -> Value {
    let mut nats = json!({"bindingVersion": NATS_BINDING_VERSION});
    if let Some(q) = queue {
        nats["queue"] = json!(q);
    }
    json!({"nats": nats})
}

fn reference(to: String) -> Value {
    json!({"$ref": to})
}

/// A key as a segment of a `$ref`: a JSON pointer token inside a URI fragment, where the `>`
/// of a wildcard subject must be percent-encoded.
fn token(key: &str) -> String {
    key.replace('~', "~0")
        .replace('/', "~1")
        .replace('>', "%3E")
}

struct Doc<'m> {
    model: &'m Model,
    channels: Map<String, Value>,
    operations: Map<String, Value>,
    messages: Map<String, Value>,
}

impl Doc<'_> {
    /// Adds a channel for `address` with one message per `(name, component message)`.
    fn channel(
        &mut self,
        key: &str,
        address: Option<&str>,
        description: &str,
        msgs: &[(&str, String)],
    ) {
        let messages: Map<String, Value> = msgs
            .iter()
            .map(|(name, component)| {
                (
                    (*name).to_string(),
                    reference(format!("#/components/messages/{component}")),
                )
            })
            .collect();
        self.channels.insert(
            key.to_string(),
            json!({"address": address, "description": description, "messages": messages}),
        );
    }

    fn channel_messages(key: &str, names: &[&str]) -> Vec<Value> {
        names
            .iter()
            .map(|n| reference(format!("#/channels/{}/messages/{}", token(key), token(n))))
            .collect()
    }

    fn method(&mut self, s: &Service, m: &Method) {
        let subject = contract::method_subject(s, m);
        let id = format!("{}.{}", s.name, m.name);
        let mut params = object_schema(&m.params);
        describe(&mut params, Some("The params object."));
        let mut call = json!({
            "name": format!("{id}.params"),
            "title": format!("{} params", m.name),
            "contentType": "application/json",
            "headers": call_headers(m.kind == MethodKind::Async),
            "payload": params,
        });
        describe(&mut call, m.description.as_deref());
        self.messages.insert(format!("{id}.params"), call);
        let mut operation = match m.kind {
            MethodKind::Rpc => {
                let result = match &m.returns {
                    Some(t) => schema_of(t),
                    None => json!({"type": "null"}),
                };
                self.messages.insert(
                    format!("{id}.result"),
                    json!({
                        "name": format!("{id}.result"),
                        "title": format!("{} result", m.name),
                        "contentType": "application/json",
                        "payload": {"type": "object", "properties": {"result": result}, "required": ["result"]},
                    }),
                );
                self.messages
                    .insert(format!("{id}.error"), self.error_message(&id, m));
                self.channel(
                    &subject,
                    Some(&subject),
                    &format!("Requests to `{id}` (RPC)."),
                    &[("params", format!("{id}.params"))],
                );
                let reply = format!("{subject}.reply");
                self.channel(
                    &reply,
                    None,
                    "The caller's reply inbox (the request's NATS reply subject).",
                    &[
                        ("result", format!("{id}.result")),
                        ("error", format!("{id}.error")),
                    ],
                );
                json!({
                    "action": "receive",
                    "title": format!("Serve {id}"),
                    "summary": format!("RPC; timeout {}.", contract::duration(contract::timeout_ms(m))),
                    "channel": reference(format!("#/channels/{subject}")),
                    "messages": Self::channel_messages(&subject, &["params"]),
                    "reply": {
                        "channel": reference(format!("#/channels/{reply}")),
                        "messages": Self::channel_messages(&reply, &["result", "error"]),
                    },
                    "bindings": nats_binding(Some(&s.name)),
                })
            }
            MethodKind::Async => {
                let retry = contract::retry(m.retry);
                self.channel(
                    &subject,
                    Some(&subject),
                    &format!(
                        "Async calls of `{id}`, stored in stream `ASYNC_{}` and processed by its durable consumer `{}`.",
                        s.name, s.name
                    ),
                    &[("params", format!("{id}.params"))],
                );
                self.dead_letters(s, &m.name, &[format!("{id}.params")]);
                json!({
                    "action": "receive",
                    "title": format!("Serve {id}"),
                    "summary": format!(
                        "Async (durable fire-and-forget); {} attempt(s), {} apart, then a dead letter.",
                        retry.max_attempts,
                        contract::duration(retry.backoff_ms)
                    ),
                    "channel": reference(format!("#/channels/{subject}")),
                    "messages": Self::channel_messages(&subject, &["params"]),
                    "bindings": nats_binding(Some(&s.name)),
                })
            }
        };
        describe(&mut operation, m.description.as_deref());
        self.operations.insert(id.clone(), operation);
        for topic in &m.emits {
            self.event_channel(topic);
            self.operations.insert(
                format!("{id}.emits.{topic}"),
                json!({
                    "action": "send",
                    "title": format!("{id} emits {topic}"),
                    "channel": reference(format!("#/channels/{topic}")),
                    "messages": Self::channel_messages(topic, &["event"]),
                }),
            );
        }
    }

    fn error_message(&self, id: &str, m: &Method) -> Value {
        let mut kinds: Vec<&str> = m.errors.iter().map(|e| e.name.as_str()).collect();
        kinds.extend(RUNTIME_ERROR_KINDS);
        let declared: Vec<Value> = m
            .errors
            .iter()
            .map(|e| {
                let mut one = json!({
                    "type": "object",
                    "properties": {"kind": {"const": e.name}, "details": object_schema(&e.fields)},
                });
                describe(&mut one, e.description.as_deref());
                one
            })
            .collect();
        let mut error = json!({
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": kinds},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
            "required": ["kind", "message"],
        });
        if !declared.is_empty() {
            error["anyOf"] = json!([
                {"properties": {"kind": {"enum": RUNTIME_ERROR_KINDS}}},
            ]);
            if let Some(any) = error["anyOf"].as_array_mut() {
                any.extend(declared);
            }
        }
        json!({
            "name": format!("{id}.error"),
            "title": format!("{} error", m.name),
            "summary": "A declared error (code 422) or a runtime error.",
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {
                    "Nats-Service-Error-Code": {"type": "string", "description": "The error code: 422 for declared errors, 400, 413, 500, 503 or 504."},
                    "Nats-Service-Error": {"type": "string", "description": "The message, one line, at most 512 bytes."},
                },
                "required": ["Nats-Service-Error-Code", "Nats-Service-Error"],
            },
            "payload": {"type": "object", "properties": {"error": error}, "required": ["error"]},
        })
    }

    /// The channel of an event topic (of any package) and its message, once.
    fn event_channel(&mut self, topic: &str) {
        if self.channels.contains_key(topic) {
            return;
        }
        let Some((package, event)) = self
            .model
            .packages
            .iter()
            .find_map(|p| p.events.iter().find(|e| e.topic == topic).map(|e| (p, e)))
        else {
            return;
        };
        let mut payload = match &event.payload {
            EventPayload::Named(t) => schema_of(t),
            EventPayload::Inline(fields) => object_schema(fields),
        };
        if !matches!(event.payload, EventPayload::Named(_)) {
            describe(&mut payload, event.description.as_deref());
        }
        let mut message = json!({
            "name": topic,
            "title": topic,
            "contentType": "application/json",
            "headers": call_headers(true),
            "payload": payload,
        });
        describe(&mut message, event.description.as_deref());
        self.messages.insert(format!("event.{topic}"), message);
        let description = format!(
            "Event `{topic}`, stored in stream `EVENTS_{}`.",
            package.name
        );
        self.channel(
            topic,
            Some(topic),
            &description,
            &[("event", format!("event.{topic}"))],
        );
    }

    fn handler(&mut self, s: &Service, h: &crate::model::Handler) {
        let id = format!("{}.{}", s.name, h.name);
        let mut components = Vec::new();
        for (_, topic) in &h.matches {
            self.event_channel(topic);
            components.push(format!("event.{topic}"));
        }
        let key = if h.is_wildcard() {
            let names: Vec<String> = h.matches.iter().map(|(_, t)| t.clone()).collect();
            let msgs: Vec<(&str, String)> = names
                .iter()
                .zip(&components)
                .map(|(n, c)| (n.as_str(), c.clone()))
                .collect();
            if !self.channels.contains_key(&h.pattern) {
                self.channel(
                    &h.pattern,
                    Some(&h.pattern),
                    &format!("Every event matching `{}`.", h.pattern),
                    &msgs,
                );
            }
            h.pattern.clone()
        } else {
            h.pattern.clone()
        };
        let names: Vec<String> = if h.is_wildcard() {
            h.matches.iter().map(|(_, t)| t.clone()).collect()
        } else {
            vec!["event".to_string()]
        };
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let (queue, how) = match (h.mode, contract::handler_group(s, h)) {
            (Mode::Shared, Some(g)) => (Some(g), "one copy per service"),
            _ => (None, "every instance gets a copy"),
        };
        let summary = match h.delivery {
            Delivery::Durable => {
                let r = contract::retry(h.retry);
                self.dead_letters(s, &h.name, &components);
                format!(
                    "Durable, {how}; {} attempt(s), {} apart, then a dead letter.",
                    r.max_attempts,
                    contract::duration(r.backoff_ms)
                )
            }
            Delivery::BestEffort => format!("Best effort (core NATS), {how}; failures are logged."),
        };
        let mut operation = json!({
            "action": "receive",
            "title": format!("Handle {} in {id}", h.pattern),
            "summary": summary,
            "channel": reference(format!("#/channels/{}", token(&key))),
            "messages": Self::channel_messages(&key, &names),
            "bindings": nats_binding(queue.as_deref()),
        });
        describe(&mut operation, h.description.as_deref());
        self.operations.insert(id, operation);
    }

    /// A `scope: service` timer's ticks: every instance sends each tick to the service's work
    /// queue, which stores one, and one instance receives it. An instance-scope timer sends
    /// nothing over NATS and is not in the document.
    fn timer(&mut self, s: &Service, t: &Timer) {
        if t.scope != TimerScope::Service {
            return;
        }
        let subject = contract::timer_subject(s, t);
        let id = format!("{}.{}", s.name, t.name);
        let every = contract::duration(t.every_ms);
        let mut tick = json!({
            "name": format!("{id}.tick"),
            "title": format!("{} tick", t.name),
            "contentType": "application/json",
            "headers": headers(&[
                ("Nats-Msg-Id", "<timer>:<tick>: every instance sends each tick; the stream stores one."),
                ("Natsgen-Call-Id", "The call id of the run."),
            ]),
            "payload": {
                "type": "object",
                "properties": {"tick": {"type": "integer", "minimum": 0, "description": "Milliseconds since the Unix epoch divided by the period."}},
                "required": ["tick"],
            },
        });
        describe(&mut tick, t.description.as_deref());
        self.messages.insert(format!("{id}.tick"), tick);
        self.channel(
            &subject,
            Some(&subject),
            &format!(
                "Ticks of the timer `{id}` (every {every}), stored in stream `ASYNC_{}` and processed by its durable consumer `{}`.",
                s.name, s.name
            ),
            &[("tick", format!("{id}.tick"))],
        );
        self.dead_letters(s, &t.name, &[format!("{id}.tick")]);
        self.operations.insert(
            format!("{id}.offer"),
            json!({
                "action": "send",
                "title": format!("Offer the ticks of {id}"),
                "summary": format!("Every {every}, at multiples of the period since the Unix epoch, by every instance."),
                "channel": reference(format!("#/channels/{subject}")),
                "messages": Self::channel_messages(&subject, &["tick"]),
            }),
        );
        let r = contract::retry(t.retry);
        let mut operation = json!({
            "action": "receive",
            "title": format!("Run {id}"),
            "summary": format!(
                "Timer every {every}, one instance per tick; {} attempt(s), {} apart, then a dead letter.",
                r.max_attempts,
                contract::duration(r.backoff_ms)
            ),
            "channel": reference(format!("#/channels/{subject}")),
            "messages": Self::channel_messages(&subject, &["tick"]),
            "bindings": nats_binding(Some(&s.name)),
        });
        describe(&mut operation, t.description.as_deref());
        self.operations.insert(id, operation);
    }

    /// The dead-letter channel of an endpoint, its message and the send operation.
    fn dead_letters(&mut self, s: &Service, endpoint: &str, originals: &[String]) {
        let subject = contract::dlq_subject(s, endpoint);
        let id = format!("{}.{endpoint}.dead_letter", s.name);
        let payloads: Vec<Value> = originals
            .iter()
            .filter_map(|c| self.messages.get(c).map(|m| m["payload"].clone()))
            .collect();
        let payload = match payloads.len() {
            1 => payloads.into_iter().next().unwrap_or_default(),
            _ => json!({"oneOf": payloads}),
        };
        self.messages.insert(
            id.clone(),
            json!({
                "name": id,
                "title": format!("{}.{endpoint} dead letter", s.name),
                "summary": "The original body, unchanged (or its beginning, when it does not fit), with what went wrong in headers.",
                "contentType": "application/json",
                "headers": headers(&[
                    ("Natsgen-Dlq-Reason", "failed, abandoned, undecodable, unknown_method or undeliverable."),
                    ("Natsgen-Dlq-Subject", "The subject the message was published on."),
                    ("Natsgen-Dlq-Stream", "The stream that stored it."),
                    ("Natsgen-Dlq-Sequence", "Its sequence in that stream."),
                    ("Natsgen-Dlq-Attempts", "Deliveries so far."),
                    ("Natsgen-Dlq-Error-Kind", "The last error's kind."),
                    ("Natsgen-Dlq-Error-Code", "The last error's code."),
                    ("Natsgen-Dlq-Error-Message", "The last error's message."),
                    ("Natsgen-Dlq-Msg-Id", "The original Nats-Msg-Id."),
                    ("Nats-Msg-Id", "dlq:<stream>:<sequence>:<consumer>."),
                ]),
                "payload": payload,
            }),
        );
        self.channel(
            &subject,
            Some(&subject),
            &format!(
                "Dead letters of `{}.{endpoint}`, stored in stream `NATSGEN_DLQ` (kept 30 days).",
                s.name
            ),
            &[("dead_letter", id.clone())],
        );
        self.operations.insert(
            id.clone(),
            json!({
                "action": "send",
                "title": format!("Dead-letter {}.{endpoint}", s.name),
                "channel": reference(format!("#/channels/{subject}")),
                "messages": Self::channel_messages(&subject, &["dead_letter"]),
            }),
        );
    }
}
