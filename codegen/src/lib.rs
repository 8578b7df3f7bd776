//! natsgen-build: compiles natsgen YAML service schemas into Rust.
//!
//! Use it from `build.rs`:
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     natsgen_build::compile("../schemas/ecommerce.yaml")?;
//!     Ok(())
//! }
//! ```
//!
//! and include the result with `pub mod ecommerce { natsgen::include_schema!("ecommerce"); }`.
//!
//! The pipeline runs one way: `parse` (YAML → nodes with positions) → `validate` (nodes → the
//! checked [`model`], every problem collected; [`load`] runs both) → `render` (askama templates →
//! formatted Rust source) → `format` (the header; on request a `syn` check or `prettyplease`, see
//! [`Formatting`]). [`Builder`] and the `natsgen` CLI only wire these together; [`docs`],
//! [`asyncapi`], [`json_schema`] and [`diff`] read the same model, and [`python`] writes typed
//! Python from it.

pub mod asyncapi;
mod builder;
mod contract;
pub mod diagnostic;
pub mod diff;
pub mod docs;
mod format;
pub mod json_schema;
pub mod model;
mod names;
mod parse;
pub mod python;
mod render;
mod validate;

pub use builder::{compile, configure, write_if_changed, Builder, Error, GeneratedFile};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use format::Formatting;
pub use validate::{load, Loaded};
