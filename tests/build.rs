//! Generates code for the codegen fixtures and every schema in `schemas/`, so this crate — a user
//! crate that depends only on `natsgen` — proves the generated code compiles cleanly.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut schemas: Vec<PathBuf> = vec![
        "../codegen/tests/fixtures/valid/ecommerce.yaml".into(),
        "../codegen/tests/fixtures/valid/everything.yaml".into(),
        "../codegen/tests/fixtures/valid/keywords.yaml".into(),
        "../codegen/tests/fixtures/valid/adversarial.yaml".into(),
    ];
    let mut own: Vec<PathBuf> = std::fs::read_dir("schemas")?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    own.sort();
    schemas.extend(own);
    // A new file in `schemas/` must re-run this script too.
    println!("cargo:rerun-if-changed=schemas");
    natsgen_build::configure().compile(&schemas)?;
    Ok(())
}
