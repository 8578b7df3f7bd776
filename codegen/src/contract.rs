//! What the checked [`Model`] means on the wire, in the terms the reference, AsyncAPI and diff
//! outputs share: subjects, streams, consumers, effective defaults and who emits or handles an
//! event.

use crate::model::{Handler, Method, MethodKind, Model, Package, Retry, Service, Timer, TypeRef};
use crate::validate::{DEFAULT_RETRY, DEFAULT_TIMEOUT_MS};

/// The subject a method is called on: `<service>.rpc.<method>` or `<service>.async.<method>`.
pub fn method_subject(service: &Service, method: &Method) -> String {
    match method.kind {
        MethodKind::Rpc => format!("{}.rpc.{}", service.name, method.name),
        MethodKind::Async => format!("{}.async.{}", service.name, method.name),
    }
}

/// The subject a `scope: service` timer's ticks travel on, as async calls of the service to
/// itself: `<service>.async.<timer>`.
pub fn timer_subject(service: &Service, timer: &Timer) -> String {
    format!("{}.async.{}", service.name, timer.name)
}

/// The dead-letter subject of an async method, a durable handler or a `scope: service` timer.
pub fn dlq_subject(service: &Service, endpoint: &str) -> String {
    format!("natsgen.dlq.{}.{endpoint}", service.name)
}

/// The queue group of a handler's subscription or consumer; `None` for broadcast handlers.
pub fn handler_group(service: &Service, handler: &Handler) -> Option<String> {
    match handler.mode {
        crate::model::Mode::Shared => Some(format!("{}_{}", service.name, handler.name)),
        crate::model::Mode::Broadcast => None,
    }
}

/// The timeout an RPC method gets: its own or the default.
pub fn timeout_ms(method: &Method) -> u64 {
    method.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
}

/// The retry policy an async method or durable handler gets: its own or the default.
pub fn retry(retry: Option<Retry>) -> Retry {
    retry.unwrap_or(DEFAULT_RETRY)
}

/// A duration in the schema's own notation (`10s`, `500ms`, `2m`).
pub fn duration(ms: u64) -> String {
    if ms == 0 || !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

/// A type expression as the schema writes it, seen from package `here`.
pub fn type_expr(ty: &TypeRef, here: &str) -> String {
    match ty {
        TypeRef::Primitive(p) => crate::model::Primitive::ALL
            .iter()
            .find(|(_, q)| q == p)
            .map(|(n, _)| (*n).to_string())
            .unwrap_or_default(),
        TypeRef::List(t) => format!("list<{}>", type_expr(t, here)),
        TypeRef::Map(t) => format!("map<{}>", type_expr(t, here)),
        TypeRef::Optional(t) => format!("optional<{}>", type_expr(t, here)),
        TypeRef::Named { package, name } if package == here => name.clone(),
        TypeRef::Named { package, name } => format!("{package}.{name}"),
    }
}

/// The methods, across all packages, whose `emits` names `topic`: `(service, method)`.
pub fn emitters<'m>(model: &'m Model, topic: &str) -> Vec<(&'m Service, &'m Method)> {
    model
        .packages
        .iter()
        .flat_map(|p| &p.services)
        .flat_map(|s| s.methods.iter().map(move |m| (s, m)))
        .filter(|(_, m)| m.emits.iter().any(|t| t == topic))
        .collect()
}

/// The handlers, across all packages, that receive the event `topic` of `package`.
pub fn handlers_of<'m>(
    model: &'m Model,
    package: &str,
    topic: &str,
) -> Vec<(&'m Service, &'m Handler)> {
    model
        .packages
        .iter()
        .flat_map(|p| &p.services)
        .flat_map(|s| s.handlers.iter().map(move |h| (s, h)))
        .filter(|(_, h)| h.matches.iter().any(|(p, t)| p == package && t == topic))
        .collect()
}

/// The package a root schema file declares: the one read from `path`, else the last loaded.
pub fn root_package<'m>(model: &'m Model, path: &std::path::Path) -> Option<&'m Package> {
    let wanted = std::fs::canonicalize(path).ok();
    model
        .packages
        .iter()
        .find(|p| {
            wanted.is_some() && std::fs::canonicalize(&p.path).ok().as_deref() == wanted.as_deref()
        })
        .or_else(|| model.packages.last())
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_like_the_schema() {
        assert_eq!(duration(10_000), "10s");
        assert_eq!(duration(1_500), "1500ms");
        assert_eq!(duration(120_000), "2m");
        assert_eq!(duration(7_200_000), "2h");
        assert_eq!(duration(0), "0ms");
    }
}
