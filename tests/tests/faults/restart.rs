//! nats-server restarted during load, once stopped with SIGTERM and once killed with SIGKILL
//! (its file store kept): every call or publish that returned Ok is processed or dead-lettered,
//! processing resumes by itself, and every call, publish and `ctx.emit` returns or fails within
//! its timeout.

use std::time::{Duration, Instant};

use natsgen_tests::chaos::store;
use natsgen_tests::chaos::{Scale, Table};

use super::common::{describe_states, start_server, within};
use super::ledger::Ledger;
use super::load::{self, Kind, Op};

const CONSUMERS: [(&str, &str); 3] = [
    ("ASYNC_fault_worker", "fault_worker"),
    ("EVENTS_faults", "fault_audit_record"),
    ("EVENTS_faults", "fault_billing_charge"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Kill,
}

async fn restart_under_load(how: Stop) {
    let scale = Scale::from_env();
    let began = Instant::now();
    let mut server = start_server().await;
    let services = within(natsgen::connect(server.url())).await.unwrap();
    let callers = within(natsgen::connect(server.url())).await.unwrap();
    let (seen, host) = load::serve(&services).await;

    // Load before, during and after the outage.
    let before = scale.pick(Duration::from_secs(3), Duration::from_secs(20));
    let down_for = scale.pick(Duration::from_secs(2), Duration::from_secs(5));
    let after = scale.pick(Duration::from_secs(6), Duration::from_secs(30));
    let tick = scale.pick(Duration::from_millis(10), Duration::from_millis(4));
    let load = {
        let callers = callers.clone();
        tokio::spawn(async move {
            let total = before + down_for + after;
            load::run(&callers, 0, tick, 256, move |elapsed| elapsed >= total).await
        })
    };
    tokio::time::sleep(before).await;
    let outage_at = began.elapsed();
    match how {
        Stop::Term => server.stop().await,
        Stop::Kill => server.kill().await,
    }
    tokio::time::sleep(down_for).await;
    within(server.restart()).await.expect("the server restarts");
    let back_at = began.elapsed();
    let (mut ops, skipped) = within(load).await.unwrap();

    // Processing resumes by itself: a last batch, sent once the load is over, completes too.
    let (last, _) = load::run(
        &callers,
        1_000_000,
        Duration::from_millis(20),
        64,
        |elapsed| elapsed >= Duration::from_secs(1),
    )
    .await;
    let last_failed: Vec<&Op> = last.iter().filter(|op| op.result.is_err()).collect();
    ops.extend(last.iter().cloned());

    let owed = load::owed(&ops);
    let direct = within(async_nats::connect(server.url())).await.unwrap();
    let mut ledger = Ledger::new();
    let settle_by = Instant::now() + scale.pick(Duration::from_secs(60), Duration::from_secs(180));
    loop {
        load::merge(&seen, &mut ledger);
        ledger.poll(&direct).await;
        if owed.iter().all(|unit| ledger.settled(unit)) || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let idle = store::wait_idle(&direct, &CONSUMERS, Duration::from_secs(30)).await;
    load::merge(&seen, &mut ledger);
    ledger.poll(&direct).await;

    let mut violations = Vec::new();
    let lost: Vec<_> = owed.iter().filter(|u| !ledger.settled(u)).collect();
    if !lost.is_empty() {
        violations.push(format!(
            "{} accepted units neither processed nor dead-lettered, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    if !last_failed.is_empty() {
        violations.push(format!(
            "{} calls after the restart failed, e.g. {:?}",
            last_failed.len(),
            &last_failed[..last_failed.len().min(5)]
        ));
    }
    let overdue = load::overdue(&ops);
    if !overdue.is_empty() {
        violations.push(format!(
            "{} calls or publishes outlived their timeout, e.g. {:?}",
            overdue.len(),
            &overdue[..overdue.len().min(5)]
        ));
    }
    let emits = std::mem::take(&mut seen.lock().unwrap().emits);
    let emit_limit = load::PUBLISH_TIMEOUT + load::MARGIN;
    let slow_emits: Vec<_> = emits
        .iter()
        .filter(|(took, _)| *took > emit_limit)
        .collect();
    if !slow_emits.is_empty() {
        violations.push(format!(
            "{} ctx.emit calls outlived {emit_limit:?}, e.g. {:?}",
            slow_emits.len(),
            &slow_emits[..slow_emits.len().min(5)]
        ));
    }
    if !idle
        .iter()
        .all(|(_, state)| state.as_ref().is_ok_and(store::ConsumerState::is_idle))
    {
        violations.push(format!("consumers not idle: {}", describe_states(&idle)));
    }

    let mut table = Table::new(format!(
        "nats-server {} and restarted under load ({} form)",
        match how {
            Stop::Term => "stopped with SIGTERM",
            Stop::Kill => "killed with SIGKILL",
        },
        scale.name()
    ));
    for kind in [Kind::Call, Kind::Event, Kind::Rpc] {
        let of_kind: Vec<&Op> = ops.iter().filter(|op| op.kind == kind).collect();
        let ok = of_kind.iter().filter(|op| op.result.is_ok()).count();
        let slowest = of_kind.iter().map(|op| op.took).max().unwrap_or_default();
        table.row(
            &format!("{kind:?} sent"),
            of_kind.len(),
            &format!(
                "{ok} Ok, {} failed; slowest {slowest:.2?} (limit {:?})",
                of_kind.len() - ok,
                kind.limit()
            ),
        );
    }
    load::outcome_rows(
        &mut table,
        &ledger,
        &owed,
        lost.len(),
        overdue.len(),
        &emits,
        emit_limit,
    );
    table
        .row(
            "reconnects",
            format!(
                "{} / {}",
                services
                    .nats()
                    .statistics()
                    .connects
                    .load(std::sync::atomic::Ordering::Relaxed)
                    - 1,
                callers
                    .nats()
                    .statistics()
                    .connects
                    .load(std::sync::atomic::Ordering::Relaxed)
                    - 1
            ),
            "services' / callers' connection",
        )
        .row(
            "outage",
            format!("{:.1?}", back_at - outage_at),
            &format!("from {outage_at:.1?}"),
        )
        .row(
            "sent in the outage",
            ops.iter()
                .filter(|op| op.at >= outage_at && op.at < back_at)
                .count(),
            &format!(
                "{} of them Ok (stored before the server went, or in its last moments)",
                ops.iter()
                    .filter(|op| op.at >= outage_at && op.at < back_at && op.result.is_ok())
                    .count()
            ),
        )
        .row(
            "skipped ticks",
            skipped,
            "load generator at its in-flight limit",
        )
        .row("elapsed", format!("{:.1?}", began.elapsed()), "")
        .row("violations", violations.len(), "must be 0");
    table.print();
    within(host.shutdown()).await.unwrap();
    assert!(
        violations.is_empty(),
        "{} violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stopped_with_sigterm_under_load_loses_nothing_and_nothing_hangs() {
    restart_under_load(Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_killed_with_sigkill_under_load_loses_nothing_and_nothing_hangs() {
    restart_under_load(Stop::Kill).await;
}
