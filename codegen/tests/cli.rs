//! The `natsgen` binary, run as a user runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;

fn natsgen() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("natsgen"));
    cmd.env_remove("NO_COLOR");
    cmd
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn ecommerce() -> PathBuf {
    repo().join("schemas/ecommerce.yaml")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const SHOP: &str = "natsgen: 1
package: shop
imports: [common.yaml]
services:
  orders:
    methods:
      get: {params: {id: string}, returns: common.Item}
";

const COMMON: &str = "natsgen: 1
package: common
types:
  Item: {fields: {sku: string}}
";

#[test]
fn version_names_the_crate_version() {
    let r = run(natsgen().arg("--version"));
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.trim(),
        format!("natsgen {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_command_has_an_example_and_the_exit_codes_in_its_help() {
    let r = run(natsgen().arg("--help"));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("Exit codes:"), "{}", r.stdout);
    let commands: Vec<String> = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    for expected in [
        "check",
        "generate",
        "docs",
        "asyncapi",
        "json-schema",
        "diff",
        "completions",
    ] {
        assert!(
            commands.iter().any(|c| c == expected),
            "{expected} missing from {commands:?}"
        );
    }
    for command in &commands {
        let r = run(natsgen().args([command.as_str(), "--help"]));
        assert_eq!(r.code, 0, "{command}");
        assert!(
            r.stdout.contains("Example") && r.stdout.contains(&format!("natsgen {command}")),
            "{command} --help has no example:\n{}",
            r.stdout
        );
        assert!(
            r.stdout.contains("2  wrong usage"),
            "{command}: {}",
            r.stdout
        );
    }
}

#[test]
fn wrong_usage_exits_2() {
    assert_eq!(run(natsgen().arg("frobnicate")).code, 2);
    assert_eq!(run(natsgen().args(["generate", "x.yaml"])).code, 2); // no --out
    let r = run(natsgen().arg("diff").arg(ecommerce()));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("give the old and the new schema"),
        "{}",
        r.stderr
    );
    let r = run(natsgen()
        .args(["diff", "--against", "HEAD"])
        .arg(ecommerce())
        .arg(ecommerce()));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("give only the new schema"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_exits_1_with_every_problem_and_no_colour_off_a_terminal() {
    let r = run(natsgen().arg("check").arg(ecommerce()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("ok: 1 file(s), 1 package(s), 10 service(s)"),
        "{}",
        r.stdout
    );
    let bad = repo().join("codegen/tests/fixtures/invalid/unknown_type.yaml");
    let r = run(natsgen().arg("check").arg(&bad));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("natsgen::unknown_type"), "{}", r.stderr);
    assert!(r.stderr.contains("error: "), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\x1b'),
        "colour off a terminal:\n{}",
        r.stderr
    );
}

/// Runs `natsgen check <bad schema>` with a terminal as its output (through `script`), and
/// returns what the terminal showed.
fn on_a_terminal(no_color: bool) -> String {
    let bad = repo().join("codegen/tests/fixtures/invalid/unknown_type.yaml");
    let command = format!(
        "{} check {}",
        assert_cmd::cargo::cargo_bin!("natsgen").display(),
        bad.display()
    );
    let mut script = StdCommand::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .env_remove("NO_COLOR");
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script
        .output()
        .expect("script (util-linux) runs a command on a terminal");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn diagnostics_are_coloured_on_a_terminal_unless_no_color_is_set() {
    let coloured = on_a_terminal(false);
    assert!(
        coloured.contains("\x1b["),
        "no colour on a terminal:\n{coloured}"
    );
    assert!(coloured.contains("unknown type"), "{coloured}");
    let plain = on_a_terminal(true);
    assert!(
        !plain.contains("\x1b["),
        "colour despite NO_COLOR:\n{plain}"
    );
    assert!(plain.contains("unknown type"), "{plain}");
}

#[test]
fn docs_writes_a_page_per_package_and_check_finds_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), SHOP).unwrap();
    std::fs::write(dir.path().join("common.yaml"), COMMON).unwrap();
    let out = dir.path().join("reference");
    let r = run(natsgen()
        .arg("docs")
        .arg(dir.path().join("shop.yaml"))
        .arg("--out")
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shop = std::fs::read_to_string(out.join("shop.md")).unwrap();
    assert!(shop.contains("#### `orders.get` (RPC)"), "{shop}");
    assert!(
        shop.contains("[`common.Item`](common.md#type-item)"),
        "{shop}"
    );
    assert!(out.join("common.md").exists());
    let check = |expect: i32| {
        let r = run(natsgen()
            .arg("docs")
            .arg(dir.path().join("shop.yaml"))
            .arg("--out")
            .arg(&out)
            .arg("--check"));
        assert_eq!(r.code, expect, "{}{}", r.stdout, r.stderr);
        r
    };
    check(0);
    std::fs::write(out.join("common.md"), "old").unwrap();
    let r = check(1);
    assert!(
        r.stderr.contains("common.md is out of date"),
        "{}",
        r.stderr
    );
}

#[test]
fn generate_lang_python_writes_a_module_per_package_and_an_init() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shop.yaml"), SHOP).unwrap();
    std::fs::write(dir.path().join("common.yaml"), COMMON).unwrap();
    let out = dir.path().join("gen");
    let generate = |extra: &[&str]| {
        run(natsgen()
            .args(["generate", "--lang", "python"])
            .arg(dir.path().join("shop.yaml"))
            .arg("--out")
            .arg(&out)
            .args(extra))
    };
    let r = generate(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shop = std::fs::read_to_string(out.join("shop.py")).unwrap();
    assert!(shop.starts_with("# @generated by natsgen"), "{shop}");
    assert!(
        shop.contains("from . import common as _pkg_common"),
        "{shop}"
    );
    assert!(out.join("common.py").exists() && out.join("__init__.py").exists());
    assert_eq!(generate(&["--check"]).code, 0);
    std::fs::write(out.join("shop.py"), "old").unwrap();
    assert_eq!(generate(&["--check"]).code, 1);
    let r = generate(&["--prettyplease"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("are for Rust"), "{}", r.stderr);
}

#[test]
fn the_kept_example_reference_passes_docs_check() {
    let r = run(natsgen()
        .arg("docs")
        .arg(ecommerce())
        .arg("--out")
        .arg(repo().join("docs/reference"))
        .arg("--check"));
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn asyncapi_prints_a_document() {
    let r = run(natsgen().arg("asyncapi").arg(ecommerce()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    assert_eq!(doc["info"]["title"], "ecommerce");
    let bad = repo().join("codegen/tests/fixtures/invalid/unknown_type.yaml");
    assert_eq!(run(natsgen().arg("asyncapi").arg(bad)).code, 1);
}

#[test]
fn json_schema_prints_the_kept_file() {
    let r = run(natsgen().arg("json-schema"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kept = std::fs::read_to_string(repo().join("schemas/natsgen.schema.json")).unwrap();
    assert_eq!(r.stdout, kept);
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _natsgen"),
        ("zsh", "#compdef natsgen"),
        ("fish", "complete -c natsgen"),
        ("powershell", "Register-ArgumentCompleter"),
        ("elvish", "edit:completion:arg-completer[natsgen]"),
    ] {
        let r = run(natsgen().args(["completions", shell]));
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains(marker), "{shell}:\n{}", r.stdout);
        assert!(r.stdout.contains("json-schema"), "{shell}");
    }
    assert_eq!(run(natsgen().args(["completions", "tcsh"])).code, 2);
}

fn two_versions(old: &str, new: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("old", old), ("new", new)] {
        std::fs::create_dir(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join("shop.yaml"), text).unwrap();
        std::fs::write(dir.path().join(name).join("common.yaml"), COMMON).unwrap();
    }
    let (o, n) = (
        dir.path().join("old/shop.yaml"),
        dir.path().join("new/shop.yaml"),
    );
    (dir, o, n)
}

#[test]
fn diff_exits_1_on_a_breaking_change_and_0_on_compatible_ones() {
    let removed = SHOP.replace(
        "      get: {params: {id: string}, returns: common.Item}\n",
        "      list: {}\n",
    );
    let (_dir, old, new) = two_versions(SHOP, &removed);
    let r = run(natsgen().arg("diff").arg(&old).arg(&new));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("breaking   orders.get: method removed"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("compatible orders.list: method added [method_added]"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("1 breaking, 1 compatible change(s)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains('\x1b'), "{}", r.stdout);

    let r = run(natsgen()
        .arg("diff")
        .arg(&old)
        .arg(&new)
        .args(["--format", "json"]));
    assert_eq!(r.code, 1);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["breaking"], true);
    assert_eq!(report["changes"][0]["rule"], "method_removed");
    assert_eq!(report["changes"][0]["path"], "orders.get");

    let added = SHOP.replace("    methods:\n", "    methods:\n      ping: {}\n");
    let (_dir, old, new) = two_versions(SHOP, &added);
    let r = run(natsgen().arg("diff").arg(&old).arg(&new));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("0 breaking, 1 compatible change(s)"),
        "{}",
        r.stdout
    );
}

#[test]
fn diff_of_a_broken_schema_exits_1_with_its_problems() {
    let (_dir, old, new) = two_versions(SHOP, "natsgen: 1\ntypes: {A: {fields: {x: Strng}}}\n");
    let r = run(natsgen().arg("diff").arg(&old).arg(&new));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("natsgen::unknown_type"), "{}", r.stderr);
}

fn git(dir: &Path, args: &[&str]) {
    let out = StdCommand::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn diff_against_a_git_revision_reads_the_schema_and_its_imports_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir(&schemas).unwrap();
    std::fs::write(schemas.join("shop.yaml"), SHOP).unwrap();
    std::fs::write(schemas.join("common.yaml"), COMMON).unwrap();
    git(dir.path(), &["init", "-q"]);
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "-qm", "v1"]);
    git(dir.path(), &["tag", "v1"]);

    let r = run(natsgen()
        .current_dir(&schemas)
        .args(["diff", "--against", "v1", "shop.yaml"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("no changes on the wire"), "{}", r.stdout);

    // A change in the imported file only.
    std::fs::write(
        schemas.join("common.yaml"),
        COMMON.replace("sku: string", "sku: u64"),
    )
    .unwrap();
    let r = run(natsgen()
        .arg("diff")
        .args(["--against", "v1"])
        .arg(schemas.join("shop.yaml")));
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("common.Item.sku: field type changed from string to u64"),
        "{}",
        r.stdout
    );

    let r = run(natsgen()
        .arg("diff")
        .args(["--against", "no-such-rev"])
        .arg(schemas.join("shop.yaml")));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no-such-rev"), "{}", r.stderr);
}
