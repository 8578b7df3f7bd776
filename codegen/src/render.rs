//! The checked model → Rust source, through askama templates (`codegen/templates/`).
//!
//! Views hold ready-made pieces (identifiers, type paths, string literals) so the templates only
//! arrange them. Every name a user's code cannot see lives in a private module, so nothing the
//! generator invents can clash with a schema's own names.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use serde_json::{json, Map, Value};

use crate::model::{
    Delivery, ErrorDef, EventPayload, Field, Handler, Method, MethodKind, Mode, Model, Package,
    Primitive, Service, TimerScope, TypeBody, TypeDef, TypeRef,
};
use crate::names;
use crate::validate::{wildcard_enum_name, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS};

/// The private module of generated helpers.
const PRIVATE: &str = "__natsgen";

/// On every generated item (the templates write the same): a binary crate that includes the code
/// in a private module and uses only part of it gets no `dead_code` warnings; descriptions, which
/// are schema text rather than Rust docs, are not held to clippy's `doc_markdown`, nor the
/// schema's own shapes (`optional<optional<T>>`, a map of empty structs) to its pedantic
/// `option_option` and `zero_sized_map_values`.
const ITEM_ALLOWS: &str =
    "#[allow(dead_code, clippy::doc_markdown, clippy::option_option, clippy::zero_sized_map_values)]";

/// The line that names the runtime interface the generated code needs (see
/// `natsgen::codegen::REQUIRES_NATSGEN_0_1`): with a runtime that cannot run it, the code fails to
/// compile with an error naming the version. Runtime 0.x versions differ in their interface, 1.x
/// and later keep it within a major version.
fn runtime_check() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let version = if major == "0" {
        format!("0_{}", env!("CARGO_PKG_VERSION_MINOR"))
    } else {
        major.to_string()
    };
    format!("// Fails to compile against a `natsgen` runtime that cannot run this code.\nconst _: () = __rt::REQUIRES_NATSGEN_{version};\n")
}

/// Rendering settings from the [`Builder`](crate::Builder).
#[derive(Debug, Clone)]
pub struct Options {
    pub runtime_path: String,
    pub client: bool,
    pub server: bool,
    pub type_attributes: Vec<String>,
    pub extra_derives: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            runtime_path: "::natsgen".into(),
            client: true,
            server: true,
            type_attributes: Vec::new(),
            extra_derives: Vec::new(),
        }
    }
}

/// Renders one package of the model to (unformatted) Rust source.
pub fn render_package(
    model: &Model,
    package: &Package,
    options: &Options,
) -> Result<String, askama::Error> {
    let r = Renderer {
        model,
        package,
        options,
        rt: options.runtime_path.as_str(),
    };
    r.render()
}

/// The JSON Schemas (as JSON text) a service's endpoints report in `$SRV.INFO`, in endpoint order
/// (methods, then handlers): `(params, result)`, a handler's result being `{"type":"null"}`.
pub(crate) fn endpoint_schemas(
    model: &Model,
    package: &Package,
    service: &Service,
) -> Vec<(String, String)> {
    let options = Options::default();
    let r = Renderer {
        model,
        package,
        options: &options,
        rt: options.runtime_path.as_str(),
    };
    let methods = service.methods.iter().map(|m| {
        let (params, result) = r.method_schemas(m);
        (params.to_string(), result.to_string())
    });
    let handlers = service
        .handlers
        .iter()
        .map(|h| (r.handler_schema(h).to_string(), NULL_SCHEMA.to_string()));
    methods.chain(handlers).collect()
}

struct Renderer<'a> {
    model: &'a Model,
    package: &'a Package,
    options: &'a Options,
    rt: &'a str,
}

/// The `#[allow]`s a generated method taking `&self` needs for its name: clippy's
/// `should_implement_trait` takes an inherent `clone` or `cmp` for `Clone::clone` or `Ord::cmp`
/// (the other std trait methods it knows differ from ours in receiver or return type), and
/// `wrong_self_convention` expects `new` and `from_*` to take no `self`, `into_*` to take `self` and
/// `to_*_mut` to take `&mut self`, and pedantic's `iter_not_returning_iterator` expects `iter` and
/// `iter_mut` to return an iterator.
fn method_allows(name: &str) -> Lines {
    let name = names::unraw(name);
    let mut lints = Vec::new();
    if matches!(name, "clone" | "cmp") {
        lints.push("clippy::should_implement_trait");
    }
    if matches!(name, "iter" | "iter_mut") {
        lints.push("clippy::iter_not_returning_iterator");
    }
    if name == "new"
        || name.starts_with("from_")
        || name.starts_with("into_")
        || name == "to_mut"
        || (name.starts_with("to_") && name.ends_with("_mut"))
    {
        lints.push("clippy::wrong_self_convention");
    }
    Lines(
        lints
            .into_iter()
            .map(|lint| format!("#[allow({lint})]"))
            .collect(),
    )
}

/// The `#[allow]`s of a generated method: `too_many_arguments` past clippy's 7, pedantic's
/// `many_single_char_names` from 4 one-letter params (the schema's names), then those its name
/// needs.
fn member_allows(name: &str, many_args: bool, one_letter_args: usize) -> Lines {
    let mut lines = Lines::default();
    if many_args {
        lines.0.push("#[allow(clippy::too_many_arguments)]".into());
    }
    if one_letter_args >= 4 {
        lines
            .0
            .push("#[allow(clippy::many_single_char_names)]".into());
    }
    lines.extend(method_allows(name));
    lines
}

/// An integer literal with `_` between groups of three digits (`120_000`), as clippy's
/// `unreadable_literal` asks.
fn int_lit(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

fn lit(s: &str) -> String {
    format!("{s:?}")
}

/// Lines that go before an item — doc comments and attributes — indented by the template.
#[derive(Debug, Clone, Default)]
pub struct Lines(Vec<String>);

impl Lines {
    /// Every line at `indent`, each ending in a newline; nothing when there are none.
    pub fn at(&self, indent: &str) -> String {
        let mut out = String::new();
        for line in &self.0 {
            out.push_str(indent);
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn push_doc(&mut self, text: &str) {
        self.0.push(doc_line(text));
    }

    /// A `///` line with nothing after it, between a description and a generated note.
    fn push_doc_break(&mut self) {
        if !self.0.is_empty() {
            self.0.push("///".into());
        }
    }

    fn extend(&mut self, other: Lines) {
        self.0.extend(other.0);
    }
}

/// One `///` line. Control characters become spaces: a bare CR or NUL inside a doc comment would
/// not compile, and a line feed would end it.
fn doc_line(text: &str) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim_end();
    if clean.is_empty() {
        "///".into()
    } else {
        format!("/// {clean}")
    }
}

/// Doc comment lines for a description.
fn docs(description: Option<&str>) -> Lines {
    let mut lines = Lines::default();
    if let Some(d) = description {
        for l in d.trim_end().lines() {
            lines.push_doc(l);
        }
    }
    lines
}

/// `#[derive(...)]` at `indent`, wrapped one path a line when it would pass 100 columns.
fn derive_attr(paths: &[String], indent: &str) -> String {
    let one_line = format!("#[derive({})]", paths.join(", "));
    if indent.len() + one_line.len() <= 100 {
        return format!("{indent}{one_line}\n");
    }
    let mut out = format!("{indent}#[derive(\n");
    for p in paths {
        out.push_str(&format!("{indent}    {p},\n"));
    }
    out.push_str(&format!("{indent})]\n"));
    out
}

pub struct StructView {
    /// Docs and attributes, derive included, at the struct's indentation.
    head: String,
    vis: &'static str,
    field_vis: &'static str,
    name: String,
    fields: Vec<FieldView>,
}

pub struct FieldView {
    /// Docs, then `#[serde(..)]`.
    head: Lines,
    /// The docs alone, for a field of an error variant (no serde there).
    docs: Lines,
    name: String,
    ty: String,
    /// What `Display` of an error variant writes before the field's value: ` (name: ` for the
    /// first field, `, name: ` for the others.
    display_label: String,
}

pub struct EnumView {
    head: String,
    name: String,
    /// The schema's name of the enum, as a literal.
    wire_name: String,
    variants: Vec<VariantView>,
}

pub struct VariantView {
    doc: String,
    name: String,
    wire: String,
}

pub struct WildcardView {
    docs: Lines,
    name: String,
    variants: Vec<WildcardVariant>,
}

pub struct WildcardVariant {
    doc: String,
    name: String,
    ty: String,
    topic: String,
}

#[derive(Template)]
#[template(path = "struct.rs", escape = "none")]
struct StructTemplate {
    s: StructView,
}

#[derive(Template)]
#[template(path = "enum.rs", escape = "none")]
struct EnumTemplate {
    e: EnumView,
}

#[derive(Template)]
#[template(path = "wildcard.rs", escape = "none")]
struct WildcardTemplate {
    w: WildcardView,
}

pub struct ErrorView {
    docs: Lines,
    name: String,
    variants: Vec<ErrorVariant>,
}

pub struct ErrorVariant {
    docs: Lines,
    name: String,
    wire: String,
    message: String,
    /// What `Display` writes first: the name, and the description when there is one.
    display: String,
    details: String,
    fields: Vec<FieldView>,
}

/// A service's error enums, in a module named after the service.
pub struct ErrorModuleView {
    docs: Lines,
    module: String,
    errors: Vec<ErrorView>,
    /// The enums also re-exported at the package's root (those whose name nothing else takes).
    aliases: Vec<String>,
}

#[derive(Template)]
#[template(path = "errors.rs", escape = "none")]
struct ErrorsTemplate<'a> {
    private: &'a str,
    modules: Vec<ErrorModuleView>,
}

pub struct ServiceView {
    docs: Lines,
    wire: String,
    trait_name: String,
    server: String,
    server_lit: String,
    client: String,
    api: String,
    descriptor: String,
    members: Vec<MemberView>,
    calls: Vec<MemberView>,
    /// Whether some endpoint reads the payload (a service with only timers does not).
    uses_payload: bool,
}

#[derive(Clone)]
pub struct MemberView {
    /// Docs and lint `#[allow]`s.
    head: Lines,
    /// The `#[allow]`s of the `Api` impl, whose docs are the trait's.
    impl_allows: Lines,
    /// The params struct literal's body: `{ a, b }`.
    params_init: String,
    name: String,
    args: Vec<ArgView>,
    ok: String,
    err: String,
    is_handler: bool,
    /// A timer: no params, no payload.
    is_timer: bool,
    decode_event: String,
    params_struct: String,
    call_type: String,
    core_fn: &'static str,
}

#[derive(Clone)]
pub struct ArgView {
    name: String,
    ty: String,
}

#[derive(Template)]
#[template(path = "service.rs", escape = "none")]
struct ServiceTemplate<'a> {
    private: &'a str,
    client: bool,
    server: bool,
    s: ServiceView,
}

pub struct EventView {
    head: Lines,
    method: String,
    ty: String,
}

#[derive(Template)]
#[template(path = "events.rs", escape = "none")]
struct EventsTemplate<'a> {
    private: &'a str,
    package: String,
    events: Vec<EventView>,
}

pub struct DescriptorView {
    name: String,
    service: String,
    package: String,
    version: String,
    description: String,
    endpoints: Vec<EndpointView>,
}

pub struct EndpointView {
    /// `field: value` for every field that differs from the private `ENDPOINT`.
    fields: Vec<String>,
}

#[derive(Template)]
#[template(path = "private.rs", escape = "none")]
struct PrivateTemplate<'a> {
    private: &'a str,
    package: String,
    structs: Vec<StructView>,
    /// Every distinct JSON schema of the package's endpoints, once: `SCHEMA_<index>`.
    schemas: Vec<String>,
    /// The endpoint every endpoint literal starts from (`..ENDPOINT`), as field lines.
    endpoint_base: Vec<String>,
    descriptors: Vec<DescriptorView>,
    has_events: bool,
    topics: Vec<String>,
}

/// The JSON schema of "no value": an endpoint's result unless it has one.
const NULL_SCHEMA: &str = r#"{"type":"null"}"#;

/// The JSON schemas of a package's endpoints, each distinct one once (`SCHEMA_<index>`): methods
/// that take or return the same types share them, and each may embed the `$defs` of many types.
#[derive(Default)]
struct SchemaTable {
    index: BTreeMap<String, usize>,
    literals: Vec<String>,
}

impl SchemaTable {
    fn name(&mut self, schema: String) -> String {
        let index = match self.index.get(&schema) {
            Some(index) => *index,
            None => {
                let index = self.literals.len();
                self.literals.push(lit(&schema));
                self.index.insert(schema, index);
                index
            }
        };
        format!("SCHEMA_{index}")
    }
}

/// One endpoint of a service descriptor, before it is written.
struct Endpoint<'a> {
    name: &'a str,
    kind: &'static str,
    subject: &'a str,
    timeout_ms: u64,
    retry: crate::model::Retry,
    mode: &'static str,
    delivery: &'static str,
    params_schema: String,
    result_schema: String,
    errors: Vec<String>,
}

/// The private `ENDPOINT` every endpoint literal starts from: what an endpoint is unless it says
/// otherwise.
fn endpoint_base() -> Vec<String> {
    vec![
        "name: \"\",".into(),
        "kind: __rt::EndpointKind::Rpc,".into(),
        "subject: \"\",".into(),
        format!("timeout_ms: {},", int_lit(DEFAULT_TIMEOUT_MS)),
        format!(
            "retry: __rt::RetryPolicy {{ max_attempts: {}, backoff_ms: {} }},",
            DEFAULT_RETRY.max_attempts,
            int_lit(DEFAULT_RETRY.backoff_ms)
        ),
        "mode: __rt::DeliveryMode::Shared,".into(),
        "delivery: __rt::Delivery::Durable,".into(),
        "params_schema: \"{}\",".into(),
        format!("result_schema: {},", lit(NULL_SCHEMA)),
        "errors: &[],".into(),
    ]
}

/// The fields of an endpoint that differ from `ENDPOINT`; the name and subject always.
fn endpoint_view(e: Endpoint<'_>, schemas: &mut SchemaTable) -> EndpointView {
    let mut fields = vec![
        format!("name: {},", lit(e.name)),
        format!("subject: {},", lit(e.subject)),
    ];
    if e.kind != "Rpc" {
        fields.insert(1, format!("kind: __rt::EndpointKind::{},", e.kind));
    }
    if e.timeout_ms != DEFAULT_TIMEOUT_MS {
        fields.push(format!("timeout_ms: {},", int_lit(e.timeout_ms)));
    }
    if e.retry != DEFAULT_RETRY {
        fields.push(format!(
            "retry: __rt::RetryPolicy {{ max_attempts: {}, backoff_ms: {} }},",
            int_lit(u64::from(e.retry.max_attempts)),
            int_lit(e.retry.backoff_ms)
        ));
    }
    if e.mode != "Shared" {
        fields.push(format!("mode: __rt::DeliveryMode::{},", e.mode));
    }
    if e.delivery != "Durable" {
        fields.push(format!("delivery: __rt::Delivery::{},", e.delivery));
    }
    if e.params_schema != "{}" {
        fields.push(format!("params_schema: {},", schemas.name(e.params_schema)));
    }
    if e.result_schema != NULL_SCHEMA {
        fields.push(format!("result_schema: {},", schemas.name(e.result_schema)));
    }
    if !e.errors.is_empty() {
        fields.push(format!("errors: &[{}],", e.errors.join(", ")));
    }
    EndpointView { fields }
}

/// Light clean-up of rendered source, so templates need not be exact about blank lines: no
/// trailing spaces, no blank line after an opening or before a closing bracket, never two blank
/// lines in a row, one newline at the end. Lines are safe to treat one by one: string literals are
/// written escaped, so none spans lines.
fn tidy(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut pending_blank = false;
    for line in code.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            pending_blank = !out.is_empty()
                && !out.ends_with("{\n")
                && !out.ends_with("[\n")
                && !out.ends_with("(\n");
            continue;
        }
        let closing = line.trim_start().starts_with(['}', ']', ')']);
        if pending_blank && !closing {
            out.push('\n');
        }
        pending_blank = false;
        out.push_str(line);
        out.push('\n');
    }
    out
}

impl Renderer<'_> {
    fn render(&self) -> Result<String, askama::Error> {
        let p = self.package;
        let mut out = String::new();
        for t in &p.types {
            match &t.body {
                TypeBody::Struct(fields) => out.push_str(
                    &StructTemplate {
                        s: self.struct_view(t, fields),
                    }
                    .render()?,
                ),
                TypeBody::Enum(values) => out.push_str(
                    &EnumTemplate {
                        e: self.enum_view(t, values),
                    }
                    .render()?,
                ),
            }
            out.push_str("\n\n");
        }
        for e in &p.events {
            if let EventPayload::Inline(fields) = &e.payload {
                let def = TypeDef {
                    name: names::pascal(&e.topic),
                    description: Some(match &e.description {
                        Some(d) => format!("The payload of `{}`: {d}", e.topic),
                        None => format!("The payload of `{}`.", e.topic),
                    }),
                    body: TypeBody::Struct(fields.clone()),
                };
                out.push_str(
                    &StructTemplate {
                        s: self.struct_view(&def, fields),
                    }
                    .render()?,
                );
                out.push_str("\n\n");
            }
        }
        for s in &p.services {
            for h in s.handlers.iter().filter(|h| h.is_wildcard()) {
                out.push_str(
                    &WildcardTemplate {
                        w: self.wildcard_view(s, h),
                    }
                    .render()?,
                );
                out.push_str("\n\n");
            }
        }

        let mut modules = Vec::new();
        let mut private_structs = Vec::new();
        let aliased = crate::validate::error_enum_aliases(p);
        for (si, s) in p.services.iter().enumerate() {
            let mut errors = Vec::new();
            let mut aliases = Vec::new();
            for (mi, m) in s.methods.iter().enumerate() {
                if !m.errors.is_empty() {
                    let view = self.error_view(m, si, mi, &mut private_structs);
                    if aliased.contains(&(s.name.clone(), m.name.clone())) {
                        aliases.push(view.name.clone());
                    }
                    errors.push(view);
                }
            }
            if !errors.is_empty() {
                let mut docs = Lines::default();
                docs.push_doc(&format!(
                    "The error enums of the methods of `{}` that declare `errors:`.",
                    s.name
                ));
                modules.push(ErrorModuleView {
                    docs,
                    module: names::service_module(&s.name),
                    errors,
                    aliases,
                });
            }
        }
        if self.options.server || self.options.client {
            out.push_str(
                &ErrorsTemplate {
                    private: "super::__natsgen",
                    modules,
                }
                .render()?,
            );
            out.push_str("\n\n");
        }

        let mut descriptors = Vec::new();
        let mut schemas = SchemaTable::default();
        for (si, s) in p.services.iter().enumerate() {
            let view = self.service_view(s, si, &mut private_structs);
            descriptors.push(self.descriptor_view(s, si, &mut schemas));
            if self.options.server || self.options.client {
                out.push_str(
                    &ServiceTemplate {
                        private: PRIVATE,
                        client: self.options.client && !s.methods.is_empty(),
                        server: self.options.server,
                        s: view,
                    }
                    .render()?,
                );
                out.push_str("\n\n");
            }
        }
        let has_events = !p.events.is_empty();
        if has_events {
            let events = p
                .events
                .iter()
                .map(|e| {
                    let method = names::topic_method(&e.topic);
                    let mut head = docs(e.description.as_deref());
                    head.push_doc_break();
                    head.push_doc(&format!("Publishes on `{}`.", e.topic));
                    head.extend(method_allows(&method));
                    EventView {
                        head,
                        method,
                        ty: self.event_type(&p.name, e.topic.as_str(), &e.payload, 0),
                    }
                })
                .collect();
            out.push_str(
                &EventsTemplate {
                    private: PRIVATE,
                    package: p.name.clone(),
                    events,
                }
                .render()?,
            );
            out.push_str("\n\n");
        }
        out.push_str(
            &PrivateTemplate {
                private: PRIVATE,
                package: lit(&p.name),
                structs: private_structs,
                schemas: schemas.literals,
                endpoint_base: endpoint_base(),
                descriptors,
                has_events,
                topics: p.events.iter().map(|e| lit(&e.topic)).collect(),
            }
            .render()?,
        );
        // The one name a generated file adds to the module it is included into besides its
        // items; names with `__` are reserved, so no schema name can clash with it. The runtime
        // check uses it, so even an empty schema's import is used.
        let code = tidy(&out);
        Ok(format!(
            "use {}::codegen as __rt;\n\n{}\n{code}",
            self.rt,
            runtime_check()
        ))
    }

    fn derives(&self, base: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec![
            "__rt::Serialize".to_string(),
            "__rt::Deserialize".to_string(),
        ];
        all.extend(base.iter().map(|s| (*s).to_string()));
        for extra in &self.options.extra_derives {
            if !all.iter().any(|a| a == extra) {
                all.push(extra.clone());
            }
        }
        all
    }

    /// Docs, the builder's type attributes and the derive of a schema type.
    fn type_head(&self, description: Option<&str>, name: &str, base: &[&str]) -> String {
        let mut head = docs(description);
        if head.0.is_empty() {
            head.push_doc(&format!(
                "The `{name}` type of package `{}`.",
                self.package.name
            ));
        }
        head.0.push(ITEM_ALLOWS.into());
        head.0.extend(self.options.type_attributes.iter().cloned());
        let mut out = head.at("");
        out.push_str(&derive_attr(&self.derives(base), ""));
        out
    }

    fn struct_view(&self, t: &TypeDef, fields: &[Field]) -> StructView {
        let mut derives = vec!["__rt::Debug", "__rt::Clone", "__rt::PartialEq"];
        if fields
            .iter()
            .all(|f| self.is_eq(&f.ty, &mut BTreeSet::new()))
        {
            derives.extend(["__rt::Eq", "__rt::Hash"]);
        }
        StructView {
            head: self.type_head(t.description.as_deref(), &t.name, &derives),
            vis: "pub",
            field_vis: "pub",
            name: names::type_ident(&t.name),
            fields: fields
                .iter()
                .enumerate()
                .map(|(i, f)| self.public_field_view(f, i, 0))
                .collect(),
        }
    }

    /// Whether a type has `Eq` and `Hash` (no float inside). A type on a cycle counts as having
    /// them unless something else on the cycle lacks them.
    fn is_eq(&self, ty: &TypeRef, visiting: &mut BTreeSet<(String, String)>) -> bool {
        match ty {
            TypeRef::Primitive(p) => !matches!(p, Primitive::F32 | Primitive::F64),
            TypeRef::List(inner) | TypeRef::Map(inner) | TypeRef::Optional(inner) => {
                self.is_eq(inner, visiting)
            }
            TypeRef::Named { package, name } => {
                if !visiting.insert((package.clone(), name.clone())) {
                    return true;
                }
                let eq = match self
                    .model
                    .packages
                    .iter()
                    .find(|p| p.name == *package)
                    .and_then(|p| p.types.iter().find(|t| t.name == *name))
                {
                    Some(TypeDef {
                        body: TypeBody::Struct(fields),
                        ..
                    }) => fields.iter().all(|f| self.is_eq(&f.ty, visiting)),
                    Some(TypeDef {
                        body: TypeBody::Enum(_),
                        ..
                    }) => true,
                    None => false,
                };
                visiting.remove(&(package.clone(), name.clone()));
                eq
            }
        }
    }

    /// A field of a public struct or error variant: its docs say at least its wire name.
    fn public_field_view(&self, f: &Field, index: usize, depth: usize) -> FieldView {
        let mut view = self.field_view(f, depth);
        if view.docs.0.is_empty() {
            let mut docs = Lines::default();
            docs.push_doc(&format!("The `{}` field.", f.name));
            let mut head = docs.clone();
            head.extend(std::mem::take(&mut view.head));
            view.docs = docs;
            view.head = head;
        }
        view.display_label = lit(&format!(
            "{}{}: ",
            if index == 0 { " (" } else { ", " },
            f.name
        ));
        view
    }

    /// A private serde-only struct (params, error details).
    fn private_struct(&self, name: String, fields: Vec<FieldView>) -> StructView {
        StructView {
            head: derive_attr(&self.derives(&[]), "    "),
            vis: "pub(super)",
            field_vis: "pub(super)",
            name,
            fields,
        }
    }

    fn field_view(&self, f: &Field, depth: usize) -> FieldView {
        self.named_field_view(f, names::field(&f.name), depth)
    }

    /// A field of a private params struct: named like the parameter it carries (`ctx` → `ctx_`),
    /// so the server and the client can move values between the two by name.
    fn param_field_view(&self, f: &Field, depth: usize) -> FieldView {
        self.named_field_view(f, names::param(&f.name), depth)
    }

    fn named_field_view(&self, f: &Field, name: String, depth: usize) -> FieldView {
        let mut serde = Vec::new();
        if names::unraw(&name) != f.name {
            serde.push(format!("rename = {}", lit(&f.name)));
        }
        if matches!(f.ty, TypeRef::Optional(_)) {
            serde.push("default".into());
            serde.push(format!(
                "skip_serializing_if = {}",
                lit("__rt::Option::is_none")
            ));
        }
        let docs = docs(f.description.as_deref());
        let mut head = docs.clone();
        if !serde.is_empty() {
            head.0.push(format!("#[serde({})]", serde.join(", ")));
        }
        FieldView {
            head,
            docs,
            name,
            ty: self.field_type(&f.ty, f.boxed, depth),
            display_label: String::new(),
        }
    }

    fn field_type(&self, ty: &TypeRef, boxed: bool, depth: usize) -> String {
        if boxed {
            match ty {
                TypeRef::Optional(inner) => {
                    format!("__rt::Option<__rt::Box<{}>>", self.rust_type(inner, depth))
                }
                _ => format!("__rt::Box<{}>", self.rust_type(ty, depth)),
            }
        } else {
            self.rust_type(ty, depth)
        }
    }

    /// The Rust type for a schema type, as seen from a module `depth` levels below the package's.
    fn rust_type(&self, ty: &TypeRef, depth: usize) -> String {
        match ty {
            TypeRef::Primitive(p) => match p {
                Primitive::Bool => "bool".into(),
                Primitive::String => "__rt::String".into(),
                Primitive::Bytes => "__rt::Binary".into(),
                Primitive::I32 => "i32".into(),
                Primitive::I64 => "i64".into(),
                Primitive::U32 => "u32".into(),
                Primitive::U64 => "u64".into(),
                Primitive::F32 => "f32".into(),
                Primitive::F64 => "f64".into(),
                Primitive::Timestamp => "__rt::Timestamp".into(),
                Primitive::Uuid => "__rt::uuid::Uuid".into(),
                Primitive::Json => "__rt::serde_json::Value".into(),
            },
            TypeRef::List(inner) => format!("__rt::Vec<{}>", self.rust_type(inner, depth)),
            TypeRef::Map(inner) => format!(
                "__rt::BTreeMap<__rt::String, {}>",
                self.rust_type(inner, depth)
            ),
            TypeRef::Optional(inner) => {
                format!("__rt::Option<{}>", self.rust_type(inner, depth))
            }
            TypeRef::Named { package, name } => {
                let ups = "super::".repeat(depth);
                if *package == self.package.name {
                    format!("{ups}{}", names::type_ident(name))
                } else {
                    format!(
                        "{ups}super::{}::{}",
                        names::escape(package),
                        names::type_ident(name)
                    )
                }
            }
        }
    }

    fn enum_view(&self, t: &TypeDef, values: &[String]) -> EnumView {
        EnumView {
            head: self.type_head(
                t.description.as_deref(),
                &t.name,
                &[
                    "__rt::Debug",
                    "__rt::Clone",
                    "__rt::Copy",
                    "__rt::PartialEq",
                    "__rt::Eq",
                    "__rt::Hash",
                ],
            ),
            name: names::type_ident(&t.name),
            wire_name: lit(&t.name),
            variants: values
                .iter()
                .map(|v| VariantView {
                    doc: doc_line(&format!("`{v}` on the wire.")),
                    name: names::type_ident(&names::to_pascal(v)),
                    wire: lit(v),
                })
                .collect(),
        }
    }

    fn event_type(
        &self,
        package: &str,
        topic: &str,
        payload: &EventPayload,
        depth: usize,
    ) -> String {
        match payload {
            EventPayload::Named(ty) => self.rust_type(ty, depth),
            EventPayload::Inline(_) => self.rust_type(
                &TypeRef::Named {
                    package: package.to_string(),
                    name: names::pascal(topic),
                },
                depth,
            ),
        }
    }

    fn find_event(&self, package: &str, topic: &str) -> Option<&EventPayload> {
        self.model
            .packages
            .iter()
            .find(|p| p.name == package)
            .and_then(|p| p.events.iter().find(|e| e.topic == topic))
            .map(|e| &e.payload)
    }

    fn wildcard_view(&self, s: &Service, h: &Handler) -> WildcardView {
        let mut d = Lines::default();
        d.push_doc(&format!(
            "The events `{}.{}` handles (pattern `{}`).",
            s.name, h.name, h.pattern
        ));
        if let Some(desc) = &h.description {
            d.push_doc_break();
            d.extend(docs(Some(desc)));
        }
        WildcardView {
            docs: d,
            name: wildcard_enum_name(&s.name, &h.name),
            variants: h
                .matches
                .iter()
                .filter_map(|(pkg, topic)| {
                    let payload = self.find_event(pkg, topic)?;
                    Some(WildcardVariant {
                        doc: doc_line(&format!("`{topic}`")),
                        name: names::pascal_ident(topic),
                        ty: self.event_type(pkg, topic, payload, 0),
                        topic: lit(topic),
                    })
                })
                .collect(),
        }
    }

    fn error_enum_name(m: &Method) -> String {
        crate::validate::error_enum_name(&m.name)
    }

    /// The names of generated private items are built from indices, so no two schema names can
    /// make them clash.
    fn error_view(
        &self,
        m: &Method,
        service: usize,
        method: usize,
        private: &mut Vec<StructView>,
    ) -> ErrorView {
        let name = Self::error_enum_name(m);
        let variants = m
            .errors
            .iter()
            .enumerate()
            .map(|(index, e): (usize, &ErrorDef)| {
                let details = format!("S{service}M{method}E{index}Details");
                let fields: Vec<FieldView> = e
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| self.public_field_view(f, i, 1))
                    .collect();
                if !fields.is_empty() {
                    private.push(self.private_struct(
                        details.clone(),
                        e.fields.iter().map(|f| self.field_view(f, 1)).collect(),
                    ));
                }
                let mut variant_docs = docs(e.description.as_deref());
                if variant_docs.0.is_empty() {
                    variant_docs.push_doc(&format!("The declared error `{}`.", e.name));
                }
                ErrorVariant {
                    docs: variant_docs,
                    name: names::type_ident(&e.name),
                    wire: lit(&e.name),
                    message: lit(e.description.as_deref().unwrap_or(&e.name)),
                    display: lit(&match &e.description {
                        Some(d) => format!("{}: {d}", e.name),
                        None => e.name.clone(),
                    }),
                    details,
                    fields,
                }
            })
            .collect();
        let mut docs = Lines::default();
        docs.push_doc(&format!("The errors `{}` declares.", m.name));
        ErrorView {
            docs,
            name,
            variants,
        }
    }

    fn service_view(
        &self,
        s: &Service,
        service: usize,
        private: &mut Vec<StructView>,
    ) -> ServiceView {
        let pascal = names::pascal(&s.name);
        let mut members = Vec::new();
        for (method, m) in s.methods.iter().enumerate() {
            let params_struct = format!("S{service}M{method}Params");
            private.push(
                self.private_struct(
                    params_struct.clone(),
                    m.params
                        .iter()
                        .map(|f| self.param_field_view(f, 1))
                        .collect(),
                ),
            );
            let args: Vec<ArgView> = m
                .params
                .iter()
                .map(|f| ArgView {
                    name: names::param(&f.name),
                    ty: self.field_type(&f.ty, false, 0),
                })
                .collect();
            let ok = m
                .returns
                .as_ref()
                .map(|t| self.rust_type(t, 0))
                .unwrap_or_else(|| "()".into());
            let err = if m.errors.is_empty() {
                "__rt::ServiceError".to_string()
            } else {
                format!(
                    "{}::{}",
                    names::service_module(&s.name),
                    Self::error_enum_name(m)
                )
            };
            let (call_type, core_fn, note) = match m.kind {
                MethodKind::Rpc => (
                    format!("__rt::RpcCall<{ok}, {err}>"),
                    "rpc",
                    format!("RPC on `{}.rpc.{}`.", s.name, m.name),
                ),
                MethodKind::Async => (
                    "__rt::AsyncCall".to_string(),
                    "send",
                    format!(
                        "Async (durable, fire-and-forget) on `{}.async.{}`.",
                        s.name, m.name
                    ),
                ),
            };
            let name = names::member(&m.name);
            let many_args = args.len() + 2 > 7;
            let mut head = docs(m.description.as_deref());
            head.push_doc_break();
            head.push_doc(&note);
            let one_letter = args
                .iter()
                .filter(|a| names::unraw(&a.name).len() == 1)
                .count();
            head.extend(member_allows(&name, many_args, one_letter));
            let params_init = if args.is_empty() {
                "{}".to_string()
            } else {
                let names: Vec<&str> = args.iter().map(|a| a.name.as_str()).collect();
                format!("{{ {} }}", names.join(", "))
            };
            members.push(MemberView {
                head,
                impl_allows: member_allows("", many_args, one_letter),
                params_init,
                name,
                args,
                ok,
                err,
                is_handler: false,
                is_timer: false,
                decode_event: String::new(),
                params_struct,
                call_type,
                core_fn,
            });
        }
        let calls = members.clone();
        for h in &s.handlers {
            let (ty, decode) = if h.is_wildcard() {
                let name = wildcard_enum_name(&s.name, &h.name);
                (
                    name.clone(),
                    format!("{name}::decode(ctx.subject(), &payload)?"),
                )
            } else {
                let ty = h
                    .matches
                    .first()
                    .and_then(|(pkg, topic)| {
                        self.find_event(pkg, topic)
                            .map(|p| self.event_type(pkg, topic, p, 0))
                    })
                    .unwrap_or_else(|| "__rt::serde_json::Value".to_string());
                (ty.clone(), format!("__rt::decode_event::<{ty}>(&payload)?"))
            };
            let name = names::member(&h.name);
            let mut head = docs(h.description.as_deref());
            head.push_doc_break();
            head.push_doc(&format!("Handles `{}`.", h.pattern));
            head.extend(member_allows(&name, false, 0));
            members.push(MemberView {
                head,
                impl_allows: Lines::default(),
                params_init: String::new(),
                name,
                args: vec![ArgView {
                    name: "event".into(),
                    ty,
                }],
                ok: "()".into(),
                err: "__rt::ServiceError".to_string(),
                is_handler: true,
                is_timer: false,
                decode_event: decode,
                params_struct: String::new(),
                call_type: String::new(),
                core_fn: "",
            });
        }
        for t in &s.timers {
            let name = names::member(&t.name);
            let mut head = docs(t.description.as_deref());
            head.push_doc_break();
            head.push_doc(&format!(
                "Timer: every {}, {}.",
                crate::contract::duration(t.every_ms),
                match t.scope {
                    TimerScope::Service => "one instance of the service per tick",
                    TimerScope::Instance => "on every instance",
                }
            ));
            head.extend(member_allows(&name, false, 0));
            members.push(MemberView {
                head,
                impl_allows: Lines::default(),
                params_init: String::new(),
                name,
                args: Vec::new(),
                ok: "()".into(),
                err: "__rt::ServiceError".to_string(),
                is_handler: false,
                is_timer: true,
                decode_event: String::new(),
                params_struct: String::new(),
                call_type: String::new(),
                core_fn: "",
            });
        }
        let uses_payload = members.iter().any(|m| !m.is_timer);
        ServiceView {
            docs: docs(
                s.description
                    .as_deref()
                    .or(Some(&format!("The `{}` service.", s.name))),
            ),
            wire: s.name.clone(),
            trait_name: names::type_ident(&pascal),
            server: format!("{pascal}Server"),
            server_lit: lit(&format!("{pascal}Server")),
            client: format!("{pascal}Client"),
            api: format!("{pascal}Api"),
            descriptor: format!("SERVICE_{service}"),
            members,
            calls,
            uses_payload,
        }
    }

    fn descriptor_view(
        &self,
        s: &Service,
        service: usize,
        schemas: &mut SchemaTable,
    ) -> DescriptorView {
        let mut endpoints = Vec::new();
        for m in &s.methods {
            let (kind, subject) = match m.kind {
                MethodKind::Rpc => ("Rpc", format!("{}.rpc.{}", s.name, m.name)),
                MethodKind::Async => ("Async", format!("{}.async.{}", s.name, m.name)),
            };
            let retry = m.retry.unwrap_or(DEFAULT_RETRY);
            let (params_schema, result_schema) = self.method_schemas(m);
            endpoints.push(endpoint_view(
                Endpoint {
                    name: &m.name,
                    kind,
                    subject: &subject,
                    timeout_ms: m.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
                    retry,
                    mode: "Shared",
                    delivery: "Durable",
                    params_schema: params_schema.to_string(),
                    result_schema: result_schema.to_string(),
                    errors: m.errors.iter().map(|e| lit(&e.name)).collect(),
                },
                schemas,
            ));
        }
        for h in &s.handlers {
            let retry = h.retry.unwrap_or(DEFAULT_RETRY);
            let schema = self.handler_schema(h);
            endpoints.push(endpoint_view(
                Endpoint {
                    name: &h.name,
                    kind: "Event",
                    subject: &h.pattern,
                    timeout_ms: 0,
                    retry,
                    mode: match h.mode {
                        Mode::Shared => "Shared",
                        Mode::Broadcast => "Broadcast",
                    },
                    delivery: match h.delivery {
                        Delivery::Durable => "Durable",
                        Delivery::BestEffort => "BestEffort",
                    },
                    params_schema: schema.to_string(),
                    result_schema: NULL_SCHEMA.to_string(),
                    errors: Vec::new(),
                },
                schemas,
            ));
        }
        for t in &s.timers {
            let (mode, subject) = match t.scope {
                TimerScope::Service => ("Shared", crate::contract::timer_subject(s, t)),
                TimerScope::Instance => ("Broadcast", String::new()),
            };
            endpoints.push(endpoint_view(
                Endpoint {
                    name: &t.name,
                    kind: "Timer",
                    subject: &subject,
                    // A timer has no timeout; its descriptor keeps the period there.
                    timeout_ms: t.every_ms,
                    retry: t.retry.unwrap_or(DEFAULT_RETRY),
                    mode,
                    delivery: "Durable",
                    params_schema: "{}".to_string(),
                    result_schema: NULL_SCHEMA.to_string(),
                    errors: Vec::new(),
                },
                schemas,
            ));
        }
        DescriptorView {
            name: format!("SERVICE_{service}"),
            service: lit(&s.name),
            package: lit(&self.package.name),
            version: lit(s.version.as_deref().unwrap_or("0.0.0")),
            description: lit(s.description.as_deref().unwrap_or("")),
            endpoints,
        }
    }

    /// The JSON Schemas of a method's params object and of its result.
    fn method_schemas(&self, m: &Method) -> (Value, Value) {
        let params = Value::Object(
            [
                ("type".to_string(), json!("object")),
                (
                    "properties".to_string(),
                    Value::Object(
                        m.params
                            .iter()
                            .map(|f| (f.name.clone(), self.schema_of(&f.ty)))
                            .collect(),
                    ),
                ),
                (
                    "required".to_string(),
                    Value::Array(
                        m.params
                            .iter()
                            .filter(|f| !matches!(f.ty, TypeRef::Optional(_)))
                            .map(|f| json!(f.name))
                            .collect(),
                    ),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let roots: Vec<&TypeRef> = m.params.iter().map(|f| &f.ty).collect();
        let params_schema = self.with_defs(params, &roots);
        let result_schema = match &m.returns {
            Some(ty) => self.with_defs(self.schema_of(ty), &[ty]),
            None => json!({"type": "null"}),
        };
        (params_schema, result_schema)
    }

    /// The JSON Schema of what a handler receives: its event's payload, or one of its events'.
    fn handler_schema(&self, h: &Handler) -> Value {
        let payload_types: Vec<TypeRef> = h
            .matches
            .iter()
            .filter_map(|(pkg, topic)| match self.find_event(pkg, topic)? {
                EventPayload::Named(t) => Some(t.clone()),
                EventPayload::Inline(_) => None,
            })
            .collect();
        let schema = if h.matches.len() == 1 {
            match h
                .matches
                .first()
                .and_then(|(pkg, topic)| self.find_event(pkg, topic))
            {
                Some(EventPayload::Named(t)) => self.with_defs(self.schema_of(t), &[t]),
                Some(EventPayload::Inline(fields)) => self.inline_schema(fields),
                None => json!({}),
            }
        } else {
            let refs: Vec<&TypeRef> = payload_types.iter().collect();
            let one_of: Vec<Value> = h
                .matches
                .iter()
                .filter_map(|(pkg, topic)| match self.find_event(pkg, topic)? {
                    EventPayload::Named(t) => Some(self.schema_of(t)),
                    EventPayload::Inline(fields) => Some(self.inline_schema(fields)),
                })
                .collect();
            self.with_defs(json!({ "oneOf": one_of }), &refs)
        };
        schema
    }

    fn inline_schema(&self, fields: &[Field]) -> Value {
        let obj = json!({
            "type": "object",
            "properties": fields.iter().map(|f| (f.name.clone(), self.schema_of(&f.ty))).collect::<Map<String, Value>>(),
            "required": fields.iter().filter(|f| !matches!(f.ty, TypeRef::Optional(_))).map(|f| json!(f.name)).collect::<Vec<_>>(),
        });
        let roots: Vec<&TypeRef> = fields.iter().map(|f| &f.ty).collect();
        self.with_defs(obj, &roots)
    }

    /// JSON Schema (draft 2020-12) of a type; named types are `$ref`s into `$defs`.
    fn schema_of(&self, ty: &TypeRef) -> Value {
        match ty {
            TypeRef::Primitive(p) => match p {
                Primitive::Bool => json!({"type": "boolean"}),
                Primitive::String => json!({"type": "string"}),
                Primitive::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
                Primitive::I32 | Primitive::I64 => json!({"type": "integer"}),
                Primitive::U32 | Primitive::U64 => json!({"type": "integer", "minimum": 0}),
                Primitive::F32 | Primitive::F64 => json!({"type": "number"}),
                Primitive::Timestamp => json!({"type": "string", "format": "date-time"}),
                Primitive::Uuid => json!({"type": "string", "format": "uuid"}),
                Primitive::Json => json!({}),
            },
            TypeRef::List(inner) => json!({"type": "array", "items": self.schema_of(inner)}),
            TypeRef::Map(inner) => {
                json!({"type": "object", "additionalProperties": self.schema_of(inner)})
            }
            TypeRef::Optional(inner) => json!({"anyOf": [self.schema_of(inner), {"type": "null"}]}),
            TypeRef::Named { package, name } => {
                json!({"$ref": format!("#/$defs/{package}.{name}")})
            }
        }
    }

    fn with_defs(&self, mut schema: Value, roots: &[&TypeRef]) -> Value {
        let mut defs: BTreeMap<String, Value> = BTreeMap::new();
        let mut todo: Vec<TypeRef> = roots.iter().map(|t| (*t).clone()).collect();
        let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
        while let Some(ty) = todo.pop() {
            match ty {
                TypeRef::List(i) | TypeRef::Map(i) | TypeRef::Optional(i) => todo.push(*i),
                TypeRef::Primitive(_) => {}
                TypeRef::Named { package, name } => {
                    if !seen.insert((package.clone(), name.clone())) {
                        continue;
                    }
                    let Some(def) = self
                        .model
                        .packages
                        .iter()
                        .find(|p| p.name == package)
                        .and_then(|p| p.types.iter().find(|t| t.name == name))
                    else {
                        continue;
                    };
                    let value = match &def.body {
                        TypeBody::Enum(values) => json!({"type": "string", "enum": values}),
                        TypeBody::Struct(fields) => {
                            todo.extend(fields.iter().map(|f| f.ty.clone()));
                            json!({
                                "type": "object",
                                "properties": fields.iter().map(|f| (f.name.clone(), self.schema_of(&f.ty))).collect::<Map<String, Value>>(),
                                "required": fields.iter().filter(|f| !matches!(f.ty, TypeRef::Optional(_))).map(|f| json!(f.name)).collect::<Vec<_>>(),
                            })
                        }
                    };
                    defs.insert(format!("{package}.{name}"), value);
                }
            }
        }
        if !defs.is_empty() {
            if let Value::Object(obj) = &mut schema {
                obj.insert("$defs".into(), Value::Object(defs.into_iter().collect()));
            } else {
                schema = json!({"allOf": [schema], "$defs": defs});
            }
        }
        schema
    }
}
