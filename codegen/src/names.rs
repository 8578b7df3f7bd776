//! Turning schema names into Rust identifiers: case conversion and keyword escaping.

use heck::{ToSnakeCase, ToUpperCamelCase};

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Keywords that cannot be raw identifiers.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// `name` as a usable Rust identifier: `r#type` for keywords, `self_` for those that cannot be raw.
pub fn escape(name: &str) -> String {
    if NOT_RAW.contains(&name) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

/// The identifier without a raw prefix, for building other names from it.
pub fn unraw(ident: &str) -> &str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

/// The Rust field or parameter name for a wire name (`orderId` → `order_id`), escaped.
pub fn field(wire: &str) -> String {
    escape(&wire.to_snake_case())
}

/// The Rust name of a method parameter: like [`field`], but `ctx` and `options` (the names of the
/// parameters every generated method has) get a trailing `_`.
pub fn param(wire: &str) -> String {
    let name = field(wire);
    if matches!(name.as_str(), "ctx" | "options") {
        format!("{name}_")
    } else {
        name
    }
}

/// The Rust name of a method or handler (a snake_case schema name): runs of `_` collapse to one,
/// since rustc's `non_snake_case` lint rejects `__` inside a name (`a__b` → `a_b`); keywords are
/// escaped. The wire name (the subject token) is unchanged.
pub fn member(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    escape(&out)
}

/// The primitive types: a module of one of these names would hide the type from the code around
/// it (generated and derived code names `u32`, `str`, `usize`, ...).
const PRIMITIVES: &[&str] = &[
    "bool", "char", "str", "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64",
    "u128", "usize", "f16", "f32", "f64", "f128",
];

/// The module of a service's generated error enums: the service name as a method's Rust name
/// (`order_service`, `a__b` → `a_b`, `match` → `r#match`), with a `_` after the name of a
/// primitive type (`u32` → `u32_`).
pub fn service_module(service: &str) -> String {
    let name = member(service);
    if PRIMITIVES.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

/// Whether rustc's `non_snake_case` lint accepts `name` as written: no `__` between its first and
/// last non-`_` characters.
pub fn is_lint_snake_case(name: &str) -> bool {
    !name.trim_matches('_').contains("__")
}

/// A PascalCase identifier for a snake_case name or topic, escaped (`self` → `Self_`).
pub fn pascal_ident(name: &str) -> String {
    escape(&pascal(name))
}

/// The snake_case form of a wire name before escaping, or `None` when no identifier can be made.
pub fn field_base(wire: &str) -> Option<String> {
    let snake = wire.to_snake_case();
    is_identifier(&snake).then_some(snake)
}

/// A PascalCase name for a snake_case schema name or topic (`order_service` → `OrderService`,
/// `orders.created` → `OrdersCreated`).
pub fn pascal(name: &str) -> String {
    name.replace('.', "_").to_upper_camel_case()
}

/// A method name for a topic on the events publisher (`orders.created` → `orders_created`).
pub fn topic_method(topic: &str) -> String {
    escape(&topic.replace(['.', '-'], "_").to_snake_case())
}

/// A type name as written in the schema (PascalCase), escaped (`Self` → `Self_`).
pub fn type_ident(name: &str) -> String {
    escape(name)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    s != "_" && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn is_snake_case(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

pub fn is_pascal_case(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='Z')) && chars.all(|c| c.is_ascii_alphanumeric())
}

pub fn to_snake(s: &str) -> String {
    s.to_snake_case()
}

pub fn to_pascal(s: &str) -> String {
    s.to_upper_camel_case()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_are_escaped_never_rejected() {
        assert_eq!(field("type"), "r#type");
        assert_eq!(field("self"), "self_");
        assert_eq!(field("orderId"), "order_id");
        assert_eq!(type_ident("Self"), "Self_");
        assert_eq!(escape("fn"), "r#fn");
        assert_eq!(pascal("orders.created"), "OrdersCreated");
        assert_eq!(topic_method("orders.created"), "orders_created");
        assert_eq!(field_base("2fa"), None);
        assert_eq!(member("a__b"), "a_b");
        assert_eq!(member("a___b__"), "a_b_");
        assert_eq!(member("fn"), "r#fn");
        assert_eq!(member("self__"), "self_");
        assert_eq!(service_module("order_service"), "order_service");
        assert_eq!(service_module("u32"), "u32_");
        assert_eq!(service_module("match"), "r#match");
        assert!(!is_lint_snake_case("a__pkg"));
        assert!(is_lint_snake_case("a_pkg_"));
    }
}
