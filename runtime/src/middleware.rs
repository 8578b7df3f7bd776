//! Middleware: code that runs around every handler of a [`Host`], and interceptors that see every
//! call a client makes.
//!
//! # On the service side
//!
//! A [`Middleware`] wraps each handled RPC request, async call, event and timer run, in the order
//! they were added (the first added is the outermost). It sees the endpoint ([`Next::endpoint`]: service,
//! method or handler, kind), the [`Context`] with the caller's headers ([`Context::header`]) and
//! the payload; it can reject the call with a [`ServiceError`] of its choosing (kind and code:
//! `unauthenticated` 401, `permission_denied` 403, `rate_limited` 429, ...), time it, and set
//! headers on the reply ([`Context::set_reply_header`]). It runs inside the handler's deadline,
//! slot and panic guard: a panicking middleware is an `internal` error like a panicking handler,
//! and a handler's panic reaches the middleware as that `internal` error.
//! A rejected async call or event is retried and dead-lettered like any failure. A timer's run has
//! no caller and so no caller headers: a check of the caller lets
//! [`EndpointKind::Timer`] through.
//!
//! ```
//! use natsgen::middleware::{Middleware, MiddlewareFuture, Next};
//! use natsgen::{Context, ServiceError};
//!
//! /// Lets a call through only with `Authorization: Bearer <token>`.
//! struct BearerAuth { token: String }
//!
//! impl Middleware for BearerAuth {
//!     fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> MiddlewareFuture<'a> {
//!         Box::pin(async move {
//!             let expected = format!("Bearer {}", self.token);
//!             match ctx.header("Authorization") {
//!                 Some(value) if value == expected => next.run(ctx).await,
//!                 Some(_) => Err(ServiceError::new("permission_denied", 403, "invalid token")),
//!                 None => Err(ServiceError::new("unauthenticated", 401, "a bearer token is required")),
//!             }
//!         })
//!     }
//! }
//! ```
//!
//! For a check that needs no `await` and does not wrap the call, [`Host::intercept`] takes a
//! plain function of the context (like a tonic interceptor).
//!
//! # On the client side
//!
//! [`ClientOptions::header`](crate::ClientOptions::header) adds a header to every call and event
//! of the clients made with those options, and
//! [`ClientOptions::intercept`](crate::ClientOptions::intercept) runs a function before each of
//! them is sent: it sees an [`OutgoingCall`] (service, method, kind, context, headers), can add or
//! change headers, and can refuse to send it (the caller gets the error as
//! [`CallError::Service`](crate::CallError::Service), an event publish as
//! [`Error::Publish`](crate::Error::Publish)).
//!
//! # Cost
//!
//! A host without middleware checks one empty slice per handled message and then calls the
//! handler exactly as before; a client without headers or interceptors checks two empty vectors
//! per call.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::FutureExt;

use crate::host::panicked;
use crate::service::{EndpointDescriptor, EndpointKind, Service};
use crate::{Context, Host, ServiceError};

/// The future a [`Middleware`] returns: the handler's reply body, or the error to answer with.
pub type MiddlewareFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Bytes, ServiceError>> + Send + 'a>>;

/// Code that runs around every handler of a [`Host`]: see the [module docs](self).
pub trait Middleware: Send + Sync + 'static {
    /// Handles one call: inspect `ctx` and `next.endpoint()`, then either answer (reject) or
    /// call `next.run(ctx)` (possibly with another context) and return or adapt its result.
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> MiddlewareFuture<'a>;
}

/// The rest of the chain: the middleware added after this one, then the handler.
pub struct Next<'a> {
    chain: &'a [Arc<dyn Middleware>],
    service: &'a dyn Service,
    endpoint: &'static EndpointDescriptor,
    index: usize,
    payload: Bytes,
}

impl<'a> Next<'a> {
    /// The endpoint being called: `name` (method, handler or timer), `kind` (RPC, async, event,
    /// timer), `subject`.
    pub fn endpoint(&self) -> &'static EndpointDescriptor {
        self.endpoint
    }

    /// The name of the service.
    pub fn service(&self) -> &'static str {
        self.service.descriptor().name
    }

    /// The raw request body (JSON) the handler will decode.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Runs the rest of the chain and the handler with `ctx`.
    pub fn run(self, ctx: Context) -> MiddlewareFuture<'a> {
        match self.chain.split_first() {
            // A handler's panic becomes an `internal` error here, so the middleware around it
            // sees it like any other error.
            None => {
                let (service, index, payload) = (self.service, self.index, self.payload);
                match std::panic::catch_unwind(AssertUnwindSafe(|| {
                    service.call(index, ctx, payload)
                })) {
                    Ok(future) => Box::pin(
                        AssertUnwindSafe(future)
                            .catch_unwind()
                            .map(|finished| finished.unwrap_or_else(|panic| Err(panicked(panic)))),
                    ),
                    Err(panic) => Box::pin(std::future::ready(Err(panicked(panic)))),
                }
            }
            Some((first, rest)) => first.handle(
                ctx,
                Next {
                    chain: rest,
                    ..self
                },
            ),
        }
    }
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("service", &self.service())
            .field("endpoint", &self.endpoint.name)
            .field("remaining_middleware", &self.chain.len())
            .finish()
    }
}

/// Runs a call through `chain` and then the service.
pub(crate) fn run<'a>(
    chain: &'a [Arc<dyn Middleware>],
    service: &'a dyn Service,
    endpoint: &'static EndpointDescriptor,
    index: usize,
    ctx: Context,
    payload: Bytes,
) -> MiddlewareFuture<'a> {
    Next {
        chain,
        service,
        endpoint,
        index,
        payload,
    }
    .run(ctx)
}

/// A [`Middleware`] made of a synchronous check ([`Host::intercept`]).
pub(crate) struct Interceptor<F>(pub(crate) F);

impl<F> Middleware for Interceptor<F>
where
    F: Fn(&Context) -> Result<(), ServiceError> + Send + Sync + 'static,
{
    fn handle<'a>(&'a self, ctx: Context, next: Next<'a>) -> MiddlewareFuture<'a> {
        match (self.0)(&ctx) {
            Ok(()) => next.run(ctx),
            Err(error) => Box::pin(std::future::ready(Err(error))),
        }
    }
}

impl Host {
    /// Runs `middleware` around every handler of every service of this host: RPC methods, async
    /// methods and event handlers. Middleware added first runs outermost. See
    /// [`natsgen::middleware`](crate::middleware).
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Runs `check` before every handler of every service of this host; an error answers the
    /// call (or fails the async call or event) without running the handler.
    ///
    /// ```no_run
    /// # fn f(nats: natsgen::Connection) -> natsgen::Host {
    /// natsgen::Host::new(nats).intercept(|ctx| match ctx.header("X-Tenant") {
    ///     Some(_) => Ok(()),
    ///     None => Err(natsgen::ServiceError::new("unauthenticated", 401, "X-Tenant is required")),
    /// })
    /// # }
    /// ```
    pub fn intercept(
        self,
        check: impl Fn(&Context) -> Result<(), ServiceError> + Send + Sync + 'static,
    ) -> Self {
        self.middleware(Interceptor(check))
    }
}

/// The reply headers a handler set, with natsgen's own (`ours`) added over them.
pub(crate) fn merged(extra: Option<HeaderMap>, ours: HeaderMap) -> HeaderMap {
    let Some(mut headers) = extra else {
        return ours;
    };
    for (name, values) in ours.iter() {
        let mut first = true;
        for value in values {
            if first {
                headers.insert(name.clone(), value.clone());
                first = false;
            } else {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    headers
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// A call (or event) about to be sent, as a client interceptor sees it.
#[derive(Debug)]
pub struct OutgoingCall<'a> {
    /// The target service (for an event: the package).
    pub service: &'static str,
    /// The method (for an event: the topic).
    pub method: &'static str,
    /// RPC, async call or event.
    pub kind: EndpointKind,
    /// The context the call is made in, if any (inside a handler: the handler's).
    pub context: Option<&'a Context>,
    /// The headers to send: the call's own, then the client's defaults for names the call did
    /// not set. Add to or change them; natsgen's own headers (call id, caller chain, deadline)
    /// are added after and win on a clash. A `traceparent` set here is sent instead of
    /// natsgen's (and of OpenTelemetry's, with the `otel` feature).
    pub headers: &'a mut Vec<(String, String)>,
}

type ClientInterceptor = dyn Fn(&mut OutgoingCall<'_>) -> Result<(), ServiceError> + Send + Sync;

/// A finished call, as [`ClientOptions::on_complete`](crate::ClientOptions::on_complete) sees it:
/// what was called, how it ended and how long it took (retries included). A call that never
/// went out (an interceptor refused it, its params did not encode) is not reported.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CompletedCall<'a> {
    /// The target service (for an event: the package).
    pub service: &'static str,
    /// The method (for an event: the topic).
    pub method: &'static str,
    /// RPC, async call or event.
    pub kind: EndpointKind,
    /// The context the call was made in, if any.
    pub context: Option<&'a Context>,
    /// `ok`, or what went wrong: a service error's kind (`bad_request`, a declared error's
    /// name, ...), `timeout`, `service_unavailable`, `disconnected`, `circuit_open` or `error`.
    pub outcome: &'a str,
    /// From sending the call (its interceptors have run) to its end.
    pub elapsed: std::time::Duration,
}

type CompletionHook = dyn Fn(&CompletedCall<'_>) + Send + Sync;

/// What [`ClientOptions`](crate::ClientOptions) adds to every call: default headers and
/// interceptors.
#[derive(Clone, Default)]
pub(crate) struct ClientHooks {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) interceptors: Vec<Arc<ClientInterceptor>>,
    pub(crate) completions: Vec<Arc<CompletionHook>>,
}

impl ClientHooks {
    pub(crate) fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.interceptors.is_empty() && self.completions.is_empty()
    }

    pub(crate) fn on_complete(
        &mut self,
        hook: impl Fn(&CompletedCall<'_>) + Send + Sync + 'static,
    ) {
        self.completions.push(Arc::new(hook));
    }

    /// Runs the completion hooks, in the order added.
    pub(crate) fn complete(&self, call: &CompletedCall<'_>) {
        for hook in &self.completions {
            hook(call);
        }
    }

    pub(crate) fn intercept(
        &mut self,
        interceptor: impl Fn(&mut OutgoingCall<'_>) -> Result<(), ServiceError> + Send + Sync + 'static,
    ) {
        self.interceptors.push(Arc::new(interceptor));
    }

    /// Adds the default headers a call does not set itself (a call's own header wins), then runs
    /// the interceptors.
    pub(crate) fn apply(
        &self,
        service: &'static str,
        method: &'static str,
        kind: EndpointKind,
        context: Option<&Context>,
        headers: &mut Vec<(String, String)>,
    ) -> Result<(), ServiceError> {
        if self.is_empty() {
            return Ok(());
        }
        if !self.headers.is_empty() {
            let own = headers.len();
            for (name, value) in &self.headers {
                if !headers[..own].iter().any(|(set, _)| set == name) {
                    headers.push((name.clone(), value.clone()));
                }
            }
        }
        let mut call = OutgoingCall {
            service,
            method,
            kind,
            context,
            headers,
        };
        for interceptor in &self.interceptors {
            interceptor(&mut call)?;
        }
        Ok(())
    }
}

impl PartialEq for ClientHooks {
    fn eq(&self, other: &Self) -> bool {
        self.headers == other.headers
            && self.interceptors.len() == other.interceptors.len()
            && self
                .interceptors
                .iter()
                .zip(&other.interceptors)
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && self.completions.len() == other.completions.len()
            && self
                .completions
                .iter()
                .zip(&other.completions)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for ClientHooks {}

impl std::fmt::Debug for ClientHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHooks")
            .field("headers", &self.headers)
            .field("interceptors", &self.interceptors.len())
            .field("completions", &self.completions.len())
            .finish()
    }
}
