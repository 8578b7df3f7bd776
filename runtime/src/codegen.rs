//! Everything generated code uses, in one place (like tonic's `codegen` module).
//!
//! Generated code names only `natsgen::codegen::*` and the public types
//! `natsgen::{Context, ServiceError, CallError, CallOptions, Connection}`, so the runtime can
//! change inside without breaking generated code. Not meant to be used by hand.
//!
//! # Errors a schema declares
//!
//! A declared error travels with kind = its name, code 422 ([`crate::ServiceError::DECLARED_CODE`])
//! and its fields as `details`; see [`declared_error`] and [`decode_details`].

pub use bytes::Bytes;
pub use serde;
pub use serde_json;
pub use time;
pub use uuid;

pub use crate::async_call::AsyncCall;
pub use crate::client::{ClientCore, RpcCall};

/// Implemented by every generated `<Service>Client`, so [`Context::client`](crate::Context::client)
/// can build one.
pub trait GeneratedClient: Sized {
    /// The service the client calls.
    fn descriptor() -> &'static ServiceDescriptor;
    /// A client over a prepared core.
    fn from_core(core: ClientCore) -> Self;
}
pub use crate::events::{
    decode_event, encode_event, unknown_topic, EventPublisher, EventSet, EventsDescriptor, Publish,
};
pub use crate::json::{
    declared_error, declared_error_without_details, decode_details, decode_params, encode_params,
    encode_result, unknown_endpoint,
};
pub use crate::service::{
    BoxFuture, Delivery, DeliveryMode, EndpointDescriptor, EndpointKind, MethodError, RetryPolicy,
    Service, ServiceDescriptor,
};
