#![deny(warnings)]

pub mod ecommerce {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/ecommerce.rs"));
}

use ecommerce::{
    Order, OrderItem, OrderService, OrderServiceApi, OrderServiceServer, OrderStatus,
    PaymentResult, PaymentStatus, ProcessPaymentError,
};
use natsgen::{CallError, CallOptions, Context, ServiceError, Timestamp};

struct Orders;

impl OrderService for Orders {
    async fn create_order(
        &self,
        ctx: &Context,
        user_id: String,
        items: Vec<OrderItem>,
    ) -> Result<Order, ServiceError> {
        let total = items.iter().map(|i| f64::from(i.quantity) * i.unit_price).sum();
        let order = Order {
            order_id: "order_1".into(),
            user_id,
            items,
            total,
            status: OrderStatus::Created,
            created_at: Timestamp::now(),
        };
        ctx.emit::<ecommerce::Events>().orders_created(&order).await?;
        Ok(order)
    }

    async fn process_payment(
        &self,
        _ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<PaymentResult, ProcessPaymentError> {
        if amount > 10_000.0 {
            return Err(ProcessPaymentError::PaymentDeclined { reason: "limit".into() });
        }
        Ok(PaymentResult {
            order_id,
            amount,
            status: PaymentStatus::Completed,
            transaction_id: "txn_00001".into(),
            processed_at: Timestamp::now(),
        })
    }

    async fn cancel_order(&self, _ctx: &Context, order_id: String, _reason: String) -> Result<Order, ServiceError> {
        Err(ServiceError::internal(format!("cannot cancel {order_id}")))
    }
}

/// Callers can be generic over the client trait, so tests can substitute a mock.
async fn pay<A: OrderServiceApi>(api: &A) -> Result<String, CallError<ProcessPaymentError>> {
    let payment = api.process_payment("order_1".into(), 5.0, CallOptions::default()).await?;
    Ok(payment.transaction_id)
}

#[allow(dead_code)]
async fn wiring(connection: natsgen::Connection) -> Result<(), Box<dyn std::error::Error>> {
    let client = ecommerce::OrderServiceClient::new(&connection);
    let _ = pay(&client).await;
    match client.process_payment("o".into(), 1.0).timeout(std::time::Duration::from_secs(1)).await {
        Ok(p) => println!("{}", p.transaction_id),
        Err(CallError::Service(ProcessPaymentError::PaymentDeclined { reason })) => println!("{reason}"),
        Err(other) => println!("{other}"),
    }
    let notifications = ecommerce::NotificationServiceClient::new(&connection);
    notifications
        .send_email("a@example.com".into(), "hi".into(), "body".into())
        .idempotency_key("order_1/confirmation")
        .await?;
    let _handle = natsgen::Host::new(connection).serve(OrderServiceServer::new(Orders)).start().await?;
    Ok(())
}

fn main() {}
