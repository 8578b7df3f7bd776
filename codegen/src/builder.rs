//! The `build.rs` entry points: [`compile`] and [`configure`] → [`Builder`].

use std::fmt;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostics;
use crate::format::{format, Formatting};
use crate::render::{render_package, Options};
use crate::validate::load;

/// Why code generation failed.
#[derive(thiserror::Error)]
pub enum Error {
    /// The schemas have problems; every one of them is listed.
    #[error("{}", .0.render())]
    Schema(Diagnostics),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No output directory: neither set on the builder nor `OUT_DIR` (not running under cargo).
    #[error("no output directory: set one with `Builder::out_dir`, or run from a build script where cargo sets OUT_DIR")]
    NoOutDir,
    /// The generator produced code that does not parse — a bug in natsgen-build.
    #[error("internal error in natsgen-build, please report it: {0}")]
    Render(String),
}

// `fn main() -> Result<(), Box<dyn Error>>` in build.rs prints errors with Debug: make that the
// readable rendering too.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One generated Rust file: `<package>.rs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// The package name; the file is `<package>.rs`.
    pub package: String,
    pub file_name: String,
    pub code: String,
}

/// Generates code for the schema at `path` (and everything it imports) into `OUT_DIR`, with the
/// default settings. Call it from `build.rs`.
pub fn compile(path: impl AsRef<Path>) -> Result<(), Error> {
    configure().compile(&[path.as_ref()])
}

/// A [`Builder`] with the default settings: client and server, runtime crate `::natsgen`.
pub fn configure() -> Builder {
    Builder::default()
}

/// Code generation settings, in the manner of `tonic_build::configure()`.
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     natsgen_build::configure()
///         .build_server(false)
///         .derive("::core::hash::Hash")
///         .compile(&["../schemas/ecommerce.yaml"])?;
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    options: Options,
    cargo_output: bool,
    formatting: Formatting,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            out_dir: None,
            options: Options::default(),
            cargo_output: true,
            formatting: Formatting::Direct,
        }
    }
}

impl Builder {
    /// Where to write `<package>.rs` files; default `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to generate clients (`<Service>Client`, `<Service>Api`); default true.
    pub fn build_client(mut self, on: bool) -> Self {
        self.options.client = on;
        self
    }

    /// Whether to generate server traits and bindings (`<Service>`, `<Service>Server`); default true.
    pub fn build_server(mut self, on: bool) -> Self {
        self.options.server = on;
        self
    }

    /// An extra derive for every schema type, as a path: `"::core::hash::Hash"`, `"Eq"`.
    pub fn derive(mut self, path: impl Into<String>) -> Self {
        self.options.extra_derives.push(path.into());
        self
    }

    /// An extra attribute for every schema type, e.g. `#[non_exhaustive]`.
    pub fn type_attribute(mut self, attribute: impl Into<String>) -> Self {
        self.options.type_attributes.push(attribute.into());
        self
    }

    /// The path generated code uses for the runtime crate; default `::natsgen`. Set it when the
    /// dependency is renamed in `Cargo.toml`.
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.options.runtime_path = path.into();
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines; default true. The CLI turns it off.
    pub fn emit_rerun_if_changed(mut self, on: bool) -> Self {
        self.cargo_output = on;
        self
    }

    /// How the output is checked and laid out; default [`Formatting::Direct`]: as the templates
    /// write it, which is what a build script wants. [`Formatting::Checked`] also parses it with
    /// `syn`, [`Formatting::Prettyplease`] re-prints it with `prettyplease`; both cost ten times
    /// the rest of generation.
    pub fn formatting(mut self, formatting: Formatting) -> Self {
        self.formatting = formatting;
        self
    }

    /// Validates the schemas and returns the generated files, writing nothing.
    pub fn generate<P: AsRef<Path>>(&self, paths: &[P]) -> Result<Vec<GeneratedFile>, Error> {
        self.generate_inner(paths).1
    }

    fn generate_inner<P: AsRef<Path>>(
        &self,
        paths: &[P],
    ) -> (Vec<PathBuf>, Result<Vec<GeneratedFile>, Error>) {
        let roots: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_path_buf()).collect();
        let loaded = load(&roots);
        let Some(model) = loaded.model else {
            return (loaded.files, Err(Error::Schema(loaded.diagnostics)));
        };
        let mut out = Vec::new();
        for package in &model.packages {
            let code = match render_package(&model, package, &self.options) {
                Ok(code) => code,
                Err(e) => return (loaded.files, Err(Error::Render(e.to_string()))),
            };
            let source = package
                .path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let code = match format(&code, &source, self.formatting) {
                Ok(code) => code,
                Err(e) => return (loaded.files, Err(Error::Render(e))),
            };
            out.push(GeneratedFile {
                package: package.name.clone(),
                file_name: format!("{}.rs", package.name),
                code,
            });
        }
        (loaded.files, Ok(out))
    }

    /// Generates and writes `<package>.rs` files into the output directory, each only when its
    /// content changed, and prints `cargo:rerun-if-changed` for every schema read.
    pub fn compile<P: AsRef<Path>>(&self, paths: &[P]) -> Result<(), Error> {
        let (files, result) = self.generate_inner(paths);
        if self.cargo_output {
            // Printed even on failure, so fixing the schema re-runs the build script.
            for f in &files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
            for p in paths {
                println!("cargo:rerun-if-changed={}", p.as_ref().display());
            }
        }
        let generated = result?;
        let dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        for g in &generated {
            write_if_changed(&dir.join(&g.file_name), &g.code)?;
        }
        Ok(())
    }
}

/// Writes `content` to `path` unless the file already holds exactly that.
pub fn write_if_changed(path: &Path, content: &str) -> Result<bool, Error> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(false);
    }
    std::fs::write(path, content).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(true)
}
