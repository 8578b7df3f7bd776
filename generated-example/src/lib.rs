//! The async-patterns walkthrough, typed: every service of `schemas/ecommerce.yaml` implemented
//! ([`services`]) and every section of the walkthrough run against them ([`walkthrough`]).
//!
//! `build.rs` generates the [`ecommerce`] module from the schema; `src/main.rs` is the command
//! line (`cargo run -p generated-example -- --help`).

use std::sync::atomic::{AtomicBool, Ordering};

/// `println!`, except that a stdout nobody reads (a closed pipe, `| head`) is ignored instead of
/// panicking: a service must not fail because of its console. [`set_quiet`] turns it off.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        if !$crate::is_quiet() {
            use ::std::io::Write as _;
            let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
        }
    }};
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences [`say!`] in this process (the tests do: they check what happened, not what was
/// printed, and `say!` bypasses the test harness's output capture).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

#[doc(hidden)]
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The code `natsgen-build` generated from `schemas/ecommerce.yaml`.
pub mod ecommerce {
    natsgen::include_schema!("ecommerce");
}

pub mod services;
pub mod walkthrough;
