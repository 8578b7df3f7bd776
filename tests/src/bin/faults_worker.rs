//! A service process for the fault suite (`tests/faults.rs`), serving `schemas/faults.yaml`
//! until it is stopped (SIGINT/SIGTERM) or killed. It prints `ready` on stdout once it serves.
//!
//! Usage:
//!
//! - `faults_worker load <nats url> <ack wait ms> <max concurrency>`: `fault_worker`,
//!   `fault_audit` and `fault_billing`. Every attempt of `work`, `record` and `charge` publishes
//!   with JetStream (PubAck awaited) `faults_rec.start.<handler>` when it starts and
//!   `faults_rec.done.<handler>` before it returns `Ok`, with the body
//!   `{"k": <key or event number>, "a": <attempt>, "p": <pid>}`; a record that cannot be stored
//!   fails the attempt, so a completion is never reported without its record.
//! - `faults_worker hostile <nats url>`: `hostile_target` and `hostile_shadow`, whose async
//!   method and event handlers record `faults_rec.done.<handler>` with
//!   `{"k": <sample tag or event field>, "m": <message id>, "a": <attempt>}`.
//!
//! The connection is named `faults-<role>`, so the server's `/connz?state=closed` shows how often
//! the process lost it.

use std::time::Duration;

use async_nats::jetstream;
use natsgen::{Context, Host, ServiceError};
use natsgen_tests::faults::{
    FaultAudit, FaultAuditServer, FaultBilling, FaultBillingServer, FaultWorker, FaultWorkerServer,
    FaultsHappened, HostileShadow, HostileShadowServer, HostileTarget, HostileTargetOnKindEvent,
    HostileTargetServer, Sample,
};

/// How long a record may take to be stored before the attempt fails.
const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct Recorder {
    js: jetstream::Context,
    pid: u32,
}

impl Recorder {
    async fn record(&self, subject: String, body: serde_json::Value) -> Result<(), ServiceError> {
        let store = async {
            self.js
                .publish(subject.clone(), body.to_string().into())
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(RECORD_TIMEOUT, store).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(ServiceError::internal(format!(
                "recording on {subject} failed: {e}"
            ))),
            Err(_) => Err(ServiceError::internal(format!(
                "recording on {subject} timed out"
            ))),
        }
    }

    /// Records the start, sleeps, records the completion.
    async fn unit(
        &self,
        ctx: &Context,
        handler: &str,
        key: String,
        sleep_ms: u32,
    ) -> Result<(), ServiceError> {
        let body = serde_json::json!({"k": key, "a": ctx.attempt(), "p": self.pid});
        self.record(format!("faults_rec.start.{handler}"), body.clone())
            .await?;
        if sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(u64::from(sleep_ms))).await;
        }
        self.record(format!("faults_rec.done.{handler}"), body)
            .await
    }
}

impl FaultWorker for Recorder {
    async fn work(&self, ctx: &Context, key: String, sleep_ms: u32) -> Result<(), ServiceError> {
        self.unit(ctx, "work", key, sleep_ms).await
    }

    async fn ping(&self, _ctx: &Context) -> Result<String, ServiceError> {
        Ok(self.pid.to_string())
    }
}

impl FaultAudit for Recorder {
    async fn record(&self, ctx: &Context, event: FaultsHappened) -> Result<(), ServiceError> {
        self.unit(ctx, "audit", event.event_no.to_string(), event.sleep_ms)
            .await
    }
}

impl FaultBilling for Recorder {
    async fn charge(&self, ctx: &Context, event: FaultsHappened) -> Result<(), ServiceError> {
        self.unit(ctx, "billing", event.event_no.to_string(), event.sleep_ms)
            .await
    }
}

impl Recorder {
    async fn done(&self, ctx: &Context, handler: &str, key: &str) -> Result<(), ServiceError> {
        let body = serde_json::json!({
            "k": key,
            "m": ctx.message_id(),
            "a": ctx.attempt(),
            "p": self.pid,
        });
        self.record(format!("faults_rec.done.{handler}"), body)
            .await
    }
}

impl HostileTarget for Recorder {
    async fn check(&self, _ctx: &Context, sample: Sample) -> Result<String, ServiceError> {
        Ok(sample.tag)
    }

    async fn mirror(&self, _ctx: &Context, sample: Sample) -> Result<Sample, ServiceError> {
        Ok(sample)
    }

    async fn check_later(&self, ctx: &Context, sample: Sample) -> Result<(), ServiceError> {
        self.done(ctx, "check_later", &sample.tag).await
    }

    async fn nap(&self, _ctx: &Context, ms: u64) -> Result<u64, ServiceError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }

    async fn ping(&self, _ctx: &Context) -> Result<String, ServiceError> {
        Ok("pong".to_owned())
    }

    async fn on_sampled(&self, ctx: &Context, event: Sample) -> Result<(), ServiceError> {
        self.done(ctx, "on_sampled", &event.tag).await
    }

    async fn on_kind(
        &self,
        ctx: &Context,
        event: HostileTargetOnKindEvent,
    ) -> Result<(), ServiceError> {
        let key = match event {
            HostileTargetOnKindEvent::FaultsKindsAlpha(alpha) => format!("alpha:{}", alpha.a),
            HostileTargetOnKindEvent::FaultsKindsBeta(beta) => format!("beta:{}", beta.b),
        };
        self.done(ctx, "on_kind", &key).await
    }
}

impl HostileShadow for Recorder {
    async fn shadow_sampled(&self, ctx: &Context, event: Sample) -> Result<(), ServiceError> {
        self.done(ctx, "shadow_sampled", &event.tag).await
    }
}

fn usage() -> Box<dyn std::error::Error> {
    "usage: faults_worker load <url> <ack wait ms> <max concurrency> | faults_worker hostile <url>"
        .into()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().ok_or_else(usage)?.clone();
    let url = args.get(1).ok_or_else(usage)?.clone();
    let nats = natsgen::ConnectOptions::new()
        .name(format!("faults-{role}"))
        .connect(url.as_str())
        .await?;
    let recorder = Recorder {
        js: jetstream::new(nats.nats().clone()),
        pid: std::process::id(),
    };
    let host = match role.as_str() {
        "load" => {
            let ack_wait: u64 = args.get(2).ok_or_else(usage)?.parse()?;
            let concurrency: usize = args.get(3).ok_or_else(usage)?.parse()?;
            Host::new(nats)
                .ack_wait(Duration::from_millis(ack_wait))
                .max_concurrency(concurrency)
                .serve(FaultWorkerServer::new(recorder.clone()))
                .serve(FaultAuditServer::new(recorder.clone()))
                .serve(FaultBillingServer::new(recorder))
        }
        "hostile" => Host::new(nats)
            .ack_wait(Duration::from_secs(2))
            .serve(HostileTargetServer::new(recorder.clone()))
            .serve(HostileShadowServer::new(recorder)),
        _ => return Err(usage()),
    };
    let handle = host.start().await?;
    println!("ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    handle.shutdown().await?;
    Ok(())
}
