//! The neutral description of a service that generated code hands to the runtime, and the
//! object-safe trait a [`Host`](crate::Host) serves.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::{Context, ServiceError};

/// A boxed, sendable future: what [`Service::call`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A service as the schema declares it. Generated code keeps one in a `static`.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDescriptor {
    /// The service name (snake_case); the first subject token and the queue group.
    pub name: &'static str,
    /// The schema package the service is declared in.
    pub package: &'static str,
    /// The service version (semver); empty when the schema gives none.
    pub version: &'static str,
    /// The schema's description.
    pub description: &'static str,
    /// The topics the service's package declares: a host serving it makes sure the package's
    /// event stream captures all of them.
    pub topics: &'static [&'static str],
    /// The methods, event handlers and timers, in declaration order. [`Service::call`] and
    /// [`ClientCore::rpc`](crate::codegen::ClientCore::rpc) address them by index.
    pub endpoints: &'static [EndpointDescriptor],
}

impl EndpointDescriptor {
    /// A timer's period in milliseconds (kept in `timeout_ms`, so that the descriptor's fields,
    /// which generated code writes out, stay as they were); `None` for other kinds.
    pub fn period_ms(&self) -> Option<u64> {
        (self.kind == EndpointKind::Timer).then_some(self.timeout_ms)
    }
}

impl ServiceDescriptor {
    /// The endpoint at `index`, if there is one.
    pub fn endpoint(&self, index: usize) -> Option<&'static EndpointDescriptor> {
        self.endpoints.get(index)
    }
}

/// One method, event handler or timer of a service.
#[derive(Debug, Clone, Copy)]
pub struct EndpointDescriptor {
    /// The method or handler name (snake_case).
    pub name: &'static str,
    /// How it is called.
    pub kind: EndpointKind,
    /// RPC: `<service>.rpc.<method>`; async: `<service>.async.<method>`; event: the topic or
    /// wildcard pattern it handles; timer with `scope: service`: `<service>.async.<timer>` (its
    /// ticks travel as async calls); timer with `scope: instance`: empty (no message).
    pub subject: &'static str,
    /// RPC: the default timeout of a call, in milliseconds (the generator writes 10 000 when the
    /// schema gives none). Timers (which have no timeout): the period, `every`, in milliseconds;
    /// see [`EndpointDescriptor::period_ms`].
    pub timeout_ms: u64,
    /// Async calls, durable events and `scope: service` timers: how often and how fast to retry.
    pub retry: RetryPolicy,
    /// Events: whether instances share the events or each gets every one. Timers: `Shared` for
    /// `scope: service` (one instance runs each tick), `Broadcast` for `scope: instance`.
    pub mode: DeliveryMode,
    /// Events: durable (JetStream) or best effort (core NATS).
    pub delivery: Delivery,
    /// The JSON Schema of the params object.
    pub params_schema: &'static str,
    /// The JSON Schema of the result.
    pub result_schema: &'static str,
    /// The names of the errors the method declares.
    pub errors: &'static [&'static str],
}

/// How an endpoint is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// Request-reply over core NATS.
    Rpc,
    /// Fire-and-forget, durably stored in a work-queue stream.
    Async,
    /// An event handler.
    Event,
    /// A timer: run every period by one instance of the service (`mode: Shared`) or by every
    /// instance (`mode: Broadcast`).
    Timer,
}

/// Retries of async calls and durable events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay before the next attempt, in milliseconds.
    pub backoff_ms: u64,
}

/// Which instances of a service receive an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// One copy per service, shared by its instances.
    Shared,
    /// Every instance gets a copy.
    Broadcast,
}

/// How events reach a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Through a JetStream consumer: stored, retried, delivered after downtime.
    Durable,
    /// Through a core NATS subscription: only while running, no retries.
    BestEffort,
}

/// The object-safe face of a generated server binding (`<Service>Server`): it dispatches a call
/// by endpoint index. A [`Host`](crate::Host) holds `Arc<dyn Service>`.
pub trait Service: Send + Sync + 'static {
    /// The static description of the service.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Handles one call of endpoint `endpoint`: decodes `payload`, runs the handler and returns
    /// the complete success reply body (`{"result": ...}`) or the error to answer with.
    fn call(
        &self,
        endpoint: usize,
        ctx: Context,
        payload: Bytes,
    ) -> BoxFuture<Result<Bytes, ServiceError>>;
}

/// A method's error type: a generated error enum or [`ServiceError`] itself. Converts to and from
/// the wire form.
pub trait MethodError: Sized + Send + 'static {
    /// The wire form of this error.
    fn into_service_error(self) -> ServiceError;
    /// The typed form of an error reply; kinds the type does not declare land in its catch-all.
    fn from_service_error(error: ServiceError) -> Self;
}

impl MethodError for ServiceError {
    fn into_service_error(self) -> ServiceError {
        self
    }

    fn from_service_error(error: ServiceError) -> Self {
        error
    }
}
