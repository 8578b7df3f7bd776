//! YAML → a tree of nodes that keep their source positions.
//!
//! Parsing goes through serde-saphyr into a generic node tree (rather than into typed structs) so
//! that validation can report every unknown key, wrong shape and bad value with its position,
//! all at once, instead of stopping at the first serde error.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::options::{DuplicateKeyPolicy, Options};
use serde_saphyr::{Location, Spanned};

use crate::diagnostic::{Diagnostic, Loc, SourceFile};

/// A YAML node with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in source order; duplicate keys are kept so validation can report them.
    Map(Vec<(Key, Node)>),
}

/// A mapping key, always as text.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub loc: Loc,
}

impl Node {
    /// What kind of YAML value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar as text, the way it was (most likely) written.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// Parses a schema file's text into a node tree.
pub fn parse(source: &SourceFile) -> Result<Node, Box<Diagnostic>> {
    let mut options = Options::default();
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    options.strict_booleans = true;
    // A schema is never deeper than a dozen levels; a low cap keeps deeply nested input from
    // exhausting the stack of a 2 MiB thread (tests, tokio workers) while it is deserialized.
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.max_depth = 24;
    budget.flow_nesting_limit = budget.flow_nesting_limit.min(24);
    options.budget = Some(budget);
    let parsed: Result<Spanned<RawNode>, _> =
        serde_saphyr::from_str_with_options(&source.text, options);
    match parsed {
        Ok(node) => Ok(convert(node, &source.text)),
        Err(error) => {
            let loc = error
                .location()
                .map(|l| loc_of(&l, &source.text))
                .unwrap_or(Loc {
                    line: 1,
                    column: 1,
                    offset: 0,
                    len: 0,
                });
            let message = first_line(&error.to_string());
            Err(Box::new(
                Diagnostic::new(
                    "natsgen::syntax",
                    source,
                    loc,
                    format!("invalid YAML: {message}"),
                )
                .label("here"),
            ))
        }
    }
}

fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    // serde-saphyr prefixes its own position, which the diagnostic shows already.
    match line.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest.to_string(),
        _ => line.to_string(),
    }
}

fn loc_of(location: &Location, text: &str) -> Loc {
    let span = location.span();
    let offset = span
        .byte_offset()
        .map(|o| usize::try_from(o).unwrap_or(usize::MAX))
        .unwrap_or_else(|| char_to_byte(text, span.offset()));
    let len = span
        .byte_len()
        .map(|l| usize::try_from(l).unwrap_or(0))
        .unwrap_or(0);
    let offset = offset.min(text.len());
    let len = len.min(text.len() - offset);
    Loc {
        line: u32::try_from(location.line()).unwrap_or(u32::MAX),
        column: u32::try_from(location.column()).unwrap_or(u32::MAX),
        offset,
        len,
    }
}

fn char_to_byte(text: &str, chars: u64) -> usize {
    let chars = usize::try_from(chars).unwrap_or(usize::MAX);
    text.char_indices()
        .nth(chars)
        .map(|(i, _)| i)
        .unwrap_or(text.len())
}

fn convert(node: Spanned<RawNode>, text: &str) -> Node {
    let mut loc = loc_of(&node.referenced, text);
    let value = match node.value {
        RawNode::Null => Value::Null,
        RawNode::Bool(b) => Value::Bool(b),
        RawNode::Int(i) => Value::Int(i),
        RawNode::Float(f) => Value::Float(f),
        RawNode::Str(s) => Value::Str(s),
        RawNode::Seq(items) => Value::Seq(items.into_iter().map(|n| convert(n, text)).collect()),
        RawNode::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| {
                    let key = Key {
                        name: k.value.0,
                        loc: loc_of(&k.referenced, text),
                    };
                    (key, convert(v, text))
                })
                .collect(),
        ),
    };
    // Collections carry a zero-length span at their start; a one-character label reads better.
    if loc.len == 0 && loc.offset < text.len() {
        loc.len = text[loc.offset..].chars().next().map_or(0, char::len_utf8);
    }
    Node { value, loc }
}

enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawKey>, Spanned<RawNode>)>),
}

struct RawKey(String);

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RawKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawKey, E> {
                Ok(RawKey(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawKey, E> {
                Ok(RawKey(v))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = RawNode;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
                Ok(RawNode::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
                Ok(RawNode::Str(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
                Ok(RawNode::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
                Ok(RawNode::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
                Ok(RawNode::Int(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
                Ok(RawNode::Float(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
                Ok(RawNode::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<RawNode, E> {
                Ok(RawNode::Null)
            }
            fn visit_none<E>(self) -> Result<RawNode, E> {
                Ok(RawNode::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
                RawNode::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawNode::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    let value = map.next_value()?;
                    entries.push((key, value));
                }
                Ok(RawNode::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}
