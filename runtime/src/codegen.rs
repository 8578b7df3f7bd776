//! Everything generated code uses, in one place (like tonic's `codegen` module).
//!
//! Generated code names only `natsgen::codegen::*`, through one private alias
//! (`use ::natsgen::codegen as __rt;`), so the runtime can change inside without breaking generated
//! code. The public types generated signatures mention (`Context`, `ServiceError`, `CallError`,
//! ...) and the few `core`/`std` items generated code needs are re-exported here, so a generated
//! file spells `__rt::String` instead of `::std::string::String` on every line and still compiles
//! under `#![no_implicit_prelude]`. Not meant to be used by hand.
//!
//! # Errors a schema declares
//!
//! A declared error travels with kind = its name, code 422 ([`crate::ServiceError::DECLARED_CODE`])
//! and its fields as `details`; see [`declared_error`] and [`decode_details`].

pub use bytes::Bytes;
pub use serde;
pub use serde::{Deserialize, Serialize};
pub use serde_json;
pub use time;
pub use uuid;

pub use core::clone::Clone;
pub use core::cmp::{Eq, PartialEq};
pub use core::convert::From;
pub use core::fmt;
pub use core::fmt::Debug;
pub use core::future::{Future, IntoFuture};
pub use core::hash::Hash;
pub use core::marker::{Copy, Send, Sync};
pub use core::option::Option;
pub use core::result::Result;
pub use core::str::FromStr;
pub use std::boxed::Box;
pub use std::collections::BTreeMap;
pub use std::error::Error as StdError;
pub use std::string::String;
pub use std::sync::Arc;
pub use std::vec::Vec;

pub use crate::async_call::AsyncCall;
pub use crate::client::{ClientCore, RpcCall};
pub use crate::{
    Binary, CallError, CallFuture, CallOptions, CallRetry, ClientOptions, Connection, Context,
    Error, HandlerFuture, ParseEnumError, ServiceError, Timestamp,
};

/// The runtime interface generated code is written against: code from `natsgen-build` 0.1 starts
/// with `const _: () = __rt::REQUIRES_NATSGEN_0_1;`. A runtime that cannot run that code has no
/// such item, so a mismatch of `natsgen` and `natsgen-build` fails to compile with "cannot find
/// value `REQUIRES_NATSGEN_0_1`", which names the runtime version the code needs. A runtime keeps
/// the marker of every version whose generated code it still runs.
pub const REQUIRES_NATSGEN_0_1: () = ();

/// Implemented by every generated `<Service>Client`, so [`Context::client`](crate::Context::client)
/// can build one.
pub trait GeneratedClient: Sized {
    /// The service the client calls.
    fn descriptor() -> &'static ServiceDescriptor;
    /// A client over a prepared core.
    fn from_core(core: ClientCore) -> Self;
}
pub use crate::__natsgen_method_error as method_error;
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

/// One endpoint of a generated [`Service::call`]: runs the handler's future (which decodes the
/// params and calls the user's method) and encodes its result or error for the wire.
///
/// A decoding error reaches the handler's error type through `From<ServiceError>` (every
/// generated error enum has it) and comes back out unchanged by
/// [`MethodError::into_service_error`].
pub fn respond<T, E>(
    handler: impl Future<Output = Result<T, E>> + Send + 'static,
) -> BoxFuture<Result<Bytes, crate::ServiceError>>
where
    T: serde::Serialize,
    E: MethodError,
{
    Box::pin(async move {
        match handler.await {
            Ok(value) => encode_result(&value),
            Err(error) => Err(error.into_service_error()),
        }
    })
}

/// What every generated error enum `$name` has beyond its variants: `std::error::Error`, and
/// `From` conversions into its `Internal` variant from [`ServiceError`](crate::ServiceError) (a
/// rejection or a decoding error), [`Error`](crate::Error) (a failed `emit`) and
/// [`CallError`](crate::CallError) (a failed call to another service), so `?` works on them in a
/// handler. Generated code invokes it as `__rt::method_error!(Name);`.
#[doc(hidden)]
#[macro_export]
macro_rules! __natsgen_method_error {
    ($name:ident) => {
        impl $crate::codegen::StdError for $name {}

        impl $crate::codegen::From<$crate::ServiceError> for $name {
            fn from(error: $crate::ServiceError) -> Self {
                Self::Internal(error)
            }
        }

        /// A failed `emit` or other runtime operation is an `internal` error.
        impl $crate::codegen::From<$crate::Error> for $name {
            fn from(error: $crate::Error) -> Self {
                Self::Internal($crate::ServiceError::from(error))
            }
        }

        /// A failed call to another service is an `internal` error of this one, whatever the
        /// other service answered: its declared errors are not this method's.
        impl<__E> $crate::codegen::From<$crate::CallError<__E>> for $name
        where
            __E: $crate::codegen::Debug
                + $crate::codegen::fmt::Display
                + $crate::codegen::Send
                + $crate::codegen::Sync
                + 'static,
        {
            fn from(error: $crate::CallError<__E>) -> Self {
                Self::Internal($crate::ServiceError::from(error))
            }
        }
    };
}
