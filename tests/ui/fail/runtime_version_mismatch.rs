// Code generated for another runtime version than the `natsgen` in use (written by `ui.rs` from
// the generated `common.rs`, as if a future natsgen-build had made it).

pub mod common {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/mismatch/common.rs"));
}

fn main() {}
