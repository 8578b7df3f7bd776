pub mod ecommerce {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/ecommerce.rs"));
}

use ecommerce::{Order, OrderItem, OrderService};
use natsgen::{Context, ServiceError};

struct Orders;

// `process_payment` and `cancel_order` are not implemented.
impl OrderService for Orders {
    async fn create_order(&self, _ctx: &Context, _user_id: String, _items: Vec<OrderItem>) -> Result<Order, ServiceError> {
        Err(ServiceError::internal("unused"))
    }
}

fn main() {}
