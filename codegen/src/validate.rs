//! Node trees → the checked [`Model`], collecting every problem before failing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics, Loc, SourceFile, Suggestions};
use crate::model::{
    subject_matches, Delivery, ErrorDef, Event, EventPayload, Field, Handler, Method, MethodKind,
    Mode, Model, Package, Primitive, Retry, Service, Timer, TimerScope, TypeBody, TypeDef, TypeRef,
};
use crate::names;
use crate::parse::{parse, Key, Node, Value};

/// The default timeout of an RPC method without `timeout:`.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// The default retry policy of async methods and durable handlers without `retry:`.
pub const DEFAULT_RETRY: Retry = Retry {
    max_attempts: 3,
    backoff_ms: 1_000,
};

/// The outcome of loading schemas: the model when every file is clean, every problem otherwise,
/// and in both cases every file that was read (for `cargo:rerun-if-changed`).
#[derive(Debug)]
pub struct Loaded {
    pub model: Option<Model>,
    pub diagnostics: Diagnostics,
    pub files: Vec<PathBuf>,
}

struct File {
    source: SourceFile,
    root: Option<Node>,
    /// Resolved import paths with the node that named each.
    imports: Vec<(PathBuf, Node)>,
    package: String,
    package_loc: Loc,
}

/// Loads, parses and validates the given schema files and everything they import.
pub fn load(roots: &[PathBuf]) -> Loaded {
    let mut diags = Diagnostics::default();
    let mut files: Vec<File> = Vec::new();
    let mut index: HashMap<PathBuf, usize> = HashMap::new();
    let mut queue: Vec<PathBuf> = Vec::new();
    for root in roots {
        match canonical(root) {
            Ok(p) => queue.push(p),
            Err(e) => diags.push(Diagnostic::without_source(
                "natsgen::io",
                root,
                format!("cannot read schema: {e}"),
            )),
        }
    }
    while let Some(path) = queue.pop() {
        if index.contains_key(&path) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(Diagnostic::without_source(
                    "natsgen::io",
                    &path,
                    format!("cannot read schema: {e}"),
                ));
                continue;
            }
        };
        let display = display_path(&path);
        let source = SourceFile::new(&display, text);
        let file = read_header(source, &path, &mut diags);
        for (import, _) in &file.imports {
            queue.push(import.clone());
        }
        index.insert(path, files.len());
        files.push(file);
    }
    let read: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> = index.keys().cloned().collect();
        v.sort();
        v
    };
    check_import_cycles(&files, &index, &mut diags);

    // Package names must be unique across files.
    let mut by_package: HashMap<String, usize> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if let Some(&other) = by_package.get(&f.package) {
            diags.push(
                Diagnostic::new(
                    "natsgen::duplicate_name",
                    &f.source,
                    f.package_loc,
                    format!(
                        "package '{}' is also declared by {}",
                        f.package, files[other].source.display
                    ),
                )
                .label("second declaration"),
            );
        } else {
            by_package.insert(f.package.clone(), i);
        }
    }

    // First pass: the names each package declares.
    let decls: Vec<Decls> = files.iter().map(collect_decls).collect();

    // Second pass: full validation.
    let mut packages = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let Some(root) = &f.root else { continue };
        let imported: Vec<usize> = f
            .imports
            .iter()
            .filter_map(|(p, _)| index.get(p).copied())
            .collect();
        let mut v = Validator {
            file: f,
            diags: &mut diags,
            decls: &decls[i],
            all: &decls,
            imported,
            files: &files,
            type_names: None,
            package_type_names: HashMap::new(),
            events: None,
        };
        if let Some(pkg) = v.package(root) {
            packages.push(pkg);
        }
    }
    check_recursion(&mut packages, &files, &decls, &mut diags);
    check_unique_across_packages(&packages, &files, &mut diags);
    diags.sort();
    let model = if diags.is_empty() {
        Some(Model {
            packages: dependency_order(packages),
        })
    } else {
        None
    };
    Loaded {
        model,
        diagnostics: diags,
        files: read,
    }
}

/// A topic or a service name declared by two packages would share subjects: one stream per
/// topic and one queue group per service are the contract.
fn check_unique_across_packages(packages: &[Package], files: &[File], diags: &mut Diagnostics) {
    let mut topics: HashMap<&str, &str> = HashMap::new();
    let mut services: HashMap<&str, &str> = HashMap::new();
    let by_package: HashMap<&str, &File> = files.iter().map(|f| (f.package.as_str(), f)).collect();
    for p in packages {
        let Some(file) = by_package.get(p.name.as_str()).copied() else {
            continue;
        };
        let event_keys = file_section_keys(file, "events");
        let service_keys = file_section_keys(file, "services");
        for e in &p.events {
            if let Some(other) = topics.insert(&e.topic, &p.name) {
                diags.push(
                    Diagnostic::new(
                        "natsgen::duplicate_name",
                        &file.source,
                        event_keys
                            .get(e.topic.as_str())
                            .copied()
                            .unwrap_or_default(),
                        format!("topic '{}' is also declared by package '{other}'", e.topic),
                    )
                    .label("second declaration")
                    .help("declare each topic in one package; import it where it is used"),
                );
            }
        }
        for s in &p.services {
            if let Some(other) = services.insert(&s.name, &p.name) {
                diags.push(
                    Diagnostic::new(
                        "natsgen::duplicate_name",
                        &file.source,
                        service_keys
                            .get(s.name.as_str())
                            .copied()
                            .unwrap_or_default(),
                        format!("service '{}' is also declared by package '{other}'", s.name),
                    )
                    .label("second declaration")
                    .help("service names are subjects: they must be unique across packages"),
                );
            }
        }
    }
}

/// The position of each key of a mapping (the first, when a key is repeated).
fn section_keys(section: Option<&Node>) -> HashMap<&str, Loc> {
    let mut keys = HashMap::new();
    if let Some(Node {
        value: Value::Map(entries),
        ..
    }) = section
    {
        for (k, _) in entries {
            keys.entry(k.name.as_str()).or_insert(k.loc);
        }
    }
    keys
}

/// The positions of the keys under the top-level `section` of a file.
fn file_section_keys<'f>(file: &'f File, section: &str) -> HashMap<&'f str, Loc> {
    section_keys(file.root.as_ref().and_then(|r| map_get(r, section)))
}

fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(path)
}

/// A path relative to the current directory when it is below it, for shorter messages.
fn display_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

fn map_get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.value {
        Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
        _ => None,
    }
}

fn read_header(source: SourceFile, path: &Path, diags: &mut Diagnostics) -> File {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("schema")
        .to_string();
    let root = match parse(&source) {
        Ok(root) => Some(root),
        Err(d) => {
            diags.push(*d);
            None
        }
    };
    let mut package = stem;
    let mut package_loc = Loc {
        line: 1,
        column: 1,
        offset: 0,
        len: 0,
    };
    let mut imports = Vec::new();
    if let Some(root) = &root {
        if let Some(p) = map_get(root, "package").and_then(|n| n.as_str().map(|s| (s, n.loc))) {
            package = p.0.to_string();
            package_loc = p.1;
        }
        if let Some(list) = map_get(root, "imports") {
            if let Value::Seq(items) = &list.value {
                let dir = path.parent().unwrap_or(Path::new("."));
                for item in items {
                    let Some(rel) = item.as_str() else { continue };
                    match canonical(&dir.join(rel)) {
                        Ok(p) => imports.push((p, item.clone())),
                        Err(e) => diags.push(
                            Diagnostic::new(
                                "natsgen::missing_import",
                                &source,
                                item.loc,
                                format!("cannot import '{rel}': {e}"),
                            )
                            .label("imported here")
                            .help("imports are paths relative to the importing file"),
                        ),
                    }
                }
            }
        }
    }
    File {
        source,
        root,
        imports,
        package,
        package_loc,
    }
}

fn check_import_cycles(files: &[File], index: &HashMap<PathBuf, usize>, diags: &mut Diagnostics) {
    // Depth-first search; an edge to a file on the current stack closes a cycle.
    fn visit(
        i: usize,
        files: &[File],
        index: &HashMap<PathBuf, usize>,
        state: &mut [u8],
        stack: &mut Vec<usize>,
        diags: &mut Diagnostics,
    ) {
        state[i] = 1;
        stack.push(i);
        for (path, node) in &files[i].imports {
            let Some(&j) = index.get(path) else { continue };
            if state[j] == 1 {
                let start = stack.iter().position(|&s| s == j).unwrap_or(0);
                let chain: Vec<&str> = stack[start..]
                    .iter()
                    .map(|&s| files[s].source.display.as_str())
                    .chain(std::iter::once(files[j].source.display.as_str()))
                    .collect();
                diags.push(
                    Diagnostic::new(
                        "natsgen::import_cycle",
                        &files[i].source,
                        node.loc,
                        format!("import cycle: {}", chain.join(" → ")),
                    )
                    .label("this import closes the cycle")
                    .help("move the shared types into a file that both import"),
                );
            } else if state[j] == 0 {
                visit(j, files, index, state, stack, diags);
            }
        }
        stack.pop();
        state[i] = 2;
    }
    let mut state = vec![0u8; files.len()];
    for i in 0..files.len() {
        if state[i] == 0 {
            let mut stack = Vec::new();
            visit(i, files, index, &mut state, &mut stack, diags);
        }
    }
}

/// Names a package declares, gathered before full validation so references can be resolved in any
/// order.
#[derive(Default)]
struct Decls {
    package: String,
    types: BTreeMap<String, TypeShape>,
    events: Vec<String>,
    services: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TypeShape {
    Struct,
    Enum,
}

fn collect_decls(f: &File) -> Decls {
    let mut d = Decls {
        package: f.package.clone(),
        ..Decls::default()
    };
    let Some(root) = &f.root else { return d };
    if let Some(Node {
        value: Value::Map(types),
        ..
    }) = map_get(root, "types")
    {
        for (k, v) in types {
            let shape = if map_get(v, "enum").is_some() {
                TypeShape::Enum
            } else {
                TypeShape::Struct
            };
            d.types.entry(k.name.clone()).or_insert(shape);
        }
    }
    if let Some(Node {
        value: Value::Map(events),
        ..
    }) = map_get(root, "events")
    {
        d.events = events.iter().map(|(k, _)| k.name.clone()).collect();
    }
    if let Some(Node {
        value: Value::Map(services),
        ..
    }) = map_get(root, "services")
    {
        d.services = services.iter().map(|(k, _)| k.name.clone()).collect();
    }
    d
}

struct Validator<'a> {
    file: &'a File,
    diags: &'a mut Diagnostics,
    decls: &'a Decls,
    all: &'a [Decls],
    imported: Vec<usize>,
    files: &'a [File],
    /// Built on the first unknown type: every type name usable unqualified or as `pkg.Type`.
    type_names: Option<Suggestions>,
    /// Built on the first unknown `pkg.Type` of each package.
    package_type_names: HashMap<usize, Suggestions>,
    /// Built on the first event reference: the events this file can name.
    events: Option<KnownEvents>,
}

/// The events a file can name (its own and its imports'), indexed once.
struct KnownEvents {
    /// `(package, topic)` in declaration order, own package first.
    all: Vec<(String, String)>,
    topics: HashSet<String>,
    suggestions: Suggestions,
}

const TOP_KEYS: &[&str] = &[
    "natsgen",
    "package",
    "description",
    "imports",
    "types",
    "events",
    "services",
];
const TYPE_KEYS: &[&str] = &["description", "fields", "enum"];
const FIELD_KEYS: &[&str] = &["type", "description"];
const EVENT_KEYS: &[&str] = &["description", "payload", "fields"];
const SERVICE_KEYS: &[&str] = &["description", "version", "methods", "handles", "timers"];
const METHOD_KEYS: &[&str] = &[
    "kind",
    "description",
    "params",
    "returns",
    "emits",
    "errors",
    "timeout",
    "retry",
];
const ERROR_KEYS: &[&str] = &["description", "fields"];
const RETRY_KEYS: &[&str] = &["max_attempts", "backoff"];
const HANDLER_KEYS: &[&str] = &["handler", "description", "mode", "delivery", "retry"];
const TIMER_KEYS: &[&str] = &["every", "scope", "description", "retry"];
/// The shortest timer period: below it, ticks of instances whose clocks differ by a few
/// milliseconds would be told apart as different ticks too often to be useful.
pub const MIN_TIMER_PERIOD_MS: u64 = 100;

impl Validator<'_> {
    /// A value as the schema writes it (quotes included), for messages: `1.0` stays `1.0`.
    fn written(&self, node: &Node) -> String {
        let text = &self.file.source.text;
        let raw = text
            .get(node.loc.offset..node.loc.offset + node.loc.len)
            .unwrap_or_default()
            .trim();
        let raw = if raw.is_empty() {
            node.scalar_text()
                .unwrap_or_else(|| node.kind().to_string())
        } else {
            raw.to_string()
        };
        let clean: String = raw
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(80)
            .collect();
        if clean.starts_with(['"', '\'']) {
            clean
        } else {
            format!("'{clean}'")
        }
    }

    /// A scalar's text without quotes, for messages that quote it themselves.
    fn unquoted(&self, node: &Node) -> String {
        node.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| self.written(node).trim_matches(['\'', '"']).to_string())
    }

    fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn diag(&self, code: &'static str, loc: Loc, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, &self.file.source, loc, message)
    }

    /// A mapping with a fixed set of keys: reports a wrong shape, unknown keys and repeated keys.
    fn fixed_map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<HashMap<&'n str, &'n Node>> {
        let Value::Map(entries) = &node.value else {
            let d = self
                .diag(
                    "natsgen::wrong_shape",
                    node.loc,
                    format!("{what} must be a mapping, found {}", node.kind()),
                )
                .label("expected a mapping");
            self.report(d);
            return None;
        };
        let mut out = HashMap::new();
        for (k, v) in entries {
            if !allowed.contains(&k.name.as_str()) {
                let help = did_you_mean(&k.name, allowed.iter().copied())
                    .unwrap_or_else(|| format!("allowed keys: {}", allowed.join(", ")));
                let d = self
                    .diag(
                        "natsgen::unknown_key",
                        k.loc,
                        format!("unknown key '{}' in {what}", k.name),
                    )
                    .label("not a known key")
                    .help(help);
                self.report(d);
            } else if out.insert(k.name.as_str(), v).is_some() {
                let d = self
                    .diag(
                        "natsgen::duplicate_name",
                        k.loc,
                        format!("key '{}' is given twice in {what}", k.name),
                    )
                    .label("repeated key");
                self.report(d);
            }
        }
        Some(out)
    }

    /// A mapping whose keys are names the user chooses; repeated keys are reported.
    fn named_map<'n>(&mut self, node: &'n Node, what: &str) -> Vec<(&'n Key, &'n Node)> {
        match &node.value {
            Value::Map(entries) => {
                let mut seen: HashSet<&str> = HashSet::new();
                let mut out = Vec::new();
                for (k, v) in entries {
                    if !seen.insert(&k.name) {
                        let d = self
                            .diag(
                                "natsgen::duplicate_name",
                                k.loc,
                                format!("'{}' is declared twice in {what}", k.name),
                            )
                            .label("second declaration");
                        self.report(d);
                        continue;
                    }
                    out.push((k, v));
                }
                out
            }
            Value::Null => Vec::new(),
            _ => {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        node.loc,
                        format!("{what} must be a mapping, found {}", node.kind()),
                    )
                    .label("expected a mapping");
                self.report(d);
                Vec::new()
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.scalar_text() {
            Some(s) if matches!(node.value, Value::Str(_)) => Some(s),
            _ => {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        node.loc,
                        format!("{what} must be a string, found {}", node.kind()),
                    )
                    .label("expected a string");
                self.report(d);
                None
            }
        }
    }

    fn description(&mut self, map: &HashMap<&str, &Node>) -> Option<String> {
        map.get("description")
            .and_then(|n| self.string(n, "description"))
    }

    fn package(&mut self, root: &Node) -> Option<Package> {
        let top = self.fixed_map(root, "a schema file", TOP_KEYS)?;
        match top.get("natsgen") {
            None => {
                let d = self
                    .diag(
                        "natsgen::format_version",
                        root.loc,
                        "missing 'natsgen: 1' (the schema format version)",
                    )
                    .label("schema starts here")
                    .help("add `natsgen: 1` as the first line");
                self.report(d);
            }
            Some(n) if n.value == Value::Int(1) => {}
            Some(n) => {
                let d = self
                    .diag(
                        "natsgen::format_version",
                        n.loc,
                        format!("unsupported schema format {}", self.written(n)),
                    )
                    .label("this generator reads format 1")
                    .help(if n.as_str() == Some("1") {
                        "the format version is a number: write `natsgen: 1` without quotes"
                    } else {
                        "write `natsgen: 1`"
                    });
                self.report(d);
            }
        }
        let package = self.file.package.clone();
        if let Some(n) = top.get("package") {
            if let Some(name) = self.string(n, "package") {
                if self.snake_name(&name, n.loc, "package") {
                    self.package_module_name(&name, n.loc, None);
                }
            }
        } else if names::is_snake_case(&package) {
            let loc = Loc {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            };
            self.package_module_name(&package, loc, Some("the file name gives "));
        } else {
            let loc = Loc {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            };
            let d = self
                .diag(
                    "natsgen::invalid_name",
                    loc,
                    format!(
                        "the file name gives package name '{package}', which is not snake_case"
                    ),
                )
                .help(format!("add `package: {}`", names::to_snake(&package)));
            self.report(d);
        }
        let description = self.description(&top);
        if let Some(n) = top.get("imports") {
            if !matches!(n.value, Value::Seq(_)) {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        n.loc,
                        format!("imports must be a list of paths, found {}", n.kind()),
                    )
                    .label("expected a list");
                self.report(d);
            } else if let Value::Seq(items) = &n.value {
                for item in items {
                    self.string(item, "an import");
                }
            }
        }
        let imports: Vec<String> = self
            .imported
            .iter()
            .map(|&i| self.all[i].package.clone())
            .collect();

        let mut types = Vec::new();
        if let Some(n) = top.get("types") {
            for (k, v) in self.named_map(n, "types") {
                if let Some(t) = self.type_def(k, v) {
                    types.push(t);
                }
            }
        }
        let mut events = Vec::new();
        if let Some(n) = top.get("events") {
            for (k, v) in self.named_map(n, "events") {
                if let Some(e) = self.event(k, v) {
                    events.push(e);
                }
            }
        }
        let mut services = Vec::new();
        if let Some(n) = top.get("services") {
            for (k, v) in self.named_map(n, "services") {
                if let Some(s) = self.service(k, v) {
                    services.push(s);
                }
            }
        }
        let pkg = Package {
            name: package,
            path: self.file.source.path.clone(),
            description,
            imports,
            types,
            events,
            services,
        };
        self.cross_checks(&pkg, &top);
        Some(pkg)
    }

    fn snake_name(&mut self, name: &str, loc: Loc, what: &str) -> bool {
        if let Some(bad) = name
            .chars()
            .find(|c| matches!(c, ' ' | '.' | '*' | '>' | '$' | '\t'))
        {
            let d = self
                .diag(
                    "natsgen::invalid_name",
                    loc,
                    format!(
                        "{what} name '{name}' is not a valid NATS subject token (contains {bad:?})"
                    ),
                )
                .label("not allowed in a subject token")
                .help(format!(
                    "{what} names are snake_case: letters, digits and '_'"
                ));
            self.report(d);
            return false;
        }
        if !names::is_snake_case(name) {
            let fixed = names::to_snake(name);
            let help = if names::is_snake_case(&fixed) {
                format!("write it '{fixed}'")
            } else {
                format!(
                    "{what} names are snake_case: a lowercase letter, then letters, digits and '_'"
                )
            };
            let d = self
                .diag(
                    "natsgen::name_case",
                    loc,
                    format!("{what} name '{name}' is not snake_case"),
                )
                .label("not snake_case")
                .help(help);
            self.report(d);
            return false;
        }
        true
    }

    /// A package is a module the user declares (`pub mod <package>`), so its name must pass
    /// rustc's `non_snake_case` lint: no `__` inside.
    fn package_module_name(&mut self, name: &str, loc: Loc, from_file: Option<&str>) {
        if names::is_lint_snake_case(name) {
            return;
        }
        let fixed = names::member(name);
        let d = self
            .diag(
                "natsgen::name_case",
                loc,
                format!(
                    "{}package name '{name}' has '__' inside: the module `pub mod {name}` would trip Rust's non_snake_case lint",
                    from_file.unwrap_or("")
                ),
            )
            .label("'__' inside a module name")
            .help(match from_file {
                Some(_) => format!("add `package: {}`", names::unraw(&fixed)),
                None => format!("write it '{}'", names::unraw(&fixed)),
            });
        self.report(d);
    }

    fn pascal_name(&mut self, name: &str, loc: Loc, what: &str) -> bool {
        if !names::is_pascal_case(name) {
            let fixed = names::to_pascal(name);
            let help = if names::is_pascal_case(&fixed) {
                format!("write it '{fixed}'")
            } else {
                format!("{what} names are PascalCase: an uppercase letter, then letters and digits")
            };
            let d = self
                .diag(
                    "natsgen::name_case",
                    loc,
                    format!("{what} name '{name}' is not PascalCase"),
                )
                .label("not PascalCase")
                .help(help);
            self.report(d);
            return false;
        }
        true
    }

    fn type_def(&mut self, key: &Key, node: &Node) -> Option<TypeDef> {
        self.pascal_name(&key.name, key.loc, "type");
        let what = format!("type '{}'", key.name);
        let map = self.fixed_map(node, &what, TYPE_KEYS)?;
        let description = self.description(&map);
        let body = match (map.get("fields"), map.get("enum")) {
            (Some(_), Some(e)) => {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        e.loc,
                        format!("{what} has both 'fields' and 'enum'"),
                    )
                    .label("a type is a struct or an enum, not both");
                self.report(d);
                return None;
            }
            (Some(f), None) => TypeBody::Struct(self.fields(f, &what, false)),
            (None, Some(e)) => TypeBody::Enum(self.enum_values(e, &what)),
            (None, None) => {
                let d = self
                    .diag(
                        "natsgen::missing_key",
                        key.loc,
                        format!("{what} needs 'fields' or 'enum'"),
                    )
                    .label("declared here")
                    .help("write `fields: {name: string}` or `enum: [a, b]`");
                self.report(d);
                return None;
            }
        };
        Some(TypeDef {
            name: key.name.clone(),
            description,
            body,
        })
    }

    fn enum_values(&mut self, node: &Node, what: &str) -> Vec<String> {
        let Value::Seq(items) = &node.value else {
            let d = self
                .diag(
                    "natsgen::wrong_shape",
                    node.loc,
                    format!("the enum of {what} must be a list of strings"),
                )
                .label("expected a list");
            self.report(d);
            return Vec::new();
        };
        if items.is_empty() {
            let d = self
                .diag(
                    "natsgen::wrong_shape",
                    node.loc,
                    format!("the enum of {what} has no values"),
                )
                .label("empty");
            self.report(d);
        }
        let mut out = Vec::new();
        let mut rust: HashMap<String, String> = HashMap::new();
        for item in items {
            let Some(value) = item
                .scalar_text()
                .filter(|_| !matches!(item.value, Value::Seq(_) | Value::Map(_)))
            else {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        item.loc,
                        format!("an enum value must be a string, found {}", item.kind()),
                    )
                    .label("expected a string");
                self.report(d);
                continue;
            };
            let variant = names::to_pascal(&value);
            if variant.is_empty() || !names::is_pascal_case(&variant) {
                let d = self
                    .diag(
                        "natsgen::invalid_name",
                        item.loc,
                        format!("enum value '{value}' cannot be a Rust variant name"),
                    )
                    .label("needs a letter first")
                    .help("start the value with a letter");
                self.report(d);
                continue;
            }
            if let Some(prev) = rust.insert(variant.clone(), value.clone()) {
                let msg = if prev == value {
                    format!("enum value '{value}' is declared twice in {what}")
                } else {
                    format!("enum values '{prev}' and '{value}' both become the Rust variant '{variant}'")
                };
                let d = self
                    .diag("natsgen::duplicate_name", item.loc, msg)
                    .label("second declaration");
                self.report(d);
                continue;
            }
            out.push(value);
        }
        out
    }

    /// The fields of a type, event, error or (with `params`) the params of a method.
    fn fields(&mut self, node: &Node, what: &str, params: bool) -> Vec<Field> {
        let mut out = Vec::new();
        let mut rust: HashMap<String, String> = HashMap::new();
        for (k, v) in self.named_map(node, &format!("the fields of {what}")) {
            if names::field_base(&k.name).is_none() {
                let d = self
                    .diag(
                        "natsgen::invalid_name",
                        k.loc,
                        format!("'{}' cannot be made into a Rust field name", k.name),
                    )
                    .label("needs a letter or '_' first, then letters, digits or '_'")
                    .help("rename the field");
                self.report(d);
                continue;
            };
            let rust_name = if params {
                names::param(&k.name)
            } else {
                names::field(&k.name)
            };
            let base = names::unraw(&rust_name).to_string();
            if let Some(prev) = rust.insert(base.clone(), k.name.clone()) {
                let d = self
                    .diag(
                        "natsgen::rust_name_clash",
                        k.loc,
                        format!(
                            "'{prev}' and '{}' in {what} both become the Rust name '{base}'",
                            k.name
                        ),
                    )
                    .label("clashes with an earlier name")
                    .help("rename one of them");
                self.report(d);
                continue;
            }
            let (ty_node, description) = match &v.value {
                Value::Map(_) => {
                    let Some(m) = self.fixed_map(v, &format!("field '{}'", k.name), FIELD_KEYS)
                    else {
                        continue;
                    };
                    let description = self.description(&m);
                    let Some(t) = m.get("type").copied() else {
                        let d = self
                            .diag(
                                "natsgen::missing_key",
                                v.loc,
                                format!("field '{}' needs a 'type'", k.name),
                            )
                            .label("no type");
                        self.report(d);
                        continue;
                    };
                    (t, description)
                }
                _ => (v, None),
            };
            if let Some(ty) = self.type_expr(ty_node) {
                out.push(Field {
                    name: k.name.clone(),
                    description,
                    ty,
                    boxed: false,
                });
            }
        }
        out
    }

    fn type_expr(&mut self, node: &Node) -> Option<TypeRef> {
        let Some(text) = node.as_str() else {
            let d = self
                .diag(
                    "natsgen::wrong_shape",
                    node.loc,
                    format!("a type must be written as a string, found {}", node.kind()),
                )
                .label("expected a type such as `string` or `list<Order>`");
            self.report(d);
            return None;
        };
        match parse_type_expr(text) {
            Ok(expr) => self.resolve(&expr, node.loc),
            Err(msg) => {
                let d = self
                    .diag(
                        "natsgen::invalid_type_expr",
                        node.loc,
                        format!("malformed type '{text}': {msg}"),
                    )
                    .label("cannot parse this type")
                    .help("types are a name, `package.Type`, `list<T>`, `map<T>` or `optional<T>`");
                self.report(d);
                None
            }
        }
    }

    fn resolve(&mut self, expr: &TypeExpr, loc: Loc) -> Option<TypeRef> {
        match expr {
            TypeExpr::Generic(wrapper, inner) => {
                let inner = Box::new(self.resolve(inner, loc)?);
                Some(match wrapper.as_str() {
                    "list" => TypeRef::List(inner),
                    "map" => TypeRef::Map(inner),
                    _ => TypeRef::Optional(inner),
                })
            }
            TypeExpr::Name(None, name) => {
                if let Some(p) = Primitive::from_name(name) {
                    return Some(TypeRef::Primitive(p));
                }
                if self.decls.types.contains_key(name) {
                    return Some(TypeRef::Named {
                        package: self.decls.package.clone(),
                        name: name.clone(),
                    });
                }
                let (decls, all, imported) = (self.decls, self.all, &self.imported);
                let mut help = self
                    .type_names
                    .get_or_insert_with(|| {
                        let mut names = Suggestions::new(Primitive::ALL.iter().map(|(n, _)| *n));
                        for t in decls.types.keys() {
                            names.push(t);
                        }
                        for &i in imported {
                            let pkg = &all[i].package;
                            for t in all[i].types.keys() {
                                names.push(&format!("{pkg}.{t}"));
                            }
                        }
                        names
                    })
                    .did_you_mean(name);
                if help.is_none() {
                    if let Some(pkg) = self
                        .imported
                        .iter()
                        .find(|&&i| self.all[i].types.contains_key(name))
                    {
                        help = Some(format!("did you mean '{}.{name}'?", self.all[*pkg].package));
                    }
                }
                let d = self
                    .diag(
                        "natsgen::unknown_type",
                        loc,
                        format!("unknown type '{name}'"),
                    )
                    .label("not a built-in or declared type")
                    .with_help(help);
                self.report(d);
                None
            }
            TypeExpr::Name(Some(pkg), name) => {
                let target = if *pkg == self.decls.package {
                    Some((usize::MAX, self.decls))
                } else {
                    self.imported
                        .iter()
                        .map(|&i| (i, &self.all[i]))
                        .find(|(_, d)| d.package == *pkg)
                };
                let Some((target_index, target)) = target else {
                    let imported: Vec<&str> = self
                        .imported
                        .iter()
                        .map(|&i| self.all[i].package.as_str())
                        .collect();
                    let help = if imported.is_empty() {
                        format!(
                            "import the schema that declares package '{pkg}' with `imports: [...]`"
                        )
                    } else {
                        format!("imported packages: {}", imported.join(", "))
                    };
                    let d = self
                        .diag(
                            "natsgen::unknown_type",
                            loc,
                            format!("unknown package '{pkg}' in type '{pkg}.{name}'"),
                        )
                        .label("no such package is imported")
                        .help(help);
                    self.report(d);
                    return None;
                };
                if target.types.contains_key(name) {
                    Some(TypeRef::Named {
                        package: pkg.clone(),
                        name: name.clone(),
                    })
                } else {
                    let help = self
                        .package_type_names
                        .entry(target_index)
                        .or_insert_with(|| {
                            Suggestions::new(target.types.keys().map(String::as_str))
                        })
                        .did_you_mean(name);
                    let d = self
                        .diag(
                            "natsgen::unknown_type",
                            loc,
                            format!("unknown type '{name}' in package '{pkg}'"),
                        )
                        .label("not declared there")
                        .with_help(help);
                    self.report(d);
                    None
                }
            }
        }
    }

    fn event(&mut self, key: &Key, node: &Node) -> Option<Event> {
        let valid_topic = self.topic_name(&key.name, key.loc);
        let what = format!("event '{}'", key.name);
        let map = self.fixed_map(node, &what, EVENT_KEYS)?;
        let description = self.description(&map);
        let payload = match (map.get("payload"), map.get("fields")) {
            (Some(p), None) => EventPayload::Named(self.type_expr(p)?),
            (None, Some(f)) => EventPayload::Inline(self.fields(f, &what, false)),
            (Some(_), Some(f)) => {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        f.loc,
                        format!("{what} has both 'payload' and 'fields'"),
                    )
                    .label("give one of them");
                self.report(d);
                return None;
            }
            (None, None) => {
                let d = self
                    .diag(
                        "natsgen::missing_key",
                        key.loc,
                        format!("{what} needs a 'payload' type or inline 'fields'"),
                    )
                    .label("declared here");
                self.report(d);
                return None;
            }
        };
        valid_topic.then(|| Event {
            topic: key.name.clone(),
            description,
            payload,
        })
    }

    fn topic_name(&mut self, topic: &str, loc: Loc) -> bool {
        let problem = if topic.starts_with("natsgen.") || topic.starts_with('$') {
            Some("topics may not start with 'natsgen.' or '$' (reserved for the runtime and the server)".to_string())
        } else if topic.is_empty() || topic.split('.').any(str::is_empty) {
            Some("empty token: topics are dot-separated tokens".to_string())
        } else if let Some(t) = topic.split('.').find(|t| t.contains(['*', '>'])) {
            Some(format!(
                "wildcard '{t}' in a declared topic; wildcards belong in `handles` patterns"
            ))
        } else {
            topic.split('.').find(|t| !is_topic_token(t)).map(|t| {
                format!("token '{t}' is not lowercase (a letter, then letters, digits, '_' or '-')")
            })
        };
        if let Some(problem) = problem {
            let help = match suggest_topic(topic) {
                Some(fixed) if fixed != topic => {
                    format!("topics are dot-separated lowercase tokens, e.g. '{fixed}'")
                }
                _ => "topics are dot-separated lowercase tokens, e.g. 'orders.created'".to_string(),
            };
            let d = self
                .diag(
                    "natsgen::invalid_topic",
                    loc,
                    format!("invalid topic '{topic}': {problem}"),
                )
                .label("not a valid topic")
                .help(help);
            self.report(d);
            return false;
        }
        true
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<u64> {
        let value = if matches!(node.value, Value::Str(_)) {
            node.scalar_text()
        } else {
            None
        };
        let text = self.written(node);
        match value.as_deref().and_then(parse_duration) {
            Some(ms) if ms > 0 => Some(ms),
            _ => {
                let d = self
                    .diag(
                        "natsgen::invalid_duration",
                        node.loc,
                        format!("malformed duration {text} for {what}"),
                    )
                    .label("not a duration")
                    .help("write a positive number with a unit: `500ms`, `10s`, `2m`, `1h`");
                self.report(d);
                None
            }
        }
    }

    fn retry(&mut self, node: &Node, what: &str) -> Option<Retry> {
        let map = self.fixed_map(node, &format!("the retry policy of {what}"), RETRY_KEYS)?;
        let mut retry = DEFAULT_RETRY;
        if let Some(n) = map.get("max_attempts") {
            match n.value {
                Value::Int(i) if (1..=i128::from(u32::MAX)).contains(&i) => {
                    retry.max_attempts = u32::try_from(i).unwrap_or(u32::MAX);
                }
                _ => {
                    let d = self
                        .diag(
                            "natsgen::invalid_value",
                            n.loc,
                            "max_attempts must be a positive integer",
                        )
                        .label("expected an integer ≥ 1");
                    self.report(d);
                }
            }
        }
        if let Some(n) = map.get("backoff") {
            retry.backoff_ms = self.duration(n, "backoff")?;
        }
        Some(retry)
    }

    fn service(&mut self, key: &Key, node: &Node) -> Option<Service> {
        self.snake_name(&key.name, key.loc, "service");
        let what = format!("service '{}'", key.name);
        let map = self.fixed_map(node, &what, SERVICE_KEYS)?;
        let description = self.description(&map);
        let version = map.get("version").and_then(|n| {
            let value = if matches!(n.value, Value::Str(_)) {
                n.scalar_text()
            } else {
                None
            };
            let text = self.written(n);
            if let Some(version) = value.filter(|v| is_semver(v)) {
                Some(version)
            } else {
                let d = self
                    .diag(
                        "natsgen::invalid_version",
                        n.loc,
                        format!("version {text} is not semantic versioning"),
                    )
                    .label("expected MAJOR.MINOR.PATCH")
                    .help("write e.g. `version: 1.0.0`");
                self.report(d);
                None
            }
        });
        let mut methods = Vec::new();
        let mut members: HashMap<String, String> = HashMap::new();
        if let Some(n) = map.get("methods") {
            for (k, v) in self.named_map(n, &format!("the methods of {what}")) {
                if let Some(m) = self.method(&key.name, k, v) {
                    self.member_name(&mut members, &m.name, k.loc, &what, false);
                    methods.push(m);
                }
            }
        }
        let mut handlers = Vec::new();
        if let Some(n) = map.get("handles") {
            for (k, v) in self.named_map(n, &format!("the handlers of {what}")) {
                if let Some(h) = self.handler(k, v) {
                    self.member_name(&mut members, &h.name, v.loc, &what, true);
                    handlers.push(h);
                }
            }
        }
        let mut timers = Vec::new();
        if let Some(n) = map.get("timers") {
            for (k, v) in self.named_map(n, &format!("the timers of {what}")) {
                if let Some(t) = self.timer(&key.name, k, v) {
                    self.member_name(&mut members, &t.name, k.loc, &what, true);
                    timers.push(t);
                }
            }
        }
        Some(Service {
            name: key.name.clone(),
            description,
            version,
            methods,
            handlers,
            timers,
        })
    }

    /// A timer: `name: {every: 30s, scope: service}`, or `name: 30s` for the defaults.
    fn timer(&mut self, service: &str, key: &Key, node: &Node) -> Option<Timer> {
        self.snake_name(&key.name, key.loc, "timer");
        let what = format!("timer '{service}.{}'", key.name);
        let mut timer = Timer {
            name: key.name.clone(),
            description: None,
            every_ms: 0,
            scope: TimerScope::Service,
            retry: None,
        };
        let every = match &node.value {
            Value::Str(_) => node,
            _ => {
                let map = self.fixed_map(node, &what, TIMER_KEYS)?;
                timer.description = self.description(&map);
                if let Some(n) = map.get("scope") {
                    match n.as_str() {
                        Some("service") => timer.scope = TimerScope::Service,
                        Some("instance") => timer.scope = TimerScope::Instance,
                        _ => {
                            let text = self.unquoted(n);
                            let help =
                                did_you_mean(&text, ["service", "instance"]).unwrap_or_else(|| {
                                    "scopes: service (the default: one instance runs each \
                                     tick), instance (every instance does)"
                                        .into()
                                });
                            let d = self
                                .diag(
                                    "natsgen::unknown_kind",
                                    n.loc,
                                    format!("unknown timer scope '{text}'"),
                                )
                                .label("not service or instance")
                                .help(help);
                            self.report(d);
                        }
                    }
                }
                if let Some(n) = map.get("retry") {
                    if timer.scope == TimerScope::Instance {
                        let d = self
                            .diag(
                                "natsgen::wrong_shape",
                                n.loc,
                                format!("{what} runs on every instance and is not retried"),
                            )
                            .label("retry is for `scope: service` timers")
                            .help("remove `retry`; the next tick comes with the next period");
                        self.report(d);
                    } else {
                        timer.retry = self.retry(n, &what);
                    }
                }
                match map.get("every") {
                    Some(n) => *n,
                    None => {
                        let d = self
                            .diag(
                                "natsgen::missing_key",
                                node.loc,
                                format!("{what} needs a period, `every`"),
                            )
                            .label("no period")
                            .help("write e.g. `every: 30s`");
                        self.report(d);
                        return None;
                    }
                }
            }
        };
        timer.every_ms = self.duration(every, "every")?;
        if timer.every_ms < MIN_TIMER_PERIOD_MS {
            let d = self
                .diag(
                    "natsgen::invalid_value",
                    every.loc,
                    format!("the period of {what} is shorter than {MIN_TIMER_PERIOD_MS}ms"),
                )
                .label("too short")
                .help("timers tick at most ten times a second; write e.g. `every: 1s`");
            self.report(d);
            return None;
        }
        Some(timer)
    }

    /// Methods, handlers and timers share one trait, so their Rust names must differ; the
    /// client's own methods are reserved for methods.
    fn member_name(
        &mut self,
        members: &mut HashMap<String, String>,
        name: &str,
        loc: Loc,
        what: &str,
        is_handler: bool,
    ) {
        let rust = names::member(name);
        if matches!(rust.as_str(), "new" | "with_options" | "with_retry") && !is_handler {
            let d = self
                .diag(
                    "natsgen::reserved_name",
                    loc,
                    format!("'{name}' is reserved in {what}: the generated client has a method '{rust}'"),
                )
                .label("reserved")
                .help("choose another name, e.g. 'create'");
            self.report(d);
        } else if let Some(prev) = members.get(&rust) {
            let d = if prev == name {
                self.diag(
                    "natsgen::duplicate_name",
                    loc,
                    format!("'{name}' is declared twice in {what} (methods, handlers and timers share one trait)"),
                )
                .label("second declaration")
            } else {
                self.diag(
                    "natsgen::rust_name_clash",
                    loc,
                    format!("'{prev}' and '{name}' in {what} both become the Rust method '{rust}'"),
                )
                .label("clashes with an earlier method or handler")
                .help("rename one of them (runs of '_' count as one in Rust names)")
            };
            self.report(d);
        } else {
            members.insert(rust, name.to_string());
        }
    }

    fn method(&mut self, service: &str, key: &Key, node: &Node) -> Option<Method> {
        self.snake_name(&key.name, key.loc, "method");
        let what = format!("method '{service}.{}'", key.name);
        let map = self.fixed_map(node, &what, METHOD_KEYS)?;
        let kind = match map.get("kind") {
            None => MethodKind::Rpc,
            Some(n) => match n.as_str() {
                Some("rpc") => MethodKind::Rpc,
                Some("async") => MethodKind::Async,
                other => {
                    let text = other
                        .map(str::to_string)
                        .unwrap_or_else(|| self.unquoted(n));
                    let help = did_you_mean(&text, ["rpc", "async"])
                        .unwrap_or_else(|| "kinds: rpc (the default), async".into());
                    let d = self
                        .diag(
                            "natsgen::unknown_kind",
                            n.loc,
                            format!("unknown method kind '{text}'"),
                        )
                        .label("not rpc or async")
                        .help(help);
                    self.report(d);
                    MethodKind::Rpc
                }
            },
        };
        let description = self.description(&map);
        let params = map
            .get("params")
            .map(|n| self.fields(n, &format!("the params of {what}"), true))
            .unwrap_or_default();
        let returns = match map.get("returns") {
            Some(n) if kind == MethodKind::Async => {
                let d = self
                    .diag("natsgen::async_returns", n.loc, format!("async {what} cannot return a value"))
                    .label("async methods are fire-and-forget")
                    .help("remove `returns`, or make the method `kind: rpc`, or emit an event with the result");
                self.report(d);
                None
            }
            Some(n) => self.type_expr(n),
            None => None,
        };
        let mut emits = Vec::new();
        if let Some(n) = map.get("emits") {
            match &n.value {
                Value::Seq(items) => {
                    for item in items {
                        if let Some(topic) = self.string(item, "an emitted topic") {
                            if self.check_event_exists(&topic, item.loc) {
                                emits.push(topic);
                            }
                        }
                    }
                }
                _ => {
                    let d = self
                        .diag(
                            "natsgen::wrong_shape",
                            n.loc,
                            "emits must be a list of topics",
                        )
                        .label("expected a list");
                    self.report(d);
                }
            }
        }
        let mut errors = Vec::new();
        if let Some(n) = map.get("errors") {
            if kind == MethodKind::Async {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        n.loc,
                        format!("async {what} cannot declare errors: no caller waits for them"),
                    )
                    .label("errors are for rpc methods")
                    .help("failures of async calls are retried and then dead-lettered");
                self.report(d);
            }
            for (k, v) in self.named_map(n, &format!("the errors of {what}")) {
                self.pascal_name(&k.name, k.loc, "error");
                if RUNTIME_ERROR_KINDS.contains(&k.name.as_str()) || k.name == "Internal" {
                    let d = self
                        .diag("natsgen::reserved_name", k.loc, format!("error name '{}' is reserved", k.name))
                        .label("reserved")
                        .help("'Internal' is the generated variant for failures that are not declared");
                    self.report(d);
                }
                let ewhat = format!("error '{}'", k.name);
                let (description, fields) = match &v.value {
                    Value::Null => (None, Vec::new()),
                    _ => match self.fixed_map(v, &ewhat, ERROR_KEYS) {
                        Some(m) => {
                            let description = self.description(&m);
                            let fields = m
                                .get("fields")
                                .map(|f| self.fields(f, &ewhat, false))
                                .unwrap_or_default();
                            (description, fields)
                        }
                        None => continue,
                    },
                };
                errors.push(ErrorDef {
                    name: k.name.clone(),
                    description,
                    fields,
                });
            }
        }
        let timeout_ms = match map.get("timeout") {
            Some(n) if kind == MethodKind::Async => {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        n.loc,
                        format!("async {what} has no timeout: its caller does not wait"),
                    )
                    .label("timeouts are for rpc methods");
                self.report(d);
                None
            }
            Some(n) => self.duration(n, "timeout"),
            None => None,
        };
        let retry = match map.get("retry") {
            Some(n) if kind == MethodKind::Rpc => {
                let d = self
                    .diag(
                        "natsgen::wrong_shape",
                        n.loc,
                        format!("rpc {what} has no retry policy: the caller sees its errors"),
                    )
                    .label("retry is for async methods and event handlers")
                    .help("callers retry `ServiceUnavailable` with a per-call option");
                self.report(d);
                None
            }
            Some(n) => self.retry(n, &what),
            None => None,
        };
        Some(Method {
            name: key.name.clone(),
            kind,
            description,
            params,
            returns,
            emits,
            errors,
            timeout_ms,
            retry,
        })
    }

    fn known_events(&mut self) -> &KnownEvents {
        let (decls, all, imported) = (self.decls, self.all, &self.imported);
        self.events.get_or_insert_with(|| {
            let mut events: Vec<(String, String)> = decls
                .events
                .iter()
                .map(|t| (decls.package.clone(), t.clone()))
                .collect();
            for &i in imported {
                events.extend(
                    all[i]
                        .events
                        .iter()
                        .map(|t| (all[i].package.clone(), t.clone())),
                );
            }
            KnownEvents {
                topics: events.iter().map(|(_, t)| t.clone()).collect(),
                suggestions: Suggestions::new(events.iter().map(|(_, t)| t.as_str())),
                all: events,
            }
        })
    }

    fn check_event_exists(&mut self, topic: &str, loc: Loc) -> bool {
        let known = self.known_events();
        if known.topics.contains(topic) {
            return true;
        }
        let help = known
            .suggestions
            .did_you_mean(topic)
            .unwrap_or_else(|| "declare it under `events:`".to_string());
        let d = self
            .diag(
                "natsgen::unknown_event",
                loc,
                format!("unknown event '{topic}'"),
            )
            .label("not declared under `events`")
            .help(help);
        self.report(d);
        false
    }

    fn handler(&mut self, key: &Key, node: &Node) -> Option<Handler> {
        let pattern = key.name.clone();
        let mut h = Handler {
            pattern: pattern.clone(),
            name: String::new(),
            description: None,
            mode: Mode::Shared,
            delivery: Delivery::Durable,
            retry: None,
            matches: Vec::new(),
        };
        let name_node = match &node.value {
            Value::Str(_) => node,
            _ => {
                let what = format!("the handler of '{pattern}'");
                let map = self.fixed_map(node, &what, HANDLER_KEYS)?;
                h.description = self.description(&map);
                if let Some(n) = map.get("mode") {
                    match n.as_str() {
                        Some("shared") => h.mode = Mode::Shared,
                        Some("broadcast") => h.mode = Mode::Broadcast,
                        _ => {
                            let text = self.unquoted(n);
                            let help = did_you_mean(&text, ["shared", "broadcast"])
                                .unwrap_or_else(|| "modes: shared (the default), broadcast".into());
                            let d = self
                                .diag(
                                    "natsgen::unknown_kind",
                                    n.loc,
                                    format!("unknown handler mode '{text}'"),
                                )
                                .label("not shared or broadcast")
                                .help(help);
                            self.report(d);
                        }
                    }
                }
                if let Some(n) = map.get("delivery") {
                    match n.as_str() {
                        Some("durable") => h.delivery = Delivery::Durable,
                        Some("best_effort") => h.delivery = Delivery::BestEffort,
                        _ => {
                            let text = self.unquoted(n);
                            let help = did_you_mean(&text, ["durable", "best_effort"])
                                .unwrap_or_else(|| {
                                    "deliveries: durable (the default), best_effort".into()
                                });
                            let d = self
                                .diag(
                                    "natsgen::unknown_kind",
                                    n.loc,
                                    format!("unknown delivery '{text}'"),
                                )
                                .label("not durable or best_effort")
                                .help(help);
                            self.report(d);
                        }
                    }
                }
                if let Some(n) = map.get("retry") {
                    h.retry = self.retry(n, &what);
                }
                match map.get("handler") {
                    Some(n) => *n,
                    None => {
                        let d = self
                            .diag(
                                "natsgen::missing_key",
                                node.loc,
                                format!("{what} needs a 'handler' name"),
                            )
                            .label("no handler name")
                            .help("write `{handler: on_event}`");
                        self.report(d);
                        return None;
                    }
                }
            }
        };
        h.name = self.string(name_node, "a handler name")?;
        self.snake_name(&h.name.clone(), name_node.loc, "handler");
        // The pattern: dot-separated tokens, wildcards only as whole tokens, `>` only last.
        let tokens: Vec<&str> = pattern.split('.').collect();
        let bad_wildcard = tokens.iter().enumerate().any(|(i, t)| {
            (t.contains(['*', '>']) && t.len() > 1) || (*t == ">" && i + 1 != tokens.len())
        });
        if bad_wildcard {
            let d = self
                .diag(
                    "natsgen::invalid_topic",
                    key.loc,
                    format!("malformed pattern '{pattern}'"),
                )
                .label("wildcards are whole tokens; '>' only at the end")
                .help("e.g. 'orders.*' or 'orders.>'");
            self.report(d);
            return None;
        }
        if h.is_wildcard() {
            h.matches = self
                .known_events()
                .all
                .iter()
                .filter(|(_, t)| subject_matches(&pattern, t))
                .cloned()
                .collect();
            if h.matches.is_empty() {
                let d = self
                    .diag(
                        "natsgen::unmatched_wildcard",
                        key.loc,
                        format!("pattern '{pattern}' matches no declared event"),
                    )
                    .label("no event matches")
                    .help("declare the events under `events:`, or fix the pattern");
                self.report(d);
                return None;
            }
        } else {
            if !self.check_event_exists(&pattern, key.loc) {
                return None;
            }
            h.matches = self
                .known_events()
                .all
                .iter()
                .filter(|(_, t)| *t == pattern)
                .take(1)
                .cloned()
                .collect();
        }
        Some(h)
    }

    /// Checks that need the whole package: subject overlaps and reserved generated names.
    fn cross_checks(&mut self, pkg: &Package, top: &HashMap<&str, &Node>) {
        let sections: HashMap<&str, HashMap<&str, Loc>> = ["types", "events", "services"]
            .into_iter()
            .map(|section| (section, section_keys(top.get(section).copied())))
            .collect();
        let loc_of_key = |section: &str, name: &str| -> Loc {
            sections
                .get(section)
                .and_then(|keys| keys.get(name))
                .copied()
                .unwrap_or_default()
        };
        // Topics that would land on service subjects.
        let all_services: HashSet<&str> = std::iter::once(self.decls)
            .chain(self.imported.iter().map(|&i| &self.all[i]))
            .flat_map(|d| d.services.iter().map(String::as_str))
            .collect();
        for e in &pkg.events {
            let tokens: Vec<&str> = e.topic.split('.').collect();
            if tokens.len() == 3
                && all_services.contains(tokens[0])
                && matches!(tokens[1], "rpc" | "async")
            {
                let d = self
                    .diag(
                        "natsgen::topic_overlap",
                        loc_of_key("events", &e.topic),
                        format!("event topic '{}' overlaps the {} subjects of service '{}'", e.topic, tokens[1], tokens[0]),
                    )
                    .label("collides with a method subject")
                    .help("choose a topic that does not start with '<service>.rpc.' or '<service>.async.'");
                self.report(d);
            }
        }
        // Every public name the generator makes, and the schema's own type names, must be
        // distinct. (Private helper items are named by index and cannot clash.)
        let mut generated: BTreeMap<String, String> = BTreeMap::new();
        // Error enums are scoped by service, so they do not clash with each other or with the
        // names above; a schema type may still not take one (they are re-exported at the root).
        let mut error_enums: BTreeMap<String, String> = BTreeMap::new();
        let mut claim = |this: &mut Self, name: String, what: String, loc: Loc| {
            if let Some(prev) = generated.get(&name) {
                let d = this
                    .diag(
                        "natsgen::reserved_name",
                        loc,
                        format!("the generated name '{name}' of {what} clashes with {prev}"),
                    )
                    .label("generated name clash")
                    .help("rename one of them");
                this.report(d);
            } else {
                generated.insert(name, what);
            }
        };
        claim(
            self,
            "Events".into(),
            "the package's event publisher".into(),
            Loc::default(),
        );
        for s in &pkg.services {
            let loc = loc_of_key("services", &s.name);
            let p = names::pascal(&s.name);
            claim(
                self,
                names::type_ident(&p),
                format!("the trait of service '{}'", s.name),
                loc,
            );
            for suffix in ["Server", "Client", "Api"] {
                let what = format!("the {} of service '{}'", suffix.to_lowercase(), s.name);
                claim(self, format!("{p}{suffix}"), what, loc);
            }
            // Error enums live in the service's module; two in one service must differ.
            let mut in_module: HashMap<String, &str> = HashMap::new();
            for m in s.methods.iter().filter(|m| !m.errors.is_empty()) {
                let name = error_enum_name(&m.name);
                if let Some(prev) = in_module.insert(name.clone(), &m.name) {
                    let d = self
                        .diag(
                            "natsgen::reserved_name",
                            loc,
                            format!(
                                "methods '{prev}' and '{}' of service '{}' both get the error enum '{name}'",
                                m.name, s.name
                            ),
                        )
                        .label("generated name clash")
                        .help("rename one of the methods");
                    self.report(d);
                }
                error_enums
                    .entry(name)
                    .or_insert_with(|| format!("the errors of '{}.{}'", s.name, m.name));
            }
            for h in s.handlers.iter().filter(|h| h.is_wildcard()) {
                let what = format!("the events of handler '{}.{}'", s.name, h.name);
                claim(self, wildcard_enum_name(&s.name, &h.name), what, loc);
                let mut variants: HashMap<String, &str> = HashMap::new();
                for (_, topic) in &h.matches {
                    if let Some(prev) = variants.insert(names::pascal(topic), topic) {
                        let d = self
                            .diag(
                                "natsgen::rust_name_clash",
                                loc,
                                format!(
                                    "topics '{prev}' and '{topic}' both become the variant '{}' of handler '{}.{}'",
                                    names::pascal(topic),
                                    s.name,
                                    h.name
                                ),
                            )
                            .label("in this service")
                            .help("rename one of the topics");
                        self.report(d);
                    }
                }
            }
        }
        for e in &pkg.events {
            if let EventPayload::Inline(_) = e.payload {
                let what = format!("the payload of event '{}'", e.topic);
                claim(
                    self,
                    names::pascal_ident(&e.topic),
                    what,
                    loc_of_key("events", &e.topic),
                );
            }
        }
        for t in &pkg.types {
            let loc = loc_of_key("types", &t.name);
            let ident = names::type_ident(&t.name);
            if let Some(what) = generated.get(&ident).or_else(|| error_enums.get(&ident)) {
                let d = self
                    .diag(
                        "natsgen::reserved_name",
                        loc,
                        format!("type name '{}' is reserved for {what}", t.name),
                    )
                    .label("clashes with a generated name")
                    .help(format!("rename the type, e.g. '{}Data'", t.name));
                self.report(d);
            }
        }
        // Two topics that give the same publisher method.
        let mut methods: HashMap<String, &str> = HashMap::new();
        for e in &pkg.events {
            let m = names::topic_method(&e.topic);
            if m == "new" {
                let d = self
                    .diag(
                        "natsgen::reserved_name",
                        loc_of_key("events", &e.topic),
                        format!("topic '{}' would make the publisher method 'new'", e.topic),
                    )
                    .label("reserved");
                self.report(d);
            } else if let Some(prev) = methods.insert(m.clone(), &e.topic) {
                let d = self
                    .diag(
                        "natsgen::rust_name_clash",
                        loc_of_key("events", &e.topic),
                        format!(
                            "topics '{prev}' and '{}' both become the publisher method '{m}'",
                            e.topic
                        ),
                    )
                    .label("clashes with an earlier topic");
                self.report(d);
            }
        }
        let _ = self.files;
    }
}

/// A topic token: a lowercase letter, then lowercase letters, digits, `_` or `-` (so every token
/// makes a Rust identifier).
fn is_topic_token(t: &str) -> bool {
    let mut chars = t.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// A valid topic close to an invalid one, when one can be made.
fn suggest_topic(topic: &str) -> Option<String> {
    let rest = topic
        .strip_prefix("natsgen.")
        .unwrap_or(topic)
        .trim_start_matches('$');
    let tokens: Vec<String> = rest
        .split('.')
        .map(|t| {
            let cleaned: String = t
                .to_lowercase()
                .chars()
                .map(|c| {
                    if matches!(c, 'a'..='z' | '0'..='9' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            cleaned.trim_matches('_').to_string()
        })
        .filter(|t| !t.is_empty())
        .collect();
    let fixed = tokens.join(".");
    (!fixed.is_empty() && fixed.split('.').all(is_topic_token)).then_some(fixed)
}

/// The error enum of a method that declares `errors:` (`process_payment` →
/// `ProcessPaymentError`), in the module of its service.
pub fn error_enum_name(method: &str) -> String {
    format!("{}Error", names::pascal(method))
}

/// The methods (service, method) whose error enum is also re-exported at the package's root:
/// those whose name no other error enum of the package and no other generated item or type at
/// the root takes. The others are reached through their service's module only.
pub fn error_enum_aliases(pkg: &Package) -> BTreeSet<(String, String)> {
    let mut taken: BTreeSet<String> = BTreeSet::new();
    taken.insert("Events".into());
    for s in &pkg.services {
        let p = names::pascal(&s.name);
        taken.insert(names::type_ident(&p));
        for suffix in ["Server", "Client", "Api"] {
            taken.insert(format!("{p}{suffix}"));
        }
        for h in s.handlers.iter().filter(|h| h.is_wildcard()) {
            taken.insert(wildcard_enum_name(&s.name, &h.name));
        }
    }
    for e in &pkg.events {
        if let EventPayload::Inline(_) = e.payload {
            taken.insert(names::pascal_ident(&e.topic));
        }
    }
    for t in &pkg.types {
        taken.insert(names::type_ident(&t.name));
    }
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for s in &pkg.services {
        for m in s.methods.iter().filter(|m| !m.errors.is_empty()) {
            *count.entry(error_enum_name(&m.name)).or_default() += 1;
        }
    }
    let mut out = BTreeSet::new();
    for s in &pkg.services {
        for m in s.methods.iter().filter(|m| !m.errors.is_empty()) {
            let name = error_enum_name(&m.name);
            if count.get(&name) == Some(&1) && !taken.contains(&name) {
                out.insert((s.name.clone(), m.name.clone()));
            }
        }
    }
    out
}

/// The generated enum for a wildcard handler: `audit_service` + `on_order_event` →
/// `AuditServiceOnOrderEvent`; a trailing `Event` is not doubled.
pub fn wildcard_enum_name(service: &str, handler: &str) -> String {
    let base = format!("{}{}", names::pascal(service), names::pascal(handler));
    if base.ends_with("Event") {
        base
    } else {
        format!("{base}Event")
    }
}

const RUNTIME_ERROR_KINDS: &[&str] = &["BadRequest", "PayloadTooLarge", "Busy", "DeadlineExceeded"];

#[derive(Debug, PartialEq)]
enum TypeExpr {
    Name(Option<String>, String),
    Generic(String, Box<TypeExpr>),
}

fn parse_type_expr(text: &str) -> Result<TypeExpr, String> {
    let mut rest = text;
    let expr = type_expr_inner(&mut rest, 0)?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected '{}' after the type", rest.trim()));
    }
    Ok(expr)
}

fn type_expr_inner(rest: &mut &str, depth: usize) -> Result<TypeExpr, String> {
    if depth > 32 {
        return Err("nested too deeply".into());
    }
    *rest = rest.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(rest.len());
    let word = &rest[..end];
    if word.is_empty() {
        return Err(match rest.chars().next() {
            Some(c) => format!("expected a type name, found '{c}'"),
            None => "expected a type name".into(),
        });
    }
    *rest = rest[end..].trim_start();
    if let Some(after) = rest.strip_prefix('<') {
        if !matches!(word, "list" | "map" | "optional") {
            return Err(format!(
                "'{word}' takes no type parameter; only list<T>, map<T> and optional<T> do"
            ));
        }
        *rest = after;
        let inner = type_expr_inner(rest, depth + 1)?;
        *rest = rest.trim_start();
        if rest.starts_with(',') {
            return Err(format!(
                "{word}<...> takes one type parameter (map keys are always strings)"
            ));
        }
        let Some(after) = rest.strip_prefix('>') else {
            return Err(format!("missing '>' to close {word}<"));
        };
        *rest = after;
        return Ok(TypeExpr::Generic(word.to_string(), Box::new(inner)));
    }
    if matches!(word, "list" | "map" | "optional") {
        return Err(format!("{word} needs a type parameter: {word}<T>"));
    }
    let parts: Vec<&str> = word.split('.').collect();
    let valid = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
    };
    match parts.as_slice() {
        [name] if valid(name) => Ok(TypeExpr::Name(None, (*name).to_string())),
        [pkg, name] if valid(pkg) && valid(name) => Ok(TypeExpr::Name(
            Some((*pkg).to_string()),
            (*name).to_string(),
        )),
        _ => Err(format!(
            "'{word}' is not a type name (a name, or package.Type)"
        )),
    }
}

/// `500ms`, `10s`, `1.5s`, `2m`, `1h` → milliseconds.
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(split);
    let value: f64 = num.parse().ok()?;
    let factor = match unit {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    let ms = value * factor;
    (ms.is_finite() && (1.0..1e15).contains(&ms) && ms.fract() == 0.0).then_some(ms as u64)
}

fn is_semver(text: &str) -> bool {
    let (core, _build) = text.split_once('+').unwrap_or((text, ""));
    let (core, pre) = match core.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            !p.is_empty()
                && p.split('.').all(|id| {
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        })
}

/// Rejects types that contain themselves without `optional`, `list` or `map` in between, and marks
/// the fields that must be boxed because they close a cycle through `optional`.
fn check_recursion(
    packages: &mut [Package],
    files: &[File],
    _decls: &[Decls],
    diags: &mut Diagnostics,
) {
    // Nodes: (package, type). Edges: a field holding the type directly or through `optional`.
    type Id = (String, String);
    let mut edges: BTreeMap<Id, Vec<(Id, bool)>> = BTreeMap::new();
    for p in packages.iter() {
        for t in &p.types {
            let from = (p.name.clone(), t.name.clone());
            let entry = edges.entry(from).or_default();
            if let TypeBody::Struct(fields) = &t.body {
                for f in fields {
                    if let Some((to, direct)) = inline_target(&f.ty) {
                        entry.push((to, direct));
                    }
                }
            }
        }
    }
    let sccs = tarjan(&edges);
    let mut component: HashMap<&Id, usize> = HashMap::new();
    for (i, scc) in sccs.iter().enumerate() {
        for id in scc {
            component.insert(id, i);
        }
    }
    // An infinite type: a cycle of direct edges only. Check the direct-only subgraph.
    let direct_edges: BTreeMap<Id, Vec<(Id, bool)>> = edges
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().filter(|(_, d)| *d).cloned().collect()))
        .collect();
    let mut infinite: BTreeSet<Id> = BTreeSet::new();
    for scc in tarjan(&direct_edges) {
        let cyclic = scc.len() > 1
            || scc.first().is_some_and(|id| {
                direct_edges
                    .get(id)
                    .is_some_and(|v| v.iter().any(|(t, _)| t == id))
            });
        if cyclic {
            infinite.extend(scc);
        }
    }
    let mut type_keys: HashMap<String, HashMap<&str, Loc>> = HashMap::new();
    for p in packages.iter_mut() {
        for t in p.types.iter_mut() {
            let from = (p.name.clone(), t.name.clone());
            let TypeBody::Struct(fields) = &mut t.body else {
                continue;
            };
            for f in fields.iter_mut() {
                let Some((to, _)) = inline_target(&f.ty) else {
                    continue;
                };
                if component.contains_key(&from) && component.get(&from) == component.get(&to) {
                    f.boxed = true;
                }
            }
            if infinite.contains(&from) {
                if let Some(file) = files.iter().find(|f| f.package == p.name) {
                    let keys = type_keys
                        .entry(p.name.clone())
                        .or_insert_with(|| file_section_keys(file, "types"));
                    let loc = keys.get(t.name.as_str()).copied().unwrap_or_default();
                    diags.push(
                        Diagnostic::new(
                            "natsgen::infinite_type",
                            &file.source,
                            loc,
                            format!("type '{}' contains itself with no optional, list or map in between", t.name),
                        )
                        .label("infinitely large type")
                        .help("make one field on the cycle `optional<...>`, a `list<...>` or a `map<...>`"),
                    );
                }
            }
        }
    }
}

/// The named type a field stores inline (directly or inside `optional`), and whether directly.
fn inline_target(ty: &TypeRef) -> Option<((String, String), bool)> {
    match ty {
        TypeRef::Named { package, name } => Some(((package.clone(), name.clone()), true)),
        TypeRef::Optional(inner) => inline_target(inner).map(|(id, _)| (id, false)),
        _ => None,
    }
}

/// Strongly connected components (Tarjan's algorithm, iterative so that long chains of types
/// cannot exhaust the stack).
fn tarjan<K: Ord + Clone>(edges: &BTreeMap<K, Vec<(K, bool)>>) -> Vec<Vec<K>> {
    let keys: Vec<&K> = edges.keys().collect();
    let id: BTreeMap<&K, usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let succ: Vec<Vec<usize>> = keys
        .iter()
        .map(|k| {
            edges.get(*k).map_or_else(Vec::new, |e| {
                e.iter().filter_map(|(t, _)| id.get(t).copied()).collect()
            })
        })
        .collect();
    let n = keys.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut next = 0usize;
    let mut out: Vec<Vec<K>> = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        // (node, position in its successor list)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = work.last_mut() {
            if let Some(&w) = succ[v].get(*pos) {
                *pos += 1;
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(keys[w].clone());
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
        }
    }
    out
}

/// Imports before importers; otherwise the order the files were given.
fn dependency_order(packages: Vec<Package>) -> Vec<Package> {
    let mut out: Vec<Package> = Vec::new();
    let mut remaining = packages;
    while !remaining.is_empty() {
        let placed: HashSet<String> = out.iter().map(|p| p.name.clone()).collect();
        let pos = remaining
            .iter()
            .position(|p| p.imports.iter().all(|i| placed.contains(i) || *i == p.name))
            .unwrap_or(0);
        out.push(remaining.remove(pos));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic;

    /// `check` on a broken schema does work linear in its size: the text is indexed once, each
    /// diagnostic reads only the lines around it, and each did-you-mean is bounded. Counted in
    /// bytes scanned and edit-distance cells, not timed.
    #[test]
    fn diagnostics_of_a_large_broken_schema_cost_linear_work() {
        const N: usize = 2_000;
        let mut text = String::from("natsgen: 1\ntypes:\n");
        for i in 0..N {
            // Every type names an unknown one: half a typo of a declared type, half unrelated.
            let field = if i % 2 == 0 {
                format!("Ordr{i:04}")
            } else {
                format!("Missing{i:04}")
            };
            text.push_str(&format!("  Order{i:04}:\n    fields: {{a: {field}}}\n"));
        }
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, &text).unwrap_or_else(|e| panic!("write: {e}"));
        diagnostic::take_work();
        let loaded = load(&[path]);
        let rendered = loaded.diagnostics.render();
        let (scanned, cells) = diagnostic::take_work();

        assert_eq!(loaded.diagnostics.len(), N);
        for (i, d) in loaded.diagnostics.0.iter().enumerate() {
            assert_eq!(d.code, "natsgen::unknown_type");
            assert_eq!(
                (d.loc.line, d.loc.column),
                (u32::try_from(4 + 2 * i).unwrap_or(0), 17)
            );
            let hint = d.help.as_deref();
            if i % 2 == 0 {
                assert_eq!(hint, Some(format!("did you mean 'Order{i:04}'?").as_str()));
            } else {
                assert_eq!(hint, None, "{d}");
            }
        }
        assert_eq!(rendered.matches("natsgen::unknown_type").count(), N);
        assert!(rendered.contains(&format!("big.yaml:{}:17]", 4 + 2 * (N - 1))));
        // Quadratic work would be about N times the text for both counters.
        assert!(
            scanned < 8 * text.len(),
            "{scanned} bytes scanned for a {} byte schema",
            text.len()
        );
        assert!(
            cells < 100 * N,
            "{cells} edit-distance cells for {N} unknown types"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(10_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("1.5s"), Some(1_500));
        assert_eq!(parse_duration("2m"), Some(120_000));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10 parsecs"), None);
    }

    #[test]
    fn semver() {
        assert!(is_semver("1.0.0"));
        assert!(is_semver("1.2.3-rc.1+build.5"));
        assert!(!is_semver("1.0"));
        assert!(!is_semver("01.0.0"));
        assert!(!is_semver("v1.0.0"));
    }

    #[test]
    fn type_expressions() {
        assert_eq!(
            parse_type_expr("list< optional<common.Money> >"),
            Ok(TypeExpr::Generic(
                "list".into(),
                Box::new(TypeExpr::Generic(
                    "optional".into(),
                    Box::new(TypeExpr::Name(Some("common".into()), "Money".into()))
                ))
            ))
        );
        assert!(parse_type_expr("list<string").is_err());
        assert!(parse_type_expr("map<string, i32>").is_err());
        assert!(parse_type_expr("list").is_err());
        assert!(parse_type_expr("string<i32>").is_err());
        assert!(parse_type_expr("a.b.c").is_err());
        assert!(parse_type_expr("").is_err());
    }
}
