//! A worker process for the crash tests in `tests/async_calls.rs`: serves `jobs.job_runner` until
//! it is stopped (SIGINT/SIGTERM) or killed.
//!
//! Usage: `worker <nats url>`.
//!
//! Every attempt of `run` and `run_once` publishes (core NATS) `jobs_test.<job_id>.started` when
//! it starts and `jobs_test.<job_id>.done` when it succeeds, each with the attempt number as the
//! body; in between, the first attempt sleeps `sleep_ms`, and attempts up to `fail_times` fail.

use std::time::Duration;

use natsgen::{Context, Host, ServiceError};
use natsgen_tests::jobs::{JobRunner, JobRunnerServer};

struct Worker;

async fn job(
    ctx: &Context,
    job_id: String,
    fail_times: u32,
    sleep_ms: u64,
) -> Result<(), ServiceError> {
    let Some(connection) = ctx.connection() else {
        return Err(ServiceError::internal("the worker runs over NATS"));
    };
    let nats = connection.nats();
    let attempt = ctx.attempt().to_string();
    nats.publish(
        format!("jobs_test.{job_id}.started"),
        attempt.clone().into(),
    )
    .await?;
    nats.flush().await?;
    if ctx.attempt() == 1 {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    }
    if ctx.attempt() <= fail_times {
        return Err(ServiceError::internal(format!(
            "attempt {attempt} of job {job_id} fails on purpose"
        )));
    }
    nats.publish(format!("jobs_test.{job_id}.done"), attempt.into())
        .await?;
    nats.flush().await?;
    Ok(())
}

impl JobRunner for Worker {
    async fn run(
        &self,
        ctx: &Context,
        job_id: String,
        fail_times: u32,
        sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        job(ctx, job_id, fail_times, sleep_ms).await
    }

    async fn run_once(
        &self,
        ctx: &Context,
        job_id: String,
        fail_times: u32,
        sleep_ms: u64,
    ) -> Result<(), ServiceError> {
        job(ctx, job_id, fail_times, sleep_ms).await
    }

    async fn echo(
        &self,
        _ctx: &Context,
        text: String,
        sleep_ms: u64,
    ) -> Result<String, ServiceError> {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(text)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: worker <nats url>")?;
    let nats = natsgen::connect(url.as_str()).await?;
    Host::new(nats)
        .serve(JobRunnerServer::new(Worker))
        .run()
        .await?;
    Ok(())
}
