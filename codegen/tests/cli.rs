//! The `natsgen` binary, run as a user runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)]
