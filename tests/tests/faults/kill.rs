//! kill -9 under load: three `faults_worker load` processes serve `fault_worker` (async `work`),
//! `fault_audit` and `fault_billing` (both durable handlers of `faults.happened`); the test sends
//! N async calls with unique idempotency keys and N events while a random worker is SIGKILLed
//! every few seconds and restarted.
//!
//! At the end every accepted call and every (event, handler) pair has a completion record or a
//! dead letter, every consumer shows nothing pending or unacked, no `abandoned` letter exists that
//! the kills cannot explain, and every duplicate completion was first completed by a process
//! that was then killed, no more of them per kill than that process could have in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use natsgen::Connection;
use natsgen_tests::chaos::procs::ServiceProcess;
use natsgen_tests::chaos::store;
use natsgen_tests::chaos::{closed_connections, mib, Rng, Scale, Table};
use natsgen_tests::faults::{Events, FaultWorkerClient, FaultsHappened};
use tokio::sync::{watch, Mutex};

use super::common::{create_records_stream, describe_states, spawn_worker, start_server, within};
use super::ledger::{Ledger, Unit};

/// `fault_worker.work`'s and the handlers' `max_attempts` in `schemas/faults.yaml`.
const MAX_ATTEMPTS: usize = 5;
/// Each worker process's `max_concurrency` (per service).
const CONCURRENCY: usize = 16;
/// Services per worker process.
const SERVICES: usize = 3;
const WORKERS: usize = 3;
/// The consumers' ack wait: how soon a killed worker's messages are delivered again.
const ACK_WAIT_MS: u64 = 2000;
const CONSUMERS: [(&str, &str); 3] = [
    ("ASYNC_fault_worker", "fault_worker"),
    ("EVENTS_faults", "fault_audit_record"),
    ("EVENTS_faults", "fault_billing_charge"),
];

struct Kill {
    pid: u32,
}

/// The worker processes, and what was done to them.
struct Pool {
    url: String,
    workers: Vec<ServiceProcess>,
    kills: Vec<Kill>,
    peak_rss_kib: u64,
}

impl Pool {
    fn args(&self) -> Vec<String> {
        vec![
            "load".to_owned(),
            self.url.clone(),
            ACK_WAIT_MS.to_string(),
            CONCURRENCY.to_string(),
        ]
    }

    async fn start(url: String) -> Pool {
        let mut pool = Pool {
            url,
            workers: Vec::new(),
            kills: Vec::new(),
            peak_rss_kib: 0,
        };
        for _ in 0..WORKERS {
            let worker = spawn_worker(&pool.args()).await;
            pool.workers.push(worker);
        }
        pool
    }

    /// SIGKILLs worker `index` and starts a new one in its place after `pause`.
    async fn kill_and_restart(&mut self, index: usize, pause: Duration) {
        let worker = &mut self.workers[index];
        self.peak_rss_kib = self.peak_rss_kib.max(worker.peak_rss_kib());
        self.kills.push(Kill { pid: worker.pid() });
        worker.kill9().await;
        tokio::time::sleep(pause).await;
        self.workers[index] = spawn_worker(&self.args()).await;
    }

    fn sample_rss(&mut self) {
        for worker in &mut self.workers {
            self.peak_rss_kib = self.peak_rss_kib.max(worker.peak_rss_kib());
        }
    }

    fn panics(&self) -> Vec<String> {
        self.workers
            .iter()
            .flat_map(ServiceProcess::panics)
            .collect()
    }
}

/// Kills a random worker every `every` (a random span) until told to stop, and at least
/// `min_kills` times.
async fn killer(
    mut pool: Pool,
    mut rng: Rng,
    every: (Duration, Duration),
    min_kills: usize,
    mut stop: watch::Receiver<bool>,
) -> Pool {
    loop {
        if *stop.borrow() && pool.kills.len() >= min_kills {
            return pool;
        }
        let wait = rng.between(every.0, every.1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed(), if !*stop.borrow() => continue,
        }
        let index = rng.below(WORKERS as u64) as usize;
        let pause = rng.between(Duration::ZERO, Duration::from_millis(500));
        pool.kill_and_restart(index, pause).await;
        pool.sample_rss();
    }
}

#[derive(Default)]
struct Sent {
    calls_accepted: Vec<String>,
    calls_failed: Vec<String>,
    events_accepted: Vec<u64>,
    events_failed: Vec<String>,
}

/// Sends `n` calls and `n` events, spread over `spread`, at most `in_flight` at once.
async fn produce(nats: &Connection, n: usize, spread: Duration, in_flight: usize) -> Sent {
    let client = FaultWorkerClient::new(nats);
    let events = Events::new(nats);
    let sent = Arc::new(Mutex::new(Sent::default()));
    let started = tokio::time::Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (client, events, sent) = (client.clone(), &events, Arc::clone(&sent));
            async move {
                let at = started + spread.mul_f64(i as f64 / n.max(1) as f64);
                tokio::time::sleep_until(at).await;
                let key = format!("call-{i}");
                let sleep_ms = (i % 200) as u32;
                let call = client
                    .work(key.clone(), sleep_ms)
                    .idempotency_key(key.clone())
                    .timeout(Duration::from_secs(10))
                    .await;
                let event_no = i as u64;
                let publish = events
                    .faults_happened(&FaultsHappened { event_no, sleep_ms })
                    .event_id(format!("event-{i}"));
                let published =
                    tokio::time::timeout(Duration::from_secs(30), publish.into_future()).await;
                let mut sent = sent.lock().await;
                match call {
                    Ok(()) => sent.calls_accepted.push(key),
                    Err(e) => sent.calls_failed.push(format!("{key}: {e}")),
                }
                match published {
                    Ok(Ok(())) => sent.events_accepted.push(event_no),
                    Ok(Err(e)) => sent.events_failed.push(format!("event {i}: {e}")),
                    Err(_) => sent
                        .events_failed
                        .push(format!("event {i}: no answer in 30 s")),
                }
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<()>>()
        .await;
    Arc::try_unwrap(sent)
        .ok()
        .expect("every send finished")
        .into_inner()
}

use std::future::IntoFuture as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing() {
    let scale = Scale::from_env();
    let (rng, seed) = Rng::from_env();
    let n = scale.pick(400, 10_000);
    let spread = scale.pick(Duration::from_secs(10), Duration::from_secs(90));
    let every = scale.pick(
        (Duration::from_millis(1500), Duration::from_millis(3000)),
        (Duration::from_secs(2), Duration::from_secs(5)),
    );
    let min_kills = scale.pick(4, 15);
    let began = Instant::now();

    let server = start_server().await;
    let nats = within(natsgen::connect(server.url())).await.unwrap();
    let direct = nats.nats().clone();
    create_records_stream(&direct).await;
    let pool = Pool::start(server.url()).await;

    let (stop, stopped) = watch::channel(false);
    let killing = tokio::spawn(killer(pool, rng, every, min_kills, stopped));
    let sent = produce(&nats, n, spread, 64).await;
    stop.send_replace(true);
    let mut pool = within(killing).await.unwrap();
    let kills = pool.kills.len();

    // Every accepted unit completed or dead-lettered, within a bounded wait.
    let units: Vec<Unit> = sent
        .calls_accepted
        .iter()
        .map(|key| ("work", key.clone()))
        .chain(
            sent.events_accepted
                .iter()
                .flat_map(|no| [("audit", no.to_string()), ("billing", no.to_string())]),
        )
        .collect();
    let mut ledger = Ledger::new();
    let settle_by = Instant::now() + scale.pick(Duration::from_secs(90), Duration::from_secs(300));
    loop {
        ledger.poll(&direct).await;
        if units.iter().all(|unit| ledger.settled(unit)) || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle = store::wait_idle(&direct, &CONSUMERS, Duration::from_secs(30)).await;
    // Records of attempts that finished after the wait above.
    ledger.poll(&direct).await;
    pool.sample_rss();

    let mut violations = Vec::new();
    if !idle
        .iter()
        .all(|(_, state)| state.as_ref().is_ok_and(store::ConsumerState::is_idle))
    {
        violations.push(format!("consumers not idle: {}", describe_states(&idle)));
    }
    let lost: Vec<&Unit> = units.iter().filter(|u| !ledger.settled(u)).collect();
    if !lost.is_empty() {
        violations.push(format!(
            "{} units neither completed nor dead-lettered, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    // Duplicates: a unit completed more than once must first have been completed by a process
    // killed afterwards (its ack lost with it); per killed process, no more than it could run.
    let killed: HashMap<u32, usize> = pool
        .kills
        .iter()
        .enumerate()
        .map(|(i, kill)| (kill.pid, i))
        .collect();
    let mut duplicates = 0usize;
    let mut duplicates_per_kill: BTreeMap<u32, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for (unit, pids) in &ledger.done {
        let extra = pids.len() - 1 + ledger.letters.get(unit).map_or(0, Vec::len);
        if extra == 0 {
            continue;
        }
        duplicates += extra;
        for pid in &pids[..pids.len().min(extra)] {
            if killed.contains_key(pid) {
                *duplicates_per_kill.entry(*pid).or_default() += 1;
            } else {
                unexplained.push(format!("{unit:?} first completed by {pid}, never killed"));
            }
        }
    }
    if !unexplained.is_empty() {
        violations.push(format!(
            "{} duplicates not explained by a kill: {:?}",
            unexplained.len(),
            &unexplained[..unexplained.len().min(10)]
        ));
    }
    let bound = SERVICES * CONCURRENCY;
    for (pid, count) in &duplicates_per_kill {
        if *count > bound {
            violations.push(format!(
                "{count} duplicates after killing {pid}, which could run at most {bound} at once"
            ));
        }
    }
    // `abandoned` (the last allowed attempt died with its worker) and `undeliverable` (the
    // consumer's max_deliver backstop was reached): each kill can take at most one delivery of a
    // given message, so such a letter needs at least MAX_ATTEMPTS kills in the run.
    let crash_reasons = ["abandoned", "undeliverable"];
    let abandoned: Vec<(&Unit, usize)> = ledger
        .letters
        .iter()
        .filter(|(_, reasons)| reasons.iter().any(|r| crash_reasons.contains(&r.as_str())))
        .map(|(unit, _)| (unit, ledger.started.get(unit).map_or(0, |s| s.len())))
        .collect();
    for (unit, started) in &abandoned {
        if kills < MAX_ATTEMPTS {
            violations.push(format!(
                "{unit:?} dead-lettered for lost attempts after {started} started attempts and \
                 {kills} kills in the whole run: it had attempts left"
            ));
        }
    }
    let other_letters: usize = ledger
        .letters
        .values()
        .flatten()
        .filter(|r| !crash_reasons.contains(&r.as_str()))
        .count();
    if other_letters > 0 {
        violations.push(format!(
            "dead letters for other reasons than lost attempts (the handlers never fail): {:?}",
            ledger.letter_reasons()
        ));
    }
    if !sent.calls_failed.is_empty() || !sent.events_failed.is_empty() {
        violations.push(format!(
            "sends failed with the server up: {:?} {:?}",
            &sent.calls_failed[..sent.calls_failed.len().min(5)],
            &sent.events_failed[..sent.events_failed.len().min(5)]
        ));
    }
    let panics = pool.panics();
    if !panics.is_empty() {
        violations.push(format!("workers panicked: {panics:?}"));
    }
    let closed = closed_connections(&server.monitor_url().unwrap_or_default(), "faults-load").await;

    let completed = units
        .iter()
        .filter(|u| ledger.done.contains_key(*u))
        .count();
    let retried = units
        .iter()
        .filter(|u| ledger.started.get(*u).is_some_and(|s| s.len() > 1))
        .count();
    let lettered = units
        .iter()
        .filter(|u| ledger.letters.contains_key(*u))
        .count();
    let mut table = Table::new(format!(
        "kill -9 under load ({} form, seed {seed})",
        scale.name()
    ));
    table
        .row(
            "calls sent",
            n,
            "async calls of fault_worker.work, unique keys",
        )
        .row(
            "calls accepted",
            sent.calls_accepted.len(),
            "PubAck received",
        )
        .row(
            "events sent",
            n,
            "faults.happened, handled by fault_audit and fault_billing",
        )
        .row(
            "events accepted",
            sent.events_accepted.len(),
            "PubAck received",
        )
        .row("units", units.len(), "accepted calls + 2 x accepted events")
        .row("completed", completed, "a completion record")
        .row(
            "retried",
            retried,
            "units whose attempt died with its worker, run again",
        )
        .row(
            "dead-lettered",
            lettered,
            &format!("{:?}", ledger.letter_reasons()),
        )
        .row(
            "duplicates",
            duplicates,
            "extra completions (or a letter after one)",
        )
        .row(
            "duplicate bound",
            format!("{bound}/kill"),
            "services x max_concurrency of the killed process",
        )
        .row("lost", lost.len(), "must be 0")
        .row(
            "kills",
            kills,
            &format!("SIGKILL of a random worker of {WORKERS}"),
        )
        .row(
            "connections closed",
            closed.len(),
            "worker connections the server saw end",
        )
        .row("stray letters", ledger.stray_letters.len(), "")
        .row("panics", panics.len(), "")
        .row(
            "peak RSS",
            mib(pool.peak_rss_kib),
            "largest VmHWM of a worker process",
        )
        .row("elapsed", format!("{:.1?}", began.elapsed()), "")
        .row("violations", violations.len(), "must be 0");
    table.print();
    for worker in &mut pool.workers {
        worker.kill9().await;
    }
    assert!(
        violations.is_empty(),
        "{} violations (seed {seed}):\n{}",
        violations.len(),
        violations.join("\n")
    );
}
