//! The walkthrough end to end over a real nats-server (`natsgen::testing`, never port 4222),
//! with delays at 1 %. The checks read what the services recorded and what the callers got back,
//! not the printed text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use generated_example::ecommerce::{OrderServiceClient, OrderStatus, PaymentStatus};
use generated_example::services::{self, Delays, Happened, Observations, ServiceName, Shared};
use generated_example::walkthrough::{Section, Walkthrough};
use natsgen::testing::NatsServer;
use natsgen::CallError;
use tokio::io::{AsyncBufReadExt, BufReader};

const DELAY_SCALE: f64 = 0.01;

/// How long the test waits for things that take milliseconds, before it calls them lost.
const PATIENCE: Duration = Duration::from_secs(60);

fn is_transaction_id(id: &str) -> bool {
    id.strip_prefix("txn_")
        .is_some_and(|digits| digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// How often each handler ran per order: `(what, order_id) -> times`.
fn reactions(log: &[Happened]) -> BTreeMap<(&'static str, String), usize> {
    let mut counts = BTreeMap::new();
    for happened in log {
        let key = match happened {
            Happened::InventoryReserved { order_id } => ("reserved", order_id.clone()),
            Happened::InventoryReleased { order_id } => ("released", order_id.clone()),
            Happened::ConfirmationSent { order_id } => ("confirmed", order_id.clone()),
            Happened::OrderTracked { order_id } => ("tracked", order_id.clone()),
            _ => continue,
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_section_does_what_it_shows() {
    generated_example::set_quiet(true);
    let server = NatsServer::start().await.expect("nats-server starts");
    let nats = natsgen::connect(server.url().as_str())
        .await
        .expect("connect");
    // The events the services publish, as any NATS client sees them.
    let mut emails_sent = nats
        .nats()
        .subscribe("emails.sent")
        .await
        .expect("subscribe");
    let mut emails_failed = nats
        .nats()
        .subscribe("emails.failed")
        .await
        .expect("subscribe");

    let observations = Arc::new(Observations::new());
    let shared = Shared::new(Arc::clone(&observations), Delays::scaled(DELAY_SCALE));
    let host = services::serve(natsgen::Host::new(nats.clone()), &ServiceName::ALL, &shared)
        .start()
        .await
        .expect("services start");

    let report = Walkthrough::new(&nats, &shared)
        .run(&Section::ALL)
        .await
        .expect("every section runs");
    // The broadcast monitor's copy of the last completion events may land just after the batch
    // section saw its items processed: give it a bounded moment before reading the log.
    let waited = std::time::Instant::now();
    let log = loop {
        let log = observations.snapshot();
        let seen = log
            .iter()
            .filter(|h| matches!(h, Happened::ItemCompletionSeen { .. }))
            .count();
        if seen >= 100 || waited.elapsed() > std::time::Duration::from_secs(10) {
            break log;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    // 1. Sync RPC: the caller got the payment, with a gateway transaction id.
    let sync = report.sync.expect("sync ran");
    assert_eq!(sync.payment.order_id, "order_123");
    assert_eq!(sync.payment.amount, 99.99);
    assert_eq!(sync.payment.status, PaymentStatus::Completed);
    assert!(
        is_transaction_id(&sync.payment.transaction_id),
        "{:?}",
        sync.payment
    );
    assert!(log.contains(&Happened::PaymentCompleted(sync.payment.clone())));

    // 2. Async RPC: the email was sent in the background, exactly once, and published.
    let sent = report.async_rpc.expect("async ran");
    let sent_count = |recipient: &str, subject: &str| {
        log.iter()
            .filter(|h| matches!(h, Happened::EmailSent(e) if e.recipient == recipient && e.subject == subject))
            .count()
    };
    assert_eq!(sent_count(&sent.recipient, &sent.subject), 1, "{log:#?}");

    // 3. Events: the order's orders.created reached each of the three services once.
    let events = report.events.expect("events ran");
    let counts = reactions(&log);
    for what in ["reserved", "confirmed", "tracked"] {
        assert_eq!(
            counts.get(&(what, events.order.order_id.clone())),
            Some(&1),
            "{what} for {}: {counts:#?}",
            events.order.order_id
        );
    }

    // 4. Mixed: paid synchronously, then email, sale and shipping in the background, once each.
    let mixed = report.mixed.expect("mixed ran");
    let confirmed = &mixed.confirmation;
    assert_eq!(confirmed.status, OrderStatus::Paid);
    assert!(
        is_transaction_id(&confirmed.transaction_id),
        "{confirmed:?}"
    );
    assert!(log.iter().any(|h| matches!(h,
        Happened::PaymentCompleted(p) if p.order_id == confirmed.order_id
            && p.transaction_id == confirmed.transaction_id)));
    let id = &confirmed.order_id;
    assert_eq!(
        log.iter()
            .filter(|h| matches!(h, Happened::EmailSent(e) if e.subject == format!("Order {id} confirmed")))
            .count(),
        1
    );
    assert_eq!(
        log.iter()
            .filter(|h| matches!(h, Happened::SaleRecorded { order_id, amount }
                if order_id == id && *amount == confirmed.total))
            .count(),
        1
    );
    assert_eq!(
        log.iter()
            .filter(|h| matches!(h, Happened::ShippingScheduled(s) if &s.order_id == id))
            .count(),
        1
    );
    // ... and the order over the card limit failed with PaymentFailed and was cancelled.
    assert!(mixed.failure_reason.contains("card limit"), "{mixed:?}");
    assert!(log.iter().any(|h| matches!(h,
        Happened::OrderCancelled { order_id, .. } if *order_id == mixed.failed_order_id)));
    assert!(!log.iter().any(|h| matches!(h,
        Happened::SaleRecorded { order_id, .. } if *order_id == mixed.failed_order_id)));
    assert_eq!(
        counts.get(&("released", mixed.failed_order_id.clone())),
        Some(&1)
    );

    // 5. Performance: five payments with transaction ids, five emails sent.
    let performance = report.performance.expect("performance ran");
    assert_eq!(performance.payments.len(), 5);
    for payment in &performance.payments {
        assert!(is_transaction_id(&payment.transaction_id), "{payment:?}");
    }
    for (recipient, subject) in &performance.emails {
        assert_eq!(sent_count(recipient, subject), 1, "{recipient}");
    }

    // 6. Errors: declined → typed error → order cancelled; invalid recipient → emails.failed,
    // handled by error_handling_service.
    let errors = report.errors.expect("errors ran");
    assert!(errors.decline_reason.contains("card limit"), "{errors:?}");
    assert!(log.iter().any(|h| matches!(h,
        Happened::PaymentDeclined { order_id, .. } if *order_id == errors.order.order_id)));
    assert_eq!(errors.cancelled.order_id, errors.order.order_id);
    assert_eq!(errors.cancelled.status, OrderStatus::Cancelled);
    assert_eq!(
        counts.get(&("released", errors.order.order_id.clone())),
        Some(&1)
    );
    let handled: Vec<_> = log
        .iter()
        .filter_map(|h| match h {
            Happened::EmailFailureHandled(failed) => Some(failed),
            _ => None,
        })
        .collect();
    assert_eq!(handled.len(), 1, "{log:#?}");
    assert_eq!(handled[0].recipient, errors.invalid_recipient);
    assert!(!log.iter().any(|h| matches!(h,
        Happened::EmailSent(e) if e.recipient == errors.invalid_recipient)));

    // 7. Batch: 100 results from 10 sync batches; 100 async items, each done and seen once.
    let batch = report.batch.expect("batch ran");
    let sync_ids: BTreeSet<_> = batch.sync_results.iter().map(|r| &r.item_id).collect();
    assert_eq!(sync_ids.len(), 100);
    assert_eq!(
        log.iter()
            .filter(|h| matches!(h, Happened::BatchProcessed { item_ids } if item_ids.len() == 10))
            .count(),
        10
    );
    let mut processed = BTreeMap::<&str, usize>::new();
    let mut seen = BTreeMap::<&str, usize>::new();
    for happened in &log {
        match happened {
            Happened::ItemProcessed { item_id } => *processed.entry(item_id).or_default() += 1,
            Happened::ItemCompletionSeen { item_id } => *seen.entry(item_id).or_default() += 1,
            _ => {}
        }
    }
    assert_eq!(batch.async_item_ids.len(), 100);
    for item_id in &batch.async_item_ids {
        assert_eq!(processed.get(item_id.as_str()), Some(&1), "{item_id}");
        assert_eq!(seen.get(item_id.as_str()), Some(&1), "{item_id}");
    }

    // Across all sections: every created order got each reaction exactly once.
    let created: Vec<&String> = log
        .iter()
        .filter_map(|h| match h {
            Happened::OrderCreated { order_id } => Some(order_id),
            _ => None,
        })
        .collect();
    assert_eq!(
        created.len(),
        4,
        "events, mixed (2) and errors create an order each"
    );
    for order_id in created {
        for what in ["reserved", "confirmed", "tracked"] {
            assert_eq!(
                counts.get(&(what, order_id.clone())),
                Some(&1),
                "{what} {order_id}"
            );
        }
    }

    // The events went out on the wire, as any NATS client sees them: an emails.sent for every
    // email sent (the runtime may deliver one twice to core subscribers; see the report).
    let mut expected: BTreeSet<(String, String)> = log
        .iter()
        .filter_map(|h| match h {
            Happened::EmailSent(sent) => Some((sent.recipient.clone(), sent.subject.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(expected.len(), 7, "async 1, mixed 1, performance 5");
    while !expected.is_empty() {
        let event = tokio::time::timeout(PATIENCE, emails_sent.next())
            .await
            .unwrap_or_else(|_| panic!("no emails.sent event for {expected:?}"))
            .expect("subscription open");
        let event: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
        let key = (
            event["recipient"].as_str().unwrap().to_owned(),
            event["subject"].as_str().unwrap().to_owned(),
        );
        expected.remove(&key);
    }
    let failed = tokio::time::timeout(PATIENCE, emails_failed.next())
        .await
        .expect("an emails.failed event")
        .expect("subscription open");
    let failed: serde_json::Value = serde_json::from_slice(&failed.payload).unwrap();
    assert_eq!(failed["recipient"], errors.invalid_recipient.as_str());

    host.shutdown().await.expect("clean shutdown");
}

/// `generated-example serve` in its own process serves a client here and stops on SIGTERM.
#[cfg(unix)]
#[tokio::test]
async fn serve_runs_services_until_sigterm() {
    let server = NatsServer::start().await.expect("nats-server starts");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_generated-example"))
        .args(["serve", "order_service", "--delay-scale", "0.01"])
        .env("NATS_URL", server.url())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the example starts");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let serving = tokio::time::timeout(PATIENCE, async {
        while let Some(line) = stdout.next_line().await.expect("read stdout") {
            if line.starts_with("Serving ") {
                return line;
            }
        }
        panic!("the example ended without serving");
    })
    .await
    .expect("the example serves");
    assert!(serving.contains("order_service"), "{serving}");

    let nats = natsgen::connect(server.url().as_str())
        .await
        .expect("connect");
    let orders = OrderServiceClient::new(&nats);
    let payment = orders
        .process_payment("order_1".into(), 5.0)
        .await
        .expect("the child process answers");
    assert!(is_transaction_id(&payment.transaction_id), "{payment:?}");

    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
        .expect("the child runs");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("the example stops")
        .expect("wait");
    assert!(status.success(), "{status}");
    let mut rest = Vec::new();
    while let Some(line) = stdout.next_line().await.expect("read stdout") {
        rest.push(line);
    }
    assert!(rest.iter().any(|line| line == "Stopped."), "{rest:?}");

    match orders.process_payment("order_2".into(), 5.0).await {
        Err(CallError::ServiceUnavailable { service, .. }) => assert_eq!(service, "order_service"),
        other => panic!("nothing should serve order_service any more: {other:?}"),
    }
}
