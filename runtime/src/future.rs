//! Names for the futures generated traits return, so their signatures stay short.
//!
//! Both are implemented for every future of the right output that is `Send`: implement a
//! generated trait's methods with plain `async fn`s returning the `Result` they name.

use std::future::Future;

use crate::CallError;

/// What a handler of a generated server trait returns: a `Send` future of `Result<T, E>`, where
/// `E` is the method's declared-error enum or [`ServiceError`](crate::ServiceError).
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// use natsgen::{Context, ServiceError};
/// use shop::order_service::ProcessPaymentError;
///
/// struct MyOrders;
///
/// impl shop::OrderService for MyOrders {
///     // The trait says `-> impl HandlerFuture<Order, ServiceError>`.
///     async fn create_order(&self, _ctx: &Context, user_id: String, total: f64)
///         -> Result<shop::Order, ServiceError>
///     {
///         Ok(shop::Order { order_id: format!("order_of_{user_id}"), total, gift_note: None })
///     }
///
///     async fn process_payment(&self, _ctx: &Context, order_id: String, amount: f64)
///         -> Result<shop::Order, ProcessPaymentError>
///     {
///         Ok(shop::Order { order_id, total: amount, gift_note: None })
///     }
/// }
/// # fn main() {}
/// ```
pub trait HandlerFuture<T, E>: Future<Output = Result<T, E>> + Send {}

impl<F, T, E> HandlerFuture<T, E> for F where F: Future<Output = Result<T, E>> + Send {}

/// What a call through a generated `<Service>Api` trait returns: a `Send` future of
/// `Result<T, CallError<E>>`; `.await` it like any future.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// use natsgen::{CallError, CallOptions};
/// use shop::order_service::ProcessPaymentError;
///
/// // Generic over the client, so a test can pass its own implementation.
/// async fn pay(
///     orders: &impl shop::OrderServiceApi,
///     order_id: &str,
/// ) -> Result<f64, CallError<ProcessPaymentError>> {
///     // The trait says `-> impl CallFuture<Order, ProcessPaymentError>`.
///     let order = orders.process_payment(order_id.into(), 5.0, CallOptions::new()).await?;
///     Ok(order.total)
/// }
/// # fn main() {}
/// ```
pub trait CallFuture<T, E>: Future<Output = Result<T, CallError<E>>> + Send {}

impl<F, T, E> CallFuture<T, E> for F where F: Future<Output = Result<T, CallError<E>>> + Send {}
