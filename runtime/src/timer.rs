//! Timers: work a service runs every period (`timers:` in the schema).
//!
//! # Ticks
//!
//! A timer's ticks are numbered by wall-clock time: tick `n` is due at `n × period` after the
//! Unix epoch, so instances agree on the numbers without talking to each other. A host runs one
//! loop per timer of each service it serves; the loop's first tick is the next multiple of the
//! period after the host started (a tick that was due while no instance ran is not made up
//! later). A loop that wakes up late (a suspended machine, a tick of its own that ran long)
//! goes on with the tick that is due now; the ones in between are skipped.
//!
//! # `scope: instance`
//!
//! The loop runs the handler itself, in one of the service's handler slots, and waits for it
//! before it waits for the next tick: ticks never overlap on an instance, and a tick that runs
//! longer than the period makes the instance skip the ticks that fell due meanwhile. A failed or
//! panicking tick is logged and counted; the next period is its retry.
//!
//! # `scope: service`
//!
//! At each tick every instance publishes the tick, with a JetStream publish, as an async call of
//! the service to itself: subject `<service>.async.<timer>`, `Nats-Msg-Id: <timer>:<tick>`,
//! body `{"tick":<tick>}`. The stream `ASYNC_<service>` stores the first of these publishes
//! and drops the others as duplicates, and the service's async consumer hands the stored one to
//! one instance, which runs it like an async call: retried with the timer's retry policy, then
//! dead-lettered, kept alive with in-progress acks, and redelivered to another instance when its
//! instance dies mid-tick. A tick that arrives while the same timer's previous tick still runs on
//! the receiving instance is acked without running (outcome `skipped`).
//!
//! The duplicate window of the stream (2 minutes) must cover how far apart the instances'
//! publishes of one tick are: their clocks may disagree by less than that (NTP keeps them within
//! milliseconds). The period itself may be longer or shorter than the window.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::header::{HeaderValue, NATS_MESSAGE_ID};
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::connection::Backend;
use crate::headers::CALL_ID_NAME;
use crate::host::{run_handler, ServiceRuntime};
use crate::service::{DeliveryMode, EndpointDescriptor, EndpointKind};
use crate::Context;

/// How long a tick's publish waits for its PubAck.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts one loop per timer of `runtime`'s service; each stops when its sender is used or
/// dropped. `guard` is held by every loop (the host waits until all are dropped).
pub(crate) fn serve(
    runtime: &Arc<ServiceRuntime>,
    guard: &mpsc::Sender<()>,
) -> Vec<(oneshot::Sender<()>, JoinHandle<()>)> {
    let mut loops = Vec::new();
    for (index, endpoint) in runtime.descriptor.endpoints.iter().enumerate() {
        if endpoint.kind != EndpointKind::Timer {
            continue;
        }
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(tick_loop(
            Arc::clone(runtime),
            index,
            endpoint,
            stopped,
            guard.clone(),
        ));
        loops.push((stop, task));
    }
    loops
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The tick whose time has come last: `now / period`.
fn current_tick(now_ms: u64, every_ms: u64) -> u64 {
    now_ms / every_ms.max(1)
}

/// How long until tick `tick` is due, at most one period (so a clock set back does not stall
/// the timer for longer than that before it looks again).
fn until_tick(tick: u64, now_ms: u64, every_ms: u64) -> Duration {
    let due = tick.saturating_mul(every_ms);
    Duration::from_millis(due.saturating_sub(now_ms).min(every_ms))
}

/// The message id of a tick, which `scope: service` deduplicates on: `<timer>:<tick>`.
fn tick_id(timer: &str, tick: u64) -> String {
    format!("{timer}:{tick}")
}

async fn tick_loop(
    runtime: Arc<ServiceRuntime>,
    index: usize,
    endpoint: &'static EndpointDescriptor,
    mut stop: oneshot::Receiver<()>,
    _guard: mpsc::Sender<()>,
) {
    let every = endpoint.period_ms().unwrap_or_default().max(1);
    let mut last = current_tick(unix_millis(), every);
    tracing::debug!(
        service = runtime.descriptor.name,
        timer = endpoint.name,
        every_ms = every,
        "timer started"
    );
    loop {
        let wait = until_tick(last + 1, unix_millis(), every);
        tokio::select! {
            biased;
            _ = &mut stop => return,
            () = tokio::time::sleep(wait) => {}
        }
        let tick = current_tick(unix_millis(), every);
        if tick <= last {
            // Woken before the wall clock reached the tick (or the clock went back): wait on.
            continue;
        }
        if tick > last + 1 {
            tracing::debug!(
                service = runtime.descriptor.name,
                timer = endpoint.name,
                skipped = tick - last - 1,
                "ticks skipped"
            );
        }
        last = tick;
        match endpoint.mode {
            DeliveryMode::Shared => publish_tick(&runtime, endpoint, tick).await,
            DeliveryMode::Broadcast => run_tick(&runtime, index, endpoint, tick).await,
        }
    }
}

/// The headers of a tick: its message id and a call id of its own.
fn tick_headers(endpoint: &EndpointDescriptor, tick: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        NATS_MESSAGE_ID,
        HeaderValue::from(tick_id(endpoint.name, tick).as_str()),
    );
    headers.insert(
        CALL_ID_NAME,
        HeaderValue::from(crate::ids::new_call_id().as_str()),
    );
    headers
}

/// `scope: service`: offers the tick to the service's work queue, where the first instance's
/// publish is stored and the others' are dropped as duplicates.
async fn publish_tick(runtime: &ServiceRuntime, endpoint: &'static EndpointDescriptor, tick: u64) {
    let service = runtime.descriptor.name;
    let js = runtime.connection.async_call_jetstream();
    let payload = Bytes::from(format!("{{\"tick\":{tick}}}"));
    let publish = async {
        js.publish_with_headers(
            Subject::from_static(endpoint.subject),
            tick_headers(endpoint, tick),
            payload,
        )
        .await?
        .await
        .map_err(async_nats::Error::from)
    };
    match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
        Ok(Ok(ack)) if ack.duplicate => {
            tracing::trace!(
                service,
                timer = endpoint.name,
                tick,
                "tick offered by another instance first"
            );
        }
        Ok(Ok(_)) => tracing::trace!(service, timer = endpoint.name, tick, "tick offered"),
        Ok(Err(error)) => tracing::warn!(
            service,
            timer = endpoint.name,
            tick,
            %error,
            "could not offer a tick (another instance may have)"
        ),
        Err(_) => tracing::warn!(
            service,
            timer = endpoint.name,
            tick,
            "no PubAck for a tick within {PUBLISH_TIMEOUT:?} (another instance may have offered it)"
        ),
    }
}

/// `scope: instance`: runs the tick here, in a handler slot, and returns when it is done.
async fn run_tick(
    runtime: &ServiceRuntime,
    index: usize,
    endpoint: &'static EndpointDescriptor,
    tick: u64,
) {
    let service = runtime.descriptor.name;
    let received = Instant::now();
    let Ok(permit) = Arc::clone(&runtime.permits).acquire_owned().await else {
        return;
    };
    let ctx = Context::from_message(
        Backend::Nats(runtime.connection.clone()),
        service,
        endpoint.name,
        Subject::from_static(endpoint.subject),
        Some(tick_headers(endpoint, tick)),
        1,
    );
    let span = tracing::info_span!(
        "natsgen.timer",
        service,
        method = endpoint.name,
        call_id = %ctx.call_id(),
        tick,
        outcome = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    async {
        let result = run_handler(runtime, index, ctx, Bytes::new(), None).await;
        drop(permit);
        let elapsed = received.elapsed();
        runtime.stats.record(index, elapsed, result.as_ref().err());
        let span = tracing::Span::current();
        span.record("duration_us", elapsed.as_micros() as u64);
        match result {
            Ok(_) => {
                span.record("outcome", "ok");
                tracing::debug!(outcome = "ok", "handled");
            }
            Err(error) => {
                span.record("outcome", "failed");
                tracing::warn!(%error, "tick failed; the next comes with the next period");
            }
        }
    }
    .instrument(span)
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_multiples_of_the_period() {
        assert_eq!(current_tick(29_999, 30_000), 0);
        assert_eq!(current_tick(30_000, 30_000), 1);
        assert_eq!(until_tick(2, 30_001, 30_000), Duration::from_millis(29_999));
        // A clock far behind the tick waits one period at most, then looks again.
        assert_eq!(until_tick(100, 0, 1_000), Duration::from_secs(1));
        assert_eq!(until_tick(1, 5_000, 1_000), Duration::ZERO);
        assert_eq!(tick_id("stock_report", 7), "stock_report:7");
    }
}
