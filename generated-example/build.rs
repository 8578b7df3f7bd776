fn main() -> Result<(), Box<dyn std::error::Error>> {
    natsgen_build::compile("../schemas/ecommerce.yaml")?;
    Ok(())
}
