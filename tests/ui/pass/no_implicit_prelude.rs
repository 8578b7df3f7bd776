#![no_implicit_prelude]
#![deny(warnings)]

pub mod common {
    ::core::include!(::core::concat!(::core::env!("NATSGEN_UI_DIR"), "/common.rs"));
}
pub mod everything {
    ::core::include!(::core::concat!(::core::env!("NATSGEN_UI_DIR"), "/everything.rs"));
}
pub mod r#match {
    ::core::include!(::core::concat!(::core::env!("NATSGEN_UI_DIR"), "/match.rs"));
}

fn main() {}
