//! A JSON Schema of the schema file format itself: what `natsgen json-schema` prints.
//!
//! Editors that speak the YAML language server protocol use it to complete keys, show their
//! documentation and flag a value of the wrong shape as it is typed. It checks shape only
//! (keys, kinds of values, the spelling of names, durations and versions); `natsgen check`
//! remains the judge of everything that needs the whole file, such as unknown types or events.
//! Written in draft-07, the draft the YAML language server supports best.

use serde_json::{json, Value};

use crate::model::Primitive;

/// The JSON Schema (draft-07) of a natsgen schema file, format version 1.
pub fn schema_format() -> Value {
    let primitives: Vec<&str> = Primitive::ALL.iter().map(|(n, _)| *n).collect();
    let named = |description: &str, value: Value| {
        json!({
            "description": description,
            "type": ["object", "null"],
            "additionalProperties": value,
        })
    };
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://raw.githubusercontent.com/natsgen/natsgen/main/schemas/natsgen.schema.json",
        "title": "natsgen schema",
        "description": "A natsgen schema file (format version 1): types, events and services of one package. See docs/SCHEMA.md.",
        "type": "object",
        "additionalProperties": false,
        "required": ["natsgen"],
        "properties": {
            "natsgen": {"description": "The format version.", "const": 1},
            "package": {
                "description": "The package name: module and file name of the generated code. Default: the file stem.",
                "$ref": "#/definitions/snake_name",
            },
            "description": {"$ref": "#/definitions/description"},
            "imports": {
                "description": "Schema files whose types and events this one uses, relative to this file.",
                "type": "array",
                "items": {"type": "string"},
            },
            "types": named("Named types: structs (`fields`) and enums (`enum`), PascalCase.", json!({"$ref": "#/definitions/type_def"})),
            "events": named("Event topics (the NATS subjects) and their payloads.", json!({"$ref": "#/definitions/event"})),
            "services": named("Services (snake_case): their methods, event handlers and timers.", json!({"$ref": "#/definitions/service"})),
        },
        "definitions": {
            "description": {
                "description": "Text; becomes doc comments and reference documentation.",
                "type": "string",
            },
            "snake_name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
            "duration": {
                "description": "A positive number and a unit: `500ms`, `10s`, `1.5s`, `2m`, `1h`.",
                "type": "string",
                "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$",
            },
            "type_expr": {
                "description": "bool string bytes i32 i64 u32 u64 f32 f64 timestamp uuid json, list<T>, map<T>, optional<T>, a declared type, or package.Type of an import.",
                "anyOf": [
                    {"enum": primitives},
                    {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_.<> ]*$"},
                ],
            },
            "fields": {
                "description": "Fields by wire name: a type expression, or {type, description}.",
                "type": ["object", "null"],
                "additionalProperties": {
                    "anyOf": [
                        {"$ref": "#/definitions/type_expr"},
                        {
                            "type": "object",
                            "additionalProperties": false,
                            "required": ["type"],
                            "properties": {
                                "type": {"$ref": "#/definitions/type_expr"},
                                "description": {"$ref": "#/definitions/description"},
                            },
                        },
                    ],
                },
            },
            "type_def": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "description": {"$ref": "#/definitions/description"},
                    "fields": {"$ref": "#/definitions/fields"},
                    "enum": {
                        "description": "The values, serialised as the strings given.",
                        "type": "array",
                        "items": {"type": "string"},
                    },
                },
                "oneOf": [{"required": ["fields"]}, {"required": ["enum"]}],
            },
            "event": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "description": {"$ref": "#/definitions/description"},
                    "payload": {"description": "A named type.", "$ref": "#/definitions/type_expr"},
                    "fields": {"$ref": "#/definitions/fields"},
                },
                "oneOf": [{"required": ["payload"]}, {"required": ["fields"]}],
            },
            "retry": {
                "description": "Attempts and the delay between them. Default: 3 attempts, 1s.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64},
                    "backoff": {"$ref": "#/definitions/duration"},
                },
            },
            "error": {
                "description": "A typed application error (reply code 422).",
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "description": {"$ref": "#/definitions/description"},
                    "fields": {"$ref": "#/definitions/fields"},
                },
            },
            "method": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "kind": {
                        "description": "`rpc` (request-reply, the default) or `async` (durable fire-and-forget).",
                        "enum": ["rpc", "async"],
                    },
                    "description": {"$ref": "#/definitions/description"},
                    "params": {"$ref": "#/definitions/fields"},
                    "returns": {"description": "RPC only. Default: nothing (`null`).", "$ref": "#/definitions/type_expr"},
                    "emits": {
                        "description": "Topics the method publishes: documentation and discovery metadata.",
                        "type": "array",
                        "items": {"type": "string"},
                    },
                    "errors": {
                        "description": "RPC only: declared errors, PascalCase.",
                        "type": ["object", "null"],
                        "additionalProperties": {"$ref": "#/definitions/error"},
                    },
                    "timeout": {"description": "RPC only. Default: 10s.", "$ref": "#/definitions/duration"},
                    "retry": {"description": "Async only.", "$ref": "#/definitions/retry"},
                },
                "if": {"required": ["kind"], "properties": {"kind": {"const": "async"}}},
                "then": {"not": {"anyOf": [
                    {"required": ["returns"]},
                    {"required": ["errors"]},
                    {"required": ["timeout"]},
                ]}},
                "else": {"not": {"required": ["retry"]}},
            },
            "handler": {
                "anyOf": [
                    {"description": "The handler name.", "$ref": "#/definitions/snake_name"},
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["handler"],
                        "properties": {
                            "handler": {"$ref": "#/definitions/snake_name"},
                            "description": {"$ref": "#/definitions/description"},
                            "mode": {
                                "description": "`shared` (one copy per service, the default) or `broadcast` (every instance).",
                                "enum": ["shared", "broadcast"],
                            },
                            "delivery": {
                                "description": "`durable` (JetStream, the default) or `best_effort` (core NATS).",
                                "enum": ["durable", "best_effort"],
                            },
                            "retry": {"$ref": "#/definitions/retry"},
                        },
                    },
                ],
            },
            "timer": {
                "anyOf": [
                    {"description": "The period; scope `service`.", "$ref": "#/definitions/duration"},
                    {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["every"],
                        "properties": {
                            "every": {"description": "The period, at least 100ms. Ticks fall on multiples of it since the Unix epoch.", "$ref": "#/definitions/duration"},
                            "scope": {
                                "description": "`service` (exactly one instance runs each tick, the default) or `instance` (every instance does).",
                                "enum": ["service", "instance"],
                            },
                            "description": {"$ref": "#/definitions/description"},
                            "retry": {"description": "`scope: service` only: retries of a failed tick.", "$ref": "#/definitions/retry"},
                        },
                        "if": {"required": ["scope"], "properties": {"scope": {"const": "instance"}}},
                        "then": {"not": {"required": ["retry"]}},
                    },
                ],
            },
            "service": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "description": {"$ref": "#/definitions/description"},
                    "version": {
                        "description": "A semantic version, reported by discovery. Default: 0.0.0.",
                        "type": "string",
                        "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+([-+].*)?$",
                    },
                    "methods": named("Methods (snake_case), on `<service>.rpc.<method>` or `<service>.async.<method>`.", json!({"$ref": "#/definitions/method"})),
                    "handles": named("Event handlers by topic or pattern (`*`, `>`).", json!({"$ref": "#/definitions/handler"})),
                    "timers": named("Timers (snake_case): work the service runs every period.", json!({"$ref": "#/definitions/timer"})),
                },
            },
        },
    })
}
