// A hand-written example of what natsgen-build generates for a small schema. The runtime's own
// tests compile it, so the contract between generated code and `natsgen::codegen` is checked here
// as well as by the generator's snapshot and trybuild tests.
//
//   natsgen: 1
//   package: shop
//   types:
//     Order:  {fields: {order_id: string, total: f64}}
//   services:
//     order_service:
//       version: 1.0.0
//       methods:
//         create_order: {params: {user_id: string, total: f64}, returns: Order}
//         process_payment:
//           params: {order_id: string, amount: f64}
//           returns: Order
//           timeout: 2s
//           errors:
//             PaymentDeclined: {fields: {reason: string}}
//             InsufficientFunds: {}

#[doc = " An order."]
#[derive(
    ::natsgen::codegen::serde::Serialize,
    ::natsgen::codegen::serde::Deserialize,
    ::core::fmt::Debug,
    ::core::clone::Clone,
    ::core::cmp::PartialEq,
)]
#[serde(crate = "::natsgen::codegen::serde")]
pub struct Order {
    pub order_id: ::std::string::String,
    pub total: f64,
    #[serde(
        rename = "giftNote",
        default,
        skip_serializing_if = "::core::option::Option::is_none"
    )]
    pub gift_note: ::core::option::Option<::std::string::String>,
}

/// Errors `order_service.process_payment` declares.
#[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq)]
pub enum ProcessPaymentError {
    PaymentDeclined {
        reason: ::std::string::String,
    },
    InsufficientFunds,
    /// Any failure that is not one of the declared errors.
    Internal(::natsgen::ServiceError),
}

#[doc(hidden)]
#[derive(::natsgen::codegen::serde::Serialize, ::natsgen::codegen::serde::Deserialize)]
#[serde(crate = "::natsgen::codegen::serde")]
struct ProcessPaymentErrorPaymentDeclinedDetails {
    reason: ::std::string::String,
}

impl ::natsgen::codegen::MethodError for ProcessPaymentError {
    fn into_service_error(self) -> ::natsgen::ServiceError {
        match self {
            Self::PaymentDeclined { reason } => ::natsgen::codegen::declared_error(
                "PaymentDeclined",
                "PaymentDeclined",
                &ProcessPaymentErrorPaymentDeclinedDetails { reason },
            ),
            Self::InsufficientFunds => ::natsgen::codegen::declared_error_without_details(
                "InsufficientFunds",
                "InsufficientFunds",
            ),
            Self::Internal(error) => error,
        }
    }
    fn from_service_error(error: ::natsgen::ServiceError) -> Self {
        match error.kind() {
            "PaymentDeclined" => {
                match ::natsgen::codegen::decode_details::<ProcessPaymentErrorPaymentDeclinedDetails>(
                    &error,
                ) {
                    ::core::result::Result::Ok(d) => Self::PaymentDeclined { reason: d.reason },
                    ::core::result::Result::Err(_) => Self::Internal(error),
                }
            }
            "InsufficientFunds" => Self::InsufficientFunds,
            _ => Self::Internal(error),
        }
    }
}

impl ::core::fmt::Display for ProcessPaymentError {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        match self {
            Self::PaymentDeclined { .. } => f.write_str("PaymentDeclined"),
            Self::InsufficientFunds => f.write_str("InsufficientFunds"),
            Self::Internal(error) => ::core::fmt::Display::fmt(error, f),
        }
    }
}

impl ::core::convert::From<::natsgen::ServiceError> for ProcessPaymentError {
    fn from(error: ::natsgen::ServiceError) -> Self {
        Self::Internal(error)
    }
}

// ---- service trait -------------------------------------------------------------------------

/// Creates orders and takes payments.
pub trait OrderService: ::core::marker::Send + ::core::marker::Sync + 'static {
    fn create_order(
        &self,
        ctx: &::natsgen::Context,
        user_id: ::std::string::String,
        total: f64,
    ) -> impl ::core::future::Future<Output = ::core::result::Result<Order, ::natsgen::ServiceError>>
           + ::core::marker::Send;

    fn process_payment(
        &self,
        ctx: &::natsgen::Context,
        order_id: ::std::string::String,
        amount: f64,
    ) -> impl ::core::future::Future<Output = ::core::result::Result<Order, ProcessPaymentError>>
           + ::core::marker::Send;
}

#[doc(hidden)]
#[derive(::natsgen::codegen::serde::Serialize, ::natsgen::codegen::serde::Deserialize)]
#[serde(crate = "::natsgen::codegen::serde")]
struct OrderServiceCreateOrderParams {
    user_id: ::std::string::String,
    total: f64,
}

#[doc(hidden)]
#[derive(::natsgen::codegen::serde::Serialize, ::natsgen::codegen::serde::Deserialize)]
#[serde(crate = "::natsgen::codegen::serde")]
struct OrderServiceProcessPaymentParams {
    order_id: ::std::string::String,
    amount: f64,
}

#[doc(hidden)]
static ORDER_SERVICE_DESCRIPTOR: ::natsgen::codegen::ServiceDescriptor =
    ::natsgen::codegen::ServiceDescriptor {
        name: "order_service",
        package: "shop",
        version: "1.0.0",
        description: "Creates orders and takes payments.",
        topics: &[],
        endpoints: &[
            ::natsgen::codegen::EndpointDescriptor {
                name: "create_order",
                kind: ::natsgen::codegen::EndpointKind::Rpc,
                subject: "order_service.rpc.create_order",
                timeout_ms: 10_000,
                retry: ::natsgen::codegen::RetryPolicy {
                    max_attempts: 3,
                    backoff_ms: 1_000,
                },
                mode: ::natsgen::codegen::DeliveryMode::Shared,
                delivery: ::natsgen::codegen::Delivery::Durable,
                params_schema: r#"{"type":"object","properties":{"user_id":{"type":"string"},"total":{"type":"number"}},"required":["user_id","total"]}"#,
                result_schema: r##"{"$ref":"#/definitions/Order"}"##,
                errors: &[],
            },
            ::natsgen::codegen::EndpointDescriptor {
                name: "process_payment",
                kind: ::natsgen::codegen::EndpointKind::Rpc,
                subject: "order_service.rpc.process_payment",
                timeout_ms: 2_000,
                retry: ::natsgen::codegen::RetryPolicy {
                    max_attempts: 3,
                    backoff_ms: 1_000,
                },
                mode: ::natsgen::codegen::DeliveryMode::Shared,
                delivery: ::natsgen::codegen::Delivery::Durable,
                params_schema: r#"{"type":"object"}"#,
                result_schema: r#"{"type":"object"}"#,
                errors: &["PaymentDeclined", "InsufficientFunds"],
            },
        ],
    };

/// Serves an [`OrderService`] implementation on a [`natsgen::Host`].
pub struct OrderServiceServer<T> {
    inner: ::std::sync::Arc<T>,
}

impl<T: OrderService> OrderServiceServer<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner: ::std::sync::Arc::new(inner),
        }
    }
    pub fn from_arc(inner: ::std::sync::Arc<T>) -> Self {
        Self { inner }
    }
}

impl<T> ::core::fmt::Debug for OrderServiceServer<T> {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.write_str("OrderServiceServer")
    }
}

impl<T: OrderService> ::natsgen::codegen::Service for OrderServiceServer<T> {
    fn descriptor(&self) -> &'static ::natsgen::codegen::ServiceDescriptor {
        &ORDER_SERVICE_DESCRIPTOR
    }

    fn call(
        &self,
        endpoint: usize,
        ctx: ::natsgen::Context,
        payload: ::natsgen::codegen::Bytes,
    ) -> ::natsgen::codegen::BoxFuture<
        ::core::result::Result<::natsgen::codegen::Bytes, ::natsgen::ServiceError>,
    > {
        let inner = ::std::sync::Arc::clone(&self.inner);
        match endpoint {
            0usize => ::std::boxed::Box::pin(async move {
                let params: OrderServiceCreateOrderParams =
                    ::natsgen::codegen::decode_params(&payload)?;
                let result = inner
                    .create_order(&ctx, params.user_id, params.total)
                    .await?;
                ::natsgen::codegen::encode_result(&result)
            }),
            1usize => ::std::boxed::Box::pin(async move {
                let params: OrderServiceProcessPaymentParams =
                    ::natsgen::codegen::decode_params(&payload)?;
                match inner
                    .process_payment(&ctx, params.order_id, params.amount)
                    .await
                {
                    ::core::result::Result::Ok(result) => {
                        ::natsgen::codegen::encode_result(&result)
                    }
                    ::core::result::Result::Err(error) => ::core::result::Result::Err(
                        ::natsgen::codegen::MethodError::into_service_error(error),
                    ),
                }
            }),
            _ => ::std::boxed::Box::pin(::natsgen::codegen::unknown_endpoint(endpoint)),
        }
    }
}

// ---- client --------------------------------------------------------------------------------

/// What [`OrderServiceClient`] offers, as a trait, so callers can be generic over it and tests can
/// substitute their own implementation.
pub trait OrderServiceApi: ::core::marker::Send + ::core::marker::Sync {
    fn create_order(
        &self,
        user_id: ::std::string::String,
        total: f64,
        options: ::natsgen::CallOptions,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Order, ::natsgen::CallError<::natsgen::ServiceError>>,
    > + ::core::marker::Send;

    fn process_payment(
        &self,
        order_id: ::std::string::String,
        amount: f64,
        options: ::natsgen::CallOptions,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Order, ::natsgen::CallError<ProcessPaymentError>>,
    > + ::core::marker::Send;
}

/// Calls `order_service`.
#[derive(::core::fmt::Debug, ::core::clone::Clone)]
pub struct OrderServiceClient {
    core: ::natsgen::codegen::ClientCore,
}

impl OrderServiceClient {
    pub fn new(connection: &::natsgen::Connection) -> Self {
        Self {
            core: ::natsgen::codegen::ClientCore::new(connection, &ORDER_SERVICE_DESCRIPTOR),
        }
    }

    pub fn create_order(
        &self,
        user_id: ::std::string::String,
        total: f64,
    ) -> ::natsgen::codegen::RpcCall<Order, ::natsgen::ServiceError> {
        self.core.rpc(
            0usize,
            ::natsgen::codegen::encode_params(&OrderServiceCreateOrderParams { user_id, total }),
        )
    }

    pub fn process_payment(
        &self,
        order_id: ::std::string::String,
        amount: f64,
    ) -> ::natsgen::codegen::RpcCall<Order, ProcessPaymentError> {
        self.core.rpc(
            1usize,
            ::natsgen::codegen::encode_params(&OrderServiceProcessPaymentParams {
                order_id,
                amount,
            }),
        )
    }
}

impl OrderServiceApi for OrderServiceClient {
    fn create_order(
        &self,
        user_id: ::std::string::String,
        total: f64,
        options: ::natsgen::CallOptions,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Order, ::natsgen::CallError<::natsgen::ServiceError>>,
    > + ::core::marker::Send {
        ::core::future::IntoFuture::into_future(
            OrderServiceClient::create_order(self, user_id, total).options(options),
        )
    }

    fn process_payment(
        &self,
        order_id: ::std::string::String,
        amount: f64,
        options: ::natsgen::CallOptions,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Order, ::natsgen::CallError<ProcessPaymentError>>,
    > + ::core::marker::Send {
        ::core::future::IntoFuture::into_future(
            OrderServiceClient::process_payment(self, order_id, amount).options(options),
        )
    }
}
