//! The walkthrough's services: one plain struct per service of `schemas/ecommerce.yaml`, each
//! implementing its generated trait with `async fn`s.
//!
//! The "work" is simulated: the payment gateway takes 2 s, an email 3 s, scaled by [`Delays`].
//! Every service writes what it does to the console (`[Inventory] Reserving ...`) and to the
//! shared [`Observations`], which is how the walkthrough knows when background work is done and
//! how the tests check what happened.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::ValueEnum;
use natsgen::{CallError, Context, Host, ServiceError, Timestamp};
use tokio::sync::watch;

use crate::ecommerce::{
    AnalyticsService, AnalyticsServiceClient, AnalyticsServiceServer, BatchItem,
    BatchItemProcessed, BatchItemResult, BatchMonitor, BatchMonitorServer, BatchService,
    BatchServiceServer, EcommerceWorkflow, EcommerceWorkflowServer, EmailService,
    EmailServiceServer, EmailsFailed, EmailsSent, ErrorHandlingService, ErrorHandlingServiceServer,
    Events, InventoryService, InventoryServiceServer, NotificationService,
    NotificationServiceClient, NotificationServiceServer, Order, OrderConfirmation, OrderItem,
    OrderRequest, OrderService, OrderServiceClient, OrderServiceServer, OrderStatus,
    OrdersCancelled, PaymentResult, PaymentStatus, ProcessOrderError, ProcessPaymentError,
    ShippingScheduled, ShippingService, ShippingServiceClient, ShippingServiceServer,
};

/// The payment gateway declines charges above this amount.
pub const CARD_LIMIT: f64 = 10_000.0;

/// How long the simulated work takes at delay scale 1.
pub mod simulated {
    use std::time::Duration;

    /// The payment gateway, per charge.
    pub const PAYMENT: Duration = Duration::from_secs(2);
    /// Sending one email.
    pub const EMAIL: Duration = Duration::from_secs(3);
    /// Recording a sale or scheduling a shipment.
    pub const BACKGROUND_TASK: Duration = Duration::from_millis(500);
    /// `process_batch`, per item.
    pub const BATCH_ITEM_SYNC: Duration = Duration::from_millis(10);
    /// `process_item`, per item.
    pub const BATCH_ITEM_ASYNC: Duration = Duration::from_millis(50);
}

/// Scales every simulated delay: 1.0 is the walkthrough's timing, the tests use 0.01.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delays {
    scale: f64,
}

impl Delays {
    /// Delays multiplied by `scale`; a negative or non-finite scale counts as 0 (no delays).
    pub fn scaled(scale: f64) -> Self {
        let scale = if scale.is_finite() {
            scale.max(0.0)
        } else {
            0.0
        };
        Delays { scale }
    }

    /// The factor.
    pub fn scale(self) -> f64 {
        self.scale
    }

    /// `duration` scaled.
    pub fn of(self, duration: Duration) -> Duration {
        Duration::try_from_secs_f64(duration.as_secs_f64() * self.scale).unwrap_or(Duration::MAX)
    }

    /// Waits as long as the simulated work takes.
    pub async fn simulate(self, work: Duration) {
        tokio::time::sleep(self.of(work)).await;
    }
}

impl Default for Delays {
    fn default() -> Self {
        Delays::scaled(1.0)
    }
}

/// Something a service did (or, for [`Happened::ItemCompletionSeen`], saw).
#[derive(Debug, Clone, PartialEq)]
pub enum Happened {
    /// `order_service.create_order`.
    OrderCreated { order_id: String },
    /// `order_service.cancel_order`.
    OrderCancelled { order_id: String, reason: String },
    /// `order_service.process_payment` charged the order.
    PaymentCompleted(PaymentResult),
    /// `order_service.process_payment` declined the charge.
    PaymentDeclined { order_id: String, reason: String },
    /// `notification_service.send_email` sent an email (and published `emails.sent`).
    EmailSent(EmailsSent),
    /// `notification_service.send_email` gave up on an email (and published `emails.failed`).
    EmailFailed(EmailsFailed),
    /// `inventory_service` reacted to `orders.created`.
    InventoryReserved { order_id: String },
    /// `inventory_service` reacted to `orders.cancelled`.
    InventoryReleased { order_id: String },
    /// `email_service` reacted to `orders.created`.
    ConfirmationSent { order_id: String },
    /// `analytics_service` reacted to `orders.created`.
    OrderTracked { order_id: String },
    /// `analytics_service.record_sale`.
    SaleRecorded { order_id: String, amount: f64 },
    /// `shipping_service.schedule_shipping`.
    ShippingScheduled(ShippingScheduled),
    /// `error_handling_service` reacted to `emails.failed`.
    EmailFailureHandled(EmailsFailed),
    /// `batch_service.process_batch` processed these items.
    BatchProcessed { item_ids: Vec<String> },
    /// `batch_service.process_item` processed an item (and published `batch.item_processed`).
    ItemProcessed { item_id: String },
    /// `batch_monitor` saw a `batch.item_processed` event.
    ItemCompletionSeen { item_id: String },
}

/// What the services of this process did, in order: the walkthrough waits on it, tests read it.
#[derive(Debug)]
pub struct Observations {
    log: watch::Sender<Vec<Happened>>,
    keep: bool,
}

/// Background work did not finish in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotDoneYet {
    /// How long was waited.
    pub waited: Duration,
}

impl Observations {
    /// An empty log that keeps everything.
    pub fn new() -> Self {
        Observations {
            log: watch::Sender::new(Vec::new()),
            keep: true,
        }
    }

    /// A log that keeps nothing, for services that run for a long time (`serve`).
    pub fn discarding() -> Self {
        Observations {
            keep: false,
            ..Observations::new()
        }
    }

    /// Adds an entry and wakes whoever waits.
    pub fn record(&self, happened: Happened) {
        if self.keep {
            self.log.send_modify(|log| log.push(happened));
        }
    }

    /// A copy of the log.
    pub fn snapshot(&self) -> Vec<Happened> {
        self.log.borrow().clone()
    }

    /// How many entries match.
    pub fn count(&self, matches: impl Fn(&Happened) -> bool) -> usize {
        self.log.borrow().iter().filter(|h| matches(h)).count()
    }

    /// Waits until `done` holds for the log, at most `within`.
    pub async fn wait_until(
        &self,
        within: Duration,
        mut done: impl FnMut(&[Happened]) -> bool,
    ) -> Result<(), NotDoneYet> {
        let mut log = self.log.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail with a closed channel.
        let finished = tokio::time::timeout(within, log.wait_for(|log| done(log)))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if finished {
            Ok(())
        } else {
            Err(NotDoneYet { waited: within })
        }
    }
}

impl Default for Observations {
    fn default() -> Self {
        Observations::new()
    }
}

/// What every service gets: where to record and how fast to work.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    /// The log of what happened.
    pub observations: Arc<Observations>,
    /// The simulated delays.
    pub delays: Delays,
}

impl Shared {
    /// Services recording into `observations`, working at `delays`.
    pub fn new(observations: Arc<Observations>, delays: Delays) -> Self {
        Shared {
            observations,
            delays,
        }
    }

    fn record(&self, happened: Happened) {
        self.observations.record(happened);
    }
}

/// The services of the schema, by their names there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ServiceName {
    OrderService,
    NotificationService,
    InventoryService,
    EmailService,
    AnalyticsService,
    ShippingService,
    EcommerceWorkflow,
    ErrorHandlingService,
    BatchService,
    BatchMonitor,
}

impl ServiceName {
    /// Every service, in schema order.
    pub const ALL: [ServiceName; 10] = [
        ServiceName::OrderService,
        ServiceName::NotificationService,
        ServiceName::InventoryService,
        ServiceName::EmailService,
        ServiceName::AnalyticsService,
        ServiceName::ShippingService,
        ServiceName::EcommerceWorkflow,
        ServiceName::ErrorHandlingService,
        ServiceName::BatchService,
        ServiceName::BatchMonitor,
    ];

    /// The name as the schema (and NATS) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::OrderService => "order_service",
            ServiceName::NotificationService => "notification_service",
            ServiceName::InventoryService => "inventory_service",
            ServiceName::EmailService => "email_service",
            ServiceName::AnalyticsService => "analytics_service",
            ServiceName::ShippingService => "shipping_service",
            ServiceName::EcommerceWorkflow => "ecommerce_workflow",
            ServiceName::ErrorHandlingService => "error_handling_service",
            ServiceName::BatchService => "batch_service",
            ServiceName::BatchMonitor => "batch_monitor",
        }
    }
}

/// Adds the named services to `host`, each a fresh instance sharing `shared`.
pub fn serve(mut host: Host, services: &[ServiceName], shared: &Shared) -> Host {
    for &service in services {
        let shared = shared.clone();
        host = match service {
            ServiceName::OrderService => host.serve(OrderServiceServer::new(Orders::new(shared))),
            ServiceName::NotificationService => {
                host.serve(NotificationServiceServer::new(Notifications { shared }))
            }
            ServiceName::InventoryService => {
                host.serve(InventoryServiceServer::new(Inventory::new(shared)))
            }
            ServiceName::EmailService => host.serve(EmailServiceServer::new(Emails { shared })),
            ServiceName::AnalyticsService => {
                host.serve(AnalyticsServiceServer::new(Analytics { shared }))
            }
            ServiceName::ShippingService => {
                host.serve(ShippingServiceServer::new(Shipping { shared }))
            }
            ServiceName::EcommerceWorkflow => host.serve(EcommerceWorkflowServer::new(Workflow)),
            ServiceName::ErrorHandlingService => {
                host.serve(ErrorHandlingServiceServer::new(ErrorHandler { shared }))
            }
            ServiceName::BatchService => host.serve(BatchServiceServer::new(Batches { shared })),
            ServiceName::BatchMonitor => {
                host.serve(BatchMonitorServer::new(BatchCompletions { shared }))
            }
        };
    }
    host
}

// ---------------------------------------------------------------------------------------------
// Sync RPC: orders and payments
// ---------------------------------------------------------------------------------------------

/// `order_service`: keeps the orders it created in memory (so an order can only be cancelled by
/// the instance that created it; a real service would use a database).
#[derive(Debug)]
pub struct Orders {
    shared: Shared,
    orders: Mutex<HashMap<String, Order>>,
}

impl Orders {
    /// An order service with no orders yet.
    pub fn new(shared: Shared) -> Self {
        Orders {
            shared,
            orders: Mutex::new(HashMap::new()),
        }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, HashMap<String, Order>> {
        // The map is consistent after every statement, so a panic elsewhere cannot corrupt it.
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OrderService for Orders {
    async fn create_order(
        &self,
        ctx: &Context,
        user_id: String,
        items: Vec<OrderItem>,
    ) -> Result<Order, ServiceError> {
        if items.is_empty() {
            return Err(ServiceError::bad_request(
                "an order needs at least one item",
            ));
        }
        let total = items
            .iter()
            .map(|item| f64::from(item.quantity) * item.unit_price)
            .sum();
        let order = {
            let mut orders = self.store();
            let order_id = loop {
                let id = format!("order_{}", rand::random_range(100..1_000_000));
                if !orders.contains_key(&id) {
                    break id;
                }
            };
            let order = Order {
                order_id: order_id.clone(),
                user_id,
                items,
                total,
                status: OrderStatus::Created,
                created_at: Timestamp::now(),
            };
            orders.insert(order_id, order.clone());
            order
        };
        self.shared.record(Happened::OrderCreated {
            order_id: order.order_id.clone(),
        });
        // Whoever cares (inventory, email, analytics) reacts; we neither know nor wait.
        ctx.emit::<Events>()
            .orders_created(&order)
            .context(ctx)
            .await?;
        Ok(order)
    }

    async fn process_payment(
        &self,
        _ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<PaymentResult, ProcessPaymentError> {
        // The payment gateway takes its time, whatever it decides.
        self.shared.delays.simulate(simulated::PAYMENT).await;
        if amount > CARD_LIMIT {
            let reason = format!(
                "{} exceeds the card limit of {}",
                usd(amount),
                usd(CARD_LIMIT)
            );
            self.shared.record(Happened::PaymentDeclined {
                order_id,
                reason: reason.clone(),
            });
            return Err(ProcessPaymentError::PaymentDeclined { reason });
        }
        let payment = PaymentResult {
            order_id,
            amount,
            status: PaymentStatus::Completed,
            transaction_id: format!("txn_{}", rand::random_range(10_000..100_000)),
            processed_at: Timestamp::now(),
        };
        if let Some(order) = self.store().get_mut(&payment.order_id) {
            order.status = OrderStatus::Paid;
        }
        say!(
            "[Payments] Charged {} for {}: {}",
            usd(payment.amount),
            payment.order_id,
            payment.transaction_id
        );
        self.shared
            .record(Happened::PaymentCompleted(payment.clone()));
        Ok(payment)
    }

    async fn cancel_order(
        &self,
        ctx: &Context,
        order_id: String,
        reason: String,
    ) -> Result<Order, ServiceError> {
        let order = {
            let mut orders = self.store();
            let Some(order) = orders.get_mut(&order_id) else {
                return Err(ServiceError::bad_request(format!(
                    "no order {order_id} here (orders live in the memory of the instance that \
                     created them)"
                )));
            };
            order.status = OrderStatus::Cancelled;
            order.clone()
        };
        self.shared.record(Happened::OrderCancelled {
            order_id: order_id.clone(),
            reason: reason.clone(),
        });
        ctx.emit::<Events>()
            .orders_cancelled(&OrdersCancelled { order_id, reason })
            .context(ctx)
            .await?;
        Ok(order)
    }
}

// ---------------------------------------------------------------------------------------------
// Async RPC: notifications
// ---------------------------------------------------------------------------------------------

/// `notification_service`.
#[derive(Debug)]
pub struct Notifications {
    shared: Shared,
}

impl NotificationService for Notifications {
    async fn send_email(
        &self,
        ctx: &Context,
        recipient: String,
        subject: String,
        _body: String,
    ) -> Result<(), ServiceError> {
        let events = ctx.emit::<Events>();
        if let Err(error) = check_address(&recipient) {
            // Retrying cannot fix an address: report it and finish, so the call is not retried.
            say!("[Email] Failed to send to {recipient}: {error}");
            let failed = EmailsFailed {
                recipient,
                subject,
                error,
            };
            events.emails_failed(&failed).context(ctx).await?;
            self.shared.record(Happened::EmailFailed(failed));
            return Ok(());
        }
        self.shared.delays.simulate(simulated::EMAIL).await;
        say!("[Background] Email sent to {recipient}: {subject}");
        let sent = EmailsSent {
            recipient,
            subject,
            sent_at: Timestamp::now(),
        };
        events.emails_sent(&sent).context(ctx).await?;
        self.shared.record(Happened::EmailSent(sent));
        Ok(())
    }
}

/// A deliberately simple address check: `name@domain`, and no "invalid" in it.
fn check_address(recipient: &str) -> Result<(), String> {
    match recipient.split_once('@') {
        Some((name, domain)) if !name.is_empty() && domain.contains('.') => {}
        _ => return Err(format!("{recipient:?} is not an email address")),
    }
    if recipient.contains("invalid") {
        return Err("the mail server rejected the address".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Events: three services react to `orders.created`
// ---------------------------------------------------------------------------------------------

/// `inventory_service`.
#[derive(Debug)]
pub struct Inventory {
    shared: Shared,
    /// Units reserved per SKU by this instance, for the stock report.
    reserved: Mutex<BTreeMap<String, u64>>,
}

impl Inventory {
    fn new(shared: Shared) -> Self {
        Inventory {
            shared,
            reserved: Mutex::default(),
        }
    }
}

impl InventoryService for Inventory {
    async fn reserve_inventory(&self, _ctx: &Context, order: Order) -> Result<(), ServiceError> {
        {
            let mut reserved = self.reserved.lock().unwrap_or_else(PoisonError::into_inner);
            for item in &order.items {
                *reserved.entry(item.sku.clone()).or_default() += u64::from(item.quantity);
            }
        }
        let units: u32 = order.items.iter().map(|item| item.quantity).sum();
        say!(
            "[Inventory] Reserving {units} item(s) for {}",
            order.order_id
        );
        self.shared.record(Happened::InventoryReserved {
            order_id: order.order_id,
        });
        Ok(())
    }

    async fn release_inventory(
        &self,
        _ctx: &Context,
        event: OrdersCancelled,
    ) -> Result<(), ServiceError> {
        say!("[Inventory] Releasing the items of {}", event.order_id);
        self.shared.record(Happened::InventoryReleased {
            order_id: event.order_id,
        });
        Ok(())
    }

    /// Every 30 s, on one instance of the service: the units reserved per SKU. Logged at info
    /// level (`RUST_LOG=info`), so the walkthrough's own output stays as it is.
    async fn stock_report(&self, ctx: &Context) -> Result<(), ServiceError> {
        let reserved = self
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let units: u64 = reserved.values().sum();
        tracing::info!(
            tick = ctx.message_id().unwrap_or_default(),
            skus = reserved.len(),
            units,
            "[Inventory] Stock report: {reserved:?}"
        );
        Ok(())
    }
}

/// `email_service`.
#[derive(Debug)]
pub struct Emails {
    shared: Shared,
}

impl EmailService for Emails {
    async fn send_order_confirmation(
        &self,
        _ctx: &Context,
        order: Order,
    ) -> Result<(), ServiceError> {
        say!("[Email] Sending confirmation for {}", order.order_id);
        self.shared.record(Happened::ConfirmationSent {
            order_id: order.order_id,
        });
        Ok(())
    }
}

/// `analytics_service`.
#[derive(Debug)]
pub struct Analytics {
    shared: Shared,
}

impl AnalyticsService for Analytics {
    async fn record_sale(
        &self,
        _ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<(), ServiceError> {
        self.shared
            .delays
            .simulate(simulated::BACKGROUND_TASK)
            .await;
        say!(
            "[Background] Analytics updated: {} from {order_id}",
            usd(amount)
        );
        self.shared
            .record(Happened::SaleRecorded { order_id, amount });
        Ok(())
    }

    async fn track_order(&self, _ctx: &Context, order: Order) -> Result<(), ServiceError> {
        say!("[Analytics] Tracking {}", order.order_id);
        self.shared.record(Happened::OrderTracked {
            order_id: order.order_id,
        });
        Ok(())
    }
}

/// `shipping_service`.
#[derive(Debug)]
pub struct Shipping {
    shared: Shared,
}

impl ShippingService for Shipping {
    async fn schedule_shipping(
        &self,
        ctx: &Context,
        order_id: String,
        address: String,
    ) -> Result<(), ServiceError> {
        self.shared
            .delays
            .simulate(simulated::BACKGROUND_TASK)
            .await;
        say!("[Background] Shipping scheduled: {order_id} to {address}");
        let scheduled = ShippingScheduled { order_id, address };
        ctx.emit::<Events>()
            .shipping_scheduled(&scheduled)
            .context(ctx)
            .await?;
        self.shared.record(Happened::ShippingScheduled(scheduled));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Mixed: the workflow calls the other services
// ---------------------------------------------------------------------------------------------

/// `ecommerce_workflow`: calls the other services, so it needs nothing of its own.
#[derive(Debug)]
pub struct Workflow;

impl EcommerceWorkflow for Workflow {
    async fn process_order(
        &self,
        ctx: &Context,
        order_data: OrderRequest,
    ) -> Result<OrderConfirmation, ProcessOrderError> {
        // Clients from the context make their calls part of this one: same caller chain and
        // trace, and no longer than this call's remaining deadline.
        let orders = ctx.client::<OrderServiceClient>();

        // The critical path, synchronously: each step needs the one before.
        let order = orders
            .create_order(order_data.user_id, order_data.items)
            .await?;
        say!("[Workflow] Order created: {}", order.order_id);

        let payment = match orders
            .process_payment(order.order_id.clone(), order.total)
            .await
        {
            Ok(payment) => payment,
            Err(error) => {
                let reason = decline_reason(error)?;
                say!("[Workflow] Payment failed for {}: {reason}", order.order_id);
                orders
                    .cancel_order(order.order_id.clone(), reason.clone())
                    .await?;
                return Err(ProcessOrderError::PaymentFailed {
                    order_id: order.order_id,
                    reason,
                });
            }
        };
        say!("[Workflow] Payment completed: {}", payment.transaction_id);

        // Everything else in the background: each call returns once JetStream stored it. The
        // idempotency keys make a retried workflow send each of them once.
        let id = &order.order_id;
        ctx.client::<NotificationServiceClient>()
            .send_email(
                order_data.email,
                format!("Order {id} confirmed"),
                format!("We received {} for order {id}.", usd(order.total)),
            )
            .idempotency_key(format!("{id}/confirmation"))
            .await?;
        ctx.client::<AnalyticsServiceClient>()
            .record_sale(id.clone(), order.total)
            .idempotency_key(format!("{id}/sale"))
            .await?;
        ctx.client::<ShippingServiceClient>()
            .schedule_shipping(id.clone(), order_data.shipping_address)
            .idempotency_key(format!("{id}/shipping"))
            .await?;

        Ok(OrderConfirmation {
            order_id: order.order_id,
            transaction_id: payment.transaction_id,
            total: order.total,
            status: OrderStatus::Paid,
            message: "Order confirmed. Background tasks initiated.".into(),
        })
    }
}

/// Why the gateway said no; any other failure (timeout, no payment service, ...) as it is.
fn decline_reason(error: CallError<ProcessPaymentError>) -> Result<String, ServiceError> {
    match error {
        CallError::Service(ProcessPaymentError::PaymentDeclined { reason }) => Ok(reason),
        CallError::Service(ProcessPaymentError::InsufficientFunds) => {
            Ok("insufficient funds".into())
        }
        other => Err(ServiceError::from(other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Error handling
// ---------------------------------------------------------------------------------------------

/// `error_handling_service`.
#[derive(Debug)]
pub struct ErrorHandler {
    shared: Shared,
}

impl ErrorHandlingService for ErrorHandler {
    async fn handle_email_failure(
        &self,
        _ctx: &Context,
        failure: EmailsFailed,
    ) -> Result<(), ServiceError> {
        // A real one would alert someone or ask the customer for a new address.
        say!(
            "[ErrorHandler] Handling email failure: {} - {}",
            failure.recipient,
            failure.error
        );
        self.shared.record(Happened::EmailFailureHandled(failure));
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Batch processing
// ---------------------------------------------------------------------------------------------

/// `batch_service`: "processing" an item doubles its value.
#[derive(Debug)]
pub struct Batches {
    shared: Shared,
}

impl BatchService for Batches {
    async fn process_batch(
        &self,
        _ctx: &Context,
        items: Vec<BatchItem>,
    ) -> Result<Vec<BatchItemResult>, ServiceError> {
        let per_item = self.shared.delays.of(simulated::BATCH_ITEM_SYNC);
        let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
        tokio::time::sleep(per_item.saturating_mul(count)).await;
        let results: Vec<BatchItemResult> = items.into_iter().map(process).collect();
        self.shared.record(Happened::BatchProcessed {
            item_ids: results.iter().map(|r| r.item_id.clone()).collect(),
        });
        Ok(results)
    }

    async fn process_item(&self, ctx: &Context, item: BatchItem) -> Result<(), ServiceError> {
        self.shared
            .delays
            .simulate(simulated::BATCH_ITEM_ASYNC)
            .await;
        let done = process(item);
        ctx.emit::<Events>()
            .batch_item_processed(&BatchItemProcessed {
                item_id: done.item_id.clone(),
                result: done.result,
            })
            .context(ctx)
            .await?;
        self.shared.record(Happened::ItemProcessed {
            item_id: done.item_id,
        });
        Ok(())
    }
}

fn process(item: BatchItem) -> BatchItemResult {
    BatchItemResult {
        item_id: item.item_id,
        result: item.value * 2.0,
    }
}

/// `batch_monitor`: every instance sees every completion (the handler is `mode: broadcast`).
#[derive(Debug)]
pub struct BatchCompletions {
    shared: Shared,
}

impl BatchMonitor for BatchCompletions {
    async fn on_item_processed(
        &self,
        _ctx: &Context,
        event: BatchItemProcessed,
    ) -> Result<(), ServiceError> {
        self.shared.record(Happened::ItemCompletionSeen {
            item_id: event.item_id,
        });
        Ok(())
    }
}

/// `$1,234.50`.
pub fn usd(amount: f64) -> String {
    let cents = (amount * 100.0).round();
    if !cents.is_finite() || cents.abs() >= 1e15 {
        return format!("${amount}");
    }
    // In range (checked above), so the conversion is exact.
    let cents = cents as i64;
    let sign = if cents < 0 { "-" } else { "" };
    let (dollars, cents) = (cents.abs() / 100, cents.abs() % 100);
    let digits = dollars.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}${grouped}.{cents:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_grouped() {
        assert_eq!(usd(99.99), "$99.99");
        assert_eq!(usd(12_500.0), "$12,500.00");
        assert_eq!(usd(1_234_567.891), "$1,234,567.89");
        assert_eq!(usd(0.0), "$0.00");
    }

    #[test]
    fn addresses_are_checked() {
        assert!(check_address("user@example.com").is_ok());
        assert!(check_address("invalid@example.com").is_err());
        assert!(check_address("not-an-address").is_err());
        assert!(check_address("@example.com").is_err());
    }

    #[test]
    fn delays_scale_and_never_panic() {
        assert_eq!(
            Delays::scaled(0.01).of(Duration::from_secs(2)),
            Duration::from_millis(20)
        );
        assert_eq!(
            Delays::scaled(-1.0).of(Duration::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(
            Delays::scaled(f64::NAN).of(Duration::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(
            Delays::scaled(1e300).of(Duration::from_secs(2)),
            Duration::MAX
        );
    }
}
