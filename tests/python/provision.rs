//! The Python interpreter the Python tests run (included by them with `#[path]`).
//!
//! `NATSGEN_PYTHON` names it when set (`.ci/run` prepares a venv with [`PACKAGES`]); it must then
//! have the modules a test needs, or the test fails saying how to install them. Otherwise the tests
//! make a venv of their own in the user's cache (`python3 -m venv`, `pip install` of
//! [`PACKAGES`]).

#![allow(dead_code)] // each test uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned packages the Python tests use; `.ci/run` installs the same.
pub const PACKAGES: &[&str] = &["nats-py==2.16.0", "pydantic==2.13.4", "mypy==2.4.1"];

fn has_modules(python: &Path, modules: &[&str]) -> bool {
    Command::new(python)
        .arg("-c")
        .arg(format!("import {}", modules.join(", ")))
        .status()
        .is_ok_and(|s| s.success())
}

/// A Python that can import every module in `modules` (`nats`, `pydantic`, `mypy`).
pub fn python_with(modules: &[&str]) -> PathBuf {
    if let Some(python) = std::env::var_os("NATSGEN_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            has_modules(&python, modules),
            "NATSGEN_PYTHON={} cannot import {}; install them with `{} -m pip install {}` (as \
             .ci/run does), or unset NATSGEN_PYTHON to let the tests make a venv of their own",
            python.display(),
            modules.join(", "),
            python.display(),
            PACKAGES.join(" ")
        );
        return python;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let venv = cache.join("natsgen").join("py-tests");
    let python = venv.join("bin").join("python");
    if !has_modules(&python, modules) {
        let status = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("run python3 -m venv");
        assert!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES)
            .status()
            .expect("run pip");
        assert!(
            status.success(),
            "pip install {} failed",
            PACKAGES.join(" ")
        );
    }
    python
}

/// The `natsgen` Python runtime's source folder, for `PYTHONPATH` and `MYPYPATH`.
pub fn runtime_source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/src")
}
