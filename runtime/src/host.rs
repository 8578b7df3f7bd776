//! Running services: a [`Host`] serves one or more services on a connection.
//!
//! # How an RPC request is handled
//!
//! Each RPC method has its own subscription on `<service>.rpc.<method>` in queue group
//! `<service>`, so instances of a service share the calls. Per request:
//!
//! 1. A request without a reply subject is ignored (debug log).
//! 2. If the service runs `max_concurrency` handlers already, the request waits in a bounded
//!    in-process queue (`max_queue`); when that is full too, it is answered `busy` (503).
//! 3. The request is handled in the endpoint's loop, without a task of its own, as far as its
//!    first poll goes: it builds the [`Context`] from the headers (see [`crate::headers`]; a
//!    request without a deadline header gets the method's schema timeout) and polls the handler
//!    once. Only a call still pending then is spawned as a task, with a timer for its deadline;
//!    most handlers finish on that first poll and cost neither. (So a handler that computes for a
//!    long time before its first `.await` holds up its endpoint's next requests; such work
//!    belongs in `tokio::task::spawn_blocking`.) A queued request is spawned at once.
//! 4. A request whose deadline passed (also while queued) is answered `deadline_exceeded` (504)
//!    without running. Otherwise the handler runs until the deadline; a handler still running then
//!    is cancelled (its future dropped) and the caller gets 504.
//! 5. A handler error is answered as that error; a panic as `internal` (500) — the service keeps
//!    serving. An `internal` error's message (a panic message, a converted I/O error) is logged,
//!    not sent: the caller gets the kind, the code and the call id. A success reply larger than the server's `max_payload` becomes `payload_too_large`
//!    (413).
//!
//! # Async calls and events
//!
//! At start the host makes sure the streams and consumers of every async method and durable
//! event handler exist (see [`crate::streams`] for their names and settings) and pulls from them
//! into the same handler slots: JetStream work is pulled only while slots are free, so excess
//! work waits in the stream. Failures are retried with the schema's backoff, then dead-lettered;
//! best-effort handlers use core NATS. The details are in the `worker` module.
//!
//! # Timers
//!
//! Each timer of a served service ticks at every multiple of its period (wall-clock time since
//! the Unix epoch); see the `timer` module for how `scope: service` runs each tick on one
//! instance only.
//!
//! # Shutdown
//!
//! [`HostHandle::shutdown`] (and [`Host::run`] on SIGINT/SIGTERM): every loop stops taking new
//! work (RPC subscriptions are drained; timers stop ticking; consumers stop pulling and nak what
//! arrived but has not started); running handlers finish within the grace period and are
//! answered, acked or nak'd as usual; async and event handlers still running when it ends are
//! cancelled and nak'd; then the connection is flushed.
//!
//! Every handled call runs in a `natsgen.rpc` tracing span with the service, method, call id,
//! outcome and duration, and is counted in the endpoint's stats (requests, errors of any code,
//! processing time), which `$SRV.STATS` reports (see [`crate::discovery`]).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use async_nats::client::PublishErrorKind;
use async_nats::header::HeaderValue;
use async_nats::{HeaderMap, Message, Subject, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::connection::Backend;
use crate::discovery::Responder;
use crate::headers;
use crate::service::{EndpointDescriptor, EndpointKind, Service, ServiceDescriptor};
use crate::stats::ServiceStats;
use crate::worker;
use crate::{Connection, Context, Error, ServiceError};

/// Default of [`Host::max_concurrency`].
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Default of [`Host::max_queue`].
pub const DEFAULT_MAX_QUEUE: usize = 1024;
/// Default of [`Host::grace_period`].
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// How long [`Host::start`] waits for the server to confirm the subscriptions.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shutdown waits, after the grace period, for cancelled async and event handlers to
/// return their messages.
const NAK_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves services on a connection until told to stop.
///
/// ```no_run
/// # async fn f(nats: natsgen::Connection, server: impl natsgen::codegen::Service) -> Result<(), natsgen::Error> {
/// natsgen::Host::new(nats).serve(server).run().await // until SIGINT or SIGTERM
/// # }
/// ```
pub struct Host {
    connection: Connection,
    services: Vec<Arc<dyn Service>>,
    max_concurrency: usize,
    max_queue: usize,
    grace_period: Duration,
    ack_wait: Duration,
    pub(crate) middleware: Vec<Arc<dyn crate::Middleware>>,
}

impl Host {
    /// A host with no services yet.
    pub fn new(connection: Connection) -> Self {
        Host {
            connection,
            services: Vec::new(),
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            max_queue: DEFAULT_MAX_QUEUE,
            grace_period: DEFAULT_GRACE_PERIOD,
            ack_wait: crate::streams::DEFAULT_ACK_WAIT,
            middleware: Vec::new(),
        }
    }

    /// Adds a service (a generated `<Service>Server`). A host serves any number of services, each
    /// once.
    pub fn serve(mut self, service: impl Service) -> Self {
        self.services.push(Arc::new(service));
        self
    }

    /// Adds a service already behind an `Arc`.
    pub fn serve_arc(mut self, service: Arc<dyn Service>) -> Self {
        self.services.push(service);
        self
    }

    /// How many handlers of one service run at once — RPC calls, async calls and events together
    /// (default 64; at least 1). Async calls and durable events beyond it wait in their streams:
    /// the host pulls only as many as it has free slots.
    pub fn max_concurrency(mut self, max: usize) -> Self {
        self.max_concurrency = max.max(1);
        self
    }

    /// How many requests of one service wait for a free handler slot before further ones are
    /// answered `busy` (default 1024; 0 answers `busy` as soon as all slots are taken).
    pub fn max_queue(mut self, max: usize) -> Self {
        self.max_queue = max;
        self
    }

    /// How long a shutdown waits for running handlers (default 10 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// The ack wait of the JetStream consumers this host creates or updates (default
    /// [`DEFAULT_ACK_WAIT`](crate::streams::DEFAULT_ACK_WAIT), 10 s; at least 300 ms): how soon
    /// the message of a worker that crashed mid-call is delivered again. Running handlers send an
    /// in-progress ack every third of it, so it does not bound how long a handler may run.
    /// Consumers are shared by a service's instances: give them all the same value (the last
    /// instance started sets it).
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Serves until SIGINT (Ctrl-C) or SIGTERM, then shuts down gracefully
    /// (see [`HostHandle::shutdown`]).
    pub async fn run(self) -> Result<(), Error> {
        let handle = self.start().await?;
        let signal = shutdown_signal().await;
        tracing::info!("shutdown signal received; stopping");
        let shutdown = handle.shutdown().await;
        signal.and(shutdown)
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        let handle = self.start().await?;
        shutdown.await;
        handle.shutdown().await
    }

    /// Subscribes every endpoint and returns once the server has confirmed the subscriptions, so
    /// calls made right after reach the services.
    pub async fn start(self) -> Result<HostHandle, Error> {
        let Host {
            connection,
            services,
            max_concurrency,
            max_queue,
            grace_period,
            ack_wait,
            middleware,
        } = self;
        let middleware: Arc<[Arc<dyn crate::Middleware>]> = middleware.into();
        let mut names = HashSet::new();
        for service in &services {
            let name = service.descriptor().name;
            if !names.insert(name) {
                return Err(Error::DuplicateService { name });
            }
        }

        let client = connection.nats();
        let (guard, in_flight) = mpsc::channel::<()>(1);
        let (abandon, abandoned) = watch::channel(false);
        let workers = worker::Settings {
            ack_wait,
            guard: guard.clone(),
            abandon: abandoned,
        };
        let mut runtimes = Vec::with_capacity(services.len());
        let mut stops = Vec::new();
        let mut loops = Vec::new();
        let mut watchers = Vec::new();
        for service in services {
            let descriptor = service.descriptor();
            let runtime = Arc::new(ServiceRuntime {
                service,
                descriptor,
                connection: connection.clone(),
                permits: Arc::new(Semaphore::new(max_concurrency)),
                max_concurrency,
                queued: AtomicUsize::new(0),
                max_queue,
                stats: Arc::new(ServiceStats::new(descriptor)),
                middleware: Arc::clone(&middleware),
                ticking: descriptor
                    .endpoints
                    .iter()
                    .map(|_| Default::default())
                    .collect(),
            });
            let mut served = Vec::new();
            for (index, endpoint) in descriptor.endpoints.iter().enumerate() {
                // Async methods and event handlers are served by `worker` below; a core
                // subscription on their subjects would process messages twice.
                if endpoint.kind != EndpointKind::Rpc {
                    continue;
                }
                let subscriber = client
                    .queue_subscribe(endpoint.subject, descriptor.name.to_owned())
                    .await
                    .map_err(|source| Error::Subscribe {
                        subject: endpoint.subject.to_owned(),
                        source,
                    })?;
                let (stop, stopped) = oneshot::channel();
                stops.push(stop);
                loops.push(tokio::spawn(serve_endpoint(
                    Arc::clone(&runtime),
                    endpoint,
                    index,
                    subscriber,
                    stopped,
                    guard.clone(),
                )));
                served.push(endpoint.name);
            }
            for spawned in worker::serve(&runtime, &workers).await? {
                stops.push(spawned.stop);
                loops.push(spawned.task);
                watchers.extend(spawned.watcher);
            }
            // After `worker::serve`: the stream that `scope: service` ticks go to exists.
            for (stop, task) in crate::timer::serve(&runtime, &workers.guard) {
                stops.push(stop);
                loops.push(task);
            }
            tracing::info!(
                service = descriptor.name,
                version = descriptor.version,
                methods = ?served,
                "serving"
            );
            runtimes.push(runtime);
        }
        drop(workers);
        drop(guard);

        // Discovery lists a service only once its endpoints are subscribed; the round trip
        // below confirms both.
        let mut discovery = Vec::with_capacity(runtimes.len());
        for runtime in &runtimes {
            let stats = Arc::clone(&runtime.stats);
            discovery.push(Responder::start(client, runtime.descriptor, stats).await?);
        }

        match tokio::time::timeout(CONFIRM_TIMEOUT, round_trip(client)).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(Error::Confirm { reason }),
            Err(_) => {
                return Err(Error::Confirm {
                    reason: format!("no answer within {CONFIRM_TIMEOUT:?}"),
                })
            }
        }

        Ok(HostHandle {
            connection,
            runtimes,
            stops,
            loops,
            watchers,
            in_flight,
            grace_period,
            discovery,
            abandon,
            draining: Arc::default(),
        })
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self
            .services
            .iter()
            .map(|service| service.descriptor().name)
            .collect();
        f.debug_struct("Host")
            .field("services", &names)
            .field("max_concurrency", &self.max_concurrency)
            .field("max_queue", &self.max_queue)
            .field("grace_period", &self.grace_period)
            .field("ack_wait", &self.ack_wait)
            .finish()
    }
}

/// A running [`Host`]. Call [`HostHandle::shutdown`] to stop it gracefully; dropping the handle
/// stops taking new requests too, but does not wait for running handlers.
#[must_use = "dropping the handle stops the host; keep it, or call shutdown() to stop gracefully"]
pub struct HostHandle {
    connection: Connection,
    runtimes: Vec<Arc<ServiceRuntime>>,
    stops: Vec<oneshot::Sender<()>>,
    loops: Vec<JoinHandle<()>>,
    /// The max-deliveries watchers of the pull consumers, stopped last.
    watchers: Vec<worker::Watcher>,
    /// Closes when every endpoint loop and every handler task has ended.
    in_flight: mpsc::Receiver<()>,
    grace_period: Duration,
    /// The `$SRV` responders, one per service.
    discovery: Vec<Responder>,
    /// Set when the grace period is over: async and event handlers still running are cancelled
    /// and their messages nak'd.
    abandon: watch::Sender<bool>,
    /// Set when shutdown begins; [`HostHandle::readiness`] reads it.
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl HostHandle {
    /// Whether this host should get work (connected, bound, not shutting down); see
    /// [`Readiness`](crate::health::Readiness).
    pub fn readiness(&self) -> crate::health::Readiness {
        crate::health::Readiness::new(self.connection.clone(), Arc::clone(&self.draining))
    }

    /// The names of the services served.
    pub fn services(&self) -> Vec<&'static str> {
        self.runtimes
            .iter()
            .map(|runtime| runtime.descriptor.name)
            .collect()
    }

    /// Stops gracefully: unsubscribes (draining requests already delivered), stops pulling from
    /// JetStream (returning messages that arrived but did not start with a nak), lets running and
    /// queued handlers finish within the grace period (acking or nak'ing their messages as
    /// usual), then flushes their replies. Handlers still running after the grace period are
    /// abandoned — async and event handlers are cancelled and their messages nak'd, so another
    /// instance takes them over at once — and reported as [`Error::GracePeriodExceeded`].
    pub async fn shutdown(self) -> Result<(), Error> {
        let HostHandle {
            connection,
            runtimes,
            stops,
            loops,
            watchers,
            mut in_flight,
            grace_period,
            discovery,
            abandon,
            draining,
        } = self;
        draining.store(true, Ordering::Relaxed);
        let now = Instant::now();
        // A grace period too long to represent waits "forever" (about thirty years).
        let deadline = now
            .checked_add(grace_period)
            .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400));
        for stop in stops {
            let _ = stop.send(());
        }
        for mut endpoint_loop in loops {
            if tokio::time::timeout_at(deadline, &mut endpoint_loop)
                .await
                .is_err()
            {
                tracing::warn!("an endpoint did not finish draining in the grace period");
                endpoint_loop.abort();
            }
        }
        let finished = tokio::time::timeout_at(deadline, in_flight.recv())
            .await
            .is_ok();
        let running: usize = runtimes.iter().map(|runtime| runtime.busy()).sum();
        if !finished {
            // Give cancelled async and event handlers a moment to return their messages.
            let _ = abandon.send(true);
            let _ = tokio::time::timeout(NAK_TIMEOUT, in_flight.recv()).await;
        }
        // The last naks may have made a message reach its max_deliver: once the server has
        // processed them (a round trip), its advisory has arrived, and the watchers dead-letter
        // such messages before they stop.
        if !watchers.is_empty() {
            let _ = tokio::time::timeout(CONFIRM_TIMEOUT, round_trip(connection.nats())).await;
            worker::Watcher::stop_all(watchers).await;
        }
        // Listed until the last handler finished; the round trip below has the server process
        // the unsubscriptions (and deliver the last replies) before shutdown returns.
        for responder in discovery {
            responder.stop().await;
        }
        let flushed = tokio::time::timeout(CONFIRM_TIMEOUT, round_trip(connection.nats())).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!("could not flush the last replies to the server");
        }
        if finished {
            tracing::info!("stopped");
            return Ok(());
        }
        Err(Error::GracePeriodExceeded {
            running,
            grace: grace_period,
        })
    }
}

impl fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostHandle")
            .field("services", &self.services())
            .field("endpoints", &self.loops.len())
            .field("grace_period", &self.grace_period)
            .finish()
    }
}

/// Returns once the server has processed everything sent on `client` so far (subscriptions,
/// unsubscriptions, replies). async-nats' `flush` only writes to the socket; a request on a
/// subject nobody serves is answered by the server itself ("no responders") after it handled
/// every earlier command of this connection.
async fn round_trip(client: &async_nats::Client) -> Result<(), String> {
    let subject = format!("_NATSGEN.CONFIRM.{}", crate::ids::new_call_id());
    match client.request(subject, Bytes::new()).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

async fn shutdown_signal() -> Result<(), Error> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.map_err(Error::Signal),
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.map_err(Error::Signal)
    }
}

/// What the endpoint loops and handler tasks of one service share.
pub(crate) struct ServiceRuntime {
    pub(crate) service: Arc<dyn Service>,
    pub(crate) descriptor: &'static ServiceDescriptor,
    pub(crate) connection: Connection,
    /// The handler slots (`max_concurrency`), shared by RPC, async and event work.
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) max_concurrency: usize,
    /// Requests and best-effort events waiting for a handler slot.
    pub(crate) queued: AtomicUsize,
    pub(crate) max_queue: usize,
    /// Per-endpoint counters, indexed like `descriptor.endpoints`; `$SRV.STATS` reads them.
    pub(crate) stats: Arc<ServiceStats>,
    /// The host's middleware, outermost first; empty (and never looked at further) without.
    pub(crate) middleware: Arc<[Arc<dyn crate::Middleware>]>,
    /// Per endpoint, indexed like `descriptor.endpoints`: whether a tick of that timer runs on
    /// this instance now.
    ticking: Box<[std::sync::atomic::AtomicBool]>,
}

impl ServiceRuntime {
    /// Marks a tick of timer `index` as running on this instance until the guard is dropped;
    /// `None` while one runs already.
    pub(crate) fn start_tick(&self, index: usize) -> Option<Ticking<'_>> {
        let flag = self.ticking.get(index)?;
        // Lazily: a guard made and dropped when one runs already would clear the flag.
        (!flag.swap(true, Ordering::AcqRel)).then(|| Ticking(flag))
    }

    /// Handlers running plus requests queued.
    fn busy(&self) -> usize {
        self.max_concurrency
            .saturating_sub(self.permits.available_permits())
            + self.queued.load(Ordering::Relaxed)
    }
}

/// A timer's tick running on this instance (see [`ServiceRuntime::start_tick`]).
pub(crate) struct Ticking<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn serve_endpoint(
    runtime: Arc<ServiceRuntime>,
    endpoint: &'static EndpointDescriptor,
    index: usize,
    mut subscriber: Subscriber,
    mut stop: oneshot::Receiver<()>,
    guard: mpsc::Sender<()>,
) {
    let mut draining = false;
    loop {
        let message = if draining {
            subscriber.next().await
        } else {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    draining = true;
                    if let Err(error) = subscriber.drain().await {
                        tracing::warn!(subject = endpoint.subject, %error, "failed to drain");
                        break;
                    }
                    continue;
                }
                message = subscriber.next() => message,
            }
        };
        let Some(message) = message else { break };
        dispatch(&runtime, endpoint, index, message, &guard).await;
    }
    tracing::debug!(subject = endpoint.subject, "endpoint stopped");
}

async fn dispatch(
    runtime: &Arc<ServiceRuntime>,
    endpoint: &'static EndpointDescriptor,
    index: usize,
    mut message: Message,
    guard: &mpsc::Sender<()>,
) {
    let received = Instant::now();
    let Some(reply) = message.reply.take() else {
        tracing::debug!(
            subject = endpoint.subject,
            "ignoring a request without a reply subject"
        );
        return;
    };
    let permit = match Arc::clone(&runtime.permits).try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) => {
            if runtime.queued.fetch_add(1, Ordering::Relaxed) >= runtime.max_queue {
                runtime.queued.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(
                    service = runtime.descriptor.name,
                    method = endpoint.name,
                    "at capacity; answering busy"
                );
                let error = ServiceError::busy(format!(
                    "{} is at capacity ({} calls running, {} queued); retry later",
                    runtime.descriptor.name, runtime.max_concurrency, runtime.max_queue
                ));
                send_error(&runtime.connection, reply, &error).await;
                runtime
                    .stats
                    .record(index, received.elapsed(), Some(&error));
                return;
            }
            None
        }
    };
    let permit = match permit {
        // Without middleware, the handler's own (boxed) future is all that is started: its
        // first poll runs here, and only a pending one moves into a task.
        Some(permit) if runtime.middleware.is_empty() => {
            let call = Call {
                index,
                reply,
                received,
            };
            let inline = handle_inline(runtime, endpoint, call, message, (permit, guard));
            // The handler's own panics are answered where it is polled; this would be the
            // runtime's own, which must not end the endpoint's loop.
            if AssertUnwindSafe(inline).catch_unwind().await.is_err() {
                tracing::error!(
                    service = runtime.descriptor.name,
                    method = endpoint.name,
                    "handling a call panicked outside its handler; it got no reply"
                );
            }
            return;
        }
        permit => permit,
    };
    let queued = permit.is_none();
    let mut call = Box::pin(handle(
        Arc::clone(runtime),
        endpoint,
        index,
        message,
        reply,
        received,
        permit,
        guard.clone(),
    ));
    if queued {
        // It waits for a slot first: it would only be pending.
        tokio::spawn(call);
        return;
    }
    // Most handlers finish on their first poll: run it here, and spawn a task (which arms the
    // deadline timer) only for a call that is still pending.
    let first = std::future::poll_fn(|cx| {
        Poll::Ready(std::panic::catch_unwind(AssertUnwindSafe(|| {
            call.as_mut().poll(cx)
        })))
    })
    .await;
    match first {
        Ok(Poll::Ready(())) => {}
        Ok(Poll::Pending) => {
            tokio::spawn(call);
        }
        // The handler's own panics are caught in `run_handler` and answered; this would be
        // the runtime's own, which a spawned task would have lost the same way.
        Err(_) => tracing::error!(
            service = runtime.descriptor.name,
            method = endpoint.name,
            "handling a call panicked outside its handler; it got no reply"
        ),
    }
}

/// The context of a request, and its `natsgen.rpc` span.
fn request_context(
    runtime: &ServiceRuntime,
    endpoint: &'static EndpointDescriptor,
    message: &mut Message,
    received: Instant,
) -> (Context, tracing::Span) {
    let service = runtime.descriptor.name;
    let ctx = Context::from_request(
        Backend::Nats(runtime.connection.clone()),
        service,
        endpoint.name,
        message.subject.clone(),
        message.headers.take(),
        received,
        Some(default_timeout(endpoint)),
    );
    let span = tracing::info_span!(
        "natsgen.rpc",
        service,
        method = endpoint.name,
        call_id = %ctx.call_id(),
        outcome = tracing::field::Empty,
        duration_us = tracing::field::Empty,
    );
    (ctx, span)
}

/// Handles a call that has its handler slot, on a host without middleware: the handler's own
/// future (boxed once, by the generated binding) is polled here, in the endpoint's loop, and
/// the call is answered at once if that poll finishes it. Only a pending handler moves into a
/// task of its own, with its deadline.
async fn handle_inline(
    runtime: &Arc<ServiceRuntime>,
    endpoint: &'static EndpointDescriptor,
    call: Call,
    mut message: Message,
    (permit, guard): (OwnedSemaphorePermit, &mpsc::Sender<()>),
) {
    let (ctx, span) = request_context(runtime, endpoint, &mut message, call.received);
    let caller_view = ctx.clone();
    let deadline = ctx.deadline();
    let started = if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
        Err(ServiceError::deadline_exceeded(
            "the caller's deadline passed before the call started",
        ))
    } else {
        start_handler(&*runtime.service, call.index, ctx, message.payload)
    };
    let result = match started {
        Err(error) => Err(error),
        Ok(mut handler) => match poll_started(&mut handler, &span, &caller_view).await {
            Poll::Ready(result) => result,
            Poll::Pending => {
                let runtime = Arc::clone(runtime);
                let guard = guard.clone();
                let rest = async move {
                    let handler = resume(handler, &caller_view);
                    let result = finish_handler(handler, deadline).await;
                    #[cfg(feature = "otel")]
                    crate::otel::finish(caller_view.otel_context(), result.as_ref().err());
                    answer(&runtime, call, &caller_view, result).await;
                    drop(permit);
                    drop(guard);
                };
                tokio::spawn(rest.instrument(span));
                return;
            }
        },
    };
    #[cfg(feature = "otel")]
    crate::otel::finish(caller_view.otel_context(), result.as_ref().err());
    if span.is_disabled() {
        answer(runtime, call, &caller_view, result).await;
    } else {
        answer(runtime, call, &caller_view, result)
            .instrument(span)
            .await;
    }
    drop(permit);
}

/// A started handler: its future, made movable and `'static`, with its panics caught.
pub(crate) type Started = futures_util::future::CatchUnwind<
    AssertUnwindSafe<crate::service::BoxFuture<Result<Bytes, ServiceError>>>,
>;

/// Starts the handler of endpoint `index` without middleware; a panic while making its future
/// is an `internal` error.
pub(crate) fn start_handler(
    service: &dyn Service,
    index: usize,
    ctx: Context,
    payload: Bytes,
) -> Result<Started, ServiceError> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| service.call(index, ctx, payload))) {
        Ok(future) => Ok(AssertUnwindSafe(future).catch_unwind()),
        Err(panic) => Err(panicked(panic)),
    }
}

/// Polls a started handler once, with its span (and, with the `otel` feature, the trace of
/// `ctx`) current; a panic is an `internal` error, logged in the span.
pub(crate) async fn poll_started(
    handler: &mut Started,
    span: &tracing::Span,
    #[cfg_attr(not(feature = "otel"), allow(unused_variables))] ctx: &Context,
) -> Poll<Result<Bytes, ServiceError>> {
    std::future::poll_fn(|cx| {
        let _entered = span.enter();
        #[cfg(feature = "otel")]
        let _attached = ctx.otel_context().clone().attach();
        Poll::Ready(
            handler
                .poll_unpin(cx)
                .map(|finished| finished.unwrap_or_else(|panic| Err(panicked(panic)))),
        )
    })
    .await
}

/// The rest of a started handler that was pending on its first poll, polled (with the `otel`
/// feature) in the trace of `ctx`.
pub(crate) fn resume(
    handler: Started,
    #[cfg_attr(not(feature = "otel"), allow(unused_variables))] ctx: &Context,
) -> impl Future<Output = std::thread::Result<Result<Bytes, ServiceError>>> + Send + Unpin {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::context::FutureExt as _;
        handler.with_context(ctx.otel_context().clone())
    }
    #[cfg(not(feature = "otel"))]
    handler
}

/// Runs a started handler that did not finish on its first poll, until it does or `deadline`
/// passes (then it is cancelled: `deadline_exceeded`).
async fn finish_handler<F>(handler: F, deadline: Option<Instant>) -> Result<Bytes, ServiceError>
where
    F: Future<Output = std::thread::Result<Result<Bytes, ServiceError>>>,
{
    let finished = match deadline {
        Some(deadline) => match tokio::time::timeout_at(deadline, handler).await {
            Ok(finished) => finished,
            Err(_) => {
                return Err(ServiceError::deadline_exceeded(
                    "the handler did not finish before the caller's deadline and was cancelled",
                ))
            }
        },
        None => handler.await,
    };
    finished.unwrap_or_else(|panic| Err(panicked(panic)))
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    runtime: Arc<ServiceRuntime>,
    endpoint: &'static EndpointDescriptor,
    index: usize,
    mut message: Message,
    reply: Subject,
    received: Instant,
    permit: Option<OwnedSemaphorePermit>,
    _guard: mpsc::Sender<()>,
) {
    let (ctx, span) = request_context(&runtime, endpoint, &mut message, received);
    // An Arc clone: the call id is only read again when the reply is an internal error.
    let caller_view = ctx.clone();
    async move {
        let deadline = ctx.deadline();
        let _permit = match permit {
            Some(permit) => Some(permit),
            None => {
                let acquire = Arc::clone(&runtime.permits).acquire_owned();
                let acquired = match deadline {
                    Some(deadline) => tokio::time::timeout_at(deadline, acquire).await.ok(),
                    None => Some(acquire.await),
                };
                runtime.queued.fetch_sub(1, Ordering::Relaxed);
                // The semaphore is never closed, so `Some(Err(_))` does not happen; answering
                // without a permit would be harmless anyway.
                acquired.and_then(Result::ok)
            }
        };

        let result = if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
            Err(ServiceError::deadline_exceeded(
                "the caller's deadline passed before the call started",
            ))
        } else {
            run_handler(&runtime, index, ctx, message.payload, deadline).await
        };
        let call = Call {
            index,
            reply,
            received,
        };
        answer(&runtime, call, &caller_view, result).await;
    }
    .instrument(span)
    .await;
}

/// What identifies one RPC call to its reply.
struct Call {
    index: usize,
    reply: Subject,
    received: Instant,
}

/// Answers a call with its handler's `result`, counts it in the stats and records its outcome
/// on the current span.
async fn answer(
    runtime: &ServiceRuntime,
    call: Call,
    caller_view: &Context,
    result: Result<Bytes, ServiceError>,
) {
    let Call {
        index,
        reply,
        received,
    } = call;
    let outcome = match result {
        Ok(body) => match publish_reply(&runtime.connection, caller_view, &reply, body).await {
            Ok(()) => {
                runtime.stats.record(index, received.elapsed(), None);
                Cow::Borrowed("ok")
            }
            Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                let error = ServiceError::payload_too_large(format!(
                    "the result is larger than the server's max_payload of {} bytes",
                    runtime.connection.max_payload()
                ));
                tracing::warn!(%error, "reply too large");
                send_error(&runtime.connection, reply, &error).await;
                runtime
                    .stats
                    .record(index, received.elapsed(), Some(&error));
                Cow::Borrowed(ServiceError::PAYLOAD_TOO_LARGE)
            }
            Err(error) => {
                tracing::warn!(%error, "failed to send the reply");
                let error = ServiceError::internal(format!("failed to send the reply: {error}"));
                runtime
                    .stats
                    .record(index, received.elapsed(), Some(&error));
                Cow::Borrowed("reply_failed")
            }
        },
        Err(error) => {
            if error.code() >= 500 {
                tracing::warn!(%error, "call failed");
            } else {
                tracing::debug!(%error, "call answered with an error");
            }
            send_error_with(
                &runtime.connection,
                reply,
                &for_caller(&error, caller_view.call_id()),
                caller_view.take_reply_headers(),
            )
            .await;
            runtime
                .stats
                .record(index, received.elapsed(), Some(&error));
            match error.kind() {
                ServiceError::INTERNAL => Cow::Borrowed(ServiceError::INTERNAL),
                ServiceError::BAD_REQUEST => Cow::Borrowed(ServiceError::BAD_REQUEST),
                ServiceError::DEADLINE_EXCEEDED => Cow::Borrowed(ServiceError::DEADLINE_EXCEEDED),
                // Declared errors: their name (only this path allocates).
                kind => Cow::Owned(kind.to_owned()),
            }
        }
    };
    let span = tracing::Span::current();
    if !span.is_disabled() {
        span.record("outcome", &*outcome);
        span.record("duration_us", received.elapsed().as_micros() as u64);
    }
    tracing::debug!(outcome = &*outcome, "handled");
}

/// Runs the handler of endpoint `index` (through the host's middleware) until it finishes or
/// the deadline passes; a panic is an `internal` error.
#[cfg(not(feature = "otel"))]
pub(crate) async fn run_handler(
    runtime: &ServiceRuntime,
    index: usize,
    ctx: Context,
    payload: Bytes,
    deadline: Option<Instant>,
) -> Result<Bytes, ServiceError> {
    run_endpoint(
        &*runtime.service,
        &runtime.middleware,
        index,
        ctx,
        payload,
        deadline,
    )
    .await
}

/// Runs the handler (and the middleware around it) with the context's OpenTelemetry span
/// current, and ends the span with the outcome.
#[cfg(feature = "otel")]
pub(crate) async fn run_handler(
    runtime: &ServiceRuntime,
    index: usize,
    ctx: Context,
    payload: Bytes,
    deadline: Option<Instant>,
) -> Result<Bytes, ServiceError> {
    use opentelemetry::context::FutureExt as _;
    let otel = ctx.otel_context().clone();
    let result = run_endpoint(
        &*runtime.service,
        &runtime.middleware,
        index,
        ctx,
        payload,
        deadline,
    )
    .with_context(otel.clone())
    .await;
    crate::otel::finish(&otel, result.as_ref().err());
    result
}

/// Runs endpoint `index` of `service` through `middleware`: panics become `internal` errors,
/// and a handler still running at `deadline` is cancelled (`deadline_exceeded`). What a host and
/// the in-process test harness both run.
pub(crate) async fn run_endpoint(
    service: &dyn Service,
    middleware: &[Arc<dyn crate::Middleware>],
    index: usize,
    ctx: Context,
    payload: Bytes,
    deadline: Option<Instant>,
) -> Result<Bytes, ServiceError> {
    // A binding (or a middleware) may panic before it returns its future, or while it runs.
    let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
        if middleware.is_empty() {
            return service.call(index, ctx, payload);
        }
        match service.descriptor().endpoint(index) {
            Some(endpoint) => {
                crate::middleware::run(middleware, service, endpoint, index, ctx, payload)
            }
            None => service.call(index, ctx, payload),
        }
    }));
    let future = match call {
        Ok(future) => AssertUnwindSafe(future).catch_unwind(),
        Err(panic) => return Err(panicked(panic)),
    };
    let mut future = pin!(future);
    // No timer for a handler that finishes on its first poll.
    if let Poll::Ready(finished) = poll_once(future.as_mut()).await {
        return finished.unwrap_or_else(|panic| Err(panicked(panic)));
    }
    finish_handler(future, deadline).await
}

/// Polls `future` once, in the calling task.
pub(crate) async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// The error as a remote caller sees it: an `internal` error's message (a panic message, an
/// I/O error, whatever the handler's `?` converted) stays in the service's log; the caller gets
/// the kind, the code and the call id to find it there. Every other kind is sent as it is.
pub(crate) fn for_caller<'a>(error: &'a ServiceError, call_id: &str) -> Cow<'a, ServiceError> {
    if error.kind() != ServiceError::INTERNAL {
        return Cow::Borrowed(error);
    }
    Cow::Owned(ServiceError::internal(format!(
        "internal error; the service logged the details under call id {call_id}"
    )))
}

pub(crate) fn panicked(panic: Box<dyn std::any::Any + Send>) -> ServiceError {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "handler panicked");
    ServiceError::internal(format!("the handler panicked: {message}"))
}

pub(crate) fn default_timeout(endpoint: &EndpointDescriptor) -> Duration {
    match endpoint.timeout_ms {
        0 => crate::client::DEFAULT_TIMEOUT,
        millis => Duration::from_millis(millis),
    }
}

/// Answers with an error: the NATS micro headers plus the natsgen body.
async fn send_error(connection: &Connection, reply: Subject, error: &ServiceError) {
    send_error_with(connection, reply, error, None).await;
}

/// [`send_error`] with the headers the handler set on its reply (natsgen's win on a clash).
async fn send_error_with(
    connection: &Connection,
    reply: Subject,
    error: &ServiceError,
    extra: Option<HeaderMap>,
) {
    let client = connection.nats();
    let result = client
        .publish_with_headers(
            reply.clone(),
            crate::middleware::merged(extra, error_headers(error)),
            crate::json::encode_error(error),
        )
        .await;
    match result {
        Ok(()) => {}
        Err(publish) if publish.kind() == PublishErrorKind::MaxPayloadExceeded => {
            // The details (or message) are too large: say so without them.
            let smaller = ServiceError::payload_too_large(format!(
                "the {} error reply is larger than the server's max_payload",
                error.kind()
            ));
            if let Err(publish) = client
                .publish_with_headers(
                    reply,
                    error_headers(&smaller),
                    crate::json::encode_error(&smaller),
                )
                .await
            {
                tracing::warn!(error = %publish, "failed to send an error reply");
            }
        }
        Err(publish) => tracing::warn!(error = %publish, "failed to send an error reply"),
    }
}

/// Sends a success reply, with the headers the handler set (if any).
async fn publish_reply(
    connection: &Connection,
    ctx: &Context,
    reply: &Subject,
    body: Bytes,
) -> Result<(), async_nats::PublishError> {
    match ctx.take_reply_headers() {
        None => connection.nats().publish(reply.clone(), body).await,
        Some(headers) => {
            connection
                .nats()
                .publish_with_headers(reply.clone(), headers, body)
                .await
        }
    }
}

fn error_headers(error: &ServiceError) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        headers::SERVICE_ERROR_CODE_NAME,
        HeaderValue::from(error.code()),
    );
    let message = if error.message().is_empty() {
        error.kind()
    } else {
        error.message()
    };
    headers.insert(
        headers::SERVICE_ERROR_NAME,
        headers::sanitized_value(message, headers::MAX_ERROR_HEADER_LEN),
    );
    headers
}
