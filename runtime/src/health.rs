//! Readiness of a running [`Host`](crate::Host), for load balancers and orchestrators.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::Connection;

/// Whether a host should get work: connected to NATS, its subscriptions and consumers bound,
/// and not shutting down. Cheap to clone; it stays valid (and reports not ready) while and after
/// [`HostHandle::shutdown`](crate::HostHandle::shutdown) runs, so it can be served from another
/// task. Get it with [`HostHandle::readiness`](crate::HostHandle::readiness).
///
/// Subscriptions and consumers are bound when [`Host::start`](crate::Host::start) returns (it
/// fails otherwise); after a reconnect the client library restores the subscriptions and the pull
/// loops resume by themselves, so "connected" covers them from then on.
#[derive(Debug, Clone)]
pub struct Readiness {
    connection: Connection,
    draining: Arc<AtomicBool>,
}

impl Readiness {
    pub(crate) fn new(connection: Connection, draining: Arc<AtomicBool>) -> Self {
        Readiness {
            connection,
            draining,
        }
    }

    /// Connected and not draining.
    pub fn is_ready(&self) -> bool {
        self.is_connected() && !self.is_draining()
    }

    /// Whether the host's connection is up.
    pub fn is_connected(&self) -> bool {
        self.connection.is_connected()
    }

    /// Whether the host is shutting down (or has shut down).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
