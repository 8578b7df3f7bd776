//! OpenTelemetry (cargo feature `otel`): natsgen's calls and handlers join the application's
//! traces.
//!
//! With the feature on, natsgen uses OpenTelemetry's *global* text-map propagator
//! ([`opentelemetry::global::set_text_map_propagator`]) and tracer provider
//! ([`opentelemetry::global::set_tracer_provider`]); install both before connecting, e.g. the
//! SDK's `TraceContextPropagator` and an `SdkTracerProvider` with your exporter. Its spans come
//! from the tracer named [`TRACER_NAME`].
//!
//! **Service side.** Every handled RPC request, async call and event gets a span: `SERVER` for an
//! RPC (named `<service>/<method>`), `CONSUMER` for an async call or an event (named
//! `process <subject>`). Its parent is the remote context the propagator extracts from the
//! message's headers (`traceparent` and `tracestate` with the W3C propagator); without one, it
//! starts a trace, which the tracer provider's sampler decides on. The handler — and the
//! middleware around it — runs with that span's context current, and [`Context`](crate::Context)
//! carries it: calls made with the handler's context (`ctx.client::<C>()`, `.context(&ctx)`)
//! continue it from any task, also one the handler spawned, and
//! [`Context::otel_context`](crate::Context::otel_context) hands it to the handler's own spans.
//! [`Context::trace_parent`](crate::Context::trace_parent) is that span's id. The span ends when
//! the handler returns; an error sets its status (`error.type` is the error's kind).
//!
//! **Client side.** Every RPC call gets a `CLIENT` span (`<service>/<method>`), every async call
//! and event publish a `PRODUCER` span (`send <subject>`), and the propagator injects its context
//! into the request's headers. Its parent is the current OpenTelemetry context
//! ([`opentelemetry::Context::current`]); when that has no span, the context of the natsgen
//! [`Context`](crate::Context) the call is made in (so a call from a task a handler spawned still
//! joins the handler's trace). With neither, the span starts a trace and the sampler decides:
//! an unsampled trace records nothing and its `traceparent` says so (flags `00`), so the services
//! it reaches (with a parent-based sampler, the SDK's default) record nothing either.
//!
//! **A `traceparent` set by the caller** — per call (`.header("traceparent", ..)`), per client
//! ([`ClientOptions::header`](crate::ClientOptions::header)) or by a client interceptor — is
//! sent as it is: the propagator injects nothing into that request (no `tracestate` either), and
//! natsgen adds no `traceparent` of its own.
//!
//! Without the feature none of this code exists; natsgen then continues the W3C `traceparent`
//! itself (see [`crate::headers`]).

use std::sync::OnceLock;

use async_nats::header::HeaderValue;
use async_nats::{HeaderMap, HeaderName};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{global, Context as OtelContext, InstrumentationScope, KeyValue};

use crate::headers::TraceParent;
use crate::ServiceError;

/// The name of the tracer (instrumentation scope) natsgen's spans come from.
pub const TRACER_NAME: &str = "natsgen";

/// natsgen's tracer from the global tracer provider, looked up per span so that a provider
/// installed after the first call is used from then on.
fn tracer() -> global::BoxedTracer {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    let scope = SCOPE.get_or_init(|| {
        InstrumentationScope::builder(TRACER_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build()
    });
    global::tracer_with_scope(scope.clone())
}

/// Reads a message's headers for the propagator.
struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // A name NATS cannot carry is in no message (and would panic async-nats' lookup).
        let name = key.parse::<HeaderName>().ok()?;
        self.0.get(name).map(HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// Writes the propagator's fields into a request's headers. A field NATS cannot carry (a line
/// break in a value) is left out.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (key.parse::<HeaderName>(), value.parse::<HeaderValue>()) {
            self.0.insert(name, value);
        }
    }
}

/// The span a handler runs in, as its context: a child of the remote context in `headers`.
pub(crate) fn handler_context(
    headers: Option<&HeaderMap>,
    service: &'static str,
    method: &'static str,
    subject: &str,
    call_id: &str,
    rpc: bool,
) -> OtelContext {
    // Never the thread's current context: a handler's parent is its caller, or nothing.
    let root = OtelContext::new();
    let parent = match headers {
        Some(headers) => global::get_text_map_propagator(|propagator| {
            propagator.extract_with_context(&root, &HeaderExtractor(headers))
        }),
        None => root,
    };
    let tracer = tracer();
    let builder = if rpc {
        tracer
            .span_builder(format!("{service}/{method}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("rpc.system", "natsgen"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
                KeyValue::new("natsgen.call_id", call_id.to_owned()),
            ])
    } else {
        tracer
            .span_builder(format!("process {subject}"))
            .with_kind(SpanKind::Consumer)
            .with_attributes([
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", subject.to_owned()),
                KeyValue::new("natsgen.service", service),
                KeyValue::new("natsgen.handler", method),
                KeyValue::new("natsgen.call_id", call_id.to_owned()),
            ])
    };
    let span = builder.start_with_context(&tracer, &parent);
    parent.with_span(span)
}

/// The `traceparent` of a handler's span, when natsgen's tracer provider made one (a no-op
/// provider only passes the caller's on).
pub(crate) fn trace_parent_of(cx: &OtelContext) -> Option<TraceParent> {
    let span = cx.span();
    let span_context = span.span_context();
    (span_context.is_valid() && !span_context.is_remote()).then(|| {
        TraceParent::from_parts(
            u128::from_be_bytes(span_context.trace_id().to_bytes()),
            u64::from_be_bytes(span_context.span_id().to_bytes()),
            span_context.trace_flags().to_u8(),
        )
    })
}

/// Ends a handler's (or a call's) span with the outcome.
pub(crate) fn finish(cx: &OtelContext, error: Option<&ServiceError>) {
    let span = cx.span();
    if let Some(error) = error {
        span.set_attribute(KeyValue::new("error.type", error.kind().to_owned()));
        span.set_status(Status::error(error.message().to_owned()));
    }
    span.end();
}

/// What an outgoing call is, for its span.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outgoing<'a> {
    /// An RPC call of `service`'s `method`.
    Rpc {
        service: &'static str,
        method: &'static str,
    },
    /// An async call (or an event of `package`) published on `subject`.
    Publish {
        service: &'static str,
        method: &'static str,
        subject: &'a str,
    },
}

/// Starts the span of an outgoing call made in `ctx` (see the module docs for its parent).
/// [`inject`] writes it into the request; [`finish_call`] ends it.
pub(crate) fn start_call(call: Outgoing<'_>, ctx: Option<&crate::Context>) -> OtelContext {
    let current = OtelContext::current();
    let parent = match ctx {
        Some(ctx) if !current.has_active_span() => ctx.otel_context().clone(),
        _ => current,
    };
    let tracer = tracer();
    let builder = match call {
        Outgoing::Rpc { service, method } => tracer
            .span_builder(format!("{service}/{method}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("rpc.system", "natsgen"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
            ]),
        Outgoing::Publish {
            service,
            method,
            subject,
        } => tracer
            .span_builder(format!("send {subject}"))
            .with_kind(SpanKind::Producer)
            .with_attributes([
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", subject.to_owned()),
                KeyValue::new("natsgen.service", service),
                KeyValue::new("natsgen.method", method),
            ]),
    };
    let span = builder.start_with_context(&tracer, &parent);
    parent.with_span(span)
}

/// Injects `cx` into a request's `headers` through the global propagator, unless the caller set
/// a `traceparent` of its own (`user_headers`): that one is sent as it is.
pub(crate) fn inject(cx: &OtelContext, user_headers: &[(String, String)], headers: &mut HeaderMap) {
    if !crate::headers::sets_trace_parent(user_headers) {
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(cx, &mut HeaderInjector(headers));
        });
    }
}

/// What went wrong in a call, for its span: the error's kind (`timeout`,
/// `service_unavailable`, a service error's kind, ...) and message.
pub(crate) fn failure_of<T>(result: &Result<T, crate::CallError>) -> Option<(&str, String)> {
    let error = result.as_ref().err()?;
    Some((crate::client::call_outcome(result), error.to_string()))
}

/// Ends a call's span; a failure goes into `error.type` and the status.
pub(crate) fn finish_call(cx: &OtelContext, failure: Option<(&str, String)>) {
    let span = cx.span();
    if let Some((kind, message)) = failure {
        span.set_attribute(KeyValue::new("error.type", kind.to_owned()));
        span.set_status(Status::error(message));
    }
    span.end();
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_through_the_propagator_carriers() {
        let mut headers = HeaderMap::new();
        let mut injector = HeaderInjector(&mut headers);
        injector.set(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
        );
        injector.set("bad name", "x".into());
        injector.set("tracestate", "a=1\r\nb=2".into());
        assert_eq!(headers.len(), 1);
        let extractor = HeaderExtractor(&headers);
        assert_eq!(
            extractor.get("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        );
        assert_eq!(extractor.get("bad name"), None);
        assert_eq!(extractor.keys(), ["traceparent"]);
    }
}
