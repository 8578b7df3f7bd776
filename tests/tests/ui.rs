//! Compile tests of generated code in a user crate: what must compile, and what must fail with a
//! readable message.

use std::path::PathBuf;

#[test]
fn ui() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Inside the crate (git-ignored) so trybuild shows its paths as `$DIR/...` on every machine.
    let out = manifest.join("ui/generated");
    let fixtures = manifest.join("../codegen/tests/fixtures/valid");
    natsgen_build::configure()
        .out_dir(&out)
        .emit_rerun_if_changed(false)
        .compile(&[
            fixtures.join("ecommerce.yaml"),
            fixtures.join("everything.yaml"),
            fixtures.join("keywords.yaml"),
            fixtures.join("adversarial.yaml"),
        ])
        .unwrap_or_else(|e| panic!("fixtures generate: {e}"));
    // Code as a natsgen-build of another major version would write it, for
    // `fail/runtime_version_mismatch.rs`.
    let common = std::fs::read_to_string(out.join("common.rs"))
        .unwrap_or_else(|e| panic!("common.rs generated: {e}"));
    let marker = "__rt::REQUIRES_NATSGEN_0_1;";
    assert!(common.contains(marker), "the generated code names {marker}");
    std::fs::create_dir_all(out.join("mismatch")).unwrap_or_else(|e| panic!("mismatch dir: {e}"));
    std::fs::write(
        out.join("mismatch/common.rs"),
        common.replace(marker, "__rt::REQUIRES_NATSGEN_99;"),
    )
    .unwrap_or_else(|e| panic!("write mismatch/common.rs: {e}"));
    // The UI cases `include!` the generated files from here (read by `env!` at their compile time).
    std::env::set_var("NATSGEN_UI_DIR", &out);
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
