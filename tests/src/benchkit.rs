//! What the throughput benchmark (`benches/throughput.rs`) and its second process
//! (`src/bin/bench_host.rs`) share: the services' handlers, the raw and async-nats `service`
//! responders, and reading a process's memory from `/proc`.

use std::sync::Arc;
use std::time::Duration;

use async_nats::service::ServiceExt;
use bytes::Bytes;
use futures_util::StreamExt;
use natsgen::{Connection, Context, Host, ServiceError};
use serde::{Deserialize, Serialize};

use crate::bench::{Checked, Echo, Layered, Remote};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The echo method's handler for the natsgen services `echo`, `remote`, `layered` and
/// `checked`: returns `seq`.
#[derive(Debug, Clone, Copy)]
pub struct EchoImpl;

/// Implements the echo method for each of the bench services that have it.
macro_rules! echo_impls {
    ($($service:ident),+) => {$(
        impl $service for EchoImpl {
            async fn ping(
                &self,
                _ctx: &Context,
                seq: u64,
                _body: String,
            ) -> Result<u64, ServiceError> {
                Ok(seq)
            }
        }
    )+};
}

echo_impls!(Echo, Remote, Layered, Checked);

/// How a raw responder answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// In the task reading the subscription.
    Inline,
    /// Breakdown: from a task spawned per request, as a natsgen host does.
    Spawned,
    /// Breakdown: from a task spawned per request, under a deadline timer, as a natsgen host
    /// does.
    SpawnedWithDeadline,
    /// Breakdown: in the reading task, decoding the params and encoding `{"result":seq}` with
    /// serde_json, as the wire contract's JSON asks of any typed service.
    Json,
}

/// A raw request-reply responder on its own connection, answering every request on `subject`
/// with `{"result":42}` without reading it.
pub async fn raw_responder(url: &str, subject: &str, answer: Answer) -> Result<(), BoxError> {
    let server = async_nats::connect(url).await?;
    let mut requests = server
        .queue_subscribe(subject.to_owned(), "rawbench".into())
        .await?;
    server.flush().await?;
    tokio::spawn(async move {
        let reply = Bytes::from_static(b"{\"result\":42}");
        while let Some(request) = requests.next().await {
            let Some(inbox) = request.reply else { continue };
            match answer {
                Answer::Inline => {
                    if server.publish(inbox, reply.clone()).await.is_err() {
                        break;
                    }
                }
                Answer::Spawned => {
                    let (server, reply) = (server.clone(), reply.clone());
                    tokio::spawn(async move { server.publish(inbox, reply).await });
                }
                Answer::SpawnedWithDeadline => {
                    let (server, reply) = (server.clone(), reply.clone());
                    tokio::spawn(async move {
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                        tokio::time::timeout_at(deadline, server.publish(inbox, reply)).await
                    });
                }
                Answer::Json => {
                    let Ok(params) = serde_json::from_slice::<PingParams>(&request.payload) else {
                        continue;
                    };
                    let Ok(body) = serde_json::to_vec(&PingReply { result: params.seq }) else {
                        continue;
                    };
                    if server.publish(inbox, Bytes::from(body)).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
    Ok(())
}

/// The echo method's params, as a user of async-nats would declare them.
#[derive(Debug, Serialize, Deserialize)]
pub struct PingParams {
    /// The call's number.
    pub seq: u64,
    /// The padding.
    pub body: String,
}

/// The echo method's reply, in natsgen's shape.
#[derive(Debug, Serialize, Deserialize)]
pub struct PingReply {
    /// The call's number, back.
    pub result: u64,
}

/// The echo method written with the async-nats `service` API (`async_nats::service`) on a
/// connection of its own: service `svcbench`, endpoint `subject`, answered from the endpoint's
/// read loop. It decodes the params and encodes the result with serde, as natsgen's host does.
pub async fn service_responder(url: &str, subject: &str) -> Result<(), BoxError> {
    let client = async_nats::connect(url).await?;
    let service = client
        .service_builder()
        .description("the echo method of the throughput benchmark")
        .start("svcbench", "1.0.0")
        .await?;
    let mut endpoint = service.endpoint(subject).await?;
    client.flush().await?;
    tokio::spawn(async move {
        let _service = service;
        while let Some(request) = endpoint.next().await {
            let reply = match serde_json::from_slice::<PingParams>(&request.message.payload) {
                Ok(params) => serde_json::to_vec(&PingReply { result: params.seq })
                    .map(Bytes::from)
                    .map_err(|error| async_nats::service::error::Error {
                        status: error.to_string(),
                        code: 500,
                    }),
                Err(error) => Err(async_nats::service::error::Error {
                    status: error.to_string(),
                    code: 400,
                }),
            };
            if request.respond(reply).await.is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// A host of every service of the example's `ecommerce.yaml` (`generated-example`), with no
/// simulated delays and an observation log that keeps nothing.
pub fn ecommerce_host(connection: Connection) -> Host {
    use generated_example::services::{self, Delays, Observations, ServiceName, Shared};
    generated_example::set_quiet(true);
    let shared = Shared::new(Arc::new(Observations::discarding()), Delays::scaled(0.0));
    services::serve(Host::new(connection), &ServiceName::ALL, &shared)
}

/// Resident memory of process `pid` in KiB, from `/proc/<pid>/status` (Linux only): now
/// (`VmRSS`) and at its peak so far (`VmHWM`).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
