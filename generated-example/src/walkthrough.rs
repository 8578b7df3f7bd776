//! The sections of the async-patterns walkthrough, each a method of [`Walkthrough`] that calls the
//! services through their generated clients, prints what it sees, and returns what it got.
//!
//! The services may run in this process (as `cargo run -p generated-example` does) or anywhere
//! else on the same NATS server (`generated-example serve`); the calls are the same. Waiting for
//! background work reads this process's [`Observations`], so it sees work done here.

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::ValueEnum;
use futures_util::future::try_join_all;
use natsgen::{CallError, Connection};

use crate::ecommerce::{
    BatchItem, BatchItemResult, BatchServiceClient, EcommerceWorkflowClient,
    NotificationServiceClient, Order, OrderConfirmation, OrderItem, OrderRequest,
    OrderServiceClient, PaymentResult, ProcessOrderError, ProcessPaymentError,
};
use crate::services::{simulated, usd, Delays, Happened, Observations, Shared, CARD_LIMIT};

/// A section of the walkthrough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Section {
    /// Sync RPC: a payment, waiting for the result.
    Sync,
    /// Async RPC: an email, handed off.
    Async,
    /// Events: three services react to `orders.created`.
    Events,
    /// Sync for the critical path, async for the rest.
    Mixed,
    /// Five sync payments against five async emails.
    Performance,
    /// A declined payment (sync) and an undeliverable email (async).
    Errors,
    /// 100 items in sync batches, and 100 async calls.
    Batch,
}

impl Section {
    /// Every section, in order.
    pub const ALL: [Section; 7] = [
        Section::Sync,
        Section::Async,
        Section::Events,
        Section::Mixed,
        Section::Performance,
        Section::Errors,
        Section::Batch,
    ];

    /// The heading, numbered as in the walkthrough.
    pub fn title(self) -> &'static str {
        match self {
            Section::Sync => "1. SYNCHRONOUS RPC PATTERN",
            Section::Async => "2. ASYNCHRONOUS RPC PATTERN",
            Section::Events => "3. EVENT-DRIVEN PATTERN",
            Section::Mixed => "4. MIXED WORKFLOW",
            Section::Performance => "5. PERFORMANCE COMPARISON",
            Section::Errors => "6. ERROR HANDLING",
            Section::Batch => "7. BATCH PROCESSING",
        }
    }
}

/// What the sections got back, for whoever wants to check (the tests do).
#[derive(Debug, Default)]
pub struct Report {
    pub sync: Option<SyncReport>,
    pub async_rpc: Option<AsyncReport>,
    pub events: Option<EventsReport>,
    pub mixed: Option<MixedReport>,
    pub performance: Option<PerformanceReport>,
    pub errors: Option<ErrorsReport>,
    pub batch: Option<BatchReport>,
}

/// Section 1.
#[derive(Debug)]
pub struct SyncReport {
    pub payment: PaymentResult,
}

/// Section 2.
#[derive(Debug)]
pub struct AsyncReport {
    pub recipient: String,
    pub subject: String,
}

/// Section 3.
#[derive(Debug)]
pub struct EventsReport {
    pub order: Order,
}

/// Section 4.
#[derive(Debug)]
pub struct MixedReport {
    pub confirmation: OrderConfirmation,
    /// The order over the card limit: `PaymentFailed` told us its id and the reason.
    pub failed_order_id: String,
    pub failure_reason: String,
}

/// Section 5.
#[derive(Debug)]
pub struct PerformanceReport {
    pub payments: Vec<PaymentResult>,
    /// (recipient, subject) of the emails handed off.
    pub emails: Vec<(String, String)>,
    pub sync_time: Duration,
    pub async_time: Duration,
}

/// Section 6.
#[derive(Debug)]
pub struct ErrorsReport {
    /// The order whose payment was declined.
    pub order: Order,
    /// The reason of the `PaymentDeclined` error the payment call returned.
    pub decline_reason: String,
    /// The order after `cancel_order`.
    pub cancelled: Order,
    /// The address the undeliverable email went to.
    pub invalid_recipient: String,
}

/// Section 7.
#[derive(Debug)]
pub struct BatchReport {
    /// What the 10 `process_batch` calls returned.
    pub sync_results: Vec<BatchItemResult>,
    /// The items sent to `process_item`, whose completion events were counted.
    pub async_item_ids: Vec<String>,
}

/// Runs the sections against services reachable over `nats`.
#[derive(Debug)]
pub struct Walkthrough {
    orders: OrderServiceClient,
    notifications: NotificationServiceClient,
    workflow: EcommerceWorkflowClient,
    batches: BatchServiceClient,
    observations: Arc<Observations>,
    delays: Delays,
    /// Tags this run's batch items, so completions of another run are not counted.
    run_tag: String,
}

impl Walkthrough {
    /// A walkthrough calling over `nats` and waiting on what the services of `shared` record.
    pub fn new(nats: &Connection, shared: &Shared) -> Self {
        Walkthrough {
            orders: OrderServiceClient::new(nats),
            notifications: NotificationServiceClient::new(nats),
            workflow: EcommerceWorkflowClient::new(nats),
            batches: BatchServiceClient::new(nats),
            observations: Arc::clone(&shared.observations),
            delays: shared.delays,
            run_tag: format!("run_{:04x}", rand::random::<u16>()),
        }
    }

    /// Runs `sections` in order.
    pub async fn run(&self, sections: &[Section]) -> anyhow::Result<Report> {
        let mut report = Report::default();
        for &section in sections {
            let title = section.title();
            say!("\n{title}\n{}", "-".repeat(title.len()));
            self.run_section(section, &mut report)
                .await
                .with_context(|| format!("section {title} failed"))?;
        }
        Ok(report)
    }

    async fn run_section(&self, section: Section, report: &mut Report) -> anyhow::Result<()> {
        match section {
            Section::Sync => report.sync = Some(self.sync_rpc().await?),
            Section::Async => report.async_rpc = Some(self.async_rpc().await?),
            Section::Events => report.events = Some(self.events().await?),
            Section::Mixed => report.mixed = Some(self.mixed().await?),
            Section::Performance => report.performance = Some(self.performance().await?),
            Section::Errors => report.errors = Some(self.errors().await?),
            Section::Batch => report.batch = Some(self.batch().await?),
        }
        Ok(())
    }

    /// Section 1: the caller waits for the payment result.
    pub async fn sync_rpc(&self) -> anyhow::Result<SyncReport> {
        say!("Processing payment for order_123...");
        let started = Instant::now();
        let payment = self
            .orders
            .process_payment("order_123".into(), 99.99)
            .await?;
        let at = payment.processed_at.to_offset_date_time();
        say!(
            "Payment completed: {} ({} for {}, {} at {:02}:{:02}:{:02} UTC)",
            payment.transaction_id,
            usd(payment.amount),
            payment.order_id,
            payment.status,
            at.hour(),
            at.minute(),
            at.second()
        );
        say!("Total time: {}", seconds(started.elapsed()));
        Ok(SyncReport { payment })
    }

    /// Section 2: the caller hands the email off and carries on; it is sent in the background.
    pub async fn async_rpc(&self) -> anyhow::Result<AsyncReport> {
        let (recipient, subject) = ("user@example.com".to_owned(), "Order Confirmation");
        let started = Instant::now();
        self.notifications
            .send_email(
                recipient.clone(),
                subject.into(),
                "Your order has been processed.".into(),
            )
            .await?;
        say!("Email request sent, continuing...");
        say!("Total time: {}", seconds(started.elapsed()));
        say!();

        self.wait_for("the email", simulated::EMAIL, |log| {
            log.iter().any(|h| email_sent(h, &recipient, subject))
        })
        .await?;
        say!("(done {} after the request)", seconds(started.elapsed()));
        Ok(AsyncReport {
            recipient,
            subject: subject.into(),
        })
    }

    /// Section 3: `create_order` publishes `orders.created`; three services react, each once.
    pub async fn events(&self) -> anyhow::Result<EventsReport> {
        say!("Creating an order for user_456...");
        let order = self
            .orders
            .create_order("user_456".into(), sample_items())
            .await?;
        say!(
            "Order created: {} ({} items, {})",
            order.order_id,
            order.items.len(),
            usd(order.total)
        );
        let id = order.order_id.clone();
        self.wait_for("the reactions to orders.created", Duration::ZERO, |log| {
            reactions_done(log, &id)
        })
        .await?;
        say!("inventory_service, email_service and analytics_service each reacted.");
        Ok(EventsReport { order })
    }

    /// Section 4: the workflow creates the order and takes the payment synchronously, and
    /// leaves the email, the analytics and the shipping to the background.
    pub async fn mixed(&self) -> anyhow::Result<MixedReport> {
        let started = Instant::now();
        let confirmation = self
            .workflow
            .process_order(order_request("user_789", sample_items()))
            .await?;
        say!(
            "{} ({}, {} paid with {})",
            confirmation.message,
            confirmation.order_id,
            usd(confirmation.total),
            confirmation.transaction_id
        );
        say!("Total time: {} (critical path)", seconds(started.elapsed()));
        say!();

        let id = confirmation.order_id.clone();
        let subject = format!("Order {id} confirmed");
        self.wait_for("the background tasks", simulated::EMAIL, |log| {
            reactions_done(log, &id) && background_done(log, &id, &subject)
        })
        .await?;
        say!("(done {} after the request)", seconds(started.elapsed()));

        say!();
        say!("The same workflow for an order over the card limit:");
        let over_limit = vec![item("RING-1", "Diamond ring", 1, CARD_LIMIT + 2_500.0)];
        let (failed_order_id, failure_reason) = match self
            .workflow
            .process_order(order_request("user_790", over_limit))
            .await
        {
            Err(CallError::Service(ProcessOrderError::PaymentFailed { order_id, reason })) => {
                (order_id, reason)
            }
            Ok(confirmation) => {
                bail!("the workflow confirmed an order over the card limit: {confirmation:?}")
            }
            Err(other) => return Err(other.into()),
        };
        say!(
            "Workflow failed with PaymentFailed: {failure_reason}; {failed_order_id} was cancelled"
        );
        let id = failed_order_id.clone();
        self.wait_for(
            "the reactions to the cancelled order",
            Duration::ZERO,
            |log| reactions_done(log, &id) && inventory_released(log, &id),
        )
        .await?;
        Ok(MixedReport {
            confirmation,
            failed_order_id,
            failure_reason,
        })
    }

    /// Section 5: five payments one after another, then five emails handed off at once.
    pub async fn performance(&self) -> anyhow::Result<PerformanceReport> {
        say!("Sync: 5 payments, one after another...");
        let started = Instant::now();
        let mut payments = Vec::new();
        for i in 1..=5 {
            let payment = self
                .orders
                .process_payment(format!("order_{i}"), 10.0 * f64::from(i))
                .await?;
            say!("Payment {i} completed: {}", payment.transaction_id);
            payments.push(payment);
        }
        let sync_time = started.elapsed();
        say!("Sync processing took: {}", seconds(sync_time));
        say!();

        say!("Async: 5 emails, handed off together...");
        let emails: Vec<(String, String)> = (1..=5)
            .map(|i| (format!("user{i}@example.com"), format!("Notification {i}")))
            .collect();
        let started = Instant::now();
        try_join_all(emails.iter().enumerate().map(|(i, (recipient, subject))| {
            self.notifications
                .send_email(
                    recipient.clone(),
                    subject.clone(),
                    format!("This is notification number {}", i + 1),
                )
                .into_future()
        }))
        .await?;
        let async_time = started.elapsed();

        say!("Async processing took: {}", seconds(async_time));
        say!("Note: the emails are being sent in the background, side by side.");
        say!();
        self.wait_for("the 5 emails", simulated::EMAIL, |log| {
            emails
                .iter()
                .all(|(recipient, subject)| log.iter().any(|h| email_sent(h, recipient, subject)))
        })
        .await?;
        say!(
            "(all 5 done {} after the hand-off)",
            seconds(started.elapsed())
        );
        Ok(PerformanceReport {
            payments,
            emails,
            sync_time,
            async_time,
        })
    }

    /// Section 6: a declined payment arrives as a typed error, so the caller can cancel the order
    /// at once; an email nobody waits for reports its failure as an event.
    pub async fn errors(&self) -> anyhow::Result<ErrorsReport> {
        say!("Sync: an order over the card limit of {}", usd(CARD_LIMIT));
        let order = self
            .orders
            .create_order(
                "user_321".into(),
                vec![item("TV-85", "85\" television", 5, 2_500.0)],
            )
            .await?;
        say!("Order created: {} ({})", order.order_id, usd(order.total));
        let reason = match self
            .orders
            .process_payment(order.order_id.clone(), order.total)
            .await
        {
            // The schema's `PaymentDeclined` error, typed: no string matching.
            Err(CallError::Service(ProcessPaymentError::PaymentDeclined { reason })) => reason,
            Ok(payment) => bail!("the gateway accepted a payment over the limit: {payment:?}"),
            Err(other) => return Err(other.into()),
        };
        say!("Payment failed with PaymentDeclined: {reason}");
        say!("Cancelling {}...", order.order_id);
        let cancelled = self
            .orders
            .cancel_order(
                order.order_id.clone(),
                format!("payment declined: {reason}"),
            )
            .await?;
        say!("Order {} is now {}", cancelled.order_id, cancelled.status);

        say!();
        say!("Async: an email to an address the mail server rejects");
        let invalid_recipient = "invalid-user@example.com".to_owned();
        self.notifications
            .send_email(
                invalid_recipient.clone(),
                "Your receipt".into(),
                "Thank you for your order.".into(),
            )
            .await?;
        say!("Email request sent, continuing...");
        let id = order.order_id.clone();
        self.wait_for("the failure handling", Duration::ZERO, |log| {
            reactions_done(log, &id)
                && inventory_released(log, &id)
                && failure_handled(log, &invalid_recipient)
        })
        .await?;
        Ok(ErrorsReport {
            order,
            decline_reason: reason,
            cancelled,
            invalid_recipient,
        })
    }

    /// Section 7: 100 items in ten sync batches, then 100 async calls whose completion events
    /// are counted.
    pub async fn batch(&self) -> anyhow::Result<BatchReport> {
        let items: Vec<BatchItem> = (0..100)
            .map(|i| BatchItem {
                item_id: format!("{}/item_{i:03}", self.run_tag),
                value: f64::from(i),
            })
            .collect();

        say!("Sync: 100 items in batches of 10");
        let started = Instant::now();
        let mut sync_results = Vec::new();
        for (number, batch) in items.chunks(10).enumerate() {
            let results = self.batches.process_batch(batch.to_vec()).await?;
            say!("Processed batch {}: {} items", number + 1, results.len());
            sync_results.extend(results);
        }
        say!("Sync batches took: {}", seconds(started.elapsed()));

        say!();
        say!("Async: 100 items, one call each");
        let started = Instant::now();
        for item in &items {
            self.batches.process_item(item.clone()).await?;
        }
        say!(
            "Sent {} items for background processing in {}",
            items.len(),
            seconds(started.elapsed())
        );
        let ours: HashSet<&str> = items.iter().map(|item| item.item_id.as_str()).collect();
        let completions = |log: &[Happened]| {
            log.iter()
                .filter_map(|h| match h {
                    Happened::ItemCompletionSeen { item_id } => ours.get(item_id.as_str()),
                    _ => None,
                })
                .collect::<HashSet<_>>()
                .len()
        };
        for milestone in [25, 50, 75, 100] {
            self.wait_for("the batch items", simulated::BATCH_ITEM_ASYNC, |log| {
                completions(log) >= milestone
            })
            .await?;
            say!("Completion events: {milestone}/100");
        }
        say!(
            "All 100 items done {} after the first was sent",
            seconds(started.elapsed())
        );
        Ok(BatchReport {
            sync_results,
            async_item_ids: items.into_iter().map(|item| item.item_id).collect(),
        })
    }

    /// Waits until `done` holds for what the services recorded, giving up after a generous
    /// multiple of `work` (the simulated time the work takes at delay scale 1).
    async fn wait_for(
        &self,
        what: &str,
        work: Duration,
        done: impl FnMut(&[Happened]) -> bool,
    ) -> anyhow::Result<()> {
        let patience = Duration::from_secs(30) + self.delays.of(work).saturating_mul(5);
        if self.observations.wait_until(patience, done).await.is_err() {
            bail!(
                "{what} did not finish within {patience:?}. If other instances of these services \
                 run against the same NATS server (`generated-example serve`), they may have \
                 taken the work: this process only sees what its own services do"
            );
        }
        Ok(())
    }
}

// What the sections wait for, read from the services' log.

/// inventory_service, email_service and analytics_service each handled `orders.created` for
/// the order.
fn reactions_done(log: &[Happened], id: &str) -> bool {
    let reserved = log
        .iter()
        .any(|h| matches!(h, Happened::InventoryReserved { order_id } if order_id == id));
    let confirmed = log
        .iter()
        .any(|h| matches!(h, Happened::ConfirmationSent { order_id } if order_id == id));
    let tracked = log
        .iter()
        .any(|h| matches!(h, Happened::OrderTracked { order_id } if order_id == id));
    reserved && confirmed && tracked
}

/// inventory_service handled `orders.cancelled` for the order.
fn inventory_released(log: &[Happened], id: &str) -> bool {
    log.iter()
        .any(|h| matches!(h, Happened::InventoryReleased { order_id } if order_id == id))
}

/// The workflow's background work for the order is done: email, sale, shipping.
fn background_done(log: &[Happened], id: &str, email_subject: &str) -> bool {
    let emailed = log
        .iter()
        .any(|h| matches!(h, Happened::EmailSent(sent) if sent.subject == email_subject));
    let recorded = log
        .iter()
        .any(|h| matches!(h, Happened::SaleRecorded { order_id, .. } if order_id == id));
    let scheduled = log
        .iter()
        .any(|h| matches!(h, Happened::ShippingScheduled(shipping) if shipping.order_id == id));
    emailed && recorded && scheduled
}

/// error_handling_service handled the `emails.failed` of the recipient.
fn failure_handled(log: &[Happened], recipient: &str) -> bool {
    log.iter().any(
        |h| matches!(h, Happened::EmailFailureHandled(failed) if failed.recipient == recipient),
    )
}

fn email_sent(happened: &Happened, recipient: &str, subject: &str) -> bool {
    match happened {
        Happened::EmailSent(sent) => sent.recipient == recipient && sent.subject == subject,
        _ => false,
    }
}

fn item(sku: &str, name: &str, quantity: u32, unit_price: f64) -> OrderItem {
    OrderItem {
        sku: sku.into(),
        name: name.into(),
        quantity,
        unit_price,
    }
}

fn sample_items() -> Vec<OrderItem> {
    vec![
        item("KB-101", "Mechanical keyboard", 1, 89.99),
        item("USB-C-2M", "USB-C cable", 2, 19.99),
    ]
}

fn order_request(user_id: &str, items: Vec<OrderItem>) -> OrderRequest {
    OrderRequest {
        user_id: user_id.into(),
        email: format!("{user_id}@example.com"),
        items,
        shipping_address: "1 Market Street, Springfield".into(),
    }
}

/// `2.01 seconds`, or `4.2 ms` for what would print as 0.00 seconds.
pub fn seconds(elapsed: Duration) -> String {
    if elapsed < Duration::from_millis(10) {
        format!("{:.1} ms", elapsed.as_secs_f64() * 1000.0)
    } else {
        format!("{:.2} seconds", elapsed.as_secs_f64())
    }
}
