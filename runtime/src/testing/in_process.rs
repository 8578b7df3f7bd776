//! [`InProcess`]: generated servers served in the test's own process, called through their
//! generated clients without NATS.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_nats::header::HeaderValue;
use async_nats::{HeaderMap, HeaderName, Subject};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::codegen::ClientCore;
use crate::codegen::{EventPublisher, EventSet, EventsDescriptor, GeneratedClient};
use crate::connection::Backend;
use crate::host::{default_timeout, for_caller, run_endpoint};
use crate::middleware::Interceptor;
use crate::service::{Delivery, EndpointDescriptor, EndpointKind, Service, ServiceDescriptor};
use crate::{CallError, Context, Middleware, ServiceError};

/// Generated servers served in this process, for unit tests: no NATS, no server, no connection.
///
/// Build it like a [`Host`](crate::Host) (`serve`, `middleware`, `intercept`), then take
/// generated clients from it with [`InProcess::client`]. A call goes the way it goes over NATS,
/// minus the network: the client encodes the params to JSON, the server binding decodes them
/// (`bad_request` when they do not decode), runs the handler under the host's rules (a panic is
/// an `internal` error, a handler still running at the deadline is cancelled with
/// `deadline_exceeded`, middleware runs around it), and the reply or the error comes back through
/// the same encoding and error mapping as a NATS reply (declared errors arrive typed; an
/// `internal` error's text stays with the service, as a remote caller would see it).
///
/// - **Async calls** return once accepted, as over NATS once stored; the handler then runs in a
///   task of its own, retried up to the schema's `max_attempts` (at once: the backoff is not
///   waited out). [`InProcess::settle`] waits for it and reports how it ended. An async call to a
///   service not served here is only recorded ([`InProcess::async_calls`]).
/// - **Events**, emitted by a handler (`ctx.emit::<Events>()`) or by the test
///   ([`InProcess::emit`]), are captured in the [`EventLog`] of [`InProcess::events`] and handled
///   by every handler served here whose topic or pattern matches, like async calls.
/// - **Nested calls**: `ctx.client::<C>()` in a handler calls the services served here; a service
///   that is not answers like one with no instance running
///   ([`CallError::ServiceUnavailable`]).
///
/// What it leaves out: client middleware, retries and circuit breakers (they belong to a
/// connection), reply headers, `max_payload` limits, stream and consumer settings, and
/// concurrency limits. Those are what the integration tests over a real server are for.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use natsgen::testing::InProcess;
///
/// let services = InProcess::new().serve(shop::OrderServiceServer::new(Orders));
/// let orders: shop::OrderServiceClient = services.client();
/// let order = orders.create_order("user_1".into(), 25.0).await?;
/// assert_eq!(order.order_id, "order_of_user_1");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct InProcess {
    hub: Arc<Hub>,
}

impl InProcess {
    /// No services yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves a service (a generated `<Service>Server`). A service served twice is served by the
    /// later one.
    #[must_use]
    pub fn serve(self, service: impl Service) -> Self {
        self.serve_arc(Arc::new(service))
    }

    /// Serves a service already behind an `Arc`.
    #[must_use]
    pub fn serve_arc(self, service: Arc<dyn Service>) -> Self {
        {
            let mut services = self
                .hub
                .services
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let name = service.descriptor().name;
            services.retain(|served| served.descriptor().name != name);
            services.push(service);
        }
        self
    }

    /// Runs `middleware` around every handler, as [`Host::middleware`](crate::Host::middleware)
    /// does.
    #[must_use]
    pub fn middleware(self, middleware: impl Middleware) -> Self {
        {
            let mut chain = self
                .hub
                .middleware
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let mut longer = chain.to_vec();
            longer.push(Arc::new(middleware));
            *chain = longer.into();
        }
        self
    }

    /// Runs `check` before every handler, as [`Host::intercept`](crate::Host::intercept) does.
    #[must_use]
    pub fn intercept(
        self,
        check: impl Fn(&Context) -> Result<(), ServiceError> + Send + Sync + 'static,
    ) -> Self {
        self.middleware(Interceptor(check))
    }

    /// A generated client (`shop::OrderServiceClient`, ...) that calls the services served here.
    pub fn client<C: GeneratedClient>(&self) -> C {
        C::from_core(ClientCore::on(&self.backend(), C::descriptor()))
    }

    /// A package's event publisher (`shop::Events`) whose events are captured here and handled
    /// by the services served here.
    pub fn emit<E: EventSet>(&self) -> E {
        E::from_publisher(EventPublisher::on(&self.backend(), E::descriptor()))
    }

    /// A root context (a new call id, no deadline, no headers), for calling a handler directly:
    /// its [`Context::emit`] is captured here and its [`Context::client`] calls the services
    /// served here. [`InProcess::context_builder`] sets headers, a deadline and the rest.
    pub fn context(&self) -> Context {
        self.context_builder().build()
    }

    /// A context with the headers, deadline, ids and attempt number a test chooses.
    pub fn context_builder(&self) -> ContextBuilder {
        ContextBuilder {
            hub: Arc::clone(&self.hub),
            service: "",
            method: "",
            subject: String::new(),
            call_id: None,
            caller_chain: Vec::new(),
            deadline: None,
            attempt: 1,
            headers: HeaderMap::new(),
        }
    }

    /// Sends `body` to RPC subject `subject` as it is, as `nats req <subject> <body>` would: for
    /// testing how a service answers what a generated client never sends (a body that does not
    /// decode is `bad_request`). The reply body (`{"result": ...}`) or the error reply, mapped as
    /// for a generated client. A subject no service served here answers on is a
    /// [`CallError::Protocol`] error (over NATS the request would get no responders).
    pub async fn request(&self, subject: &str, body: impl Into<Bytes>) -> Result<Bytes, CallError> {
        let services = self
            .hub
            .services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let found = services.iter().find_map(|service| {
            let descriptor = service.descriptor();
            descriptor
                .endpoints
                .iter()
                .enumerate()
                .find(|(_, endpoint)| {
                    endpoint.kind == EndpointKind::Rpc && endpoint.subject == subject
                })
                .map(|(index, endpoint)| (descriptor, index, endpoint))
        });
        let Some((service, index, endpoint)) = found else {
            return Err(CallError::Protocol(format!(
                "no service served here answers on {subject} (over NATS the request would get \
                 no responders)"
            )));
        };
        let timeout = default_timeout(endpoint);
        let call = RpcRequest {
            service,
            index,
            endpoint,
            headers: HeaderMap::new(),
            payload: body.into(),
        };
        self.hub.rpc(call, timeout, timeout).await
    }

    /// Waits until every async call and event handler started so far has finished, those they
    /// started in turn included, and returns how each ended (those that ended since the last
    /// `settle`, in the order they ended). Bound it with `tokio::time::timeout` if a handler may
    /// hang.
    pub async fn settle(&self) -> Vec<Handled> {
        let mut pending = self.hub.pending.subscribe();
        // The sender lives in the hub, which `self` keeps: the channel cannot close.
        let _ = pending.wait_for(|running| *running == 0).await;
        std::mem::take(&mut *lock(&self.hub.handled))
    }

    /// Every event published so far, in publish order.
    pub fn events(&self) -> EventLog {
        EventLog {
            events: lock(&self.hub.events).clone(),
        }
    }

    /// Every async call made so far, in call order, served here or not.
    pub fn async_calls(&self) -> Vec<CapturedCall> {
        lock(&self.hub.calls).clone()
    }

    fn backend(&self) -> Backend {
        Backend::InProcess(Arc::clone(&self.hub))
    }
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.hub.fmt(f)
    }
}

/// Builds a [`Context`] for calling a handler directly: see [`InProcess::context_builder`].
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use shop::OrderService;
///
/// let services = natsgen::testing::InProcess::new();
/// let ctx = services
///     .context_builder()
///     .header("X-Tenant", "acme")
///     .timeout(Duration::from_secs(1))
///     .call_id("test-call-1")
///     .build();
/// assert_eq!(ctx.header("X-Tenant"), Some("acme"));
/// // A handler's error is a `ServiceError` (or its declared error enum).
/// let order = Orders.create_order(&ctx, "user_1".into(), 25.0).await.map_err(|e| e.to_string())?;
/// assert_eq!(order.total, 25.0);
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ContextBuilder {
    hub: Arc<Hub>,
    service: &'static str,
    method: &'static str,
    subject: String,
    call_id: Option<String>,
    caller_chain: Vec<String>,
    deadline: Option<Instant>,
    attempt: u32,
    headers: HeaderMap,
}

impl ContextBuilder {
    /// The service and method the context says it serves ([`Context::service`],
    /// [`Context::method`]).
    pub fn endpoint(mut self, service: &'static str, method: &'static str) -> Self {
        self.service = service;
        self.method = method;
        self
    }

    /// The subject the message "arrived" on ([`Context::subject`]); a wildcard event handler
    /// reads it.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Adds a request header ([`Context::header`]). A name or value NATS cannot carry is left
    /// out with a warning, as the runtime leaves out garbage in a request.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        match (name.parse::<HeaderName>(), value.parse::<HeaderValue>()) {
            (Ok(name), Ok(value)) => self.headers.append(name, value),
            _ => tracing::warn!(name, "leaving out a header NATS cannot carry"),
        }
        self
    }

    /// The call id (default: a new one).
    pub fn call_id(mut self, call_id: impl Into<String>) -> Self {
        self.call_id = Some(call_id.into());
        self
    }

    /// The call ids of the calls that led to this one, outermost first.
    pub fn caller_chain<I, S>(mut self, chain: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.caller_chain = chain.into_iter().map(Into::into).collect();
        self
    }

    /// A deadline `timeout` from now (default: none).
    pub fn timeout(self, timeout: Duration) -> Self {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.deadline(deadline),
            None => self,
        }
    }

    /// The deadline (default: none).
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The delivery attempt ([`Context::attempt`]; default 1).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The context.
    pub fn build(self) -> Context {
        Context::assembled(
            Backend::InProcess(self.hub),
            self.service,
            self.method,
            Subject::from(self.subject),
            self.call_id,
            self.caller_chain,
            self.deadline,
            self.attempt,
            (!self.headers.is_empty()).then_some(self.headers),
        )
    }
}

/// How an async call or an event handler run by an [`InProcess`] ended: see
/// [`InProcess::settle`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Handled {
    /// The service that handled it.
    pub service: &'static str,
    /// The async method or event handler.
    pub endpoint: &'static str,
    /// [`EndpointKind::Async`] or [`EndpointKind::Event`].
    pub kind: EndpointKind,
    /// The subject: `<service>.async.<method>`, or the event's topic.
    pub subject: String,
    /// How many times the handler ran (retries included).
    pub attempts: u32,
    /// The last attempt's outcome: over NATS a failure here is a dead letter. The error is the
    /// handler's own, with an `internal` error's full text (the service's view).
    pub result: Result<(), ServiceError>,
}

/// An event published into an [`InProcess`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CapturedEvent {
    /// The package that declares the event.
    pub package: &'static str,
    /// The event's topic.
    pub topic: &'static str,
    /// The JSON payload, as it would have been published.
    pub payload: Bytes,
    /// The headers it would have carried (its event id in `Nats-Msg-Id`, the caller chain and
    /// trace of the context it was published with, its own).
    pub headers: HeaderMap,
}

impl CapturedEvent {
    /// The payload decoded into `T` (the event's generated payload type, or a
    /// `serde_json::Value`).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// The event id (`Nats-Msg-Id`).
    pub fn event_id(&self) -> Option<&str> {
        self.headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(HeaderValue::as_str)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// An async call made through an [`InProcess`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CapturedCall {
    /// The called service.
    pub service: &'static str,
    /// The called async method.
    pub method: &'static str,
    /// The params object as JSON, as it would have been sent.
    pub payload: Bytes,
    /// The headers it would have carried (`Nats-Msg-Id` is `<method>:<idempotency key>`).
    pub headers: HeaderMap,
}

impl CapturedCall {
    /// The params object decoded into `T` (a struct of the params, or a `serde_json::Value`).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let name = name.parse::<HeaderName>().ok()?;
    headers.get(name).map(HeaderValue::as_str)
}

/// The events an [`InProcess`] captured, in publish order, with typed access by topic.
///
/// ```
/// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let services = natsgen::testing::InProcess::new();
/// let order = shop::Order { order_id: "o1".into(), total: 5.0, gift_note: None };
/// services.emit::<shop::Events>().orders_created(&order).await?;
///
/// let created: Vec<shop::Order> = services.events().payloads("orders.created")?;
/// assert_eq!(created, [order]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: Vec<CapturedEvent>,
}

impl EventLog {
    /// Every event.
    pub fn all(&self) -> &[CapturedEvent] {
        &self.events
    }

    /// The events of one topic.
    pub fn on<'a>(&'a self, topic: &'a str) -> impl Iterator<Item = &'a CapturedEvent> + 'a {
        self.events.iter().filter(move |event| event.topic == topic)
    }

    /// The payloads of one topic, decoded into `T`.
    pub fn payloads<T: DeserializeOwned>(&self, topic: &str) -> Result<Vec<T>, serde_json::Error> {
        self.on(topic).map(CapturedEvent::decode).collect()
    }

    /// How many events there are.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// What an [`InProcess`] and every client, publisher and context made from it share.
pub(crate) struct Hub {
    services: RwLock<Vec<Arc<dyn Service>>>,
    middleware: RwLock<Arc<[Arc<dyn Middleware>]>>,
    events: Mutex<Vec<CapturedEvent>>,
    calls: Mutex<Vec<CapturedCall>>,
    handled: Mutex<Vec<Handled>>,
    /// Async and event handlers started and not finished.
    pending: watch::Sender<usize>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            services: RwLock::default(),
            middleware: RwLock::new(Arc::new([])),
            events: Mutex::default(),
            calls: Mutex::default(),
            handled: Mutex::default(),
            pending: watch::channel(0).0,
        }
    }
}

/// One call for a service served in process.
pub(crate) struct RpcRequest {
    pub(crate) service: &'static ServiceDescriptor,
    pub(crate) index: usize,
    pub(crate) endpoint: &'static EndpointDescriptor,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: Bytes,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    fn service(&self, name: &str) -> Option<Arc<dyn Service>> {
        self.services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|service| service.descriptor().name == name)
            .cloned()
    }

    fn middleware(&self) -> Arc<[Arc<dyn Middleware>]> {
        Arc::clone(
            &self
                .middleware
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// An RPC call: the reply body (`{"result": ...}`), or the error as a remote caller gets it.
    pub(crate) async fn rpc(
        self: &Arc<Self>,
        call: RpcRequest,
        wait: Duration,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let service_name = call.service.name;
        let method = call.endpoint.name;
        let Some(service) = self.service(service_name) else {
            return Err(CallError::ServiceUnavailable {
                service: service_name,
                method,
            });
        };
        let ctx = Context::from_request(
            Backend::InProcess(Arc::clone(self)),
            service_name,
            method,
            Subject::from_static(call.endpoint.subject),
            (!call.headers.is_empty()).then_some(call.headers),
            Instant::now(),
            Some(default_timeout(call.endpoint)),
        );
        let call_id = ctx.call_id().to_owned();
        let deadline = ctx.deadline();
        let middleware = self.middleware();
        let run = async {
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                return Err(ServiceError::deadline_exceeded(
                    "the caller's deadline passed before the call started",
                ));
            }
            run_endpoint(
                &*service,
                &middleware,
                call.index,
                ctx,
                call.payload,
                deadline,
            )
            .await
        };
        let Ok(result) = tokio::time::timeout(wait, run).await else {
            return Err(CallError::Timeout {
                service: service_name,
                method,
                after: timeout,
            });
        };
        result.map_err(|error| {
            if error.code() >= 500 {
                tracing::warn!(service = service_name, method, %error, "call failed");
            }
            // The error as a NATS reply carries it: what the caller sees, encoded and decoded.
            let error = for_caller(&error, &call_id);
            let body = crate::json::encode_error(&error);
            CallError::Service(
                crate::client::decode_error_body(error.code(), &body)
                    .unwrap_or_else(|| error.into_owned()),
            )
        })
    }

    /// An async call: recorded, and handled in a task when its service is served here.
    pub(crate) fn send_async(self: &Arc<Self>, call: RpcRequest) {
        lock(&self.calls).push(CapturedCall {
            service: call.service.name,
            method: call.endpoint.name,
            payload: call.payload.clone(),
            headers: call.headers.clone(),
        });
        if let Some(service) = self.service(call.service.name) {
            self.spawn_handler(
                service,
                call.index,
                call.endpoint,
                Subject::from_static(call.endpoint.subject),
                call.headers,
                call.payload,
            );
        }
    }

    /// An event: recorded, and handled by every handler served here that takes its topic.
    pub(crate) fn publish_event(
        self: &Arc<Self>,
        events: &'static EventsDescriptor,
        topic: &'static str,
        headers: HeaderMap,
        payload: Bytes,
    ) {
        lock(&self.events).push(CapturedEvent {
            package: events.package,
            topic,
            payload: payload.clone(),
            headers: headers.clone(),
        });
        let services = self
            .services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for service in services {
            let descriptor = service.descriptor();
            for (index, endpoint) in descriptor.endpoints.iter().enumerate() {
                if endpoint.kind == EndpointKind::Event && subject_matches(endpoint.subject, topic)
                {
                    self.spawn_handler(
                        Arc::clone(&service),
                        index,
                        endpoint,
                        Subject::from_static(topic),
                        headers.clone(),
                        payload.clone(),
                    );
                }
            }
        }
    }

    /// Runs an async or event handler in a task: retried at once up to its `max_attempts`
    /// (best-effort events: once; undecodable input: once, as over NATS), its outcome recorded
    /// for [`InProcess::settle`].
    fn spawn_handler(
        self: &Arc<Self>,
        service: Arc<dyn Service>,
        index: usize,
        endpoint: &'static EndpointDescriptor,
        subject: Subject,
        headers: HeaderMap,
        payload: Bytes,
    ) {
        let running = Running::start(Arc::clone(self));
        let hub = Arc::clone(self);
        let max_attempts = match (endpoint.kind, endpoint.delivery) {
            (EndpointKind::Event, Delivery::BestEffort) => 1,
            _ => endpoint.retry.max_attempts.max(1),
        };
        let headers = (!headers.is_empty()).then_some(headers);
        tokio::spawn(async move {
            let name = service.descriptor().name;
            let middleware = hub.middleware();
            let mut attempt = 1;
            let result = loop {
                let ctx = Context::from_message(
                    Backend::InProcess(Arc::clone(&hub)),
                    name,
                    endpoint.name,
                    subject.clone(),
                    headers.clone(),
                    attempt,
                );
                let error =
                    match run_endpoint(&*service, &middleware, index, ctx, payload.clone(), None)
                        .await
                    {
                        Ok(_) => break Ok(()),
                        Err(error) => error,
                    };
                if error.is_undecodable() || attempt >= max_attempts {
                    tracing::warn!(service = name, handler = endpoint.name, %error, attempt, "handler failed; over NATS this is a dead letter");
                    break Err(error);
                }
                attempt += 1;
            };
            lock(&hub.handled).push(Handled {
                service: name,
                endpoint: endpoint.name,
                kind: endpoint.kind,
                subject: subject.to_string(),
                attempts: attempt,
                result,
            });
            drop(running);
        });
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let services: Vec<&str> = self
            .services
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|service| service.descriptor().name)
            .collect();
        f.debug_struct("InProcess")
            .field("services", &services)
            .field("events", &lock(&self.events).len())
            .field("async_calls", &lock(&self.calls).len())
            .field("running", &*self.pending.borrow())
            .finish()
    }
}

/// Counts a handler as running until dropped, even when its task panics or is cancelled, so
/// [`InProcess::settle`] never waits for one that is gone.
struct Running(Arc<Hub>);

impl Running {
    fn start(hub: Arc<Hub>) -> Self {
        hub.pending.send_modify(|running| *running += 1);
        Running(hub)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0
            .pending
            .send_modify(|running| *running = running.saturating_sub(1));
    }
}

/// Whether NATS subject `subject` matches `pattern` (`*` one token, `>` one or more at the end).
fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut tokens = subject.split('.');
    for part in pattern.split('.') {
        match (part, tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (part, Some(token)) if part == token => {}
            _ => return false,
        }
    }
    tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("orders.created", "orders.created"));
        assert!(!subject_matches("orders.created", "orders.paid"));
        assert!(subject_matches("orders.*", "orders.created"));
        assert!(!subject_matches("orders.*", "orders.created.late"));
        assert!(!subject_matches("orders.*", "orders"));
        assert!(subject_matches("orders.>", "orders.created.late"));
        assert!(!subject_matches("orders.>", "orders"));
        assert!(!subject_matches("orders.created", "orders.created.late"));
    }
}
