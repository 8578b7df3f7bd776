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
//! Bounded form (CI, about 1.5 min on 2 cores): `cargo test -p natsgen-tests --test faults`.
//! Full form (10,000 calls and events under 20 kills, 5 s outages, 20 s partitions; about 7 min
//! plus the release build):
//! `NATSGEN_FAULTS=full cargo test -p natsgen-tests --release --test faults -- --nocapture --test-threads 1`
//! (`NATSGEN_FAULTS_SEED=<n>` repeats the kill scenario's random choices; its table prints the
//! seed). Each scenario prints a table of its counts on stderr (`--nocapture` shows it; a failing
//! test shows it anyway).
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
