//! Generates code for the codegen fixtures and the end-to-end test schema, so this crate — a
//! user crate that depends only on `natsgen` — proves the generated code compiles cleanly.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    natsgen_build::configure().compile(&[
        "../codegen/tests/fixtures/valid/ecommerce.yaml",
        "../codegen/tests/fixtures/valid/everything.yaml",
        "../codegen/tests/fixtures/valid/keywords.yaml",
        "schemas/e2e.yaml",
    ])?;
    Ok(())
}
