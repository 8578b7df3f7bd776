#![deny(warnings)]

pub mod ecommerce {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/ecommerce.rs"));
}
pub mod common {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/common.rs"));
}
pub mod everything {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/everything.rs"));
}
pub mod r#match {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/match.rs"));
}
pub mod adversarial {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/adversarial.rs"));
}

fn main() {}
