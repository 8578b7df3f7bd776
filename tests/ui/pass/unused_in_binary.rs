//! A binary that includes generated code in private modules and uses a small part of it: no
//! `dead_code` or `unused_imports` warnings.
#![deny(warnings)]

mod ecommerce {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/ecommerce.rs"));
}
mod common {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/common.rs"));
}
mod everything {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/everything.rs"));
}
mod r#match {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/match.rs"));
}
mod adversarial {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/adversarial.rs"));
}

fn main() {
    println!("{}", ecommerce::OrderStatus::Paid);
}
