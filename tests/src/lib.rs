//! End-to-end tests of natsgen over a real nats-server (see `tests/`), and the generated code of
//! every codegen fixture compiled as a user's crate would compile it.

pub mod ecommerce {
    natsgen::include_schema!("ecommerce");
}
pub mod everything {
    natsgen::include_schema!("everything");
}
pub mod common {
    natsgen::include_schema!("common");
}
pub mod r#match {
    natsgen::include_schema!("match");
}
pub mod adversarial {
    natsgen::include_schema!("adversarial");
}
pub mod e2e {
    natsgen::include_schema!("e2e");
}
pub mod jobs {
    natsgen::include_schema!("jobs");
}
pub mod disco {
    natsgen::include_schema!("disco");
}
pub mod flaky {
    natsgen::include_schema!("flaky");
}
pub mod bench {
    natsgen::include_schema!("bench");
}
pub mod hostile {
    natsgen::include_schema!("hostile");
}
pub mod faults {
    natsgen::include_schema!("faults");
}

pub mod benchkit;
pub mod chaos;
pub mod proxy;

/// The same generated code under `#![no_implicit_prelude]`: it must name everything by path.
#[no_implicit_prelude]
pub mod hygiene {
    pub mod everything {
        ::natsgen::include_schema!("everything");
    }
    pub mod common {
        ::natsgen::include_schema!("common");
    }
}
