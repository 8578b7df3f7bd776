// What the runtime's documentation examples run against, included by their hidden lines:
// the code generated for `tests/schemas/shop.yaml`, its services implemented, and a function that
// serves them on a nats-server of their own.

pub mod shop {
    include!("shop.rs");
}

/// `order_service`: orders over 1,000 are declined.
pub struct Orders;

impl shop::OrderService for Orders {
    async fn create_order(
        &self,
        _ctx: &natsgen::Context,
        user_id: String,
        total: f64,
    ) -> Result<shop::Order, natsgen::ServiceError> {
        Ok(shop::Order { order_id: format!("order_of_{user_id}"), total, gift_note: None })
    }

    async fn process_payment(
        &self,
        _ctx: &natsgen::Context,
        order_id: String,
        amount: f64,
    ) -> Result<shop::Order, shop::order_service::ProcessPaymentError> {
        if amount > 1_000.0 {
            return Err(shop::order_service::ProcessPaymentError::PaymentDeclined {
                reason: "over the limit".into(),
            });
        }
        Ok(shop::Order { order_id, total: amount, gift_note: None })
    }
}

/// `notification_service`: sends nothing.
pub struct Notifications;

impl shop::NotificationService for Notifications {
    async fn send_email(
        &self,
        _ctx: &natsgen::Context,
        _to: String,
        _subject: String,
        _body: String,
    ) -> Result<(), natsgen::ServiceError> {
        Ok(())
    }
}

/// A nats-server on a free loopback port, a connection to it, and both shop services served.
pub async fn shop_running() -> Result<
    (natsgen::testing::NatsServer, natsgen::Connection, natsgen::HostHandle),
    Box<dyn std::error::Error>,
> {
    let server = natsgen::testing::NatsServer::start().await?;
    let nats = natsgen::connect(server.url()).await?;
    let host = natsgen::Host::new(nats.clone())
        .serve(shop::OrderServiceServer::new(Orders))
        .serve(shop::NotificationServiceServer::new(Notifications))
        .start()
        .await?;
    Ok((server, nats, host))
}
