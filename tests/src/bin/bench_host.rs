//! The second process of the throughput benchmark (`benches/throughput.rs`): serves one kind of
//! service until it is killed, so that client and service run in separate processes and the
//! service's memory can be read on its own.
//!
//! Usage: `bench_host <kind> <nats url>`, where kind is
//! - `raw`: a raw async-nats responder on `rawbench.remote.ping`;
//! - `natsgen`: a natsgen host of the `remote` service of `schemas/bench.yaml`;
//! - `service`: the same method with the async-nats `service` API, on `svcbench.remote.ping`;
//! - `ecommerce`: a natsgen host of every service of the example's `ecommerce.yaml`.
//!
//! Prints `ready` on stdout once it serves.

use std::io::Write as _;

use natsgen::Host;
use natsgen_tests::bench::RemoteServer;
use natsgen_tests::benchkit::{self, Answer, EchoImpl};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: bench_host raw|natsgen|service|ecommerce <nats url>";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(url)) = (args.next(), args.next()) else {
        return Err(USAGE.into());
    };
    // Kept alive until the process is killed.
    let mut _host = None;
    match kind.as_str() {
        "raw" => benchkit::raw_responder(&url, "rawbench.remote.ping", Answer::Inline).await?,
        "service" => benchkit::service_responder(&url, "svcbench.remote.ping").await?,
        "natsgen" => {
            let connection = natsgen::connect(url.as_str()).await?;
            let host = Host::new(connection).serve(RemoteServer::new(EchoImpl));
            _host = Some(host.start().await?);
        }
        "ecommerce" => {
            let connection = natsgen::connect(url.as_str()).await?;
            _host = Some(benchkit::ecommerce_host(connection).start().await?);
        }
        other => return Err(format!("unknown kind {other:?}; {USAGE}").into()),
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    std::future::pending::<()>().await;
    Ok(())
}
