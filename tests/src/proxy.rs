//! A TCP proxy for partition tests: client ↔ proxy ↔ nats-server on loopback, able to stall
//! either direction of every connection through it.
//!
//! A cut direction is not closed: the proxy stops reading from its source, so bytes wait in the
//! kernel's buffers (as behind a real partition, where TCP keeps retransmitting) and nothing is
//! lost or reordered. New connections during a cut are accepted but stalled the same way, so a
//! client's handshake does not complete until [`Proxy::heal`]. Connections closed by either end
//! during a cut are closed on the other end once it heals.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use natsgen_tests::proxy::{Cut, Proxy};
//! let proxy = Proxy::start("127.0.0.1:4333".parse().unwrap()).await?;
//! let url = proxy.url(); // connect clients here
//! proxy.cut(Cut::Full);
//! // ... the partition ...
//! proxy.heal();
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which directions a partition stalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Nothing: bytes flow both ways.
    None,
    /// Both directions.
    Full,
    /// Only what the server sends to the client (the client's pings reach the server, its pongs
    /// never come back).
    ServerToClient,
    /// Only what the client sends to the server.
    ClientToServer,
}

impl Cut {
    fn stalls(self, direction: Direction) -> bool {
        matches!(
            (self, direction),
            (Cut::Full, _)
                | (Cut::ServerToClient, Direction::ToClient)
                | (Cut::ClientToServer, Direction::ToServer)
        )
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToServer,
    ToClient,
}

/// A running proxy; dropping it stops accepting and closes every connection through it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<Cut>,
    stats: Arc<Stats>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(Cut::None);
        let stats = Arc::new(Stats::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            state.clone(),
            Arc::clone(&stats),
        ));
        Ok(Proxy {
            addr,
            state,
            stats,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Starts a partition (replacing any other).
    pub fn cut(&self, cut: Cut) {
        self.state.send_replace(cut);
    }

    /// Ends the partition: stalled bytes flow again.
    pub fn heal(&self) {
        self.cut(Cut::None);
    }

    /// The partition in force.
    pub fn current(&self) -> Cut {
        *self.state.borrow()
    }

    /// Connections accepted so far (a client's reconnects show here).
    pub fn connections(&self) -> u64 {
        self.stats.accepted.load(Ordering::Relaxed)
    }

    /// Bytes forwarded so far: (client to server, server to client).
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.stats.to_server.load(Ordering::Relaxed),
            self.stats.to_client.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The connection pumps watch the state channel and end when it closes.
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Sender<Cut>,
    stats: Arc<Stats>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let state = state.subscribe();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = pump(
                client_read,
                server_write,
                state.clone(),
                Direction::ToServer,
                Arc::clone(&stats),
            );
            let down = pump(server_read, client_write, state, Direction::ToClient, stats);
            // When either side ends, the whole connection ends.
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
    }
}

/// Waits until `direction` is not stalled; false when the proxy is gone.
async fn flowing(state: &mut watch::Receiver<Cut>, direction: Direction) -> bool {
    loop {
        if !state.borrow_and_update().stalls(direction) {
            return true;
        }
        if state.changed().await.is_err() {
            return false;
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<Cut>,
    direction: Direction,
    stats: Arc<Stats>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if !flowing(&mut state, direction).await {
            return;
        }
        // Read only while flowing, but notice a cut that starts while waiting for bytes.
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let n = match read {
            Ok(0) | Err(_) => {
                // Closed: pass the close on once this direction flows.
                if flowing(&mut state, direction).await {
                    let _ = to.shutdown().await;
                }
                return;
            }
            Ok(n) => n,
        };
        // Bytes read just before a cut wait for the heal too.
        if !flowing(&mut state, direction).await {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
        let counter = match direction {
            Direction::ToServer => &stats.to_server,
            Direction::ToClient => &stats.to_client,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
