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
    Primitive, Service, TypeBody, TypeDef, TypeRef,
};
use crate::names;
use crate::validate::{wildcard_enum_name, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS};

/// The private module of generated helpers.
const PRIVATE: &str = "__natsgen";

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
/// `to_*_mut` to take `&mut self`.
fn method_allows(name: &str) -> Vec<String> {
    let name = names::unraw(name);
    let mut lints = Vec::new();
    if matches!(name, "clone" | "cmp") {
        lints.push("clippy::should_implement_trait");
    }
    if name == "new"
        || name.starts_with("from_")
        || name.starts_with("into_")
        || name == "to_mut"
        || (name.starts_with("to_") && name.ends_with("_mut"))
    {
        lints.push("clippy::wrong_self_convention");
    }
    lints
        .into_iter()
        .map(|lint| format!("#[allow({lint})]\n"))
        .collect()
}

fn lit(s: &str) -> String {
    format!("{s:?}")
}

/// Doc attributes for a description. Control characters become spaces: a bare CR or NUL inside
/// a `///` comment would not compile once printed.
fn docs(description: Option<&str>) -> Vec<String> {
    description
        .map(|d| {
            d.trim_end()
                .lines()
                .map(|l| {
                    let clean: String = l
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect();
                    format!("#[doc = {}]\n", lit(&format!(" {}", clean.trim_end())))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub struct StructView {
    docs: Vec<String>,
    derives: String,
    vis: &'static str,
    field_vis: &'static str,
    name: String,
    fields: Vec<FieldView>,
}

pub struct FieldView {
    docs: Vec<String>,
    attrs: Vec<String>,
    name: String,
    ty: String,
}

pub struct EnumView {
    docs: Vec<String>,
    derives: String,
    name: String,
    variants: Vec<VariantView>,
}

pub struct VariantView {
    name: String,
    wire: String,
}

pub struct WildcardView {
    docs: Vec<String>,
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
struct StructTemplate<'a> {
    rt: &'a str,
    s: StructView,
}

#[derive(Template)]
#[template(path = "enum.rs", escape = "none")]
struct EnumTemplate<'a> {
    rt: &'a str,
    e: EnumView,
}

#[derive(Template)]
#[template(path = "wildcard.rs", escape = "none")]
struct WildcardTemplate<'a> {
    rt: &'a str,
    w: WildcardView,
}

pub struct ErrorView {
    docs: Vec<String>,
    name: String,
    variants: Vec<ErrorVariant>,
}

pub struct ErrorVariant {
    docs: Vec<String>,
    name: String,
    wire: String,
    message: String,
    details: String,
    fields: Vec<FieldView>,
}

#[derive(Template)]
#[template(path = "errors.rs", escape = "none")]
struct ErrorsTemplate<'a> {
    rt: &'a str,
    private: &'a str,
    errors: Vec<ErrorView>,
}

pub struct ServiceView {
    docs: Vec<String>,
    wire: String,
    trait_name: String,
    server: String,
    server_lit: String,
    client: String,
    api: String,
    descriptor: String,
    members: Vec<MemberView>,
    calls: Vec<MemberView>,
}

pub struct MemberView {
    docs: Vec<String>,
    name: String,
    args: Vec<ArgView>,
    many_args: bool,
    ok: String,
    err: String,
    is_handler: bool,
    decode_event: String,
    params_struct: String,
    call_type: String,
    core_fn: &'static str,
    /// Lints the method's name trips (see [`method_allows`]).
    allows: Vec<String>,
}

pub struct ArgView {
    name: String,
    ty: String,
}

#[derive(Template)]
#[template(path = "service.rs", escape = "none")]
struct ServiceTemplate<'a> {
    rt: &'a str,
    private: &'a str,
    client: bool,
    server: bool,
    s: ServiceView,
}

pub struct EventView {
    docs: Vec<String>,
    method: String,
    allows: Vec<String>,
    ty: String,
}

#[derive(Template)]
#[template(path = "events.rs", escape = "none")]
struct EventsTemplate<'a> {
    rt: &'a str,
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
    name: String,
    kind: &'static str,
    subject: String,
    timeout_ms: u64,
    max_attempts: u32,
    backoff_ms: u64,
    mode: &'static str,
    delivery: &'static str,
    params_schema: String,
    result_schema: String,
    errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "private.rs", escape = "none")]
struct PrivateTemplate<'a> {
    rt: &'a str,
    private: &'a str,
    package: String,
    structs: Vec<StructView>,
    descriptors: Vec<DescriptorView>,
    has_events: bool,
    topics: Vec<String>,
}

impl Renderer<'_> {
    fn render(&self) -> Result<String, askama::Error> {
        let p = self.package;
        let mut out = String::new();
        let rt = self.rt;
        for t in &p.types {
            match &t.body {
                TypeBody::Struct(fields) => out.push_str(
                    &StructTemplate {
                        rt,
                        s: self.struct_view(t, fields),
                    }
                    .render()?,
                ),
                TypeBody::Enum(values) => out.push_str(
                    &EnumTemplate {
                        rt,
                        e: self.enum_view(t, values),
                    }
                    .render()?,
                ),
            }
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
                        rt,
                        s: self.struct_view(&def, fields),
                    }
                    .render()?,
                );
            }
        }
        for s in &p.services {
            for h in s.handlers.iter().filter(|h| h.is_wildcard()) {
                out.push_str(
                    &WildcardTemplate {
                        rt,
                        w: self.wildcard_view(s, h),
                    }
                    .render()?,
                );
            }
        }

        let mut errors = Vec::new();
        let mut private_structs = Vec::new();
        for (si, s) in p.services.iter().enumerate() {
            for (mi, m) in s.methods.iter().enumerate() {
                if !m.errors.is_empty() {
                    errors.push(self.error_view(m, si, mi, &mut private_structs));
                }
            }
        }
        if self.options.server || self.options.client {
            out.push_str(
                &ErrorsTemplate {
                    rt: self.rt,
                    private: PRIVATE,
                    errors,
                }
                .render()?,
            );
        }

        let mut descriptors = Vec::new();
        for (si, s) in p.services.iter().enumerate() {
            let view = self.service_view(s, si, &mut private_structs);
            descriptors.push(self.descriptor_view(s, si));
            if self.options.server || self.options.client {
                out.push_str(
                    &ServiceTemplate {
                        rt: self.rt,
                        private: PRIVATE,
                        client: self.options.client && !s.methods.is_empty(),
                        server: self.options.server,
                        s: view,
                    }
                    .render()?,
                );
            }
        }
        let has_events = !p.events.is_empty();
        if has_events {
            let events = p
                .events
                .iter()
                .map(|e| EventView {
                    docs: {
                        let mut d = docs(e.description.as_deref());
                        if !d.is_empty() {
                            d.push(format!("#[doc = {}]\n", lit("")));
                        }
                        d.push(format!(
                            "#[doc = {}]\n",
                            lit(&format!(" Publishes on `{}`.", e.topic))
                        ));
                        d
                    },
                    method: names::topic_method(&e.topic),
                    allows: method_allows(&names::topic_method(&e.topic)),
                    ty: self.event_type(&p.name, e.topic.as_str(), &e.payload, 0),
                })
                .collect();
            out.push_str(
                &EventsTemplate {
                    rt: self.rt,
                    private: PRIVATE,
                    package: p.name.clone(),
                    events,
                }
                .render()?,
            );
        }
        out.push_str(
            &PrivateTemplate {
                rt: self.rt,
                private: PRIVATE,
                package: lit(&p.name),
                structs: private_structs,
                descriptors,
                has_events,
                topics: p.events.iter().map(|e| lit(&e.topic)).collect(),
            }
            .render()?,
        );
        Ok(out)
    }

    fn derives(&self, base: &[&str]) -> String {
        let mut all: Vec<String> = vec![
            format!("{}::codegen::serde::Serialize", self.rt),
            format!("{}::codegen::serde::Deserialize", self.rt),
        ];
        all.extend(base.iter().map(|s| (*s).to_string()));
        for extra in &self.options.extra_derives {
            if !all.iter().any(|a| a == extra) {
                all.push(extra.clone());
            }
        }
        all.join(", ")
    }

    fn struct_view(&self, t: &TypeDef, fields: &[Field]) -> StructView {
        let mut d = docs(t.description.as_deref());
        d.extend(
            self.options
                .type_attributes
                .iter()
                .map(|a| format!("{a}\n")),
        );
        StructView {
            docs: d,
            derives: self.derives(&[
                "::core::fmt::Debug",
                "::core::clone::Clone",
                "::core::cmp::PartialEq",
            ]),
            vis: "pub",
            field_vis: "pub",
            name: names::type_ident(&t.name),
            fields: fields.iter().map(|f| self.field_view(f, 0)).collect(),
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
                lit("::core::option::Option::is_none")
            ));
        }
        let attrs = if serde.is_empty() {
            Vec::new()
        } else {
            vec![format!("#[serde({})]\n", serde.join(", "))]
        };
        FieldView {
            docs: docs(f.description.as_deref()),
            attrs,
            name,
            ty: self.field_type(&f.ty, f.boxed, depth),
        }
    }

    fn field_type(&self, ty: &TypeRef, boxed: bool, depth: usize) -> String {
        if boxed {
            match ty {
                TypeRef::Optional(inner) => {
                    format!(
                        "::core::option::Option<::std::boxed::Box<{}>>",
                        self.rust_type(inner, depth)
                    )
                }
                _ => format!("::std::boxed::Box<{}>", self.rust_type(ty, depth)),
            }
        } else {
            self.rust_type(ty, depth)
        }
    }

    /// The Rust type for a schema type, as seen from a module `depth` levels below the package's.
    fn rust_type(&self, ty: &TypeRef, depth: usize) -> String {
        let rt = self.rt;
        match ty {
            TypeRef::Primitive(p) => match p {
                Primitive::Bool => "bool".into(),
                Primitive::String => "::std::string::String".into(),
                Primitive::Bytes => format!("{rt}::Binary"),
                Primitive::I32 => "i32".into(),
                Primitive::I64 => "i64".into(),
                Primitive::U32 => "u32".into(),
                Primitive::U64 => "u64".into(),
                Primitive::F32 => "f32".into(),
                Primitive::F64 => "f64".into(),
                Primitive::Timestamp => format!("{rt}::Timestamp"),
                Primitive::Uuid => format!("{rt}::codegen::uuid::Uuid"),
                Primitive::Json => format!("{rt}::codegen::serde_json::Value"),
            },
            TypeRef::List(inner) => format!("::std::vec::Vec<{}>", self.rust_type(inner, depth)),
            TypeRef::Map(inner) => format!(
                "::std::collections::BTreeMap<::std::string::String, {}>",
                self.rust_type(inner, depth)
            ),
            TypeRef::Optional(inner) => {
                format!("::core::option::Option<{}>", self.rust_type(inner, depth))
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
        let mut d = docs(t.description.as_deref());
        d.extend(
            self.options
                .type_attributes
                .iter()
                .map(|a| format!("{a}\n")),
        );
        EnumView {
            docs: d,
            derives: self.derives(&[
                "::core::fmt::Debug",
                "::core::clone::Clone",
                "::core::marker::Copy",
                "::core::cmp::PartialEq",
                "::core::cmp::Eq",
                "::core::hash::Hash",
            ]),
            name: names::type_ident(&t.name),
            variants: values
                .iter()
                .map(|v| VariantView {
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
        let mut d = vec![format!(
            "#[doc = {}]\n",
            lit(&format!(
                " The events `{}.{}` handles (pattern `{}`).",
                s.name, h.name, h.pattern
            ))
        )];
        if let Some(desc) = &h.description {
            d.push(format!("#[doc = {}]\n", lit("")));
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
                        doc: lit(&format!(" `{topic}`")),
                        name: names::pascal_ident(topic),
                        ty: self.event_type(pkg, topic, payload, 0),
                        topic: lit(topic),
                    })
                })
                .collect(),
        }
    }

    fn error_enum_name(m: &Method) -> String {
        format!("{}Error", names::pascal(&m.name))
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
                let fields: Vec<FieldView> =
                    e.fields.iter().map(|f| self.field_view(f, 0)).collect();
                if !fields.is_empty() {
                    private.push(StructView {
                        docs: Vec::new(),
                        derives: String::new(),
                        vis: "pub(super)",
                        field_vis: "pub(super)",
                        name: details.clone(),
                        fields: e.fields.iter().map(|f| self.field_view(f, 1)).collect(),
                    });
                }
                ErrorVariant {
                    docs: docs(e.description.as_deref()),
                    name: names::type_ident(&e.name),
                    wire: lit(&e.name),
                    message: lit(e.description.as_deref().unwrap_or(&e.name)),
                    details,
                    fields,
                }
            })
            .collect();
        ErrorView {
            docs: vec![format!(
                "#[doc = {}]\n",
                lit(&format!(" The errors `{}` declares.", m.name))
            )],
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
        let rt = self.rt;
        let mut members = Vec::new();
        let mut calls = Vec::new();
        for (method, m) in s.methods.iter().enumerate() {
            let params_struct = format!("S{service}M{method}Params");
            private.push(StructView {
                docs: Vec::new(),
                derives: String::new(),
                vis: "pub(super)",
                field_vis: "pub(super)",
                name: params_struct.clone(),
                fields: m
                    .params
                    .iter()
                    .map(|f| self.param_field_view(f, 1))
                    .collect(),
            });
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
                format!("{rt}::ServiceError")
            } else {
                Self::error_enum_name(m)
            };
            let mut d = docs(m.description.as_deref());
            if !d.is_empty() {
                d.push(format!("#[doc = {}]\n", lit("")));
            }
            let (call_type, core_fn, note) = match m.kind {
                MethodKind::Rpc => (
                    format!("{rt}::codegen::RpcCall<{ok}, {err}>"),
                    "rpc",
                    format!(" RPC on `{}.rpc.{}`.", s.name, m.name),
                ),
                MethodKind::Async => (
                    format!("{rt}::codegen::AsyncCall"),
                    "send",
                    format!(
                        " Async (durable, fire-and-forget) on `{}.async.{}`.",
                        s.name, m.name
                    ),
                ),
            };
            d.push(format!("#[doc = {}]\n", lit(&note)));
            let view = MemberView {
                docs: d,
                name: names::member(&m.name),
                many_args: args.len() + 2 > 7,
                args,
                ok,
                err,
                is_handler: false,
                decode_event: String::new(),
                params_struct,
                call_type,
                core_fn,
                allows: method_allows(&names::member(&m.name)),
            };
            calls.push(MemberView {
                docs: view.docs.clone(),
                name: view.name.clone(),
                args: view
                    .args
                    .iter()
                    .map(|a| ArgView {
                        name: a.name.clone(),
                        ty: a.ty.clone(),
                    })
                    .collect(),
                many_args: view.many_args,
                ok: view.ok.clone(),
                err: view.err.clone(),
                is_handler: false,
                decode_event: String::new(),
                params_struct: view.params_struct.clone(),
                call_type: view.call_type.clone(),
                core_fn,
                allows: view.allows.clone(),
            });
            members.push(view);
        }
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
                    .unwrap_or_else(|| format!("{rt}::codegen::serde_json::Value"));
                (
                    ty.clone(),
                    format!("{rt}::codegen::decode_event::<{ty}>(&payload)?"),
                )
            };
            let mut d = docs(h.description.as_deref());
            if !d.is_empty() {
                d.push(format!("#[doc = {}]\n", lit("")));
            }
            d.push(format!(
                "#[doc = {}]\n",
                lit(&format!(" Handles `{}`.", h.pattern))
            ));
            members.push(MemberView {
                docs: d,
                name: names::member(&h.name),
                args: vec![ArgView {
                    name: "event".into(),
                    ty,
                }],
                many_args: false,
                ok: "()".into(),
                err: format!("{rt}::ServiceError"),
                is_handler: true,
                decode_event: decode,
                params_struct: String::new(),
                call_type: String::new(),
                core_fn: "",
                allows: method_allows(&names::member(&h.name)),
            });
        }
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
        }
    }

    fn descriptor_view(&self, s: &Service, service: usize) -> DescriptorView {
        let mut endpoints = Vec::new();
        for m in &s.methods {
            let (kind, subject) = match m.kind {
                MethodKind::Rpc => ("Rpc", format!("{}.rpc.{}", s.name, m.name)),
                MethodKind::Async => ("Async", format!("{}.async.{}", s.name, m.name)),
            };
            let retry = m.retry.unwrap_or(DEFAULT_RETRY);
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
            let mut roots: Vec<&TypeRef> = m.params.iter().map(|f| &f.ty).collect();
            let params_schema = self.with_defs(params, &roots);
            roots.clear();
            let result_schema = match &m.returns {
                Some(ty) => self.with_defs(self.schema_of(ty), &[ty]),
                None => json!({"type": "null"}),
            };
            endpoints.push(EndpointView {
                name: lit(&m.name),
                kind,
                subject: lit(&subject),
                timeout_ms: m.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
                max_attempts: retry.max_attempts,
                backoff_ms: retry.backoff_ms,
                mode: "Shared",
                delivery: "Durable",
                params_schema: lit(&params_schema.to_string()),
                result_schema: lit(&result_schema.to_string()),
                errors: m.errors.iter().map(|e| lit(&e.name)).collect(),
            });
        }
        for h in &s.handlers {
            let retry = h.retry.unwrap_or(DEFAULT_RETRY);
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
            endpoints.push(EndpointView {
                name: lit(&h.name),
                kind: "Event",
                subject: lit(&h.pattern),
                timeout_ms: 0,
                max_attempts: retry.max_attempts,
                backoff_ms: retry.backoff_ms,
                mode: match h.mode {
                    Mode::Shared => "Shared",
                    Mode::Broadcast => "Broadcast",
                },
                delivery: match h.delivery {
                    Delivery::Durable => "Durable",
                    Delivery::BestEffort => "BestEffort",
                },
                params_schema: lit(&schema.to_string()),
                result_schema: lit(&json!({"type": "null"}).to_string()),
                errors: Vec::new(),
            });
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
