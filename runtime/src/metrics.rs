//! Per-endpoint metrics through the [`metrics`](https://docs.rs/metrics) facade (cargo feature
//! `metrics`), so any exporter works (Prometheus, StatsD, OpenTelemetry, ...).
//!
//! For every endpoint a host serves (labels `service`, `endpoint`, `kind` = `rpc` | `async` |
//! `event` | `timer`):
//!
//! | metric | type | what |
//! |---|---|---|
//! | `natsgen_handled_total` | counter | messages answered or processed (what `$SRV.STATS` counts as requests) |
//! | `natsgen_handled_errors_total` | counter | those that ended in an error; extra labels `error` (the kind) and `code` |
//! | `natsgen_handled_duration_seconds` | histogram | from arrival to answer, queueing included |
//!
//! The handles are registered when the host starts, with the recorder installed then: install
//! the exporter's recorder before [`Host::start`](crate::Host::start). Recording a success costs
//! two updates through handles made at start (no lookup, no allocation); an error also looks up
//! its labelled counter.

use std::time::Duration;

use metrics::{Counter, Histogram, Label};

use crate::service::{EndpointKind, ServiceDescriptor};
use crate::ServiceError;

/// The metric handles of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct EndpointMetrics {
    labels: [Label; 3],
    handled: Counter,
    duration: Histogram,
}

impl EndpointMetrics {
    /// Handles for every endpoint of `descriptor`, indexed like its endpoints.
    pub(crate) fn for_service(descriptor: &ServiceDescriptor) -> Vec<EndpointMetrics> {
        descriptor
            .endpoints
            .iter()
            .map(|endpoint| {
                let labels = [
                    Label::from_static_parts("service", descriptor.name),
                    Label::from_static_parts("endpoint", endpoint.name),
                    Label::from_static_parts("kind", kind_label(endpoint.kind)),
                ];
                EndpointMetrics {
                    handled: metrics::counter!("natsgen_handled_total", labels.iter()),
                    duration: metrics::histogram!(
                        "natsgen_handled_duration_seconds",
                        labels.iter()
                    ),
                    labels,
                }
            })
            .collect()
    }

    pub(crate) fn record(&self, elapsed: Duration, error: Option<&ServiceError>) {
        self.handled.increment(1);
        self.duration.record(elapsed.as_secs_f64());
        if let Some(error) = error {
            let mut labels = self.labels.to_vec();
            labels.push(Label::new("error", error.kind().to_owned()));
            labels.push(Label::new("code", error.code().to_string()));
            metrics::counter!("natsgen_handled_errors_total", labels).increment(1);
        }
    }
}

fn kind_label(kind: EndpointKind) -> &'static str {
    match kind {
        EndpointKind::Rpc => "rpc",
        EndpointKind::Async => "async",
        EndpointKind::Event => "event",
        EndpointKind::Timer => "timer",
    }
}
