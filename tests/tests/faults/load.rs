//! Load for the outage scenarios (server restarts, partitions): the services run in the test
//! process, recording completions in memory (which nothing can lose), and a steady stream of
//! async calls, events and RPC calls is sent and timed, each against its own timeout.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use natsgen::{Connection, Context, Host, HostHandle, ServiceError};
use natsgen_tests::faults::{
    Events, FaultAudit, FaultAuditServer, FaultBilling, FaultBillingServer, FaultWorker,
    FaultWorkerClient, FaultWorkerServer, FaultsEchoed, FaultsHappened,
};
use tokio::task::JoinSet;

use super::ledger::{Ledger, Unit};

/// An async call's timeout.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// An RPC call's timeout.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an event publish (also `ctx.emit`) may take: natsgen's default.
pub const PUBLISH_TIMEOUT: Duration = natsgen::DEFAULT_PUBLISH_TIMEOUT;
/// What a call may take beyond its timeout (scheduling on a loaded machine).
pub const MARGIN: Duration = Duration::from_secs(2);
/// A publish that takes this long hangs: it is cut off and counted.
pub const HANG: Duration = Duration::from_secs(60);

/// What the in-process handlers saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Completed units, in order.
    pub done: Vec<Unit>,
    /// Every `ctx.emit` of `work`: how long it took and whether it succeeded.
    pub emits: Vec<(Duration, Result<(), String>)>,
}

#[derive(Clone)]
struct InProcess(Arc<Mutex<Seen>>);

impl InProcess {
    fn done(&self, unit: Unit) {
        self.0.lock().unwrap().done.push(unit);
    }
}

impl FaultWorker for InProcess {
    async fn work(&self, ctx: &Context, key: String, sleep_ms: u32) -> Result<(), ServiceError> {
        tokio::time::sleep(Duration::from_millis(u64::from(sleep_ms))).await;
        let started = Instant::now();
        let emit = ctx
            .emit::<Events>()
            .faults_echoed(&FaultsEchoed { key: key.clone() });
        let result =
            match tokio::time::timeout(HANG, std::future::IntoFuture::into_future(emit)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {HANG:?}")),
            };
        self.0
            .lock()
            .unwrap()
            .emits
            .push((started.elapsed(), result.clone()));
        result.map_err(|e| ServiceError::internal(format!("emit failed: {e}")))?;
        self.done(("work", key));
        Ok(())
    }

    async fn ping(&self, _ctx: &Context) -> Result<String, ServiceError> {
        Ok("pong".to_owned())
    }
}

impl FaultAudit for InProcess {
    async fn record(&self, _ctx: &Context, event: FaultsHappened) -> Result<(), ServiceError> {
        self.done(("audit", event.event_no.to_string()));
        Ok(())
    }
}

impl FaultBilling for InProcess {
    async fn charge(&self, _ctx: &Context, event: FaultsHappened) -> Result<(), ServiceError> {
        self.done(("billing", event.event_no.to_string()));
        Ok(())
    }
}

/// Serves the three load services on `nats` with a short ack wait.
pub async fn serve(nats: &Connection) -> (Arc<Mutex<Seen>>, HostHandle) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let services = InProcess(Arc::clone(&seen));
    let host = Host::new(nats.clone())
        .ack_wait(Duration::from_secs(2))
        .serve(FaultWorkerServer::new(services.clone()))
        .serve(FaultAuditServer::new(services.clone()))
        .serve(FaultBillingServer::new(services));
    let handle = super::common::within(host.start()).await.unwrap();
    (seen, handle)
}

/// Merges the in-process completions into `ledger`.
pub fn merge(seen: &Mutex<Seen>, ledger: &mut Ledger) {
    let done = std::mem::take(&mut seen.lock().unwrap().done);
    for unit in done {
        ledger.done.entry(unit).or_default().push(0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Call,
    Event,
    Rpc,
}

impl Kind {
    pub fn limit(self) -> Duration {
        MARGIN
            + match self {
                Kind::Call => CALL_TIMEOUT,
                Kind::Event => PUBLISH_TIMEOUT,
                Kind::Rpc => RPC_TIMEOUT,
            }
    }
}

/// One call or publish and how it went.
#[derive(Debug, Clone)]
pub struct Op {
    pub kind: Kind,
    pub number: u64,
    /// When it started, from the start of the load.
    pub at: Duration,
    pub took: Duration,
    pub result: Result<(), String>,
}

/// How long every tenth `work` call sleeps before it emits, so that some handlers are always
/// in the middle of their work when an outage starts.
pub const LONG_WORK_MS: u32 = 1500;

/// Sends one async call, one event and (every fifth tick) one RPC call every `tick`, from
/// `first` on, until `until` turns true; at most `in_flight` at once (a tick finding them all
/// busy is skipped, and counted). Every tenth call's handler sleeps [`LONG_WORK_MS`], the others
/// under 20 ms.
pub async fn run(
    nats: &Connection,
    first: u64,
    tick: Duration,
    in_flight: usize,
    until: impl Fn(Duration) -> bool,
) -> (Vec<Op>, usize) {
    let client = FaultWorkerClient::new(nats);
    let events = Events::new(nats);
    let began = Instant::now();
    let mut tasks: JoinSet<Op> = JoinSet::new();
    let mut ops = Vec::new();
    let mut skipped = 0;
    let mut number = first;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !until(began.elapsed()) {
        interval.tick().await;
        while let Some(done) = tasks.try_join_next() {
            ops.push(done.unwrap());
        }
        if tasks.len() + 3 > in_flight {
            skipped += 1;
            continue;
        }
        let at = began.elapsed();
        let n = number;
        number += 1;
        let call = client
            .work(
                format!("call-{n}"),
                if n.is_multiple_of(10) {
                    LONG_WORK_MS
                } else {
                    (n % 20) as u32
                },
            )
            .idempotency_key(format!("call-{n}"))
            .timeout(CALL_TIMEOUT);
        tasks.spawn(timed(Kind::Call, n, at, async move {
            call.await.map_err(|e| e.to_string())
        }));
        let publish = events
            .faults_happened(&FaultsHappened {
                event_no: n,
                sleep_ms: 0,
            })
            .event_id(format!("event-{n}"));
        tasks.spawn(timed(Kind::Event, n, at, async move {
            publish.await.map_err(|e| e.to_string())
        }));
        if n.is_multiple_of(5) {
            let ping = client.ping().timeout(RPC_TIMEOUT);
            tasks.spawn(timed(Kind::Rpc, n, at, async move {
                ping.await.map(|_| ()).map_err(|e| e.to_string())
            }));
        }
    }
    while let Some(done) = tasks.join_next().await {
        ops.push(done.unwrap());
    }
    (ops, skipped)
}

async fn timed(
    kind: Kind,
    number: u64,
    at: Duration,
    call: impl std::future::Future<Output = Result<(), String>>,
) -> Op {
    let started = Instant::now();
    let result = match tokio::time::timeout(HANG, call).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {HANG:?}")),
    };
    Op {
        kind,
        number,
        at,
        took: started.elapsed(),
        result,
    }
}

/// The units an Ok call or publish owes: `work` for a call, `audit` and `billing` for an event.
pub fn owed(ops: &[Op]) -> Vec<Unit> {
    let mut units = Vec::new();
    for op in ops.iter().filter(|op| op.result.is_ok()) {
        match op.kind {
            Kind::Call => units.push(("work", format!("call-{}", op.number))),
            Kind::Event => {
                units.push(("audit", op.number.to_string()));
                units.push(("billing", op.number.to_string()));
            }
            Kind::Rpc => {}
        }
    }
    units
}

/// Calls and publishes that took longer than their timeout and the margin.
pub fn overdue(ops: &[Op]) -> Vec<&Op> {
    ops.iter().filter(|op| op.took > op.kind.limit()).collect()
}

/// The rows every load scenario reports after its own: what was owed, processed, dead-lettered,
/// duplicated, lost and overdue, and how the handlers' `ctx.emit` calls went.
pub fn outcome_rows(
    table: &mut natsgen_tests::chaos::Table,
    ledger: &Ledger,
    owed: &[Unit],
    lost: usize,
    overdue: usize,
    emits: &[(Duration, Result<(), String>)],
    emit_limit: Duration,
) {
    let processed = owed.iter().filter(|u| ledger.done.contains_key(*u)).count();
    let lettered = owed
        .iter()
        .filter(|u| ledger.letters.contains_key(*u))
        .count();
    let duplicates: usize = ledger
        .done
        .values()
        .map(|d| d.len().saturating_sub(1))
        .sum();
    let emit_failures = emits.iter().filter(|(_, r)| r.is_err()).count();
    let slowest_emit = emits.iter().map(|(t, _)| *t).max().unwrap_or_default();
    table
        .row("units owed", owed.len(), "Ok calls + 2 x Ok events")
        .row("processed", processed, "")
        .row(
            "dead-lettered",
            lettered,
            &format!("{:?}", ledger.letter_reasons()),
        )
        .row("duplicates", duplicates, "extra completions")
        .row("lost", lost, "must be 0")
        .row("overdue", overdue, "past timeout + margin: must be 0")
        .row(
            "ctx.emit",
            emits.len(),
            &format!("{emit_failures} failed; slowest {slowest_emit:.2?} (limit {emit_limit:?})"),
        );
}
