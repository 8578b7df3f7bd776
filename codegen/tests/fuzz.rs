//! Fuzz-style robustness tests: the schema compiler is fed thousands of mutated and randomly built
//! schemas and must never panic. For every input it checks that
//!
//! - `load` (and `Diagnostics::render`, what `natsgen check` prints) does not panic;
//! - a model comes back exactly when there are no diagnostics;
//! - every diagnostic points into the file it names: offset and length inside the text, on
//!   character boundaries, line and column ≥ 1 and agreeing with the offset;
//! - every schema that validates also generates (`configure().generate`, the build-script path,
//!   which writes the templates' output without parsing it), the output parses with `syn`, and it
//!   has no duplicate names a compiler would reject (items in a module, fields, variants, trait and
//!   impl members, function parameters).
//!
//! Everything is deterministic: a xorshift generator with a fixed seed. Set `NATSGEN_FUZZ_SEED` to
//! try other seeds and `NATSGEN_FUZZ_SCALE` (default 1) to multiply the number of inputs. Failing
//! inputs are written to `$CARGO_TARGET_TMPDIR/fuzz-failures/`.
//!
//! Regression tests below pin the families of problems the fuzzer once found.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use natsgen_build::{configure, load, Error, Loaded};

// ---------------------------------------------------------------------------------------------
// Randomness

/// xorshift64*: small, fast and reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        usize::try_from(self.next() % n as u64).unwrap()
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn base_seed() -> u64 {
    std::env::var("NATSGEN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6E61_7473_6765_6E31)
}

fn scale(n: usize) -> usize {
    let factor: usize = std::env::var("NATSGEN_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    n * factor
}

// ---------------------------------------------------------------------------------------------
// The harness

struct Failure {
    kind: &'static str,
    message: String,
    origin: String,
    input: String,
}

struct Harness {
    dir: tempfile::TempDir,
    input: PathBuf,
    failures: Vec<Failure>,
    seen: HashSet<String>,
    checked: usize,
    valid: usize,
    generated: usize,
    slowest: (Duration, String),
    codes: BTreeMap<&'static str, usize>,
    phases: [Duration; 3],
}

impl Harness {
    /// A scratch folder holding copies of the valid fixtures, so mutated imports can resolve.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in valid_seeds() {
            std::fs::write(dir.path().join(&name), text).expect("copy fixture");
        }
        let input = dir.path().join("input.yaml");
        Harness {
            dir,
            input,
            failures: Vec::new(),
            seen: HashSet::new(),
            checked: 0,
            valid: 0,
            generated: 0,
            slowest: (Duration::ZERO, String::new()),
            codes: BTreeMap::new(),
            phases: [Duration::ZERO; 3],
        }
    }

    fn fail(&mut self, kind: &'static str, message: String, origin: &str, input: &str) {
        // One report per distinct problem is plenty.
        let key = format!("{kind}: {}", message.lines().next().unwrap_or(""));
        if self.seen.insert(key) && self.failures.len() < 25 {
            self.failures.push(Failure {
                kind,
                message,
                origin: origin.to_string(),
                input: input.to_string(),
            });
        }
    }

    /// Runs every check on one schema text; returns whether it validated.
    fn check(&mut self, origin: &str, text: &str) -> bool {
        self.checked += 1;
        std::fs::write(&self.input, text).expect("write input");
        let started = Instant::now();
        let input = self.input.clone();
        let loaded = match catch_unwind(AssertUnwindSafe(|| load(std::slice::from_ref(&input)))) {
            Ok(l) => l,
            Err(panic) => {
                self.fail("load panicked", panic_message(&*panic), origin, text);
                return false;
            }
        };
        self.phases[0] += started.elapsed();
        let t = Instant::now();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| loaded.diagnostics.render())) {
            self.fail(
                "render of diagnostics panicked",
                panic_message(&*panic),
                origin,
                text,
            );
        }
        self.check_diagnostics(&loaded, origin, text);
        self.phases[1] += t.elapsed();
        let t = Instant::now();
        let valid = loaded.model.is_some();
        if valid {
            self.valid += 1;
            self.check_generate(origin, text);
        }
        self.phases[2] += t.elapsed();
        let elapsed = started.elapsed();
        if elapsed > self.slowest.0 {
            self.slowest = (elapsed, origin.to_string());
        }
        valid
    }

    fn check_diagnostics(&mut self, loaded: &Loaded, origin: &str, text: &str) {
        if loaded.model.is_some() != loaded.diagnostics.is_empty() {
            let message = format!(
                "model present: {}, diagnostics: {}",
                loaded.model.is_some(),
                loaded.diagnostics.len()
            );
            self.fail("model and diagnostics disagree", message, origin, text);
        }
        let mut problems = Vec::new();
        for d in &loaded.diagnostics.0 {
            *self.codes.entry(d.code).or_default() += 1;
            let shown = d.to_string();
            if d.loc.line == 0 || d.loc.column == 0 {
                problems.push(format!("position below 1:1: {shown}"));
                continue;
            }
            let Some(source) = source_of(d.path(), &self.input, text, self.dir.path()) else {
                // `natsgen::io` diagnostics name files that cannot be read.
                continue;
            };
            let (offset, end) = (d.loc.offset, d.loc.offset.saturating_add(d.loc.len));
            if end > source.len() {
                problems.push(format!(
                    "span {offset}+{} beyond the {}-byte file: {shown}",
                    d.loc.len,
                    source.len()
                ));
            } else if !source.is_char_boundary(offset) || !source.is_char_boundary(end) {
                problems.push(format!(
                    "span {offset}+{} splits a character: {shown}",
                    d.loc.len
                ));
            } else {
                let (line, column) = line_col(&source, offset);
                if (line, column) != (d.loc.line, d.loc.column) {
                    problems.push(format!(
                        "position {}:{} but offset {offset} is at {line}:{column}: {shown}",
                        d.loc.line, d.loc.column
                    ));
                }
            }
        }
        for p in problems {
            self.fail("wrong diagnostic position", p, origin, text);
        }
    }

    fn check_generate(&mut self, origin: &str, text: &str) {
        let input = self.input.clone();
        let result = catch_unwind(AssertUnwindSafe(|| configure().generate(&[&input])));
        match result {
            Err(panic) => self.fail("generate panicked", panic_message(&*panic), origin, text),
            Ok(Err(Error::Schema(d))) => {
                self.fail(
                    "load accepted, generate rejected",
                    d.to_string(),
                    origin,
                    text,
                );
            }
            Ok(Err(e)) => self.fail(
                "valid schema does not generate",
                e.to_string(),
                origin,
                text,
            ),
            Ok(Ok(files)) => {
                self.generated += 1;
                for f in files {
                    for problem in compile_problems(&f.code) {
                        self.fail(
                            "generated code would not compile",
                            format!("{}: {problem}", f.file_name),
                            origin,
                            text,
                        );
                    }
                }
            }
        }
    }

    /// Prints a summary and fails the test when there were unknown failures.
    fn finish(self, name: &str) {
        println!(
            "{name}: {} inputs, {} valid, {} generated; slowest {:?} ({})",
            self.checked, self.valid, self.generated, self.slowest.0, self.slowest.1
        );
        let mut codes: Vec<(&&str, &usize)> = self.codes.iter().collect();
        codes.sort_by(|a, b| b.1.cmp(a.1));
        let codes: Vec<String> = codes.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!("  diagnostics seen: {}", codes.join(", "));
        println!(
            "  time in load {:?}, render {:?}, generate {:?}",
            self.phases[0], self.phases[1], self.phases[2]
        );
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        let _ = std::fs::create_dir_all(&out);
        if self.failures.is_empty() {
            return;
        }
        let mut report = format!("{name}: {} distinct failure(s)\n", self.failures.len());
        for (i, f) in self.failures.iter().enumerate() {
            let path = out.join(format!("{name}-{i}.yaml"));
            let _ = std::fs::write(&path, &f.input);
            let _ = writeln!(
                report,
                "\n[{i}] {} ({}): {}\n    input saved to {}",
                f.kind,
                f.origin,
                f.message
                    .lines()
                    .take(12)
                    .collect::<Vec<_>>()
                    .join("\n    "),
                path.display()
            );
        }
        panic!("{report}");
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "<non-string panic>".into())
}

/// The text of the file a diagnostic names: the input itself, or a file next to it.
fn source_of(shown: &str, input: &Path, text: &str, dir: &Path) -> Option<String> {
    let shown = Path::new(shown);
    if shown == input || input.ends_with(shown) {
        return Some(text.to_string());
    }
    let candidate = if shown.is_absolute() {
        shown.to_path_buf()
    } else {
        dir.join(shown)
    };
    std::fs::read_to_string(candidate)
        .or_else(|_| std::fs::read_to_string(shown))
        .ok()
}

/// 1-based line and column (in characters) of a byte offset, the way YAML counts them: `\n`,
/// `\r\n` and a lone `\r` each end a line, and a leading byte order mark takes no column.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let mut line = 1usize;
    let mut column = 1usize;
    let mut chars = before.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '\u{feff}' if first => continue,
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                line += 1;
                column = 1;
            }
            _ => column += 1,
        }
        first = false;
    }
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Runs `f` on a thread with the stack a build script's (or the CLI's) main thread has, 8 MiB.
/// The 2 MiB of a test thread is not enough for deeply nested YAML; see
/// `deep_yaml_nesting_fits_a_small_stack`.
fn on_big_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(f)
        .expect("spawn");
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------------
// Would the generated code compile? Duplicate names are what a valid-looking schema can produce.

fn compile_problems(code: &str) -> Vec<String> {
    let file = match syn::parse_file(code) {
        Ok(f) => f,
        Err(e) => return vec![format!("does not parse: {e}")],
    };
    let mut out = Vec::new();
    check_items(&file.items, "crate", &mut out);
    out
}

fn check_items(items: &[syn::Item], module: &str, out: &mut Vec<String>) {
    let mut types: HashSet<String> = HashSet::new();
    let mut values: HashSet<String> = HashSet::new();
    let item = |ns: &mut HashSet<String>, ident: &syn::Ident, out: &mut Vec<String>| {
        if !ns.insert(ident.to_string()) {
            out.push(format!("`{ident}` is defined twice in module `{module}`"));
        }
    };
    for it in items {
        match it {
            syn::Item::Struct(s) => {
                item(&mut types, &s.ident, out);
                if !matches!(s.fields, syn::Fields::Named(_)) {
                    item(&mut values, &s.ident, out);
                }
                check_fields(&s.fields, &s.ident.to_string(), out);
            }
            syn::Item::Enum(e) => {
                item(&mut types, &e.ident, out);
                let mut variants = HashSet::new();
                for v in &e.variants {
                    if !variants.insert(v.ident.to_string()) {
                        out.push(format!(
                            "variant `{}` is defined twice in enum `{}`",
                            v.ident, e.ident
                        ));
                    }
                    check_fields(&v.fields, &format!("{}::{}", e.ident, v.ident), out);
                }
            }
            syn::Item::Trait(t) => {
                item(&mut types, &t.ident, out);
                let mut members = HashSet::new();
                for ti in &t.items {
                    if let syn::TraitItem::Fn(f) = ti {
                        if !members.insert(f.sig.ident.to_string()) {
                            out.push(format!(
                                "`{}` is declared twice in trait `{}`",
                                f.sig.ident, t.ident
                            ));
                        }
                        check_params(&f.sig, out);
                    }
                }
            }
            syn::Item::Impl(imp) => {
                let mut members = HashSet::new();
                for ii in &imp.items {
                    match ii {
                        syn::ImplItem::Fn(f) => {
                            if !members.insert(f.sig.ident.to_string()) {
                                out.push(format!(
                                    "`{}` is defined twice in one impl block",
                                    f.sig.ident
                                ));
                            }
                            check_params(&f.sig, out);
                        }
                        syn::ImplItem::Const(c) if !members.insert(c.ident.to_string()) => {
                            out.push(format!("`{}` is defined twice in one impl block", c.ident));
                        }
                        _ => {}
                    }
                }
            }
            syn::Item::Type(t) => item(&mut types, &t.ident, out),
            syn::Item::Fn(f) => {
                item(&mut values, &f.sig.ident, out);
                check_params(&f.sig, out);
            }
            syn::Item::Const(c) => item(&mut values, &c.ident, out),
            syn::Item::Static(s) => item(&mut values, &s.ident, out),
            syn::Item::Mod(m) => {
                item(&mut types, &m.ident, out);
                if let Some((_, content)) = &m.content {
                    check_items(content, &m.ident.to_string(), out);
                }
            }
            _ => {}
        }
    }
}

fn check_fields(fields: &syn::Fields, owner: &str, out: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for f in fields {
        if let Some(ident) = &f.ident {
            if !seen.insert(ident.to_string()) {
                out.push(format!("field `{ident}` is declared twice in `{owner}`"));
            }
        }
    }
}

fn check_params(sig: &syn::Signature, out: &mut Vec<String>) {
    let mut seen = HashSet::new();
    for input in &sig.inputs {
        if let syn::FnArg::Typed(pt) = input {
            if let syn::Pat::Ident(pi) = &*pt.pat {
                if !seen.insert(pi.ident.to_string()) {
                    out.push(format!(
                        "duplicate parameter `{}` in fn `{}`",
                        pi.ident, sig.ident
                    ));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// The valid schemas: `schemas/ecommerce.yaml` and `tests/fixtures/valid/*.yaml`, by file name.
fn valid_seeds() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = vec![(
        "ecommerce_example.yaml".to_string(),
        std::fs::read_to_string(root.join("../schemas/ecommerce.yaml"))
            .expect("schemas/ecommerce.yaml"),
    )];
    out.extend(yaml_files(&root.join("tests/fixtures/valid")));
    out
}

/// The broken corpus, as further starting points.
fn invalid_seeds() -> Vec<(String, String)> {
    yaml_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid"))
}

fn yaml_files(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some((name, std::fs::read_to_string(&p).ok()?))
        })
        .collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Mutations

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Odd replacement values, as YAML text.
fn odd_value(rng: &mut Rng) -> String {
    const FIXED: &[&str] = &[
        "~",
        "null",
        "[]",
        "{}",
        "\"*\"",
        "\">\"",
        "\"$x\"",
        "$x",
        "\"\"",
        "-1",
        "0",
        "1",
        "2",
        "1.0",
        "1.0.0",
        "99999999999999999999999999999999999999999",
        "18446744073709551616",
        "-9223372036854775809",
        "1e400",
        ".nan",
        ".inf",
        "-.inf",
        "true",
        "false",
        "yes",
        "0x1F",
        "0o17",
        "\"ü日本語🚀\"",
        "\"\\t\"",
        "\"\\u0000\"",
        "\"a\\u0000b\"",
        "\"\\r\\n\"",
        "\"line\\nbreak\"",
        "\"#[doc] */ } fn x() {\"",
        "\"\\\"); panic!(\\\"\"",
        "'single ''quoted'''",
        "|\n  block text",
        ">-\n  folded text",
        "&anchor value",
        "*anchor",
        "!!binary aGVsbG8=",
        "!custom tag",
        "!!str 1",
        "!!int \"1\"",
        "!!null ''",
        "[a, b, [c, {d: e}]]",
        "{a: 1, b: [2]}",
        "optional<optional<string>>",
        "map<map<bytes>>",
        "list<common.Money>",
        "common.Money",
        "common.Nope",
        "nope.Money",
        "ecommerce.Order",
        "Self",
        "self",
        "crate",
        "super",
        "_",
        "r#type",
        "Result",
        "Option",
        "Box",
        "String",
        "Events",
        "10s",
        "0.5ms",
        "1e3s",
        "1h",
        "99999999999h",
        "1.5s",
        "-5s",
        "0s",
        "500ms",
        "string",
        "u32",
        "bytes",
        "json",
        "uuid",
        "timestamp",
        "f64",
        "async",
        "rpc",
        "broadcast",
        "shared",
        "durable",
        "best_effort",
        "orders.created",
        "\"orders.*\"",
        "\"orders.>\"",
        "\"*.*\"",
        "natsgen.x",
        "order_service.rpc.create_order",
        "[orders.created, emails.sent]",
        "[common.yaml]",
        "[input.yaml]",
        "[missing.yaml]",
        "[\"\"]",
        "[.]",
        "{handler: h, mode: broadcast}",
        "{handler: Self}",
        "{max_attempts: 5, backoff: 2s}",
        "{max_attempts: 4294967296}",
        "{fields: {a: string}}",
        "{fields: {self: string, self_: string}}",
        "{enum: [a, A, self, Self, none]}",
        "{payload: Nope}",
        "\t",
        "a\tb",
        "\"\\x7f\"",
    ];
    match rng.below(10) {
        0 => "x".repeat(1 + rng.below(20_000)),
        1 => format!("\"{}\"", nested("list<", "string", ">", 1 + rng.below(120))),
        2 => nested("[", "a", "]", 1 + rng.below(70)),
        3 => nested("{a: ", "b", "}", 1 + rng.below(70)),
        4 => format!(
            "\"{}\"",
            nested("optional<", "Self", ">", 1 + rng.below(40))
        ),
        _ => (*rng.pick(FIXED)).to_string(),
    }
}

fn odd_key(rng: &mut Rng) -> String {
    const KEYS: &[&str] = &[
        "parms",
        "params",
        "returns",
        "kind",
        "fields",
        "enum",
        "payload",
        "handler",
        "mode",
        "delivery",
        "retry",
        "timeout",
        "errors",
        "emits",
        "methods",
        "handles",
        "timers",
        "every",
        "scope",
        "version",
        "description",
        "imports",
        "package",
        "natsgen",
        "types",
        "events",
        "services",
        "self",
        "type",
        "Self",
        "\"a b\"",
        "\"*\"",
        "\">\"",
        "$x",
        "? x",
        "<<",
        "\"\"",
        "- x",
        "new",
        "ctx",
        "options",
        "Events",
        "OrderServiceClient",
        "orders.*",
        "1",
        "~",
        "null",
        "true",
        "\"日本\"",
        "a.b",
        "Internal",
        "max_attempts",
        "backoff",
    ];
    (*rng.pick(KEYS)).to_string()
}

fn odd_char(rng: &mut Rng) -> char {
    const CHARS: &[char] = &[
        ':', '{', '}', '[', ']', ',', '-', '#', '&', '*', '!', '|', '>', '<', '\'', '"', '%', '@',
        '`', '\t', '\n', ' ', ' ', ' ', '.', '$', '?', '\\', 'a', 'Z', '0', '9', '_', 'é', '日',
        '🚀', '\u{feff}', '\r', '\u{0}', '\u{7f}', '\u{2028}',
    ];
    *rng.pick(CHARS)
}

/// One random edit of the text.
fn mutate(text: &str, rng: &mut Rng, donors: &[(String, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let n = lines.len();
    let i = rng.below(n);
    match rng.below(17) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let line = lines[i].clone();
            lines.insert(i, line);
        }
        2 => {
            let j = rng.below(n);
            lines.swap(i, j);
        }
        3 => {
            // A line from another schema, at the indentation found here.
            let donor = &rng.pick(donors).1;
            let donor_lines: Vec<&str> = donor.lines().collect();
            if !donor_lines.is_empty() {
                let line = donor_lines[rng.below(donor_lines.len())].to_string();
                lines.insert(i, line);
            }
        }
        4..=6 => {
            // Replace a value.
            let value = odd_value(rng);
            let line = &lines[i];
            if let Some(pos) = line.find(": ") {
                lines[i] = format!("{}: {value}", &line[..pos]);
            } else if let Some(pos) = line.find("- ") {
                lines[i] = format!("{}- {value}", &line[..pos]);
            } else {
                let indent = line.len() - line.trim_start().len();
                lines[i] = format!("{}{}: {value}", &line[..indent], odd_key(rng));
            }
        }
        7 | 8 => {
            // Replace a key, keeping the indentation.
            let line = &lines[i];
            let indent = line.len() - line.trim_start().len();
            let rest = line.find(':').map_or("", |p| &line[p..]);
            lines[i] = format!("{}{}{rest}", &line[..indent], odd_key(rng));
        }
        9 => {
            // Indent or dedent.
            if rng.chance(50) {
                let pad = " ".repeat(1 + rng.below(4));
                lines[i].insert_str(0, &pad);
            } else {
                let cut = lines[i].len() - lines[i].trim_start().len();
                let cut = cut.min(1 + rng.below(4));
                lines[i].drain(..cut);
            }
        }
        10 => {
            // A chunk of another schema.
            let donor = &rng.pick(donors).1;
            let donor_lines: Vec<&str> = donor.lines().collect();
            if !donor_lines.is_empty() {
                let start = rng.below(donor_lines.len());
                let end = (start + 1 + rng.below(12)).min(donor_lines.len());
                for (k, l) in donor_lines[start..end].iter().enumerate() {
                    lines.insert((i + k).min(lines.len()), (*l).to_string());
                }
            }
        }
        11 => {
            // Inside a flow collection: replace one element.
            let line = &lines[i];
            if let (Some(open), Some(close)) = (line.find(['[', '{']), line.rfind([']', '}'])) {
                if open < close {
                    let inner = &line[open + 1..close];
                    let parts: Vec<&str> = inner.split(',').collect();
                    let k = rng.below(parts.len());
                    let mut parts: Vec<String> = parts.iter().map(|p| (*p).to_string()).collect();
                    let replacement = if rng.chance(50) {
                        format!(" {}", odd_value(rng).replace('\n', " "))
                    } else {
                        format!(" {}: {}", odd_key(rng), odd_value(rng).replace('\n', " "))
                    };
                    parts[k] = replacement;
                    lines[i] = format!("{}{}{}", &line[..=open], parts.join(","), &line[close..]);
                }
            }
        }
        12 => {
            // Truncate.
            lines.truncate(i.max(1));
            if rng.chance(50) {
                let last = lines.last_mut().expect("one line");
                let chars: Vec<char> = last.chars().collect();
                *last = chars[..rng.below(chars.len() + 1)].iter().collect();
            }
        }
        13 => {
            // Line endings and byte order mark.
            let joined = lines.join("\n");
            return match rng.below(3) {
                0 => joined.replace('\n', "\r\n"),
                1 => format!("\u{feff}{joined}"),
                _ => joined.replace('\n', "\r"),
            };
        }
        _ => {
            // Character edits anywhere.
            let mut chars: Vec<char> = lines.join("\n").chars().collect();
            for _ in 0..1 + rng.below(3) {
                let len = chars.len();
                let at = rng.below(len + 1);
                match rng.below(4) {
                    0 if at < len => {
                        chars.remove(at);
                    }
                    1 => chars.insert(at, odd_char(rng)),
                    2 if at < len => {
                        let end = (at + 1 + rng.below(16)).min(len);
                        let copy: Vec<char> = chars[at..end].to_vec();
                        let to = rng.below(chars.len() + 1);
                        for (k, c) in copy.into_iter().enumerate() {
                            chars.insert(to + k, c);
                        }
                    }
                    _ if at + 1 < len => chars.swap(at, at + 1),
                    _ => {}
                }
            }
            return chars.into_iter().collect();
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// Schemas from a small grammar

const SNAKE: &[&str] = &[
    "a",
    "b",
    "c",
    "x1",
    "order",
    "orders",
    "create_order",
    "get",
    "type",
    "self",
    "super",
    "crate",
    "fn",
    "match",
    "async",
    "await",
    "dyn",
    "gen",
    "try",
    "ctx",
    "options",
    "inner",
    "params",
    "event",
    "result",
    "core",
    "from_arc",
    "call",
    "descriptor",
    "default",
    "clone",
    "fmt",
    "into_future",
    "some",
    "none",
    "ok",
    "err",
    "a_b",
    "b_c",
    "a_b_c",
    "x_",
    "a__b",
    "new",
    "error",
    "details",
    "value",
    "topic",
    "decode",
    "service",
    "client",
    "server",
    "api",
    "events",
    "publisher",
    "natsgen",
    "r",
    "std",
    "alloc",
];
const ODD_NAMES: &[&str] = &[
    "Self",
    "CamelCase",
    "_x",
    "a-b",
    "a.b",
    "a b",
    "日本",
    "ß",
    "",
    "*",
    ">",
    "$x",
    "r#type",
    "2x",
    "\t",
    "A_B",
];
const PASCAL: &[&str] = &[
    "A",
    "B",
    "C",
    "Order",
    "Self",
    "Result",
    "Option",
    "String",
    "Vec",
    "Box",
    "Some",
    "None",
    "Ok",
    "Err",
    "Events",
    "Client",
    "Internal",
    "BadRequest",
    "Busy",
    "ServiceError",
    "Context",
    "Bytes",
    "Timestamp",
    "Binary",
    "Send",
    "Sync",
    "Future",
    "Debug",
    "Clone",
    "PartialEq",
    "Serialize",
    "Deserialize",
    "Default",
    "Display",
    "Fn",
    "Type",
    "Crate",
    "Super",
    "AParams",
    "AError",
    "ABError",
    "T1",
    "Value",
    "Uuid",
    "EventSet",
    "MethodError",
    "Publish",
    "RpcCall",
    "AsyncCall",
    "CallOptions",
    "CallError",
    "Connection",
    "Host",
    "Money",
    "ErrorB",
    "XDetails",
    "AEvent",
    "SEvent",
    "Details",
];
const WIRE: &[&str] = &[
    "id",
    "orderId",
    "order_id",
    "OrderID",
    "type",
    "self",
    "self_",
    "Self",
    "super",
    "crate",
    "_a",
    "a_",
    "ctx",
    "options",
    "value",
    "error",
    "details",
    "with space",
    "a-b",
    "HTTPStatus",
    "fn",
    "async",
    "match",
    "where",
    "event",
    "params",
    "inner",
    "f",
    "into_future",
    "core",
    "payload",
    "subject",
    "other",
    "Ok",
    "r",
    "x1",
    "a1b",
    "a_1b",
];
const ODD_WIRE: &[&str] = &[
    "héllo", "2fa", "r#type", "", "-", "a.b", "日本", "\u{0}", "a\nb", "_", "__",
];
const ENUM_VALUES: &[&str] = &[
    "a",
    "b",
    "red",
    "dark_green",
    "light-blue",
    "self",
    "Self",
    "type",
    "none",
    "Some",
    "ALL",
    "as_str",
    "ok",
    "err",
    "internal",
    "crate",
    "super",
    "x1",
    "from_str",
    "default",
];
const ODD_ENUM_VALUES: &[&str] = &["x.y", "a b", "1st", "", "ß", "_", "-", "a-", "A"];
const TOKENS: &[&str] = &[
    "orders", "created", "a", "b", "type", "self", "x1", "a-b", "a_b", "new", "rpc", "async",
    "events", "crate", "v2",
];
const ODD_TOKENS: &[&str] = &[
    "_", "-", "1", "2x", "x-", "_1", "a--b", "Orders", "", "*", ">", "natsgen", "$x",
];
const DESCRIPTIONS: &[&str] = &[
    "Plain text.",
    "#[doc] */ } fn x() {",
    "\"); panic!(\"",
    "back\\slash and \"quotes\"",
    "multi\nline\n\ndescription",
    "control \u{0} \r \u{7} \u{1b}[31m chars",
    "unicode ü日本語🚀 \u{2028} \u{feff}",
    "`code` and [links](http://x) and <html>",
    "{{ askama }} {% if x %} {# comment #}",
    "r#\"raw\"#",
    "///",
    "",
];
const PRIMITIVES: &[&str] = &[
    "bool",
    "string",
    "bytes",
    "i32",
    "i64",
    "u32",
    "u64",
    "f32",
    "f64",
    "timestamp",
    "uuid",
    "json",
];
const DURATIONS: &[&str] = &[
    "1ms",
    "500ms",
    "10s",
    "1.5s",
    "2m",
    "1h",
    "0.001s",
    "999999999h",
];
const ODD_DURATIONS: &[&str] = &[
    "1",
    "0s",
    "fast",
    "-1s",
    "1.0001ms",
    "1e3s",
    "99999999999999999h",
    "",
];

/// A YAML scalar for any string: plain when that is unambiguous, double-quoted otherwise.
fn q(s: &str) -> String {
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '<' | '>' | '-'))
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct SchemaGen<'r> {
    rng: &'r mut Rng,
    /// Whether odd (mostly invalid) choices are made at all.
    wild: bool,
    out: String,
    types: Vec<String>,
    topics: Vec<String>,
    imports_common: bool,
}

impl SchemaGen<'_> {
    fn odd(&mut self) -> bool {
        self.wild && self.rng.chance(8)
    }

    /// One of `pool`, or of `odd` now and then.
    fn choose(&mut self, pool: &[&'static str], odd: &[&'static str]) -> &'static str {
        let items = if self.odd() { odd } else { pool };
        items[self.rng.below(items.len())]
    }

    /// Mostly well-formed names, sometimes odd ones.
    fn name(&mut self, pool: &[&str], odd: &[&str]) -> String {
        if self.odd() {
            (*self.rng.pick(odd)).to_string()
        } else if self.rng.chance(25) {
            format!("{}_{}", self.rng.pick(pool), self.rng.pick(SNAKE))
        } else {
            (*self.rng.pick(pool)).to_string()
        }
    }

    fn pascal(&mut self) -> String {
        if self.odd() {
            (*self.rng.pick(ODD_NAMES)).to_string()
        } else if self.rng.chance(30) {
            format!("{}{}", self.rng.pick(PASCAL), self.rng.pick(PASCAL))
        } else {
            (*self.rng.pick(PASCAL)).to_string()
        }
    }

    fn type_expr(&mut self, depth: usize) -> String {
        let roll = self.rng.below(100);
        if depth < 3 && roll < 25 {
            let wrapper = *self.rng.pick(&["list", "map", "optional"]);
            return format!("{wrapper}<{}>", self.type_expr(depth + 1));
        }
        if roll < 60 && !self.types.is_empty() {
            return self.rng.pick(&self.types).clone();
        }
        if roll < 64 && self.imports_common {
            return (*self.rng.pick(&["common.Money", "common.Audit"])).to_string();
        }
        if self.odd() {
            return (*self.rng.pick(&[
                "Strng",
                "list<",
                "map<string, i32>",
                "Nope",
                "common.Nope",
                "a.b.c",
            ]))
            .to_string();
        }
        (*self.rng.pick(PRIMITIVES)).to_string()
    }

    fn description(&mut self, indent: &str) {
        if self.rng.chance(30) {
            let d = *self.rng.pick(DESCRIPTIONS);
            let _ = writeln!(self.out, "{indent}description: {}", q(d));
        }
    }

    fn fields(&mut self, indent: &str, max: usize) {
        let n = self.rng.below(max + 1);
        if n == 0 && self.rng.chance(50) {
            let _ = writeln!(self.out, "{indent}fields: {{}}");
            return;
        }
        let _ = writeln!(self.out, "{indent}fields:");
        let mut used = HashSet::new();
        for _ in 0..n {
            let name = self.name(WIRE, ODD_WIRE);
            if !used.insert(name.clone()) && !self.odd() {
                continue;
            }
            let ty = self.type_expr(0);
            if self.rng.chance(15) {
                let _ = writeln!(
                    self.out,
                    "{indent}  {}:\n{indent}    type: {}",
                    q(&name),
                    q(&ty)
                );
                self.description(&format!("{indent}    "));
            } else {
                let _ = writeln!(self.out, "{indent}  {}: {}", q(&name), q(&ty));
            }
        }
    }

    fn topic(&mut self) -> String {
        let n = 1 + self.rng.below(3);
        (0..n)
            .map(|_| self.choose(TOKENS, ODD_TOKENS))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn pattern(&mut self) -> String {
        if self.topics.is_empty() || self.odd() {
            return (*self
                .rng
                .pick(&["*", ">", "orders.*", "x.>", "*.*", "a.*.b"]))
            .to_string();
        }
        let topic = self.rng.pick(&self.topics).clone();
        let mut tokens: Vec<&str> = topic.split('.').collect();
        match self.rng.below(4) {
            0 => topic,
            1 => {
                let i = self.rng.below(tokens.len());
                tokens[i] = "*";
                tokens.join(".")
            }
            2 => {
                let keep = self.rng.below(tokens.len());
                tokens.truncate(keep);
                tokens.push(">");
                tokens.join(".")
            }
            _ => {
                let i = self.rng.below(tokens.len());
                tokens[i] = "*";
                let keep = i + 1;
                tokens.truncate(keep);
                tokens.join(".")
            }
        }
    }

    fn schema(mut self) -> String {
        self.out.push_str("natsgen: 1\n");
        if self.rng.chance(40) {
            let p = self.name(SNAKE, ODD_NAMES);
            let _ = writeln!(self.out, "package: {}", q(&p));
        }
        self.description("");
        if self.imports_common {
            self.out.push_str("imports: [common.yaml]\n");
        }
        // Names first, so references can point forwards.
        let n_types = self.rng.below(6);
        self.types = (0..n_types).map(|_| self.pascal()).collect();
        let n_events = self.rng.below(5);
        self.topics = (0..n_events).map(|_| self.topic()).collect();
        if self.imports_common && self.rng.chance(50) {
            self.topics.push("audit.recorded".into());
        }

        if !self.types.is_empty() {
            self.out.push_str("types:\n");
            for name in self.types.clone() {
                let _ = writeln!(self.out, "  {}:", q(&name));
                self.description("    ");
                if self.rng.chance(25) {
                    let n = 1 + self.rng.below(5);
                    let mut values: Vec<String> = (0..n)
                        .map(|_| q(self.choose(ENUM_VALUES, ODD_ENUM_VALUES)))
                        .collect();
                    if !self.wild {
                        values.sort();
                        values.dedup();
                    }
                    let _ = writeln!(self.out, "    enum: [{}]", values.join(", "));
                } else {
                    self.fields("    ", 5);
                }
            }
        }
        let own_topics = self
            .topics
            .iter()
            .filter(|t| *t != "audit.recorded")
            .cloned()
            .collect::<Vec<_>>();
        if !own_topics.is_empty() {
            self.out.push_str("events:\n");
            for topic in own_topics {
                let _ = writeln!(self.out, "  {}:", q(&topic));
                self.description("    ");
                if self.rng.chance(40) {
                    let ty = self.type_expr(1);
                    let _ = writeln!(self.out, "    payload: {}", q(&ty));
                } else {
                    self.fields("    ", 3);
                }
            }
        }
        let n_services = self.rng.below(4);
        if n_services > 0 {
            self.out.push_str("services:\n");
        }
        for _ in 0..n_services {
            let s = self.name(SNAKE, ODD_NAMES);
            let _ = writeln!(self.out, "  {}:", q(&s));
            self.description("    ");
            if self.rng.chance(40) {
                let v = self.choose(
                    &["1.0.0", "0.1.0", "2.1.0-beta.1+build.7", "0.0.0"],
                    &["1.0", "v1", "01.0.0", ""],
                );
                let _ = writeln!(self.out, "    version: {}", q(v));
            }
            let n_methods = self.rng.below(5);
            if n_methods > 0 || self.rng.chance(20) {
                self.out.push_str("    methods:\n");
            }
            for _ in 0..n_methods {
                let m = self.name(SNAKE, ODD_NAMES);
                let is_async = self.rng.chance(30);
                let _ = writeln!(self.out, "      {}:", q(&m));
                if is_async {
                    self.out.push_str("        kind: async\n");
                } else if self.rng.chance(20) {
                    self.out.push_str("        kind: rpc\n");
                }
                self.description("        ");
                if self.rng.chance(70) {
                    let before = self.out.len();
                    self.fields("        ", 4);
                    // `fields:` → `params:` for the block just written.
                    let block = self.out.split_off(before).replacen("fields:", "params:", 1);
                    self.out.push_str(&block);
                }
                if (!is_async && self.rng.chance(70)) || self.odd() {
                    let ty = self.type_expr(0);
                    let _ = writeln!(self.out, "        returns: {}", q(&ty));
                }
                if !self.topics.is_empty() && self.rng.chance(40) {
                    let k = 1 + self.rng.below(2);
                    let emits: Vec<String> = (0..k)
                        .map(|_| q(&self.rng.pick(&self.topics).clone()))
                        .collect();
                    let _ = writeln!(self.out, "        emits: [{}]", emits.join(", "));
                }
                if (!is_async && self.rng.chance(30)) || self.odd() {
                    self.out.push_str("        errors:\n");
                    for _ in 0..1 + self.rng.below(3) {
                        let e = self.pascal();
                        if self.rng.chance(50) {
                            let _ = writeln!(self.out, "          {}: {{}}", q(&e));
                        } else {
                            let _ = writeln!(self.out, "          {}:", q(&e));
                            self.description("            ");
                            self.fields("            ", 3);
                        }
                    }
                }
                if (!is_async && self.rng.chance(30)) || self.odd() {
                    let d = self.choose(DURATIONS, ODD_DURATIONS);
                    let _ = writeln!(self.out, "        timeout: {}", q(d));
                }
                if (is_async && self.rng.chance(40)) || self.odd() {
                    let attempts = self.choose(
                        &["1", "3", "5", "4294967295"],
                        &["0", "-1", "4294967296", "1.5", "x"],
                    );
                    let backoff = self.choose(DURATIONS, ODD_DURATIONS);
                    let _ = writeln!(
                        self.out,
                        "        retry: {{max_attempts: {attempts}, backoff: {}}}",
                        q(backoff)
                    );
                }
            }
            if self.rng.chance(50) && (!self.topics.is_empty() || self.rng.chance(20)) {
                self.out.push_str("    handles:\n");
                for _ in 0..1 + self.rng.below(3) {
                    let pattern = self.pattern();
                    let handler = self.name(SNAKE, ODD_NAMES);
                    if self.rng.chance(50) {
                        let _ = writeln!(self.out, "      {}: {}", q(&pattern), q(&handler));
                    } else {
                        let mode =
                            self.choose(&["shared", "broadcast"], &["broadcst", "Shared", ""]);
                        let delivery = self.choose(
                            &["durable", "best_effort"],
                            &["at_least_once", "besteffort"],
                        );
                        let _ = write!(
                            self.out,
                            "      {}: {{handler: {}",
                            q(&pattern),
                            q(&handler)
                        );
                        if self.rng.chance(50) {
                            let _ = write!(self.out, ", mode: {mode}");
                        }
                        if self.rng.chance(50) {
                            let _ = write!(self.out, ", delivery: {delivery}");
                        }
                        if self.rng.chance(20) {
                            let _ = write!(self.out, ", retry: {{max_attempts: 2}}");
                        }
                        self.out.push_str("}\n");
                    }
                }
            }
            if self.rng.chance(25) || self.odd() {
                self.out.push_str("    timers:\n");
                for _ in 0..1 + self.rng.below(3) {
                    let timer = self.name(SNAKE, ODD_NAMES);
                    let every = self.choose(DURATIONS, ODD_DURATIONS);
                    if self.rng.chance(40) {
                        let _ = writeln!(self.out, "      {}: {}", q(&timer), q(every));
                        continue;
                    }
                    let _ = writeln!(self.out, "      {}:", q(&timer));
                    self.description("        ");
                    if !self.odd() {
                        let _ = writeln!(self.out, "        every: {}", q(every));
                    }
                    let instance = self.rng.chance(40);
                    if instance || self.rng.chance(20) || self.odd() {
                        let scope =
                            self.choose(&["service", "instance"], &["cluster", "Service", ""]);
                        let scope = if instance && scope == "service" {
                            "instance"
                        } else {
                            scope
                        };
                        let _ = writeln!(self.out, "        scope: {scope}");
                    }
                    if (!instance && self.rng.chance(30)) || self.odd() {
                        let backoff = self.choose(DURATIONS, ODD_DURATIONS);
                        let _ = writeln!(
                            self.out,
                            "        retry: {{max_attempts: 2, backoff: {}}}",
                            q(backoff)
                        );
                    }
                }
            }
        }
        self.out
    }
}

fn random_schema(rng: &mut Rng) -> String {
    let imports_common = rng.chance(30);
    let wild = rng.chance(35);
    SchemaGen {
        rng,
        wild,
        out: String::new(),
        types: Vec::new(),
        topics: Vec::new(),
        imports_common,
    }
    .schema()
}

// ---------------------------------------------------------------------------------------------
// The tests

/// Thousands of random edits of the valid schemas (and of the broken corpus); inputs that still
/// validate are kept and mutated further, so the generator sees many odd but valid schemas.
#[test]
fn mutated_schemas_never_panic() {
    on_big_stack(|| {
        let mut rng = Rng::new(base_seed());
        let valid = valid_seeds();
        let mut donors = valid.clone();
        donors.extend(invalid_seeds());
        let mut h = Harness::new();
        for (name, text) in &valid {
            assert!(
                h.check(&format!("seed {name}"), text),
                "seed {name} must be valid"
            );
        }
        // Valid mutants to build on, next to the seeds.
        let mut pool: Vec<(String, String)> = valid.clone();
        let iterations = scale(1_000);
        for i in 0..iterations {
            let (name, base) = if rng.chance(80) {
                rng.pick(&pool).clone()
            } else {
                rng.pick(&donors).clone()
            };
            let mut text = base;
            let edits = 1 + rng.below(4);
            for _ in 0..edits {
                text = mutate(&text, &mut rng, &donors);
            }
            let origin = format!("mutation {i} of {name} (seed {:#x})", base_seed());
            if h.check(&origin, &text) && pool.len() < 200 && text.len() < 200_000 {
                pool.push((format!("{name}+{i}"), text));
            }
        }
        h.finish("mutated");
    });
}

/// Random schemas from a small grammar, biased toward names that meet Rust keywords, prelude and
/// generated names, so many validate and reach code generation.
#[test]
fn generated_schemas_never_panic_and_valid_ones_generate() {
    on_big_stack(|| {
        let mut rng = Rng::new(base_seed().rotate_left(17));
        let mut h = Harness::new();
        let iterations = scale(600);
        for i in 0..iterations {
            let text = random_schema(&mut rng);
            h.check(
                &format!("grammar schema {i} (seed {:#x})", base_seed()),
                &text,
            );
        }
        let (valid, checked) = (h.valid, h.checked);
        h.finish("grammar");
        assert!(
            valid * 100 >= checked * 15,
            "the grammar should produce a fair share of valid schemas: {valid} of {checked}"
        );
    });
}

/// Hand-picked extremes: deep type expressions, deep YAML, long strings, many entries, YAML
/// features a schema never needs.
#[test]
fn pathological_inputs_never_panic() {
    on_big_stack(|| {
        let mut h = Harness::new();
        let long = "x".repeat(70_000);
        let many_types: String = (0..500)
            .map(|i| {
                format!(
                    "  T{i}:\n    fields: {{next: optional<T{}>}}\n",
                    (i + 1) % 500
                )
            })
            .collect();
        let chain: String = (0..300)
            .map(|i| format!("  T{i}:\n    fields: {{next: T{}}}\n", i + 1))
            .collect();
        let many_fields: String = (0..1_000)
            .map(|i| format!("      f{i}: string\n"))
            .collect();
        let mut alias_bomb = String::from("natsgen: 1\nx0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..7 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            let _ = writeln!(alias_bomb, "x{i}: &a{i} [{refs}]");
        }
        let cases: Vec<(String, String)> = vec![
            ("list<> 100 deep".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields: {{a: \"{}\"}}\n", nested("list<", "string", ">", 100))),
            ("list<> 32 deep".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields: {{a: \"{}\"}}\n", nested("list<", "string", ">", 32))),
            ("optional<> 30 deep".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields: {{a: \"{}\"}}\n", nested("optional<", "A", ">", 30))),
            ("unclosed list< x5000".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields: {{a: \"{}\"}}\n", "list<".repeat(5_000))),
            ("closers x5000".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields: {{a: \"string{}\"}}\n", ">".repeat(5_000))),
            ("flow seq 300 deep".into(), format!("natsgen: 1\ntypes: {}\n", nested("[", "", "]", 300))),
            ("flow map 300 deep".into(), format!("natsgen: 1\ntypes: {}\n", nested("{a: ", "b", "}", 300))),
            ("block map 100 deep".into(), {
                let block: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(2 + 2 * i))).collect();
                format!("natsgen: 1\ntypes:\n{block}")
            }),
            ("70 KiB description".into(), format!("natsgen: 1\ndescription: \"{long}\"\n")),
            ("70 KiB type name".into(), format!("natsgen: 1\ntypes:\n  A{long}:\n    fields: {{a: string}}\n")),
            ("70 KiB field type".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields: {{a: {long}}}\n")),
            ("500 types in an optional cycle".into(), format!("natsgen: 1\ntypes:\n{many_types}")),
            ("300 types in a chain".into(), format!("natsgen: 1\ntypes:\n{chain}  T300:\n    fields: {{a: string}}\n")),
            ("1000 fields".into(), format!("natsgen: 1\ntypes:\n  A:\n    fields:\n{many_fields}")),
            ("alias bomb".into(), alias_bomb),
            ("aliases of a type".into(), "natsgen: 1\ntypes:\n  A: &t {fields: {a: string}}\n  B: *t\n".into()),
            ("merge key".into(), "natsgen: 1\ntypes:\n  A: &t {fields: {a: string}}\n  B:\n    <<: *t\n".into()),
            ("complex key".into(), "natsgen: 1\ntypes:\n  ? [a, b]\n  : {fields: {a: string}}\n".into()),
            ("null key".into(), "natsgen: 1\ntypes:\n  ~: {fields: {a: string}}\n".into()),
            ("two documents".into(), "natsgen: 1\n---\nnatsgen: 1\n".into()),
            ("only a comment".into(), "# nothing\n".into()),
            ("only a BOM".into(), "\u{feff}".into()),
            ("NUL bytes".into(), "natsgen: 1\u{0}\ntypes: {}\n".into()),
            ("lone CR line ends".into(), "natsgen: 1\rtypes:\r  A:\r    fields: {a: Strng}\r".into()),
            ("CRLF".into(), "natsgen: 1\r\ntypes:\r\n  A:\r\n    fields: {a: Strng}\r\n".into()),
            ("BOM then error".into(), "\u{feff}natsgen: 1\ntypes:\n  A:\n    fields: {a: Strng}\n".into()),
            ("tabs".into(), "natsgen: 1\ntypes:\n\tA:\n\t\tfields: {a: string}\n".into()),
            ("huge integers".into(), "natsgen: 340282366920938463463374607431768211456\nservices:\n  s:\n    methods:\n      m: {kind: async, retry: {max_attempts: 99999999999999999999999999999}}\n".into()),
            ("float version".into(), "natsgen: 1.0\n".into()),
            ("tagged values".into(), "natsgen: !!str 1\ndescription: !!binary aGVsbG8=\ntypes: !custom {}\n".into()),
            ("self import".into(), "natsgen: 1\nimports: [input.yaml]\n".into()),
            ("import a directory".into(), "natsgen: 1\nimports: [., \"\", /]\n".into()),
            ("import a non-schema".into(), "natsgen: 1\nimports: [../input.yaml/x, common.yaml, common.yaml]\n".into()),
        ];
        for (name, text) in &cases {
            h.check(name, text);
        }
        h.finish("pathological");
    });
}

// ---------------------------------------------------------------------------------------------
// Regressions: minimal reproductions of problems the fuzzer once found.

fn generate_text(text: &str) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repro.yaml");
    std::fs::write(&path, text).expect("write");
    let files = configure().generate(&[&path]).map_err(|e| e.to_string())?;
    let problems: Vec<String> = files
        .iter()
        .flat_map(|f| compile_problems(&f.code))
        .collect();
    if problems.is_empty() {
        Ok(files.into_iter().map(|f| f.code).collect())
    } else {
        Err(problems.join("\n"))
    }
}

/// Validates, then renders `pub trait Self`, which does not parse.
#[test]
fn service_named_self_generates() {
    let r = generate_text("natsgen: 1\nservices:\n  self:\n    methods:\n      ping: {}\n");
    assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
}

/// Validates, then renders the wildcard enum variant `Self(Self_)`, which does not parse.
#[test]
fn topic_named_self_in_a_wildcard_generates() {
    let r = generate_text("natsgen: 1\nevents:\n  self:\n    fields: {a: string}\nservices:\n  s:\n    handles:\n      \"*\": on_any\n");
    assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
}

/// Validates and parses, but `ctx` repeats the server trait's own parameter and `options` the Api
/// trait's: the generated code does not compile.
#[test]
fn params_named_ctx_and_options_generate() {
    let r = generate_text("natsgen: 1\nservices:\n  s:\n    methods:\n      m:\n        params: {ctx: string, options: string}\n");
    assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
}

/// Validates and parses, but both methods get the private struct `ABCParams`.
#[test]
fn params_structs_never_clash() {
    let r = generate_text("natsgen: 1\nservices:\n  a_b:\n    methods:\n      c: {}\n  a:\n    methods:\n      b_c: {}\n");
    assert!(r.is_ok(), "{}", r.err().unwrap_or_default());
}

/// Nested YAML within serde-saphyr's default depth budget (64) overflows a 2 MiB stack (a test
/// thread, a tokio worker) in a debug build, which aborts the process instead of reporting.
/// Runs in a child process so the abort cannot take the test binary down.
#[test]
fn deep_yaml_nesting_fits_a_small_stack() {
    if std::env::var_os("NATSGEN_FUZZ_CHILD").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "deep_yaml_child",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env("NATSGEN_FUZZ_CHILD", "1")
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "loading 60 levels of nested YAML on a 2 MiB thread died: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The child of `deep_yaml_nesting_fits_a_small_stack`: does nothing unless asked to.
#[test]
fn deep_yaml_child() {
    if std::env::var_os("NATSGEN_FUZZ_CHILD").is_none() {
        return;
    }
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("deep.yaml");
            std::fs::write(
                &path,
                format!("natsgen: 1\ntypes: {}\n", nested("{a: ", "b", "}", 60)),
            )
            .expect("write");
            let loaded = load(&[path]);
            assert!(loaded.model.is_none());
        })
        .expect("spawn");
    handle.join().expect("no panic");
}

/// Whether generating `text` is rejected by a schema diagnostic with `code` (and not by broken
/// output or an internal error).
fn rejected_with(text: &str, code: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("repro.yaml");
    std::fs::write(&path, text).expect("write");
    match configure().generate(&[&path]) {
        Err(Error::Schema(d)) => d.0.iter().any(|d| d.code == code),
        _ => false,
    }
}

/// Topic tokens made only of `_`/`-`, or starting with a digit, give no identifier (`pub struct
/// {`, `pub fn 1_new(`): they are rejected as invalid topics.
#[test]
fn topic_tokens_that_are_not_identifiers_are_rejected() {
    for topic in ["_", "-", "1.x", "2x.created"] {
        let text = format!("natsgen: 1\nevents:\n  \"{topic}\":\n    fields: {{a: string}}\n");
        assert!(
            rejected_with(&text, "natsgen::invalid_topic"),
            "topic {topic:?} was not rejected"
        );
    }
}

/// Generated public names that would clash are reported; private helper names cannot clash.
#[test]
fn generated_names_never_clash() {
    let cases = [
        // trait `Events` next to the publisher `struct Events`
        "natsgen: 1\nevents:\n  e:\n    fields: {a: string}\nservices:\n  events:\n    methods:\n      m: {}\n",
        // `OrderClient`: the client of `order` and the trait of `order_client`
        "natsgen: 1\nservices:\n  order:\n    methods:\n      m: {}\n  order_client:\n    methods:\n      n: {}\n",
        // `a_b` and `a__b` both become `AB`, `ABClient`, ..., `A_B_DESCRIPTOR`
        "natsgen: 1\nservices:\n  a_b:\n    methods:\n      m: {}\n  a__b:\n    methods:\n      n: {}\n",
        // `s::Get2Error` for both `get2` and `get_2` of one service
        "natsgen: 1\nservices:\n  s:\n    methods:\n      get2: {errors: {Gone: {}}}\n      get_2: {errors: {Gone: {}}}\n",
        // `AErrorErrorBDetails`: error `ErrorB` of `a` and error `B` of `a_error`
        "natsgen: 1\nservices:\n  s:\n    methods:\n      a: {errors: {ErrorB: {fields: {x: string}}}}\n      a_error: {errors: {B: {fields: {x: string}}}}\n",
        // `XError`: the errors of method `x` (in module `s`, not re-exported) and the trait of
        // service `x_error`
        "natsgen: 1\nservices:\n  s:\n    methods:\n      x: {errors: {Gone: {}}}\n  x_error:\n    methods:\n      y: {}\n",
        // `GetError` of two services: `a::GetError` and `b::GetError`
        "natsgen: 1\nservices:\n  a:\n    methods:\n      get: {errors: {Gone: {}}}\n  b:\n    methods:\n      get: {errors: {Gone: {}}}\n",
    ];
    // The first four clash in public names and must be diagnosed; the others only ever clashed
    // in private helper names or in names now scoped by service, and must generate.
    for text in &cases[..4] {
        assert!(
            rejected_with(text, "natsgen::reserved_name"),
            "no clash reported for:\n{text}"
        );
    }
    for text in &cases[4..] {
        let r = generate_text(text);
        assert!(r.is_ok(), "{text}\n{}", r.err().unwrap_or_default());
    }
}

/// A topic declared by a package and by a package it imports (or a service name used in both) is
/// accepted: two streams would capture one subject, two services would share `svc.rpc.m`, and a
/// wildcard handler gets the variant `OrdersCreated` twice.
#[test]
fn same_topic_or_service_in_two_packages_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.yaml"),
        "natsgen: 1\npackage: pa\nevents:\n  orders.created:\n    fields: {x: string}\nservices:\n  svc:\n    methods:\n      m: {}\n",
    )
    .expect("write");
    let b = dir.path().join("b.yaml");
    std::fs::write(
        &b,
        "natsgen: 1\npackage: pb\nimports: [a.yaml]\nevents:\n  orders.created:\n    fields: {y: string}\nservices:\n  svc:\n    methods:\n      m: {}\n  s2:\n    handles:\n      \"orders.*\": on_any\n",
    )
    .expect("write");
    let loaded = load(std::slice::from_ref(&b));
    assert!(
        loaded.model.is_none(),
        "two packages declare `orders.created` and service `svc`, yet no diagnostic"
    );
}

/// miette's graphical handler panics ("Formatting argument out of range") on a label past column
/// 65535, so `Diagnostics::render`, `natsgen check` and `Error`'s Display panic on such a file.
#[test]
fn render_of_a_very_wide_line_does_not_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("wide.yaml");
    std::fs::write(
        &path,
        format!(
            "natsgen: 1\ntypes:\n  A:\n    fields: {{{}a: Strng}}\n",
            " ".repeat(70_000)
        ),
    )
    .expect("write");
    let loaded = load(&[path]);
    assert!(!loaded.diagnostics.is_empty());
    let rendered = catch_unwind(AssertUnwindSafe(|| loaded.diagnostics.render()));
    assert!(rendered.is_ok(), "render panicked");
}
