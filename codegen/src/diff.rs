//! What changed between two versions of a schema, and whether each change breaks what is
//! already deployed: what `natsgen diff` reports.
//!
//! Old and new versions run side by side during any rollout — old clients call new servers,
//! new clients call old servers, old publishers feed new handlers and the other way round — so
//! a change is *breaking* when a message that one version writes can fail in the other version's
//! reader, or when a subject, queue group, stream or consumer that deployed code uses goes away.
//! Everything else is *compatible*. The rules are documented in `docs/SCHEMA.md` ("Versioning").

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{json, Value};

use crate::contract::{self, type_expr};
use crate::model::{
    Delivery, EventPayload, Field, Handler, Method, MethodKind, Mode, Model, Package, Service,
    TimerScope, TypeBody, TypeRef,
};

/// Whether a change breaks deployed clients or servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Breaking,
    Compatible,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Breaking => "breaking",
            Severity::Compatible => "compatible",
        }
    }
}

/// One difference between the old and the new schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub severity: Severity,
    /// The rule that classified it, a stable name (`method_removed`, `field_added_required`, ...).
    pub rule: &'static str,
    /// What changed: `service.method`, `package.Type.field`, an event topic, ...
    pub path: String,
    /// What changed and, for a breaking change, what fails.
    pub message: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<10} {}: {} [{}]",
            self.severity.as_str(),
            self.path,
            self.message,
            self.rule
        )
    }
}

/// The changes from `old` to `new`, breaking ones first, each group in schema order.
pub fn diff(old: &Model, new: &Model) -> Vec<Change> {
    let mut d = Differ {
        old,
        new,
        changes: Vec::new(),
    };
    d.packages();
    d.changes.sort_by_key(|c| c.severity);
    d.changes
}

/// Whether any change breaks.
pub fn is_breaking(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.severity == Severity::Breaking)
}

/// The changes as JSON, for CI: `{"breaking": bool, "summary": {...}, "changes": [...]}`.
pub fn to_json(changes: &[Change]) -> Value {
    let breaking = changes
        .iter()
        .filter(|c| c.severity == Severity::Breaking)
        .count();
    json!({
        "breaking": breaking > 0,
        "summary": {"breaking": breaking, "compatible": changes.len() - breaking},
        "changes": changes.iter().map(|c| json!({
            "severity": c.severity.as_str(),
            "rule": c.rule,
            "path": c.path,
            "message": c.message,
        })).collect::<Vec<_>>(),
    })
}

struct Differ<'m> {
    old: &'m Model,
    new: &'m Model,
    changes: Vec<Change>,
}

fn find<T>(items: &[T], key: impl Fn(&T) -> bool) -> Option<&T> {
    items.iter().find(|i| key(i))
}

fn is_optional(f: &Field) -> bool {
    matches!(f.ty, TypeRef::Optional(_))
}

/// Whether two packages declare a service, event or type of the same name: what makes a
/// package that disappeared and one that appeared a rename rather than two changes.
fn shares_a_name(a: &Package, b: &Package) -> bool {
    a.services
        .iter()
        .any(|s| b.services.iter().any(|t| t.name == s.name))
        || a.events
            .iter()
            .any(|e| b.events.iter().any(|f| f.topic == e.topic))
        || a.types
            .iter()
            .any(|x| b.types.iter().any(|y| y.name == x.name))
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Shared => "shared",
        Mode::Broadcast => "broadcast",
    }
}

fn delivery_name(d: Delivery) -> &'static str {
    match d {
        Delivery::Durable => "durable",
        Delivery::BestEffort => "best_effort",
    }
}

fn kind_name(k: MethodKind) -> &'static str {
    match k {
        MethodKind::Rpc => "rpc",
        MethodKind::Async => "async",
    }
}

impl<'m> Differ<'m> {
    fn push(&mut self, severity: Severity, rule: &'static str, path: String, message: String) {
        self.changes.push(Change {
            severity,
            rule,
            path,
            message,
        });
    }

    fn breaking(&mut self, rule: &'static str, path: String, message: impl Into<String>) {
        self.push(Severity::Breaking, rule, path, message.into());
    }

    fn compatible(&mut self, rule: &'static str, path: String, message: impl Into<String>) {
        self.push(Severity::Compatible, rule, path, message.into());
    }

    fn packages(&mut self) {
        let removed: Vec<&Package> = self
            .old
            .packages
            .iter()
            .filter(|p| !self.new.packages.iter().any(|q| q.name == p.name))
            .collect();
        let added: Vec<&Package> = self
            .new
            .packages
            .iter()
            .filter(|p| !self.old.packages.iter().any(|q| q.name == p.name))
            .collect();
        let mut pairs: Vec<(&Package, &Package)> = self
            .old
            .packages
            .iter()
            .filter_map(|p| find(&self.new.packages, |q| q.name == p.name).map(|q| (p, q)))
            .collect();
        let renamed = match (removed.as_slice(), added.as_slice()) {
            ([old], [new]) if shares_a_name(old, new) => Some((*old, *new)),
            _ => None,
        };
        if let Some((old, new)) = renamed {
            self.breaking(
                "package_renamed",
                new.name.clone(),
                format!(
                    "package '{}' renamed to '{}': its events move from stream EVENTS_{} to EVENTS_{}, and code that includes the generated module by name no longer builds",
                    old.name, new.name, old.name, new.name
                ),
            );
            pairs.push((old, new));
        } else {
            for p in removed {
                self.breaking(
                    "package_removed",
                    p.name.clone(),
                    "package removed, with its services, events and types",
                );
                for e in &p.events {
                    self.moved(p, &e.topic);
                }
            }
            for p in added {
                self.compatible("package_added", p.name.clone(), "package added");
            }
        }
        for (old, new) in pairs {
            self.types(old, new);
            self.events(old, new);
            self.services(old, new);
        }
    }

    fn types(&mut self, old: &Package, new: &Package) {
        for t in &old.types {
            let path = format!("{}.{}", old.name, t.name);
            let Some(n) = find(&new.types, |n| n.name == t.name) else {
                self.breaking(
                    "type_removed",
                    path,
                    "type removed: schemas importing it and code generated from the old schema name it",
                );
                continue;
            };
            match (&t.body, &n.body) {
                (TypeBody::Struct(a), TypeBody::Struct(b)) => {
                    self.fields(a, b, &path, "field");
                }
                (TypeBody::Enum(a), TypeBody::Enum(b)) => {
                    for v in a.iter().filter(|v| !b.contains(v)) {
                        self.breaking(
                            "enum_value_removed",
                            path.clone(),
                            format!("enum value '{v}' removed: deployed writers still send it, and new readers reject it"),
                        );
                    }
                    for v in b.iter().filter(|v| !a.contains(v)) {
                        self.breaking(
                            "enum_value_added",
                            path.clone(),
                            format!("enum value '{v}' added: deployed readers reject it as an unknown value"),
                        );
                    }
                }
                _ => self.breaking(
                    "type_kind_changed",
                    path,
                    "changed between a struct and an enum: its JSON form changes",
                ),
            }
        }
        for t in &new.types {
            if !old.types.iter().any(|o| o.name == t.name) {
                self.compatible(
                    "type_added",
                    format!("{}.{}", new.name, t.name),
                    "type added",
                );
            }
        }
    }

    /// Compares two field lists that travel as one JSON object (a struct, params, an inline
    /// event payload, an error's details). `what` is `field` or `param`.
    fn fields(&mut self, old: &[Field], new: &[Field], path: &str, what: &str) {
        for f in old {
            let fpath = format!("{path}.{}", f.name);
            let Some(n) = find(new, |n| n.name == f.name) else {
                if is_optional(f) {
                    self.compatible(
                        "field_removed_optional",
                        fpath,
                        format!("optional {what} removed: readers treat it as absent, and unknown fields are ignored"),
                    );
                } else {
                    self.breaking(
                        "field_removed",
                        fpath,
                        format!("required {what} removed: deployed readers still require it"),
                    );
                }
                continue;
            };
            self.field_type(&f.ty, &n.ty, &fpath, what);
        }
        for n in new {
            if old.iter().any(|f| f.name == n.name) {
                continue;
            }
            let fpath = format!("{path}.{}", n.name);
            if is_optional(n) {
                self.compatible(
                    "field_added_optional",
                    fpath,
                    format!(
                        "optional {what} added: deployed writers leave it out, which is allowed"
                    ),
                );
            } else {
                self.breaking(
                    "field_added_required",
                    fpath,
                    format!("required {what} added: deployed writers do not send it"),
                );
            }
        }
    }

    fn field_type(&mut self, old: &TypeRef, new: &TypeRef, path: &str, what: &str) {
        if old == new {
            return;
        }
        let (o, n) = (type_expr(old, ""), type_expr(new, ""));
        match (old, new) {
            (TypeRef::Optional(inner), _) if **inner == *new => self.breaking(
                "optional_to_required",
                path.to_string(),
                format!("{what} changed from optional to required: deployed writers may leave it out"),
            ),
            (_, TypeRef::Optional(inner)) if **inner == *old => self.breaking(
                "required_to_optional",
                path.to_string(),
                format!("{what} changed from required to optional: new writers may leave it out, and deployed readers require it"),
            ),
            _ => self.breaking(
                "type_changed",
                path.to_string(),
                format!("{what} type changed from {o} to {n}"),
            ),
        }
    }

    fn events(&mut self, old: &Package, new: &Package) {
        let removed: Vec<_> = old
            .events
            .iter()
            .filter(|e| !new.events.iter().any(|n| n.topic == e.topic))
            .collect();
        let added: Vec<_> = new
            .events
            .iter()
            .filter(|e| !old.events.iter().any(|o| o.topic == e.topic))
            .collect();
        let mut renamed_to: BTreeSet<&str> = BTreeSet::new();
        for e in &removed {
            if self.moved(old, &e.topic) {
                continue;
            }
            let twin = added
                .iter()
                .find(|a| a.payload == e.payload && !renamed_to.contains(a.topic.as_str()));
            match twin {
                Some(a) => {
                    renamed_to.insert(&a.topic);
                    self.breaking(
                        "event_renamed",
                        e.topic.clone(),
                        format!("topic renamed to '{}': deployed publishers and handlers use the old subject", a.topic),
                    );
                }
                None => self.breaking(
                    "event_removed",
                    e.topic.clone(),
                    "event removed: deployed publishers and handlers still use it",
                ),
            }
        }
        for a in added {
            if !renamed_to.contains(a.topic.as_str()) {
                self.compatible("event_added", a.topic.clone(), "event added");
            }
        }
        for e in &old.events {
            let Some(n) = find(&new.events, |n| n.topic == e.topic) else {
                continue;
            };
            let path = e.topic.clone();
            match (&e.payload, &n.payload) {
                (EventPayload::Named(a), EventPayload::Named(b)) => {
                    if a != b {
                        self.breaking(
                            "payload_changed",
                            path,
                            format!(
                                "payload changed from {} to {}",
                                type_expr(a, ""),
                                type_expr(b, "")
                            ),
                        );
                    }
                }
                (a, b) => {
                    match (
                        self.payload_fields(self.old, a),
                        self.payload_fields(self.new, b),
                    ) {
                        (Some(fa), Some(fb)) => self.fields(&fa, &fb, &path, "field"),
                        _ => self.breaking(
                            "payload_changed",
                            path,
                            "payload changed between inline fields and a type that is not a struct",
                        ),
                    }
                }
            }
        }
    }

    /// Reports `topic`, gone from package `old`, when another package of the new version
    /// declares it; returns whether one does.
    fn moved(&mut self, old: &Package, topic: &str) -> bool {
        let Some(now) = self
            .new
            .packages
            .iter()
            .find(|p| p.name != old.name && p.events.iter().any(|e| e.topic == topic))
        else {
            return false;
        };
        self.breaking(
            "event_moved",
            topic.to_string(),
            format!(
                "event moved from package '{}' to '{}': it is stored in stream EVENTS_{} instead of EVENTS_{}",
                old.name, now.name, now.name, old.name
            ),
        );
        true
    }

    /// The fields an event payload travels as, when it is an object.
    fn payload_fields(&self, model: &Model, payload: &EventPayload) -> Option<Vec<Field>> {
        match payload {
            EventPayload::Inline(fields) => Some(fields.clone()),
            EventPayload::Named(TypeRef::Named { package, name }) => model
                .packages
                .iter()
                .find(|p| &p.name == package)?
                .types
                .iter()
                .find(|t| &t.name == name)
                .and_then(|t| match &t.body {
                    TypeBody::Struct(f) => Some(f.clone()),
                    TypeBody::Enum(_) => None,
                }),
            EventPayload::Named(_) => None,
        }
    }

    fn services(&mut self, old: &Package, new: &Package) {
        for s in &old.services {
            if let Some(n) = find(&new.services, |n| n.name == s.name) {
                self.service(s, n);
                continue;
            }
            let elsewhere = self
                .new
                .packages
                .iter()
                .filter(|p| p.name != new.name)
                .find_map(|p| find(&p.services, |n| n.name == s.name).map(|n| (p, n)));
            if let Some((package, n)) = elsewhere {
                self.compatible(
                    "service_moved",
                    s.name.clone(),
                    format!(
                        "service moved to package '{}': its subjects do not change",
                        package.name
                    ),
                );
                self.service(s, n);
            } else if s.methods.is_empty() {
                self.compatible(
                    "service_removed",
                    s.name.clone(),
                    "service removed; it had no methods, so no caller depends on it (its durable consumers stay on the server until deleted)",
                );
            } else {
                self.breaking(
                    "service_removed",
                    s.name.clone(),
                    "service removed: deployed clients calling its methods get no responders",
                );
            }
        }
        for n in &new.services {
            let existed = self
                .old
                .packages
                .iter()
                .any(|p| p.services.iter().any(|s| s.name == n.name));
            if !existed {
                self.compatible("service_added", n.name.clone(), "service added");
            }
        }
    }

    fn service(&mut self, old: &Service, new: &Service) {
        if old.version != new.version {
            self.compatible(
                "version_changed",
                old.name.clone(),
                format!(
                    "version {} -> {}",
                    old.version.as_deref().unwrap_or("0.0.0"),
                    new.version.as_deref().unwrap_or("0.0.0")
                ),
            );
        }
        self.methods(old, new);
        self.handlers(old, new);
        self.timers(old, new);
    }

    fn timers(&mut self, old: &Service, new: &Service) {
        for t in &old.timers {
            let path = format!("{}.{}", old.name, t.name);
            let Some(n) = find(&new.timers, |n| n.name == t.name) else {
                let mut message = "timer removed".to_string();
                if t.scope == TimerScope::Service {
                    message.push_str(
                        ": during the rollout, ticks offered by old instances that reach new ones are dead-lettered as unknown_method",
                    );
                }
                self.compatible("timer_removed", path, message);
                continue;
            };
            if t.scope != n.scope {
                self.breaking(
                    "timer_scope_changed",
                    path.clone(),
                    format!(
                        "scope changed from {} to {}: during the rollout old and new instances run the ticks differently (once per service against once per instance), so ticks run more than once, and ticks offered to the work queue that reach new instances are dead-lettered",
                        t.scope.as_str(),
                        n.scope.as_str()
                    ),
                );
            }
            if t.every_ms != n.every_ms {
                self.compatible(
                    "timer_period_changed",
                    path.clone(),
                    format!(
                        "period {} -> {} (during the rollout, old and new instances tick at their own periods)",
                        contract::duration(t.every_ms),
                        contract::duration(n.every_ms)
                    ),
                );
            }
            if t.scope == TimerScope::Service && n.scope == TimerScope::Service {
                self.retry(&path, t.retry, n.retry);
            }
        }
        for n in &new.timers {
            if !old.timers.iter().any(|t| t.name == n.name) {
                let mut message = format!("timer added, every {}", contract::duration(n.every_ms));
                if n.scope == TimerScope::Service {
                    message.push_str(
                        ": during the rollout, ticks that reach instances without it are dead-lettered as unknown_method",
                    );
                }
                self.compatible("timer_added", format!("{}.{}", new.name, n.name), message);
            }
        }
    }

    fn methods(&mut self, old: &Service, new: &Service) {
        for m in &old.methods {
            let path = format!("{}.{}", old.name, m.name);
            let Some(n) = find(&new.methods, |n| n.name == m.name) else {
                self.breaking(
                    "method_removed",
                    path,
                    format!(
                        "method removed: deployed clients calling {} get {}",
                        contract::method_subject(old, m),
                        match m.kind {
                            MethodKind::Rpc => "no responders",
                            MethodKind::Async => "their calls dead-lettered as unknown_method",
                        }
                    ),
                );
                continue;
            };
            self.method(&path, m, n);
        }
        for n in &new.methods {
            if !old.methods.iter().any(|m| m.name == n.name) {
                self.compatible(
                    "method_added",
                    format!("{}.{}", new.name, n.name),
                    "method added",
                );
            }
        }
    }

    fn method(&mut self, path: &str, old: &Method, new: &Method) {
        if old.kind != new.kind {
            self.breaking(
                "method_kind_changed",
                path.to_string(),
                format!(
                    "kind changed from {} to {}: the method moves to another subject, and its callers wait differently",
                    kind_name(old.kind),
                    kind_name(new.kind)
                ),
            );
            return;
        }
        self.fields(&old.params, &new.params, path, "param");
        if old.returns != new.returns {
            let show = |t: &Option<TypeRef>| {
                t.as_ref()
                    .map_or_else(|| "nothing".to_string(), |t| type_expr(t, ""))
            };
            self.breaking(
                "returns_changed",
                path.to_string(),
                format!(
                    "result changed from {} to {}",
                    show(&old.returns),
                    show(&new.returns)
                ),
            );
        }
        for e in &old.errors {
            match find(&new.errors, |n| n.name == e.name) {
                None => self.breaking(
                    "error_removed",
                    format!("{path}.{}", e.name),
                    "declared error removed: deployed servers still reply with it, and new clients no longer know it",
                ),
                Some(n) => self.fields(&e.fields, &n.fields, &format!("{path}.{}", e.name), "field"),
            }
        }
        for n in &new.errors {
            if !old.errors.iter().any(|e| e.name == n.name) {
                self.breaking(
                    "error_added",
                    format!("{path}.{}", n.name),
                    "declared error added: deployed clients do not know it and see an internal error",
                );
            }
        }
        if old.kind == MethodKind::Rpc && contract::timeout_ms(old) != contract::timeout_ms(new) {
            self.compatible(
                "timeout_changed",
                path.to_string(),
                format!(
                    "timeout {} -> {}",
                    contract::duration(contract::timeout_ms(old)),
                    contract::duration(contract::timeout_ms(new))
                ),
            );
        }
        self.retry(path, old.retry, new.retry);
        if old.emits != new.emits {
            self.compatible(
                "emits_changed",
                path.to_string(),
                format!(
                    "emits [{}] -> [{}] (documentation and discovery metadata)",
                    old.emits.join(", "),
                    new.emits.join(", ")
                ),
            );
        }
    }

    fn retry(
        &mut self,
        path: &str,
        old: Option<crate::model::Retry>,
        new: Option<crate::model::Retry>,
    ) {
        let (a, b) = (contract::retry(old), contract::retry(new));
        if a != b {
            self.compatible(
                "retry_changed",
                path.to_string(),
                format!(
                    "retry {} attempt(s) every {} -> {} attempt(s) every {}",
                    a.max_attempts,
                    contract::duration(a.backoff_ms),
                    b.max_attempts,
                    contract::duration(b.backoff_ms)
                ),
            );
        }
    }

    fn handlers(&mut self, old: &Service, new: &Service) {
        let mut renamed: BTreeSet<&str> = BTreeSet::new();
        for h in &old.handlers {
            let path = format!("{}.{}", old.name, h.name);
            let Some(n) = find(&new.handlers, |n| n.name == h.name) else {
                let twin = new.handlers.iter().find(|n| {
                    n.pattern == h.pattern && !old.handlers.iter().any(|o| o.name == n.name)
                });
                match twin {
                    Some(n) if h.delivery == Delivery::Durable && h.mode == Mode::Shared => {
                        renamed.insert(&n.name);
                        self.breaking(
                            "handler_renamed",
                            path,
                            format!(
                                "handler renamed to '{}': its durable consumer {}_{} is replaced by a new one that starts with the next event, so events published during the rollout reach one of them only",
                                n.name, old.name, h.name
                            ),
                        );
                    }
                    _ => self.compatible(
                        "handler_removed",
                        path,
                        format!(
                            "handler removed: the service no longer receives {}",
                            h.pattern
                        ),
                    ),
                }
                continue;
            };
            self.handler(&path, old, h, n);
        }
        for n in &new.handlers {
            if !old.handlers.iter().any(|h| h.name == n.name) && !renamed.contains(n.name.as_str())
            {
                self.compatible(
                    "handler_added",
                    format!("{}.{}", new.name, n.name),
                    format!("handler added for {}", n.pattern),
                );
            }
        }
    }

    fn handler(&mut self, path: &str, service: &Service, old: &Handler, new: &Handler) {
        if old.pattern != new.pattern {
            self.breaking(
                "handler_pattern_changed",
                path.to_string(),
                format!(
                    "handler now receives {} instead of {}: its consumer's filter changes while deployed instances share it",
                    new.pattern, old.pattern
                ),
            );
        } else {
            for (_, topic) in new.matches.iter().filter(|m| !old.matches.contains(m)) {
                self.breaking(
                    "handler_matches_changed",
                    path.to_string(),
                    format!("pattern {} now also matches {topic}: deployed instances of the handler do not know that event", new.pattern),
                );
            }
        }
        if old.mode != new.mode {
            self.breaking(
                "handler_mode_changed",
                path.to_string(),
                format!(
                    "mode changed from {} to {}: old and new instances receive the events differently (shared consumer {}_{} against one per instance), so events are handled twice or not at all during the rollout",
                    mode_name(old.mode),
                    mode_name(new.mode),
                    service.name,
                    old.name
                ),
            );
        }
        if old.delivery != new.delivery {
            self.breaking(
                "handler_delivery_changed",
                path.to_string(),
                format!(
                    "delivery changed from {} to {}: old and new instances read the events from different places (a JetStream consumer against a core subscription), so events are handled twice or lost during the rollout",
                    delivery_name(old.delivery),
                    delivery_name(new.delivery)
                ),
            );
        }
        if new.delivery == Delivery::Durable {
            self.retry(path, old.retry, new.retry);
        }
    }
}
