//! A network partition through a TCP proxy (`natsgen_tests::proxy`): the services and a caller
//! each reach nats-server through their own proxy, with a 1 s ping interval; a second caller
//! connects directly and keeps storing async calls and events. Both proxies are cut — both
//! directions, or only server to client — for longer than the ping interval and the ack wait,
//! then healed.
//!
//! Calls and publishes through a cut proxy fail within their timeouts, `ctx.emit` inside a
//! handler too; once healed the connections come back and the pull loops resume by themselves,
//! and every call or publish that returned Ok is processed or dead-lettered.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use natsgen::Connection;
use natsgen_tests::chaos::store;
use natsgen_tests::chaos::{Scale, Table};
use natsgen_tests::proxy::{Cut, Proxy};

use super::common::{describe_states, start_server, within};
use super::ledger::Ledger;
use super::load::{self, Kind, Op};

const CONSUMERS: [(&str, &str); 3] = [
    ("ASYNC_fault_worker", "fault_worker"),
    ("EVENTS_faults", "fault_audit_record"),
    ("EVENTS_faults", "fault_billing_charge"),
];
/// The proxied clients' ping interval.
const PING_INTERVAL: Duration = Duration::from_secs(1);

async fn connect_through(proxy: &Proxy) -> Connection {
    within(
        natsgen::ConnectOptions::new()
            .nats_options(|options| {
                options
                    .ping_interval(PING_INTERVAL)
                    .connection_timeout(Duration::from_secs(1))
            })
            .connect(proxy.url()),
    )
    .await
    .unwrap()
}

fn connects(nats: &Connection) -> u64 {
    nats.nats()
        .statistics()
        .connects
        .load(std::sync::atomic::Ordering::Relaxed)
}

async fn partition(cut: Cut) {
    let scale = Scale::from_env();
    let began = Instant::now();
    let server = start_server().await;
    let upstream: SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let service_proxy = Proxy::start(upstream).await.unwrap();
    let caller_proxy = Proxy::start(upstream).await.unwrap();
    let services = connect_through(&service_proxy).await;
    let callers = connect_through(&caller_proxy).await;
    let direct = within(natsgen::connect(server.url())).await.unwrap();
    let (seen, host) = load::serve(&services).await;

    let warm = Duration::from_secs(2);
    // Longer than the ping interval (twice: async-nats gives up after two unanswered pings) and
    // than the consumers' 2 s ack wait.
    let cut_for = scale.pick(Duration::from_secs(6), Duration::from_secs(20));
    let after = scale.pick(Duration::from_secs(4), Duration::from_secs(10));
    let total = warm + cut_for + after;
    let tick = scale.pick(Duration::from_millis(20), Duration::from_millis(5));
    let through = {
        let callers = callers.clone();
        tokio::spawn(async move { load::run(&callers, 0, tick, 256, |e| e >= total).await })
    };
    let alongside = {
        let direct = direct.clone();
        tokio::spawn(async move { load::run(&direct, 5_000_000, tick, 256, |e| e >= total).await })
    };
    tokio::time::sleep(warm).await;
    let cut_at = began.elapsed();
    service_proxy.cut(cut);
    caller_proxy.cut(cut);
    tokio::time::sleep(cut_for).await;
    service_proxy.heal();
    caller_proxy.heal();
    let healed_at = began.elapsed();
    let (mut ops, _) = within(through).await.unwrap();
    let (direct_ops, _) = within(alongside).await.unwrap();

    // After the heal, calls through the proxy are answered and processed again.
    let resumed = Instant::now();
    let mut last: Vec<Op> = Vec::new();
    let mut attempts = 0;
    while resumed.elapsed() < Duration::from_secs(30) {
        attempts += 1;
        let (batch, _) = load::run(
            &callers,
            9_000_000 + attempts * 1000,
            Duration::from_millis(20),
            64,
            |e| e >= Duration::from_millis(500),
        )
        .await;
        let all_ok = batch.iter().all(|op| op.result.is_ok());
        last.extend(batch);
        if all_ok {
            break;
        }
    }
    let recovered_after = resumed.elapsed();
    let last_ok = last.iter().rev().take(10).all(|op| op.result.is_ok());
    ops.extend(last);
    let through_count = ops.len();
    ops.extend(direct_ops);

    let owed = load::owed(&ops);
    let client = direct.nats().clone();
    let mut ledger = Ledger::new();
    let settle_by = Instant::now() + scale.pick(Duration::from_secs(60), Duration::from_secs(180));
    loop {
        load::merge(&seen, &mut ledger);
        ledger.poll(&client).await;
        if owed.iter().all(|unit| ledger.settled(unit)) || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let idle = store::wait_idle(&client, &CONSUMERS, Duration::from_secs(30)).await;
    load::merge(&seen, &mut ledger);
    ledger.poll(&client).await;

    let mut violations = Vec::new();
    let lost: Vec<_> = owed.iter().filter(|u| !ledger.settled(u)).collect();
    if !lost.is_empty() {
        violations.push(format!(
            "{} accepted units neither processed nor dead-lettered, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(10)]
        ));
    }
    if !last_ok {
        violations.push(format!(
            "calls through the proxy still failing {recovered_after:?} after the heal"
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
        "partition {cut:?} for {cut_for:?} ({} form)",
        scale.name()
    ));
    for (who, range) in [
        ("proxied", 0..through_count),
        ("direct", through_count..ops.len()),
    ] {
        for kind in [Kind::Call, Kind::Event, Kind::Rpc] {
            let of_kind: Vec<&Op> = ops[range.clone()]
                .iter()
                .filter(|op| op.kind == kind)
                .collect();
            let ok = of_kind.iter().filter(|op| op.result.is_ok()).count();
            let in_cut = of_kind
                .iter()
                .filter(|op| op.at >= cut_at && op.at < healed_at)
                .count();
            let slowest = of_kind.iter().map(|op| op.took).max().unwrap_or_default();
            table.row(
                &format!("{who} {kind:?}"),
                of_kind.len(),
                &format!(
                    "{ok} Ok, {} failed, {in_cut} sent in the cut; slowest {slowest:.2?} \
                     (limit {:?})",
                    of_kind.len() - ok,
                    kind.limit()
                ),
            );
        }
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
            format!("{} / {}", connects(&services) - 1, connects(&callers) - 1),
            "services' / proxied callers' connection",
        )
        .row(
            "proxy connections",
            format!(
                "{} / {}",
                service_proxy.connections(),
                caller_proxy.connections()
            ),
            "accepted by the services' / callers' proxy",
        )
        .row(
            "recovered",
            format!("{recovered_after:.1?}"),
            "after the heal, until a batch of calls through the proxy all succeeded",
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
async fn a_full_partition_fails_calls_in_time_and_loses_nothing() {
    partition(Cut::Full).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_partition_fails_calls_in_time_and_loses_nothing() {
    partition(Cut::ServerToClient).await;
}
