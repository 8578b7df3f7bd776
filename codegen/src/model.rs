//! The checked schema: what validation produces and rendering consumes. No YAML, no serde.

use std::path::PathBuf;

/// Every package reached from the schemas given, each once, in dependency order (imports first).
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub packages: Vec<Package>,
}

/// One schema file.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// The package name as written (also the generated file's stem).
    pub name: String,
    pub path: PathBuf,
    pub description: Option<String>,
    /// Names of the packages this one imports.
    pub imports: Vec<String>,
    pub types: Vec<TypeDef>,
    pub events: Vec<Event>,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TypeDef {
    pub name: String,
    pub description: Option<String>,
    pub body: TypeBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeBody {
    Struct(Vec<Field>),
    Enum(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The wire name, exactly as the schema spells it.
    pub name: String,
    pub description: Option<String>,
    pub ty: TypeRef,
    /// Whether this field's type must be boxed because it closes a cycle of containment.
    pub boxed: bool,
}

/// A type expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TypeRef {
    Primitive(Primitive),
    List(Box<TypeRef>),
    Map(Box<TypeRef>),
    Optional(Box<TypeRef>),
    /// A named type; `package` is the package that declares it.
    Named {
        package: String,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Primitive {
    Bool,
    String,
    Bytes,
    I32,
    I64,
    U32,
    U64,
    F32,
    F64,
    Timestamp,
    Uuid,
    Json,
}

impl Primitive {
    pub const ALL: [(&'static str, Primitive); 12] = [
        ("bool", Primitive::Bool),
        ("string", Primitive::String),
        ("bytes", Primitive::Bytes),
        ("i32", Primitive::I32),
        ("i64", Primitive::I64),
        ("u32", Primitive::U32),
        ("u64", Primitive::U64),
        ("f32", Primitive::F32),
        ("f64", Primitive::F64),
        ("timestamp", Primitive::Timestamp),
        ("uuid", Primitive::Uuid),
        ("json", Primitive::Json),
    ];

    pub fn from_name(name: &str) -> Option<Primitive> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
    }

    /// Whether values of this type can be compared for total equality and hashed.
    pub fn is_float(self) -> bool {
        matches!(self, Primitive::F32 | Primitive::F64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The topic, which is the NATS subject.
    pub topic: String,
    pub description: Option<String>,
    pub payload: EventPayload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventPayload {
    /// A declared type.
    Named(TypeRef),
    /// Fields given inline; rendered as a struct named after the topic.
    Inline(Vec<Field>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub description: Option<String>,
    pub version: Option<String>,
    pub methods: Vec<Method>,
    pub handlers: Vec<Handler>,
    pub timers: Vec<Timer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    Rpc,
    Async,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub name: String,
    pub kind: MethodKind,
    pub description: Option<String>,
    pub params: Vec<Field>,
    pub returns: Option<TypeRef>,
    pub emits: Vec<String>,
    pub errors: Vec<ErrorDef>,
    pub timeout_ms: Option<u64>,
    pub retry: Option<Retry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDef {
    pub name: String,
    pub description: Option<String>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Broadcast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Durable,
    BestEffort,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Handler {
    /// The topic, or a pattern with `*` / `>` wildcards.
    pub pattern: String,
    pub name: String,
    pub description: Option<String>,
    pub mode: Mode,
    pub delivery: Delivery,
    pub retry: Option<Retry>,
    /// The declared events the pattern matches, in declaration order: `(package, topic)`.
    pub matches: Vec<(String, String)>,
}

/// Which instances of a service run a timer's tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerScope {
    /// Exactly one instance of the service runs each tick (the default).
    Service,
    /// Every running instance runs every tick.
    Instance,
}

impl TimerScope {
    /// The name the schema writes.
    pub fn as_str(self) -> &'static str {
        match self {
            TimerScope::Service => "service",
            TimerScope::Instance => "instance",
        }
    }
}

/// Work a service runs periodically.
#[derive(Debug, Clone, PartialEq)]
pub struct Timer {
    pub name: String,
    pub description: Option<String>,
    /// The period in milliseconds.
    pub every_ms: u64,
    pub scope: TimerScope,
    /// `scope: service` only: retries of a failed tick.
    pub retry: Option<Retry>,
}

impl Handler {
    pub fn is_wildcard(&self) -> bool {
        self.pattern.split('.').any(|t| t == "*" || t == ">")
    }
}

/// Whether a NATS subject `pattern` (with `*` and `>` wildcards) matches the literal `subject`.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("orders.*", "orders.created"));
        assert!(!subject_matches("orders.*", "orders.created.eu"));
        assert!(subject_matches("orders.>", "orders.created.eu"));
        assert!(!subject_matches("orders.>", "orders"));
        assert!(subject_matches("orders.created", "orders.created"));
        assert!(!subject_matches("orders.created", "orders.paid"));
    }
}
