//! Finding a NATS server for the example: `NATS_URL`, else a current nats-server on the default
//! port, else a temporary one started for this run.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use natsgen::testing::NatsServer;
use natsgen::Connection;

use generated_example::say;

/// Where `nats-server` listens unless told otherwise.
const DEFAULT_URL: &str = "nats://127.0.0.1:4222";
const DEFAULT_ADDRESS: (&str, u16) = ("127.0.0.1", 4222);

/// A connection, and the temporary server behind it if we started one (it stops when this is
/// dropped).
#[derive(Debug)]
pub struct Nats {
    pub connection: Connection,
    pub url: String,
    _temporary: Option<NatsServer>,
}

impl Nats {
    /// Closes the connection (draining what is in flight) before a temporary server stops, so
    /// the end of the program is not reported as a lost connection.
    pub async fn close(self) {
        let client = self.connection.nats();
        if client.drain().await.is_err() {
            return;
        }
        // Draining finishes in the background; wait a moment for it.
        for _ in 0..200 {
            if !self.connection.is_connected() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Connects to `url` (from `NATS_URL` or `--nats-url`) when given; otherwise to a nats-server
/// >= 2.10 with JetStream on the default port; otherwise starts a temporary one.
pub async fn connect(url: Option<&str>) -> anyhow::Result<Nats> {
    if let Some(url) = url {
        let connection = natsgen::connect(url)
            .await
            .with_context(|| format!("cannot use the NATS server at {url} (NATS_URL)"))?;
        jetstream_enabled(&connection)
            .await
            .map_err(|why| anyhow!("cannot use the NATS server at {url} (NATS_URL): {why}"))?;
        say!(
            "NATS: {url} (from NATS_URL), nats-server {}",
            connection.server_version()
        );
        return Ok(Nats {
            connection,
            url: url.to_owned(),
            _temporary: None,
        });
    }

    let unusable = match default_server().await {
        Ok(connection) => {
            say!(
                "NATS: {DEFAULT_URL}, nats-server {}",
                connection.server_version()
            );
            return Ok(Nats {
                connection,
                url: DEFAULT_URL.to_owned(),
                _temporary: None,
            });
        }
        Err(why) => why,
    };
    say!("NATS: {unusable}; starting a temporary nats-server...");
    let server = NatsServer::start().await.map_err(|error| {
        anyhow!(
            "no NATS server to use ({unusable}), and a temporary one could not be started: \
             {error}\nOr point NATS_URL at a nats-server >= 2.10 running with JetStream (-js)."
        )
    })?;
    let url = server.url();
    let connection = natsgen::connect(url.as_str())
        .await
        .with_context(|| format!("cannot connect to the temporary nats-server at {url}"))?;
    say!(
        "NATS: temporary nats-server {} at {url}, stopped when this program ends",
        connection.server_version()
    );
    Ok(Nats {
        connection,
        url,
        _temporary: Some(server),
    })
}

/// The server on the default port, or why it cannot be used.
async fn default_server() -> Result<Connection, String> {
    let listening = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(DEFAULT_ADDRESS),
    )
    .await;
    if !matches!(listening, Ok(Ok(_))) {
        return Err(format!("nothing listens on {DEFAULT_URL}"));
    }
    let connection = match natsgen::connect(DEFAULT_URL).await {
        Ok(connection) => connection,
        Err(natsgen::Error::ServerTooOld { version }) => {
            return Err(format!(
                "found nats-server {version} on {DEFAULT_URL}, which is too old (natsgen needs \
                 2.10 or newer)"
            ))
        }
        Err(error) => return Err(format!("cannot use {DEFAULT_URL}: {error}")),
    };
    jetstream_enabled(&connection)
        .await
        .map_err(|why| format!("cannot use the nats-server on {DEFAULT_URL}: {why}"))?;
    Ok(connection)
}

/// Async calls and events need JetStream; ask the server whether this account has it.
async fn jetstream_enabled(connection: &Connection) -> Result<(), String> {
    const NOT_ENABLED: &str = "JetStream is not enabled (start nats-server with -js)";
    let request = connection
        .nats()
        .request("$JS.API.INFO", Default::default());
    match tokio::time::timeout(Duration::from_secs(5), request).await {
        Ok(Ok(reply)) => {
            let info: serde_json::Value = serde_json::from_slice(&reply.payload)
                .map_err(|error| format!("JetStream answered garbage: {error}"))?;
            match info.get("error") {
                None => Ok(()),
                Some(error) => Err(format!("{NOT_ENABLED}: {error}")),
            }
        }
        Ok(Err(_)) => Err(NOT_ENABLED.into()),
        Err(_) => Err("JetStream did not answer within 5 s".into()),
    }
}
