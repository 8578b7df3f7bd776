//! The per-call [`Context`] a handler receives.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_nats::header::HeaderValue;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::{HeaderMap, HeaderName};
use tokio::time::Instant;

use crate::connection::Backend;
use crate::headers::{self, TraceParent};
use crate::Connection;

/// What a handler knows about the call it serves: ids, deadline, trace, and the connection to
/// make further calls with.
///
/// Handlers get theirs from the runtime; [`Context::new`] makes a root context for calls outside
/// any handler, and [`InProcess::context`](crate::testing::InProcess::context) one for unit tests
/// (no connection: its events are captured, its clients call in-process services).
///
/// Cheap to clone (one reference count). Pass it to a client call
/// (`client.method(..).context(&ctx)`) so the nested call joins the caller chain, continues the
/// trace and inherits the remaining deadline.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    /// Made on first use when the caller sent none, so a call nobody asks the id of (no tracing
    /// span, no nested call, no error reply) costs no id.
    call_id: OnceLock<String>,
    caller_chain: Vec<String>,
    deadline: Option<Instant>,
    service: &'static str,
    method: &'static str,
    /// NATS, or an in-process test harness.
    backend: Backend,
    trace: TraceParent,
    subject: async_nats::Subject,
    /// Async calls and durable events: the delivery count of the message; 1 otherwise.
    attempt: u32,
    /// The headers of the request or message (kept for [`Context::header`],
    /// [`Context::message_id`] and dead-lettering; moved in, never copied). `None` for root
    /// contexts and messages without headers.
    headers: Option<HeaderMap>,
    /// RPC: headers the handler (or a middleware) sets on its reply. `Mutex::new` allocates
    /// nothing, so a handler that sets none pays nothing for it.
    reply_headers: Mutex<Option<HeaderMap>>,
    /// The OpenTelemetry context calls made in this context continue: a handler's span, or the
    /// context current where a root context was made.
    #[cfg(feature = "otel")]
    otel: opentelemetry::Context,
}

impl Context {
    /// A root context outside any handler: a new call id, an empty caller chain, a new trace and
    /// no deadline. Calls made with it start a chain (and, with [`Context::with_timeout`], share
    /// one deadline).
    pub fn new(connection: &Connection) -> Self {
        Context {
            inner: Arc::new(Inner {
                call_id: OnceLock::from(crate::ids::new_call_id()),
                caller_chain: Vec::new(),
                deadline: None,
                service: "",
                method: "",
                backend: Backend::Nats(connection.clone()),
                trace: TraceParent::new_root(),
                subject: async_nats::Subject::from_static(""),
                attempt: 1,
                headers: None,
                reply_headers: Mutex::new(None),
                #[cfg(feature = "otel")]
                otel: opentelemetry::Context::current(),
            }),
        }
    }

    /// Builds the context of a request from its headers. Garbage in any header is ignored with
    /// a warning. `default_timeout` (the method's schema timeout) bounds every request: a
    /// caller's deadline header can shorten it, never lengthen it.
    pub(crate) fn from_request(
        backend: Backend,
        service: &'static str,
        method: &'static str,
        subject: async_nats::Subject,
        headers: Option<HeaderMap>,
        received: Instant,
        default_timeout: Option<Duration>,
    ) -> Self {
        let parsed = ParsedHeaders::parse(headers.as_ref(), service, method, true);
        let timeout = match (parsed.timeout, default_timeout) {
            (Some(asked), Some(limit)) => Some(asked.min(limit)),
            (asked, limit) => asked.or(limit),
        };
        let call_id = call_id_cell(parsed.call_id);
        #[cfg_attr(not(feature = "otel"), allow(unused_variables))]
        let (trace, otel) = handler_trace(
            headers.as_ref(),
            (service, method, subject.as_str()),
            &call_id,
            true,
            parsed.trace,
        );
        Context {
            inner: Arc::new(Inner {
                call_id,
                caller_chain: parsed.caller_chain,
                // A deadline too far away to represent is no deadline.
                deadline: timeout.and_then(|timeout| received.checked_add(timeout)),
                service,
                method,
                backend,
                trace,
                subject,
                attempt: 1,
                headers,
                reply_headers: Mutex::new(None),
                #[cfg(feature = "otel")]
                otel,
            }),
        }
    }

    /// Builds the context of an async call or an event from its message: like a request, but
    /// without a deadline (async calls and events have none; a deadline header is ignored), with
    /// the delivery count as the attempt number, and keeping the headers.
    pub(crate) fn from_message(
        backend: Backend,
        service: &'static str,
        method: &'static str,
        subject: async_nats::Subject,
        headers: Option<HeaderMap>,
        attempt: u32,
    ) -> Self {
        let parsed = ParsedHeaders::parse(headers.as_ref(), service, method, false);
        let call_id = call_id_cell(
            parsed
                .call_id
                .or_else(|| call_id_of_message_id(headers.as_ref()?, method)),
        );
        #[cfg_attr(not(feature = "otel"), allow(unused_variables))]
        let (trace, otel) = handler_trace(
            headers.as_ref(),
            (service, method, subject.as_str()),
            &call_id,
            false,
            parsed.trace,
        );
        Context {
            inner: Arc::new(Inner {
                call_id,
                caller_chain: parsed.caller_chain,
                deadline: None,
                service,
                method,
                backend,
                trace,
                subject,
                attempt: attempt.max(1),
                headers,
                reply_headers: Mutex::new(None),
                #[cfg(feature = "otel")]
                otel,
            }),
        }
    }

    /// A context put together from its parts (the test harness's contexts): no header is parsed,
    /// and a missing call id is made.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assembled(
        backend: Backend,
        service: &'static str,
        method: &'static str,
        subject: async_nats::Subject,
        call_id: Option<String>,
        caller_chain: Vec<String>,
        deadline: Option<Instant>,
        attempt: u32,
        headers: Option<HeaderMap>,
    ) -> Self {
        Context {
            inner: Arc::new(Inner {
                call_id: call_id_cell(call_id),
                caller_chain,
                deadline,
                service,
                method,
                backend,
                trace: TraceParent::new_root(),
                subject,
                attempt: attempt.max(1),
                headers,
                reply_headers: Mutex::new(None),
                #[cfg(feature = "otel")]
                otel: opentelemetry::Context::current(),
            }),
        }
    }

    /// The subject the message arrived on: an RPC or async subject, or an event's topic (which
    /// tells a wildcard handler which event it got). Empty for a root context.
    pub fn subject(&self) -> &str {
        self.inner.subject.as_str()
    }

    /// Which delivery of the message this is: 1 for the first attempt of an async call or a
    /// durable event, 2 for the first retry, and so on (JetStream's delivery count, so a delivery
    /// whose worker crashed counts too). Always 1 for RPC calls and best-effort events.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }

    /// The message's `Nats-Msg-Id`: `<method>:<idempotency key>` for an async call sent by a
    /// natsgen client, the event id for an event. `None` for root contexts and messages sent
    /// without one (an RPC request, a plain core NATS publish).
    pub fn message_id(&self) -> Option<&str> {
        self.inner
            .headers
            .as_ref()
            .and_then(|headers| headers.get(NATS_MESSAGE_ID))
            .map(|value| value.as_str())
    }

    /// The headers of the async call or event being handled.
    pub(crate) fn message_headers(&self) -> Option<&HeaderMap> {
        self.inner.headers.as_ref()
    }

    /// The first value of header `name` of the request, async call or event being handled
    /// (names match exactly: NATS headers keep their case). `None` when it is absent, for a
    /// root context, and for a value the connection could not read (such fields are dropped
    /// with a warning). natsgen's own headers are readable too, but [`Context::call_id`] and the
    /// other accessors give their validated values.
    ///
    /// ```
    /// # fn f(ctx: &natsgen::Context) {
    /// let tenant = ctx.header("X-Tenant").unwrap_or("default");
    /// # }
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        let headers = self.inner.headers.as_ref()?;
        // A name NATS cannot carry is in no request (and would panic async-nats' lookup).
        let name = name.parse::<HeaderName>().ok()?;
        headers.get(name).map(|value| value.as_str())
    }

    /// All headers of the request, async call or event being handled (`None` for a root
    /// context or a message that has none). A header may have several values:
    /// `headers.get_all(name)` (parse the name first: `"X-Tenant".parse::<async_nats::HeaderName>()`;
    /// a lookup by an invalid `&str` name panics in async-nats).
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.inner.headers.as_ref()
    }

    /// Sets a header on the reply to this RPC request (replacing an earlier value of the same
    /// name): on a success reply and on an error reply alike. Async calls and events send no
    /// reply, so there it has no effect. A name or value NATS cannot carry (a name with a space
    /// or `:`, a value with a line break) is an `internal` error, so `?` in a handler works.
    /// natsgen's own reply headers (`Nats-Service-Error*`) win on a clash.
    ///
    /// Set it on the context the handler received (or a clone of it); contexts made with
    /// [`Context::detached`] or [`Context::with_timeout`] have their own, unused, reply headers.
    pub fn set_reply_header(&self, name: &str, value: &str) -> Result<(), crate::ServiceError> {
        let name = name.parse::<HeaderName>().map_err(|_| {
            crate::ServiceError::internal(format!("{name:?} is not a valid NATS header name"))
        })?;
        let value = value.parse::<HeaderValue>().map_err(|_| {
            crate::ServiceError::internal(format!(
                "the value of reply header {name} contains a line break"
            ))
        })?;
        let mut slot = self
            .inner
            .reply_headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert_with(HeaderMap::new).insert(name, value);
        Ok(())
    }

    /// The headers set with [`Context::set_reply_header`], taken out (`None` when none were
    /// set).
    pub(crate) fn take_reply_headers(&self) -> Option<HeaderMap> {
        self.inner
            .reply_headers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The event publisher of a package, e.g. `ctx.emit::<ecommerce::Events>().orders_created(&o)`.
    /// One `Events` type per package, so two packages' publishers never clash.
    ///
    /// In a context of an [`InProcess`](crate::testing::InProcess) harness the events are
    /// captured there (and handled by its services) instead of being published.
    pub fn emit<E: crate::codegen::EventSet>(&self) -> E {
        E::from_publisher(crate::codegen::EventPublisher::on(
            &self.inner.backend,
            E::descriptor(),
        ))
    }

    /// A typed client of another service whose calls belong to this call: they join the caller
    /// chain, continue the trace and inherit the remaining deadline.
    ///
    /// ```
    /// # include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/generated/doc_support.rs"));
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let (_server, nats, host) = shop_running().await?;
    /// # let ctx = natsgen::Context::new(&nats);
    /// // In a handler, `ctx` is the handler's own context.
    /// let payment = ctx
    ///     .client::<shop::OrderServiceClient>()
    ///     .process_payment("order_1".into(), 25.0)
    ///     .await?;
    /// assert_eq!(payment.total, 25.0);
    /// # host.shutdown().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// In a context of an [`InProcess`](crate::testing::InProcess) harness the client calls the
    /// services served there; a service not served there answers like one with no instance
    /// running ([`CallError::ServiceUnavailable`](crate::CallError::ServiceUnavailable)).
    pub fn client<C: crate::codegen::GeneratedClient>(&self) -> C {
        C::from_core(
            crate::codegen::ClientCore::on(&self.inner.backend, C::descriptor()).with_context(self),
        )
    }

    /// The id of this call: the caller's, or one made (a UUIDv7) the first time it is asked for
    /// when the caller sent none, the same for every clone of this context from then on.
    pub fn call_id(&self) -> &str {
        self.inner.call_id.get_or_init(crate::ids::new_call_id)
    }

    /// The call ids of the calls that led to this one, outermost first (empty for a call made
    /// outside any handler).
    pub fn caller_chain(&self) -> &[String] {
        &self.inner.caller_chain
    }

    /// When the caller stops waiting; `None` for no deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// The time left until the deadline (zero once it passed); `None` for no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// The name of the service handling this call (empty for a root context).
    pub fn service(&self) -> &'static str {
        self.inner.service
    }

    /// The name of the method handling this call (empty for a root context).
    pub fn method(&self) -> &'static str {
        self.inner.method
    }

    /// The connection the call arrived on; use it for further calls. `None` for a context of an
    /// [`InProcess`](crate::testing::InProcess) test harness, which has none (its
    /// [`Context::client`] and [`Context::emit`] work all the same).
    pub fn connection(&self) -> Option<&Connection> {
        self.inner.backend.connection()
    }

    /// The W3C trace context of this call (its span id is this call's own).
    pub fn trace_parent(&self) -> TraceParent {
        self.inner.trace
    }

    /// The OpenTelemetry context of this call (feature `otel`): in a handler, the context of the
    /// handler's span (a child of the caller's); for [`Context::new`], the context that was
    /// current where it was made. natsgen makes it current while the handler runs, and calls made
    /// with this context continue it from any task; attach it to work the handler spawns to
    /// parent that work's own spans:
    ///
    /// ```
    /// use opentelemetry::context::FutureExt;
    /// # fn f(ctx: &natsgen::Context) {
    /// let work = async { /* spans started here are children of the handler's */ };
    /// tokio::spawn(work.with_context(ctx.otel_context().clone()));
    /// # }
    /// ```
    #[cfg(feature = "otel")]
    pub fn otel_context(&self) -> &opentelemetry::Context {
        &self.inner.otel
    }

    /// A copy without a deadline, for background work that outlives the call.
    pub fn detached(&self) -> Context {
        self.with_deadline_value(None)
    }

    /// A copy whose deadline is `timeout` from now (or the current deadline, if that is sooner).
    pub fn with_timeout(&self, timeout: Duration) -> Context {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self.clone(),
        }
    }

    /// A copy whose deadline is `deadline` (or the current deadline, if that is sooner).
    pub fn with_deadline(&self, deadline: Instant) -> Context {
        let deadline = match self.inner.deadline {
            Some(current) => current.min(deadline),
            None => deadline,
        };
        self.with_deadline_value(Some(deadline))
    }

    fn with_deadline_value(&self, deadline: Option<Instant>) -> Context {
        let inner = &self.inner;
        Context {
            inner: Arc::new(Inner {
                // Made now if it was not yet, so both contexts carry the same id.
                call_id: OnceLock::from(self.call_id().to_owned()),
                caller_chain: inner.caller_chain.clone(),
                deadline,
                service: inner.service,
                method: inner.method,
                backend: inner.backend.clone(),
                trace: inner.trace,
                subject: inner.subject.clone(),
                attempt: inner.attempt,
                headers: inner.headers.clone(),
                reply_headers: Mutex::new(None),
                #[cfg(feature = "otel")]
                otel: inner.otel.clone(),
            }),
        }
    }

    /// The caller chain a call made with this context carries: this chain plus this call.
    pub(crate) fn outgoing_chain(&self) -> String {
        let chain = &self.inner.caller_chain;
        let keep = chain.len().min(headers::MAX_CALLER_CHAIN - 1);
        let mut value = String::with_capacity((keep + 1) * 37);
        for id in &chain[chain.len() - keep..] {
            value.push_str(id);
            value.push(',');
        }
        value.push_str(self.call_id());
        value
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("call_id", &self.call_id())
            .field("caller_chain", &self.inner.caller_chain)
            .field("remaining", &self.remaining())
            .field("service", &self.inner.service)
            .field("method", &self.inner.method)
            .field("attempt", &self.inner.attempt)
            .field("message_id", &self.message_id())
            .field("trace_parent", &self.inner.trace.to_string())
            .finish()
    }
}

/// natsgen's headers of an incoming message, each `None` (or empty) when absent or garbage.
struct ParsedHeaders {
    call_id: Option<String>,
    caller_chain: Vec<String>,
    timeout: Option<Duration>,
    trace: Option<TraceParent>,
}

impl ParsedHeaders {
    /// Reads the headers, warning about (and ignoring) garbage. `with_deadline: false` skips the
    /// deadline header (async calls and events have no deadline).
    fn parse(
        headers: Option<&HeaderMap>,
        service: &'static str,
        method: &'static str,
        with_deadline: bool,
    ) -> Self {
        let mut parsed = ParsedHeaders {
            call_id: None,
            caller_chain: Vec::new(),
            timeout: None,
            trace: None,
        };
        let Some(headers) = headers else {
            return parsed;
        };
        // One pass over the (few) headers instead of a hashed lookup per name; the first value
        // of a name counts, as with `HeaderMap::get`.
        let (mut call_id, mut chain, mut deadline, mut traceparent) = (None, None, None, None);
        for (name, values) in headers.iter() {
            let Some(value) = values.first().map(HeaderValue::as_str) else {
                continue;
            };
            if *name == headers::CALL_ID_NAME {
                call_id = Some(value);
            } else if *name == headers::CALLER_CHAIN_NAME {
                chain = Some(value);
            } else if *name == headers::DEADLINE_MS_NAME {
                deadline = Some(value);
            } else if *name == headers::TRACEPARENT_NAME {
                traceparent = Some(value);
            }
        }
        if let Some(value) = call_id {
            if headers::is_valid_call_id(value) {
                parsed.call_id = Some(value.to_owned());
            } else {
                tracing::warn!(
                    service,
                    method,
                    header = headers::CALL_ID,
                    value = %truncated(value),
                    "ignoring an invalid call id header"
                );
            }
        }
        if let Some(value) = chain {
            parsed.caller_chain = parse_chain(value).unwrap_or_else(|| {
                tracing::warn!(
                    service,
                    method,
                    header = headers::CALLER_CHAIN,
                    value = %truncated(value),
                    "ignoring an invalid caller chain header"
                );
                Vec::new()
            });
        }
        if with_deadline {
            if let Some(value) = deadline {
                match value.trim().parse::<u64>() {
                    Ok(millis) => parsed.timeout = Some(Duration::from_millis(millis)),
                    Err(_) => tracing::warn!(
                        service,
                        method,
                        header = headers::DEADLINE_MS,
                        value = %truncated(value),
                        "ignoring an invalid deadline header"
                    ),
                }
            }
        }
        if let Some(value) = traceparent {
            match TraceParent::parse(value.trim()) {
                Some(parent) => parsed.trace = Some(parent.child()),
                None => tracing::warn!(
                    service,
                    method,
                    header = headers::TRACEPARENT,
                    value = %truncated(value),
                    "ignoring an invalid traceparent header"
                ),
            }
        }
        parsed
    }
}

/// The call id an async call without an idempotency key carries in its `Nats-Msg-Id`,
/// `<method>:<call id>`, instead of a call id header.
fn call_id_of_message_id(headers: &HeaderMap, method: &str) -> Option<String> {
    let id = headers
        .get(NATS_MESSAGE_ID)?
        .as_str()
        .strip_prefix(method)?
        .strip_prefix(':')?;
    headers::is_valid_call_id(id).then(|| id.to_owned())
}

fn parse_chain(value: &str) -> Option<Vec<String>> {
    let value = value.trim();
    if value.is_empty() {
        return Some(Vec::new());
    }
    let mut chain = Vec::new();
    for id in value.split(',') {
        let id = id.trim();
        if !headers::is_valid_call_id(id) {
            return None;
        }
        chain.push(id.to_owned());
    }
    if chain.len() > headers::MAX_CALLER_CHAIN {
        chain.drain(..chain.len() - headers::MAX_CALLER_CHAIN);
    }
    Some(chain)
}

/// A header value short enough to log.
fn truncated(value: &str) -> &str {
    let mut end = value.len().min(64);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// A handler's trace: with the `otel` feature its OpenTelemetry context (a child of the caller's,
/// read from `headers`) and that span's ids; without, the caller's `traceparent` (`wire`)
/// continued, or a new root.
#[cfg(feature = "otel")]
fn handler_trace(
    headers: Option<&HeaderMap>,
    (service, method, subject): (&'static str, &'static str, &str),
    call_id: &OnceLock<String>,
    rpc: bool,
    wire: Option<TraceParent>,
) -> (TraceParent, opentelemetry::Context) {
    // The span carries the call id, so it is made now.
    let call_id = call_id.get_or_init(crate::ids::new_call_id);
    let otel = crate::otel::handler_context(headers, service, method, subject, call_id, rpc);
    let trace = crate::otel::trace_parent_of(&otel)
        .or(wire)
        .unwrap_or_else(TraceParent::new_root);
    (trace, otel)
}

/// The call id a caller sent, or an empty cell that makes one on first use.
fn call_id_cell(sent: Option<String>) -> OnceLock<String> {
    sent.map_or_else(OnceLock::new, OnceLock::from)
}

#[cfg(not(feature = "otel"))]
fn handler_trace(
    _headers: Option<&HeaderMap>,
    _endpoint: (&'static str, &'static str, &str),
    _call_id: &OnceLock<String>,
    _rpc: bool,
    wire: Option<TraceParent>,
) -> (TraceParent, ()) {
    (wire.unwrap_or_else(TraceParent::new_root), ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_names_the_call_of_its_own_method() {
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_MESSAGE_ID,
            "send_email:0190b6f2-4c1e-7d3a-9f00-5c2b7e8a1d42",
        );
        assert_eq!(
            call_id_of_message_id(&headers, "send_email").as_deref(),
            Some("0190b6f2-4c1e-7d3a-9f00-5c2b7e8a1d42")
        );
        assert_eq!(call_id_of_message_id(&headers, "send"), None);
        assert_eq!(call_id_of_message_id(&headers, "other"), None);
        headers.insert(NATS_MESSAGE_ID, "send_email:a,b");
        assert_eq!(call_id_of_message_id(&headers, "send_email"), None);
    }

    #[test]
    fn chains_parse_and_reject_garbage() {
        assert_eq!(parse_chain("a,b , c").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_chain("").unwrap(), Vec::<String>::new());
        assert!(parse_chain("a,,b").is_none());
        assert!(parse_chain("a b").is_none());
        let long: Vec<String> = (0..40).map(|i| format!("id{i}")).collect();
        let parsed = parse_chain(&long.join(",")).unwrap();
        assert_eq!(parsed.len(), headers::MAX_CALLER_CHAIN);
        assert_eq!(parsed.last().unwrap(), "id39");
    }
}
