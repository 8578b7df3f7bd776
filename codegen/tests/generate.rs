//! Snapshots of the generated code for every schema in `tests/fixtures/valid`, and the properties
//! every generated file must have.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use natsgen_build::{configure, Formatting, GeneratedFile};

fn valid_fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected the valid fixtures in {}",
        dir.display()
    );
    files
}

fn generate(path: &Path) -> Vec<GeneratedFile> {
    match configure().generate(&[path]) {
        Ok(files) => files,
        Err(e) => panic!("{} should generate:\n{e}", path.display()),
    }
}

#[test]
fn generated_code_snapshots() {
    for path in valid_fixtures() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file stem")
            .to_string();
        for file in generate(&path) {
            insta::assert_snapshot!(format!("{stem}__{}", file.package), file.code);
        }
    }
}

#[test]
fn output_is_deterministic_and_marked_generated() {
    for path in valid_fixtures() {
        let first = generate(&path);
        let second = generate(&path);
        assert_eq!(
            first,
            second,
            "{} generated different bytes twice",
            path.display()
        );
        for file in &first {
            assert!(
                file.code.starts_with("// @generated"),
                "{} lacks the @generated line",
                file.file_name
            );
            assert!(
                !file.code.contains("unsafe"),
                "{} contains unsafe",
                file.file_name
            );
            assert!(
                !file.code.contains("#!["),
                "{} has an inner attribute, so it cannot be include!d",
                file.file_name
            );
            assert!(
                !file.code.contains(".unwrap()") && !file.code.contains(".expect("),
                "{} can panic",
                file.file_name
            );
        }
    }
}

#[test]
fn declaration_order_is_kept() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/everything.yaml");
    let files = generate(&path);
    let code = &files
        .iter()
        .find(|f| f.package == "everything")
        .expect("everything.rs")
        .code;
    let positions: Vec<usize> = [
        "pub struct Scalars",
        "pub struct Containers",
        "pub struct Tree",
        "pub struct Ping",
        "pub struct Pong",
        "pub enum Color",
        "pub struct Wire",
    ]
    .iter()
    .map(|item| code.find(item).unwrap_or_else(|| panic!("{item} missing")))
    .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "types out of declaration order: {positions:?}"
    );
    let fields: Vec<usize> = [
        "pub flag:",
        "pub text:",
        "pub blob:",
        "pub small:",
        "pub big:",
        "pub anything:",
    ]
    .iter()
    .map(|f| code.find(f).unwrap_or_else(|| panic!("{f} missing")))
    .collect();
    assert!(
        fields.windows(2).all(|w| w[0] < w[1]),
        "fields out of declaration order"
    );
}

#[test]
fn imports_generate_each_package_once() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/everything.yaml");
    let files = generate(&path);
    let names: Vec<&str> = files.iter().map(|f| f.package.as_str()).collect();
    assert_eq!(names, ["common", "everything"]);
    let code = &files[1].code;
    assert!(
        code.contains("super::common::Money"),
        "imported types are reached through super::<package>"
    );
}

#[test]
fn only_cycle_edges_are_boxed() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/everything.yaml");
    let files = generate(&path);
    let code = &files[1].code;
    assert!(
        code.contains("pub parent: __rt::Option<__rt::Box<Tree>>"),
        "optional self edge boxed"
    );
    assert!(
        code.contains("pub children: __rt::Vec<Tree>"),
        "list edge not boxed"
    );
    assert!(
        code.contains("pub back: __rt::Box<Ping>"),
        "direct edge on a cycle boxed"
    );
    assert!(
        code.contains("pub price: super::common::Money"),
        "edge off any cycle not boxed"
    );
}

#[test]
fn descriptions_cannot_escape_doc_comments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("evil.yaml");
    std::fs::write(
        &schema,
        "natsgen: 1\ntypes:\n  A:\n    description: \"*/ } fn injected() {} /* \\\" ] #[doc = \\\"x\\\"]\\n\\r\\u0000 end\"\n    fields: {a: string}\n",
    )
    .expect("write schema");
    let files = generate(&schema);
    let code = &files[0].code;
    assert!(
        !code.contains("\nfn injected"),
        "a description broke out of its doc comment:\n{code}"
    );
    let parsed = syn::parse_file(code).expect("generated code parses");
    let fns = parsed
        .items
        .iter()
        .filter(|i| matches!(i, syn::Item::Fn(_)))
        .count();
    assert_eq!(fns, 0, "no free functions may appear from a description");
}

#[test]
fn write_if_changed_leaves_unchanged_files_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = valid_fixtures()
        .into_iter()
        .find(|p| p.ends_with("ecommerce.yaml"))
        .expect("ecommerce fixture");
    let builder = configure().out_dir(dir.path()).emit_rerun_if_changed(false);
    builder.compile(&[&path]).expect("first compile");
    let out = dir.path().join("ecommerce.rs");
    let before = std::fs::metadata(&out)
        .expect("written")
        .modified()
        .expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    builder.compile(&[&path]).expect("second compile");
    let after = std::fs::metadata(&out)
        .expect("still there")
        .modified()
        .expect("mtime");
    assert_eq!(before, after, "an unchanged file was rewritten");
    std::fs::write(&out, "stale").expect("overwrite");
    builder.compile(&[&path]).expect("third compile");
    assert!(std::fs::read_to_string(&out)
        .expect("read")
        .starts_with("// @generated"));
}

#[test]
fn builder_options_shape_the_output() {
    let path = valid_fixtures()
        .into_iter()
        .find(|p| p.ends_with("ecommerce.yaml"))
        .expect("ecommerce fixture");
    let files = configure()
        .build_client(false)
        .derive("::core::default::Default")
        .generate(&[&path])
        .expect("generate");
    let code = &files[0].code;
    assert!(!code.contains("pub struct OrderServiceClient"));
    assert!(code.contains("pub trait OrderService:"));
    assert!(code.contains("::core::default::Default"));
    assert!(code.contains("use ::natsgen::codegen as __rt;"));
    let files = configure()
        .build_server(false)
        .runtime_path("::renamed")
        .generate(&[&path])
        .expect("generate");
    let code = &files[0].code;
    assert!(!code.contains("pub trait OrderService:"));
    assert!(code.contains("pub struct OrderServiceClient"));
    assert!(code.contains("use ::renamed::codegen as __rt;") && !code.contains("::natsgen::"));
}

/// Parses generated code with `syn`, showing the code around the first error.
fn assert_parses(code: &str, what: &str) -> syn::File {
    syn::parse_file(code).unwrap_or_else(|e| {
        let line = e.span().start().line;
        let context: String = code
            .lines()
            .enumerate()
            .skip(line.saturating_sub(4))
            .take(7)
            .map(|(i, l)| format!("{:>5} | {l}\n", i + 1))
            .collect();
        panic!("{what} does not parse: {e} (line {line})\n{context}")
    })
}

/// The build-script path writes the templates' output as it is; it must parse, and mean exactly
/// what `prettyplease` would print from it (so the two layouts differ in whitespace only).
#[test]
fn direct_output_parses_and_matches_prettyplease() {
    for path in valid_fixtures() {
        let direct = generate(&path);
        let pretty = configure()
            .formatting(Formatting::Prettyplease)
            .generate(&[&path])
            .expect("prettyplease generates");
        let checked = configure()
            .formatting(Formatting::Checked)
            .generate(&[&path])
            .expect("checked generates");
        assert_eq!(direct, checked, "Checked only checks");
        for (d, p) in direct.iter().zip(&pretty) {
            let what = format!("{} from {}", d.file_name, path.display());
            let parsed = assert_parses(&d.code, &what);
            assert_eq!(
                prettyplease::unparse(&parsed),
                prettyplease::unparse(&assert_parses(&p.code, &what)),
                "{what}: the direct and prettyplease outputs differ in more than layout"
            );
        }
    }
}

/// The layout the templates promise: readable without rustfmt.
#[test]
fn direct_output_is_laid_out() {
    for path in valid_fixtures() {
        for file in generate(&path) {
            let code = &file.code;
            assert!(
                code.ends_with("}\n"),
                "{}: one newline at the end",
                file.file_name
            );
            assert!(
                !code.contains("\n\n\n"),
                "{}: two blank lines in a row",
                file.file_name
            );
            assert!(
                !code.contains("{\n\n"),
                "{}: a blank line after an opening brace",
                file.file_name
            );
            for (number, line) in code.lines().enumerate() {
                let at = || format!("{}:{}: {line:?}", file.file_name, number + 1);
                assert_eq!(line, line.trim_end(), "trailing whitespace at {}", at());
                let indent = line.len() - line.trim_start().len();
                assert!(
                    indent % 4 == 0 && !line.starts_with('\t'),
                    "indentation at {}",
                    at()
                );
            }
            // Items at the top level are separated by a blank line.
            let lines: Vec<&str> = code.lines().collect();
            for pair in lines.windows(2) {
                if pair[0] == "}" {
                    assert!(
                        pair[1].is_empty(),
                        "{}: no blank line after {:?}",
                        file.file_name,
                        pair
                    );
                }
            }
        }
    }
}

/// A renamed field of a declared error: the `#[serde(rename)]` belongs on the private details
/// struct, never on the public enum's variant (no derive there to own the attribute).
#[test]
fn error_variant_fields_carry_no_serde_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("renamed.yaml");
    std::fs::write(
        &schema,
        "natsgen: 1\nservices:\n  svc:\n    methods:\n      ab:\n        errors:\n          Gone:\n            fields:\n              \"_a\": timestamp\n",
    )
    .expect("write schema");
    let code = &generate(&schema)[0].code;
    let start = code.find("pub enum AbError").expect("error enum");
    let end = start + code[start..].find("\n}\n").expect("end of enum");
    assert!(
        !code[start..end].contains("#[serde"),
        "serde attribute on an error variant:\n{}",
        &code[start..end]
    );
    assert!(
        code.contains("#[serde(rename = \"_a\")]\n        pub a: __rt::Timestamp,"),
        "the details struct renames the field:\n{code}"
    );
}
