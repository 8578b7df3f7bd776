//! `natsgen`: check schemas, generate Rust, write references and contracts, and compare versions.

use std::io::{IsTerminal, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use natsgen_build::model::Model;
use natsgen_build::{configure, load, write_if_changed, Diagnostics, Error, Formatting};

/// The exit codes, shown at the end of every command's `--help`.
macro_rules! exit_codes {
    () => {
        "\
Exit codes:
  0  success (diff: no breaking change)
  1  the schemas have problems, files differ from what would be written (--check),
     or diff found a breaking change
  2  wrong usage, or a file or git version that cannot be read or written"
    };
}

/// `after_help`: the examples, then the exit codes.
macro_rules! examples {
    ($($line:literal),+ $(,)?) => {
        concat!($($line, "\n"),+, "\n", exit_codes!())
    };
}

#[derive(Parser)]
#[command(
    name = "natsgen",
    version,
    about = "Typed NATS microservices from YAML schemas",
    long_about = "Typed NATS microservices from YAML schemas: check them, generate Rust, write \
                  their reference, AsyncAPI document and editor schema, and tell which changes \
                  break what is deployed.",
    after_help = exit_codes!()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Lang {
    /// `<package>.rs`, as `build.rs` gets it.
    Rust,
    /// `<package>.py` on the `natsgen` Python runtime, and an `__init__.py`.
    Python,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiffFormat {
    /// One line per change, for people.
    Text,
    /// One JSON document, for CI.
    Json,
}

/// The schemas a command that writes files reads, and where the files go.
#[derive(Args)]
struct Files {
    #[arg(required = true)]
    schemas: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, short)]
    out: PathBuf,
    /// Write nothing; exit 1 if any file on disk differs from what would be written.
    #[arg(long)]
    check: bool,
}

/// Where a command that prints one document sends it.
#[derive(Args)]
struct Output {
    /// Write to this file instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate schemas; print every problem of every file, exit 1 if there are any.
    #[command(after_help = examples!("Example:", "  natsgen check schemas/*.yaml"))]
    Check {
        #[arg(required = true)]
        schemas: Vec<PathBuf>,
    },
    /// Generate `<package>.rs` (or, with `--lang python`, `<package>.py`) for every package the
    /// schemas reach.
    #[command(after_help = examples!(
        "Examples:",
        "  natsgen generate schemas/ecommerce.yaml --out src/gen",
        "  natsgen generate schemas/ecommerce.yaml --out src/gen --check   # exit 1 when files differ",
        "  natsgen generate --lang python schemas/ecommerce.yaml --out app/gen",
    ))]
    Generate {
        #[command(flatten)]
        files: Files,
        /// The language to generate.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
        /// Generate no clients (Rust).
        #[arg(long)]
        no_client: bool,
        /// Generate no server traits or bindings (Rust).
        #[arg(long)]
        no_server: bool,
        /// Print the code with prettyplease instead of as the templates lay it out (what
        /// `build.rs` gets); either way it is checked to parse (Rust).
        #[arg(long)]
        prettyplease: bool,
    },
    /// Write a Markdown reference, `<package>.md`, for every package the schemas reach.
    #[command(after_help = examples!(
        "Examples:",
        "  natsgen docs schemas/ecommerce.yaml --out docs/reference",
        "  natsgen docs schemas/ecommerce.yaml --out docs/reference --check   # exit 1 when stale",
    ))]
    Docs {
        #[command(flatten)]
        files: Files,
    },
    /// Print the AsyncAPI 3.0 document (JSON) of a schema's package.
    #[command(after_help = examples!(
        "Example:",
        "  natsgen asyncapi schemas/ecommerce.yaml --out ecommerce.asyncapi.json",
    ))]
    Asyncapi {
        schema: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Print the JSON Schema of the schema file format, for editors.
    #[command(
        name = "json-schema",
        after_help = examples!(
            "Example:",
            "  natsgen json-schema --out schemas/natsgen.schema.json",
            "then start a schema file in that folder with",
            "  # yaml-language-server: $schema=natsgen.schema.json",
        )
    )]
    JsonSchema {
        #[command(flatten)]
        output: Output,
    },
    /// Compare two versions of a schema; exit 1 if a change breaks deployed clients or servers.
    #[command(
        override_usage = "natsgen diff [OPTIONS] <OLD> <NEW>\n       natsgen diff [OPTIONS] --against <REV> <NEW>",
        after_help = examples!(
            "Examples:",
            "  natsgen diff old/ecommerce.yaml schemas/ecommerce.yaml",
            "  natsgen diff --against origin/main schemas/ecommerce.yaml           # the old version from git",
            "  natsgen diff --against v1.2.0 schemas/ecommerce.yaml --format json  # for CI",
        )
    )]
    Diff {
        /// The old version (with `--against`: the new one).
        #[arg(value_name = "OLD")]
        first: PathBuf,
        /// The new version.
        #[arg(value_name = "NEW")]
        second: Option<PathBuf>,
        /// Read the old version from this git revision (`git show <REV>:<path>`), imports
        /// included.
        #[arg(long, value_name = "REV")]
        against: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: DiffFormat,
    },
    /// Print a shell completion script.
    #[command(after_help = examples!(
        "Examples:",
        "  natsgen completions bash > ~/.local/share/bash-completion/completions/natsgen",
        "  natsgen completions zsh > ~/.zfunc/_natsgen",
        "  natsgen completions fish > ~/.config/fish/completions/natsgen.fish",
    ))]
    Completions { shell: clap_complete::Shell },
}

/// The outcome of a command that could not do its job; `main` turns it into the exit code.
enum Failure {
    /// Problems in the input, stale files or breaking changes: exit 1 (already reported).
    Found,
    /// Wrong usage, or I/O outside the schemas: exit 2.
    Usage(String),
}

type Outcome = Result<(), Failure>;

/// Whether to colour what goes to standard error: only on a terminal, and never with `NO_COLOR`.
fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn stdout_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(text: &str, ansi: &str, on: bool) -> String {
    if on {
        format!("\x1b[{ansi}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn error_line(message: &str) {
    eprintln!("{}: {message}", paint("error", "1;31", stderr_color()));
}

fn report(diagnostics: &Diagnostics) -> Failure {
    eprint!("{}", diagnostics.render_styled(stderr_color()));
    error_line(&format!("{} problem(s) found", diagnostics.len()));
    Failure::Found
}

fn load_model(schemas: &[PathBuf]) -> Result<Model, Failure> {
    let loaded = load(schemas);
    if !loaded.diagnostics.is_empty() {
        return Err(report(&loaded.diagnostics));
    }
    Ok(loaded.model.unwrap_or(Model {
        packages: Vec::new(),
    }))
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Check { schemas } => check(&schemas),
        Command::Generate {
            files,
            lang: Lang::Python,
            no_client,
            no_server,
            prettyplease,
        } => {
            if no_client || no_server || prettyplease {
                Err(Failure::Usage(
                    "--no-client, --no-server and --prettyplease are for Rust; --lang python \
                     generates clients, publishers and service base classes"
                        .into(),
                ))
            } else {
                generate_python(&files)
            }
        }
        Command::Generate {
            files,
            lang: Lang::Rust,
            no_client,
            no_server,
            prettyplease,
        } => generate(&files, no_client, no_server, prettyplease),
        Command::Docs { files } => docs(&files),
        Command::Asyncapi { schema, output } => asyncapi(&schema, output.out.as_deref()),
        Command::JsonSchema { output } => emit_json(
            &natsgen_build::json_schema::schema_format(),
            output.out.as_deref(),
        ),
        Command::Diff {
            first,
            second,
            against,
            format,
        } => {
            let schemas: Vec<PathBuf> = std::iter::once(first).chain(second).collect();
            diff(&schemas, against.as_deref(), format)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "natsgen",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Found) => ExitCode::from(1),
        Err(Failure::Usage(message)) => {
            error_line(&message);
            ExitCode::from(2)
        }
    }
}

fn check(schemas: &[PathBuf]) -> Outcome {
    let loaded = load(schemas);
    if !loaded.diagnostics.is_empty() {
        return Err(report(&loaded.diagnostics));
    }
    let model = loaded.model.unwrap_or(Model {
        packages: Vec::new(),
    });
    let services: usize = model.packages.iter().map(|p| p.services.len()).sum();
    let types: usize = model.packages.iter().map(|p| p.types.len()).sum();
    let events: usize = model.packages.iter().map(|p| p.events.len()).sum();
    println!(
        "ok: {} file(s), {} package(s), {services} service(s), {types} type(s), {events} event(s)",
        loaded.files.len(),
        model.packages.len()
    );
    Ok(())
}

fn generate(files: &Files, no_client: bool, no_server: bool, prettyplease: bool) -> Outcome {
    let builder = configure()
        .formatting(if prettyplease {
            Formatting::Prettyplease
        } else {
            Formatting::Checked
        })
        .build_client(!no_client)
        .build_server(!no_server)
        .emit_rerun_if_changed(false);
    let generated = match builder.generate(&files.schemas) {
        Ok(f) => f,
        Err(Error::Schema(d)) => return Err(report(&d)),
        Err(e) => {
            error_line(&e.to_string());
            return Err(Failure::Found);
        }
    };
    let generated: Vec<(String, String)> = generated
        .into_iter()
        .map(|f| (f.file_name, f.code))
        .collect();
    write_outputs(files, &generated, "natsgen generate")
}

fn generate_python(files: &Files) -> Outcome {
    let model = load_model(&files.schemas)?;
    let generated: Vec<(String, String)> = natsgen_build::python::generate(&model)
        .into_iter()
        .map(|f| (f.file_name, f.code))
        .collect();
    write_outputs(files, &generated, "natsgen generate --lang python")
}

/// Writes `(file name, content)` into `out`, or with `check` compares them with what is there.
fn write_outputs(target: &Files, files: &[(String, String)], command: &str) -> Outcome {
    let out = &target.out;
    if target.check {
        let mut stale = 0;
        for (name, content) in files {
            let path = out.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                eprintln!("{} is out of date", path.display());
                stale += 1;
            }
        }
        if stale > 0 {
            error_line(&format!(
                "{stale} file(s) differ; run `{command}` without --check"
            ));
            return Err(Failure::Found);
        }
        println!("ok: {} file(s) up to date", files.len());
        return Ok(());
    }
    std::fs::create_dir_all(out)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", out.display())))?;
    for (name, content) in files {
        let path = out.join(name);
        match write_if_changed(&path, content) {
            Ok(true) => println!("wrote {}", path.display()),
            Ok(false) => println!("unchanged {}", path.display()),
            Err(e) => return Err(Failure::Usage(e.to_string())),
        }
    }
    Ok(())
}

fn docs(files: &Files) -> Outcome {
    let model = load_model(&files.schemas)?;
    let pages: Vec<(String, String)> = model
        .packages
        .iter()
        .map(|p| {
            (
                format!("{}.md", p.name),
                natsgen_build::docs::markdown(&model, p),
            )
        })
        .collect();
    write_outputs(files, &pages, "natsgen docs")
}

fn emit_json(value: &serde_json::Value, out: Option<&Path>) -> Outcome {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Usage(format!("cannot print JSON: {e}")))?;
    text.push('\n');
    match out {
        Some(path) => write_if_changed(path, &text)
            .map(|_| ())
            .map_err(|e| Failure::Usage(e.to_string())),
        None => match std::io::stdout().write_all(text.as_bytes()) {
            // A reader that stops early (`| head`) is not an error.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::Usage(format!(
                "cannot write to standard output: {e}"
            ))),
            _ => Ok(()),
        },
    }
}

fn asyncapi(schema: &Path, out: Option<&Path>) -> Outcome {
    let model = load_model(&[schema.to_path_buf()])?;
    let Some(package) = natsgen_build::asyncapi::root_package(&model, schema) else {
        return Err(Failure::Usage(format!(
            "{} declares no package",
            schema.display()
        )));
    };
    emit_json(&natsgen_build::asyncapi::document(&model, package), out)
}

fn diff(schemas: &[PathBuf], against: Option<&str>, format: DiffFormat) -> Outcome {
    let (old, new) = match (against, schemas) {
        (Some(rev), [new]) => {
            let old = git_version(rev, new)?;
            let model = load_model(std::slice::from_ref(&old.root));
            (model, new)
        }
        (None, [old, new]) => (load_model(std::slice::from_ref(old)), new),
        (Some(_), _) => {
            return Err(Failure::Usage(
                "with --against, give only the new schema: natsgen diff --against <REV> <NEW>"
                    .into(),
            ))
        }
        (None, _) => {
            return Err(Failure::Usage(
                "give the old and the new schema, or --against <REV> and the new one".into(),
            ))
        }
    };
    let old = old?;
    let new = load_model(std::slice::from_ref(new))?;
    let changes = natsgen_build::diff::diff(&old, &new);
    match format {
        DiffFormat::Json => emit_json(&natsgen_build::diff::to_json(&changes), None)?,
        DiffFormat::Text => {
            let color = stdout_color();
            for c in &changes {
                let line = c.to_string();
                let styled = match c.severity {
                    natsgen_build::diff::Severity::Breaking => {
                        format!("{}{}", paint("breaking", "1;31", color), &line[8..])
                    }
                    natsgen_build::diff::Severity::Compatible => {
                        format!("{}{}", paint("compatible", "32", color), &line[10..])
                    }
                };
                println!("{styled}");
            }
            let breaking = changes
                .iter()
                .filter(|c| c.severity == natsgen_build::diff::Severity::Breaking)
                .count();
            if changes.is_empty() {
                println!("no changes on the wire");
            } else {
                println!(
                    "{breaking} breaking, {} compatible change(s)",
                    changes.len() - breaking
                );
            }
        }
    }
    if natsgen_build::diff::is_breaking(&changes) {
        Err(Failure::Found)
    } else {
        Ok(())
    }
}

/// A schema as it was at a git revision, with everything it imports, copied into a temporary
/// directory (removed on drop).
struct GitVersion {
    dir: PathBuf,
    root: PathBuf,
}

impl Drop for GitVersion {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, Failure> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| Failure::Usage(format!("cannot run git: {e}")))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(Failure::Usage(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// `a/b/../c` → `a/c`, without touching the file system (the file may not exist any more).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn git_version(rev: &str, schema: &Path) -> Result<GitVersion, Failure> {
    let absolute = std::fs::canonicalize(schema)
        .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", schema.display())))?;
    let dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    let top = git(&dir, &["rev-parse", "--show-toplevel"])?;
    let top = PathBuf::from(String::from_utf8_lossy(&top).trim());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let relative = absolute
        .strip_prefix(&top)
        .map_err(|_| {
            Failure::Usage(format!(
                "{} is not inside {}",
                schema.display(),
                top.display()
            ))
        })?
        .to_path_buf();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("natsgen-diff-{}-{nanos}", std::process::id()));
    let version = GitVersion {
        root: dir.join(&relative),
        dir,
    };
    let mut todo = vec![relative.clone()];
    let mut seen = Vec::new();
    while let Some(path) = todo.pop() {
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        let spec = format!("{rev}:{}", path.to_string_lossy().replace('\\', "/"));
        let text = match git(&top, &["show", &spec]) {
            Ok(text) => text,
            // A missing import is reported by validation, like any missing import.
            Err(_) if path != relative => continue,
            Err(e) => return Err(e),
        };
        let target = version.dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&target, &text)
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", target.display())))?;
        let imports = serde_saphyr::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("imports").cloned())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        for import in imports.iter().filter_map(|i| i.as_str()) {
            todo.push(normalize(&base.join(import)));
        }
    }
    Ok(version)
}
