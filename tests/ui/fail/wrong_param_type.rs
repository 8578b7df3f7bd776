pub mod ecommerce {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/ecommerce.rs"));
}

use ecommerce::{Order, OrderItem, OrderService, PaymentResult, ProcessPaymentError};
use natsgen::{Context, ServiceError};

struct Orders;

impl OrderService for Orders {
    async fn create_order(&self, _ctx: &Context, _user_id: String, _items: Vec<OrderItem>) -> Result<Order, ServiceError> {
        Err(ServiceError::internal("unused"))
    }

    // `amount` is declared `f64` in the schema.
    async fn process_payment(&self, _ctx: &Context, _order_id: String, _amount: f32) -> Result<PaymentResult, ProcessPaymentError> {
        Err(ProcessPaymentError::InsufficientFunds)
    }

    async fn cancel_order(&self, _ctx: &Context, _order_id: String, _reason: String) -> Result<Order, ServiceError> {
        Err(ServiceError::internal("unused"))
    }
}

fn main() {}
