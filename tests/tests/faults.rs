//! The fault suite: breaks the system on purpose over real nats-server processes on loopback,
//! counts what happened to every call and event, prints the counts and asserts that nothing was
//! lost, nothing hung and nothing leaked.
//!
//! | scenario | file | what it proves |
//! |---|---|---|
//! | hostile corpus | `faults/hostile.rs` | whatever a publisher sends to RPC, async, event and `$SRV` subjects gets its error reply or its dead letter; no panic, no endless redelivery, no lost connection; the service keeps serving; memory stays bounded |
//! | kill -9 under load | `faults/kill.rs` | with worker processes SIGKILLed and restarted under load, every accepted async call and every (event, handler) pair is completed or dead-lettered, consumers drain, duplicates stay within the work in flight at the kills |
//! | server restart | `faults/restart.rs` | with nats-server stopped (SIGTERM, then SIGKILL) and restarted under load, every call or publish that returned Ok is processed or dead-lettered, processing resumes by itself, every call and publish returns within its timeout |
//! | partition | `faults/partition.rs` | through a TCP proxy cut both ways or one way for longer than the ping interval and the ack wait, calls and publishes fail within their timeouts, pull loops resume after it heals, nothing accepted is lost |
//!
//! Bounded form (CI): `cargo test -p natsgen-tests --test faults`. Full form:
//! `NATSGEN_FAULTS=full cargo test -p natsgen-tests --release --test faults -- --nocapture`
//! (`NATSGEN_FAULTS_SEED=<n>` repeats a run's random choices; each scenario prints its seed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "faults/common.rs"]
mod common;
#[path = "faults/hostile.rs"]
mod hostile;
#[path = "faults/kill.rs"]
mod kill;
#[path = "faults/ledger.rs"]
mod ledger;
#[path = "faults/load.rs"]
mod load;
#[path = "faults/partition.rs"]
mod partition;
#[path = "faults/restart.rs"]
mod restart;
