//! Times `configure().generate` on the 1,000-method schema of the throughput bench's generation
//! case (`tests/benches/throughput.rs`, `big_schema`), in whatever profile it is built with:
//!
//! ```text
//! cargo run -p natsgen-build --release --example generation_time
//! cargo run -p natsgen-build --example generation_time   # as an unoptimised build script runs
//! ```
//!
//! Prints the median of five runs of the default (build-script) path after a warm-up, the time of
//! the front end (`natsgen_build::load`) alone, one run with each slower `Formatting`, and the size
//! of the output. `NATSGEN_GENERATION_DUMP=<file>` writes the generated code there.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

const METHODS: usize = 1_000;

/// The same schema as the bench's: 20 services; RPC methods with params and a result, some with
/// declared errors, and every fifth method async.
fn big_schema(methods: usize) -> String {
    const SERVICES: usize = 20;
    let mut yaml = String::from(
        "natsgen: 1\npackage: big\ntypes:\n  Item:\n    fields:\n      sku: string\n      \
         quantity: u32\n      price: f64\n      tags: list<string>\n      note: optional<string>\n\
         \x20 Status:\n    enum: [open, closed]\nevents:\n  big.changed:\n    fields: {sku: string}\n\
         services:\n",
    );
    let per_service = methods.div_ceil(SERVICES);
    let mut written = 0;
    for service in 0..SERVICES {
        let _ = writeln!(
            yaml,
            "  svc_{service:02}:\n    version: 1.0.0\n    methods:"
        );
        for _ in 0..per_service {
            if written == methods {
                break;
            }
            let name = format!("op_{written:04}");
            let _ = match written % 5 {
                0 => writeln!(
                    yaml,
                    "      {name}:\n        kind: async\n        params: {{sku: string, \
                     items: list<Item>}}"
                ),
                1 => writeln!(
                    yaml,
                    "      {name}:\n        params: {{sku: string}}\n        returns: Item\n        \
                     errors:\n          NotFound: {{fields: {{sku: string}}}}\n          Gone: {{}}"
                ),
                _ => writeln!(
                    yaml,
                    "      {name}:\n        description: Method {written} of service {service}.\n        \
                     params: {{sku: string, quantity: u32, status: Status}}\n        \
                     returns: list<Item>\n        timeout: 5s"
                ),
            };
            written += 1;
        }
    }
    yaml
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(t: Duration) -> String {
    format!("{:.1} ms", t.as_secs_f64() * 1e3)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("natsgen-generation-time-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("big.yaml");
    std::fs::write(&path, big_schema(METHODS))?;

    let builder = natsgen_build::configure();
    let files = builder.generate(&[&path])?;
    let bytes: usize = files.iter().map(|f| f.code.len()).sum();
    let lines: usize = files.iter().map(|f| f.code.lines().count()).sum();
    if let Some(out) = std::env::var_os("NATSGEN_GENERATION_DUMP") {
        let code: String = files.iter().map(|f| f.code.as_str()).collect();
        std::fs::write(out, code)?;
    }

    let mut runs = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        builder.generate(&[&path])?;
        runs.push(started.elapsed());
    }
    let mut loads = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let loaded = natsgen_build::load(std::slice::from_ref(&path));
        loads.push(started.elapsed());
        if loaded.model.is_none() {
            return Err("the schema does not validate".into());
        }
    }
    // The slower layouts, for comparison (the CLI's `Checked`, and `Prettyplease`).
    let mut others = Vec::new();
    for formatting in [
        natsgen_build::Formatting::Checked,
        natsgen_build::Formatting::Prettyplease,
    ] {
        let builder = natsgen_build::configure().formatting(formatting);
        let started = Instant::now();
        builder.generate(&[&path])?;
        others.push(format!("{formatting:?} {}", ms(started.elapsed())));
    }
    std::fs::remove_dir_all(&dir)?;

    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "{profile}: generate {METHODS} methods: {} (median of 5; runs {}); of which load {}",
        ms(median(runs.clone())),
        runs.iter().map(|t| ms(*t)).collect::<Vec<_>>().join(", "),
        ms(median(loads)),
    );
    println!("one run each with other formatting: {}", others.join(", "));
    println!(
        "output: {lines} lines, {bytes} bytes, {:.2} KB per method",
        bytes as f64 / METHODS as f64 / 1e3
    );
    Ok(())
}
