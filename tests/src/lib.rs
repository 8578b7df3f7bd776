//! End-to-end tests of natsgen over a real nats-server (see `tests/`), and the generated code of
//! every codegen fixture compiled as a user's crate would compile it: with `missing_docs` denied
//! and clippy's pedantic lints on (the workspace's clippy run denies every warning).

/// Generated from the `ecommerce` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod ecommerce {
    natsgen::include_schema!("ecommerce");
}
/// Generated from the `everything` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod everything {
    natsgen::include_schema!("everything");
}
/// Generated from the `common` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod common {
    natsgen::include_schema!("common");
}
/// Generated from the `match` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod r#match {
    natsgen::include_schema!("match");
}
/// Generated from the `adversarial` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod adversarial {
    natsgen::include_schema!("adversarial");
}
/// Generated from the `e2e` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod e2e {
    natsgen::include_schema!("e2e");
}
/// Generated from the `jobs` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod jobs {
    natsgen::include_schema!("jobs");
}
/// Generated from the `disco` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod disco {
    natsgen::include_schema!("disco");
}
/// Generated from the `flaky` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod flaky {
    natsgen::include_schema!("flaky");
}
/// Generated from the `bench` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod bench {
    natsgen::include_schema!("bench");
}
/// Generated from the `hostile` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod hostile {
    natsgen::include_schema!("hostile");
}
/// Generated from the `store` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod store {
    natsgen::include_schema!("store");
}
/// Generated from the `faults` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod faults {
    natsgen::include_schema!("faults");
}
/// Generated from the `timers` schema.
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod timers {
    natsgen::include_schema!("timers");
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
pub mod seams {
    natsgen::include_schema!("seams");

    /// `back` and `watcher` as the middleware and observability tests serve them: `note` emits
    /// `seams.noted` with the note's text, and the watcher passes each event's text on.
    pub mod services {
        use natsgen::{Context, ServiceError};
        use tokio::sync::mpsc;

        use super::{Back, Events, SeamsNoted, Watcher};

        /// `back`: each note becomes a `seams.noted` event.
        #[derive(Debug)]
        pub struct Noting;

        impl Back for Noting {
            async fn note(&self, ctx: &Context, text: String) -> Result<(), ServiceError> {
                ctx.emit::<Events>()
                    .seams_noted(&SeamsNoted {
                        text,
                        tenant: String::new(),
                    })
                    .context(ctx)
                    .await
                    .map_err(|error| ServiceError::internal(error.to_string()))
            }
        }

        /// `watcher`: sends the text of each `seams.noted` event it handles.
        #[derive(Debug)]
        pub struct Forwarding {
            pub seen: mpsc::UnboundedSender<String>,
        }

        impl Watcher for Forwarding {
            async fn seen(&self, _ctx: &Context, event: SeamsNoted) -> Result<(), ServiceError> {
                let _ = self.seen.send(event.text);
                Ok(())
            }
        }
    }
}
/// Generated from the `polyglot` schema (served by Python in `tests/python_service.rs`).
#[deny(missing_docs)]
#[warn(clippy::pedantic)]
pub mod polyglot {
    natsgen::include_schema!("polyglot");
}
