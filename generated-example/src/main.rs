//! `generated-example`: runs the async-patterns walkthrough, or serves its services.
//!
//! ```text
//! cargo run -p generated-example                      # every section
//! cargo run -p generated-example -- errors            # one section
//! cargo run -p generated-example -- --delay-scale 0.1 # everything ten times faster
//! cargo run -p generated-example -- serve order_service notification_service
//! ```

mod nats;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use generated_example::say;
use generated_example::services::{self, Delays, Observations, ServiceName, Shared};
use generated_example::walkthrough::{seconds, Section, Walkthrough};
use natsgen::Host;

/// The async-patterns walkthrough on natsgen: typed services generated from
/// schemas/ecommerce.yaml, talking over NATS.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// The section to run; all of them when none is given.
    #[arg(value_enum)]
    section: Option<Section>,

    /// Multiplies every simulated delay (the payment gateway's 2 s, an email's 3 s, ...).
    #[arg(long, global = true, value_name = "F", default_value_t = 1.0, value_parser = delay_scale)]
    delay_scale: f64,

    /// The NATS server to use. Without it: nats://127.0.0.1:4222 if a nats-server >= 2.10
    /// with JetStream runs there, else a temporary one.
    #[arg(long, global = true, env = "NATS_URL", value_name = "URL")]
    nats_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs services until SIGINT (Ctrl-C) or SIGTERM, e.g. to run instances in several terminals.
    Serve {
        /// The services to run; all of them when none is given.
        #[arg(value_enum)]
        services: Vec<ServiceName>,
    },
}

fn delay_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(scale) if (0.0..=100.0).contains(&scale) => Ok(scale),
        _ => Err("expected a number from 0 to 100, e.g. 0.1".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let nats_url = cli.nats_url.as_deref().filter(|url| !url.trim().is_empty());
    let delays = Delays::scaled(cli.delay_scale);
    let outcome = match cli.command {
        Some(Command::Serve { services }) => serve(nats_url, services, delays).await,
        None => {
            let sections = match cli.section {
                Some(section) => vec![section],
                None => Section::ALL.to_vec(),
            };
            walkthrough(nats_url, &sections, delays).await
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves every service in this process and runs the sections against them.
async fn walkthrough(
    nats_url: Option<&str>,
    sections: &[Section],
    delays: Delays,
) -> anyhow::Result<()> {
    say!("=== natsgen async-patterns walkthrough ===");
    let nats = nats::connect(nats_url).await?;
    let shared = Shared::new(Arc::new(Observations::new()), delays);
    let host = services::serve(
        Host::new(nats.connection.clone()),
        &ServiceName::ALL,
        &shared,
    )
    .start()
    .await
    .context("cannot start the services")?;
    say!(
        "Serving all {} services in this process (delays x{}).",
        ServiceName::ALL.len(),
        delays.scale()
    );

    let started = Instant::now();
    let walkthrough = Walkthrough::new(&nats.connection, &shared);
    let outcome = tokio::select! {
        outcome = walkthrough.run(sections) => outcome.map(|_| ()),
        signal = shutdown_signal() => {
            say!("\nInterrupted; stopping.");
            signal
        }
    };
    if outcome.is_ok() {
        say!("\nDone in {}.", seconds(started.elapsed()));
    }
    let stopped = host.shutdown().await.context("stopping the services");
    nats.close().await;
    outcome.and(stopped)
}

/// Serves the named services (all when none is named) until SIGINT or SIGTERM.
async fn serve(
    nats_url: Option<&str>,
    mut names: Vec<ServiceName>,
    delays: Delays,
) -> anyhow::Result<()> {
    if names.is_empty() {
        names = ServiceName::ALL.to_vec();
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(*name));

    let nats = nats::connect(nats_url).await?;
    // Listen before serving, so a signal that arrives early stops us gracefully too.
    let signal = shutdown_signal();
    // A long-running server keeps no log of what it did.
    let shared = Shared::new(Arc::new(Observations::discarding()), delays);
    let host = services::serve(Host::new(nats.connection.clone()), &names, &shared)
        .start()
        .await
        .context("cannot start the services")?;
    let list: Vec<&str> = names.iter().map(|name| name.as_str()).collect();
    say!(
        "Serving {} on {} (delays x{}); Ctrl-C or SIGTERM stops.",
        list.join(", "),
        nats.url,
        delays.scale()
    );
    signal.await?;
    say!("Stopping...");
    host.shutdown().await.context("stopping the services")?;
    nats.close().await;
    say!("Stopped.");
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called, not when it
/// is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = anyhow::Result<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let (mut interrupt, mut terminate) = (
                interrupt.context("cannot listen for SIGINT")?,
                terminate.context("cannot listen for SIGTERM")?,
            );
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            Ok(())
        }
    }
    #[cfg(not(unix))]
    {
        async {
            tokio::signal::ctrl_c()
                .await
                .context("cannot listen for Ctrl-C")
        }
    }
}
