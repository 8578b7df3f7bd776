//! A worker process for the crash test in `tests/timers.rs`: serves `timers.crash_ticker` until it
//! is stopped (SIGINT/SIGTERM) or killed.
//!
//! Usage: `tick_worker <nats url>`.
//!
//! Every run of `nightly` publishes (core NATS) `ticks_test.started` with `<tick id> <attempt>` as
//! the body; a first attempt then runs for ten minutes, a later one succeeds at once.

use std::time::Duration;

use natsgen::{Context, Host, ServiceError};
use natsgen_tests::timers::{CrashTicker, CrashTickerServer};

struct Worker;

impl CrashTicker for Worker {
    async fn nightly(&self, ctx: &Context) -> Result<(), ServiceError> {
        let Some(connection) = ctx.connection() else {
            return Err(ServiceError::internal("the worker runs over NATS"));
        };
        let nats = connection.nats();
        let body = format!("{} {}", ctx.message_id().unwrap_or_default(), ctx.attempt());
        nats.publish("ticks_test.started", body.into()).await?;
        nats.flush().await?;
        if ctx.attempt() == 1 {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: tick_worker <nats url>")?;
    let nats = natsgen::connect(url.as_str()).await?;
    Host::new(nats)
        .serve(CrashTickerServer::new(Worker))
        .run()
        .await?;
    Ok(())
}
