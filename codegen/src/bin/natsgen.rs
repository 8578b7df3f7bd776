//! `natsgen`: check schemas and generate Rust from them, from the shell.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use natsgen_build::{configure, load, write_if_changed, Error, Formatting};

#[derive(Parser)]
#[command(
    name = "natsgen",
    version,
    about = "Typed NATS microservices from YAML schemas"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate schemas; print every problem of every file, exit 1 if there are any.
    Check {
        #[arg(required = true)]
        schemas: Vec<PathBuf>,
    },
    /// Generate `<package>.rs` for every package the schemas reach.
    Generate {
        #[arg(required = true)]
        schemas: Vec<PathBuf>,
        /// Output directory.
        #[arg(long, short)]
        out: PathBuf,
        /// Write nothing; exit 1 if any file on disk differs from what would be generated.
        #[arg(long)]
        check: bool,
        /// Generate no clients.
        #[arg(long)]
        no_client: bool,
        /// Generate no server traits or bindings.
        #[arg(long)]
        no_server: bool,
        /// Print the code with prettyplease instead of as the templates lay it out (what
        /// `build.rs` gets); either way it is checked to parse.
        #[arg(long)]
        prettyplease: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check { schemas } => {
            let loaded = load(&schemas);
            if loaded.diagnostics.is_empty() {
                let model = loaded.model.unwrap_or_else(|| natsgen_build::model::Model {
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
                ExitCode::SUCCESS
            } else {
                eprint!("{}", loaded.diagnostics.render());
                eprintln!("error: {} problem(s) found", loaded.diagnostics.len());
                ExitCode::FAILURE
            }
        }
        Command::Generate {
            schemas,
            out,
            check,
            no_client,
            no_server,
            prettyplease,
        } => {
            let builder = configure()
                .formatting(if prettyplease {
                    Formatting::Prettyplease
                } else {
                    Formatting::Checked
                })
                .build_client(!no_client)
                .build_server(!no_server)
                .emit_rerun_if_changed(false);
            let files = match builder.generate(&schemas) {
                Ok(f) => f,
                Err(Error::Schema(d)) => {
                    eprint!("{}", d.render());
                    eprintln!("error: {} problem(s) found", d.len());
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if check {
                let mut stale = 0;
                for f in &files {
                    let path = out.join(&f.file_name);
                    if std::fs::read_to_string(&path).ok().as_deref() != Some(f.code.as_str()) {
                        eprintln!("{} is out of date", path.display());
                        stale += 1;
                    }
                }
                if stale > 0 {
                    eprintln!(
                        "error: {stale} file(s) differ; run `natsgen generate` without --check"
                    );
                    return ExitCode::FAILURE;
                }
                println!("ok: {} file(s) up to date", files.len());
                return ExitCode::SUCCESS;
            }
            if let Err(e) = std::fs::create_dir_all(&out) {
                eprintln!("error: cannot create {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            for f in &files {
                let path = out.join(&f.file_name);
                match write_if_changed(&path, &f.code) {
                    Ok(true) => println!("wrote {}", path.display()),
                    Ok(false) => println!("unchanged {}", path.display()),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}
