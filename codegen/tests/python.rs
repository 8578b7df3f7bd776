//! Generated Python: every valid schema fixture (and `schemas/ecommerce.yaml`) generates modules
//! that pass `mypy --strict` together with the `natsgen` Python runtime (`python/`), import (so
//! pydantic accepts every model), and map JSON as docs/PROTOCOL.md says (`tests/python/mapping.py`
//! on the `everything` fixture).
//!
//! Python comes from `NATSGEN_PYTHON` (`.ci/run` installs nats-py, pydantic and mypy into it),
//! else from a venv the test makes in the user's cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/python/provision.rs"]
mod provision;

fn schemas() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut schemas: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/valid"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    schemas.sort();
    schemas.push(root.join("../schemas/ecommerce.yaml"));
    schemas
}

/// Generates each schema into `<dir>/gen_<stem>/` (`gen_<folder>_<stem>/` for a second file of
/// that name); returns the package names.
fn generate_all(dir: &Path) -> Vec<String> {
    let mut packages = Vec::new();
    for schema in schemas() {
        let loaded = natsgen_build::load(std::slice::from_ref(&schema));
        assert!(
            loaded.diagnostics.is_empty(),
            "{}: {}",
            schema.display(),
            loaded.diagnostics.render()
        );
        let model = loaded.model.unwrap();
        let stem = schema.file_stem().unwrap().to_string_lossy();
        let mut package = format!("gen_{stem}");
        if packages.contains(&package) {
            let folder = schema
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy();
            package = format!("gen_{folder}_{stem}");
        }
        let out = dir.join(&package);
        std::fs::create_dir_all(&out).unwrap();
        for file in natsgen_build::python::generate(&model) {
            std::fs::write(out.join(&file.file_name), &file.code).unwrap();
        }
        packages.push(package);
    }
    packages
}

/// Runs Python in `dir` with the runtime and the generated packages (in `dir/src`) on `variable`:
/// `PYTHONPATH`, or `MYPYPATH` for mypy (which also searches the interpreter's `sys.path`, so it
/// would find the packages twice with both).
fn run(python: &Path, dir: &Path, variable: &str, args: &[&str]) -> (bool, String) {
    let runtime = provision::runtime_source();
    let path = std::env::join_paths([runtime.as_path(), &dir.join("src")]).unwrap();
    let output = Command::new(python)
        .args(args)
        .current_dir(dir)
        .env_remove("PYTHONPATH")
        .env_remove("MYPYPATH")
        .env(variable, &path)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn generated_python_passes_mypy_strict_imports_and_maps_json() {
    let python = provision::python_with(&["nats", "pydantic", "mypy"]);
    let dir = tempfile::tempdir().unwrap();
    let packages = generate_all(&dir.path().join("src"));

    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mypy-cache");
    let cache = cache.to_string_lossy();
    let mut args = vec!["-m", "mypy", "--strict", "--cache-dir", &cache];
    for package in &packages {
        args.extend(["-p", package.as_str()]);
    }
    let (ok, output) = run(&python, dir.path(), "MYPYPATH", &args);
    assert!(ok, "mypy --strict fails on the generated Python:\n{output}");

    let imports = format!(
        "import importlib, pkgutil\n\
         for package in {packages:?}:\n    \
             top = importlib.import_module(package)\n    \
             for module in pkgutil.iter_modules(top.__path__):\n        \
                 importlib.import_module(package + '.' + module.name)\n\
         print('imported')"
    );
    let (ok, output) = run(&python, dir.path(), "PYTHONPATH", &["-c", &imports]);
    assert!(
        ok && output.contains("imported"),
        "the generated Python does not import:\n{output}"
    );

    let mapping = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/mapping.py");
    let (ok, output) = run(
        &python,
        dir.path(),
        "PYTHONPATH",
        &[mapping.to_str().unwrap()],
    );
    println!("{output}");
    assert!(
        ok && output.contains("passed, 0 failed"),
        "the generated Python maps JSON differently from docs/PROTOCOL.md:\n{output}"
    );
}

#[test]
fn generated_python_is_deterministic_and_snapshotted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema = root.join("../schemas/ecommerce.yaml");
    let model = natsgen_build::load(std::slice::from_ref(&schema))
        .model
        .unwrap();
    let first = natsgen_build::python::generate(&model);
    assert_eq!(first, natsgen_build::python::generate(&model));
    let names: Vec<&str> = first.iter().map(|f| f.file_name.as_str()).collect();
    assert_eq!(names, ["ecommerce.py", "__init__.py"]);
    insta::assert_snapshot!("python_ecommerce", first[0].code);
}
