//! What a user writes inside handlers and around calls: `?` on events and on calls to other
//! services in a method with declared errors, declared errors as `std::error::Error` with their
//! fields in `Display`, `FromStr` and `Eq`/`Hash` on schema types, the root re-exports, `Timestamp`
//! arithmetic, and error enums of same-named methods in two services.
#![deny(warnings)]

pub mod ecommerce {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/ecommerce.rs"));
}
pub mod common {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/common.rs"));
}
pub mod everything {
    include!(concat!(env!("NATSGEN_UI_DIR"), "/everything.rs"));
}

use std::collections::HashSet;
use std::time::Duration;

use ecommerce::{
    EcommerceWorkflowClient, NotificationServiceClient, Order, OrderItem, OrderRequest,
    OrderService, OrderStatus, PaymentResult, PaymentStatus, ProcessOrderError,
    ProcessPaymentError,
};
use natsgen::{CallError, Context, ServiceError, Timestamp};

struct Orders;

impl OrderService for Orders {
    async fn create_order(
        &self,
        _ctx: &Context,
        _user_id: String,
        _items: Vec<OrderItem>,
    ) -> Result<Order, ServiceError> {
        Err(ServiceError::internal("not here"))
    }

    async fn process_payment(
        &self,
        ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<PaymentResult, ProcessPaymentError> {
        // A failed publish, and a failed call of another service (declared errors or not), are
        // this method's `Internal` errors.
        ctx.emit::<ecommerce::Events>()
            .orders_cancelled(&ecommerce::OrdersCancelled { order_id: order_id.clone(), reason: "test".into() })
            .await?;
        ctx.client::<NotificationServiceClient>()
            .send_email("a@example.com".into(), "paid".into(), order_id.clone())
            .await?;
        let request = OrderRequest {
            user_id: "u".into(),
            email: "a@example.com".into(),
            items: Vec::new(),
            shipping_address: "here".into(),
        };
        let confirmation = ctx.client::<EcommerceWorkflowClient>().process_order(request).await?;
        Ok(PaymentResult {
            order_id: confirmation.order_id,
            amount,
            status: PaymentStatus::Completed,
            transaction_id: confirmation.transaction_id,
            processed_at: Timestamp::now(),
        })
    }

    async fn cancel_order(&self, _ctx: &Context, order_id: String, _reason: String) -> Result<Order, ServiceError> {
        Err(ServiceError::internal(format!("cannot cancel {order_id}")))
    }
}

fn is_std_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}

fn main() {
    let _ = ecommerce::OrderServiceServer::new(Orders);

    // Declared errors show their name, description and fields, and are std errors.
    let declined = ProcessPaymentError::PaymentDeclined { reason: "over the limit".into() };
    is_std_error(&declined);
    assert_eq!(
        declined.to_string(),
        "PaymentDeclined: The gateway declined the payment. (reason: \"over the limit\")"
    );
    assert_eq!(ProcessPaymentError::InsufficientFunds.to_string(), "InsufficientFunds");
    let failed = ProcessOrderError::PaymentFailed { order_id: "o1".into(), reason: "declined".into() };
    assert_eq!(
        failed.to_string(),
        "PaymentFailed: The payment did not go through, so the order was cancelled. \
         (order_id: \"o1\", reason: \"declined\")"
    );
    let call: CallError<ProcessOrderError> = CallError::Service(failed);
    assert!(call.to_string().contains("order_id: \"o1\""), "{call}");
    let boxed: Box<dyn std::error::Error> = Box::new(declined.clone());
    assert!(boxed.to_string().contains("over the limit"));

    // A call's failure inside a method with declared errors: `internal`, naming what failed.
    let from_call = ProcessPaymentError::from(CallError::<ProcessOrderError>::Service(
        ProcessOrderError::PaymentFailed { order_id: "o2".into(), reason: "no".into() },
    ));
    match &from_call {
        ProcessPaymentError::Internal(error) => {
            assert_eq!(error.kind(), "internal");
            assert!(error.message().contains("PaymentFailed"), "{error}");
        }
        other => panic!("expected Internal, got {other:?}"),
    }
    let from_timeout = ProcessPaymentError::from(CallError::<ServiceError>::Timeout {
        service: "notification_service",
        method: "send_email",
        after: Duration::from_secs(1),
    });
    assert!(matches!(from_timeout, ProcessPaymentError::Internal(ref e) if e.message().contains("timed out")));

    // Enums: Display and FromStr with the wire string.
    for status in OrderStatus::ALL {
        assert_eq!(status.to_string().parse::<OrderStatus>(), Ok(*status));
    }
    let unknown = "shipped".parse::<OrderStatus>().unwrap_err();
    assert!(unknown.to_string().contains("created, paid, cancelled"), "{unknown}");
    assert_eq!("light-blue".parse::<everything::Color>(), Ok(everything::Color::LightBlue));

    // Types without floats are Eq and Hash.
    let mut seen = HashSet::new();
    seen.insert(ecommerce::OrdersCancelled { order_id: "o".into(), reason: "r".into() });
    assert!(seen.contains(&ecommerce::OrdersCancelled { order_id: "o".into(), reason: "r".into() }));
    let _: HashSet<everything::Tree> = HashSet::new();
    let _: HashSet<common::Money> = HashSet::new();

    // Same-named methods of two services: each service's module has its own `GetError`; a name
    // only one method uses is also at the package root.
    let a = everything::orders_store::GetError::Missing { id: "o1".into() };
    let b = everything::users_store::GetError::Blocked { reason: "spam".into(), until: None };
    assert_eq!(a.to_string(), "Missing: No such order. (id: \"o1\")");
    assert_eq!(b.to_string(), "Blocked (reason: \"spam\", until: None)");
    let _: everything::ListError = everything::orders_store::ListError::Unavailable;
    let _: everything::ConvertError = everything::kitchen_sink::ConvertError::Conflict;

    // What users name is at the runtime's root.
    let id: natsgen::Uuid = natsgen::Uuid::nil();
    let value: natsgen::Value = natsgen::json!({"id": id.to_string()});
    assert_eq!(value["id"], "00000000-0000-0000-0000-000000000000");

    // Timestamps: arithmetic and conversions.
    let t = Timestamp::from_unix_millis(1_000).unwrap();
    let later = t + Duration::from_secs(2);
    assert_eq!(later.unix_millis(), 3_000);
    assert_eq!(later.duration_since(t), Some(Duration::from_secs(2)));
    assert_eq!(later - t, natsgen::time::Duration::seconds(2));
    let odt: natsgen::time::OffsetDateTime = later.into();
    assert_eq!(odt.unix_timestamp(), 3);
    assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
}
