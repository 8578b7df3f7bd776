//! Helpers of the fault suite (`tests/faults*.rs`): worker processes to kill, a raw protocol
//! client for hostile input, readers of the streams that hold completions and dead letters,
//! consumer checks, a seeded random generator and the table of counts the suite prints.
//!
//! The TCP proxy for partitions is [`crate::proxy`].

pub mod procs;
pub mod raw;
pub mod store;

use std::fmt::Write as _;
use std::time::Duration;

/// How big a run of the suite is: `NATSGEN_FAULTS=full` for the documented full form, anything
/// else (or nothing) for the bounded form CI runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Small counts, a few kills: CI.
    Bounded,
    /// The full form: 10,000 calls and events, a kill every few seconds.
    Full,
}

impl Scale {
    /// From `NATSGEN_FAULTS`.
    pub fn from_env() -> Scale {
        match std::env::var("NATSGEN_FAULTS").as_deref() {
            Ok("full") => Scale::Full,
            _ => Scale::Bounded,
        }
    }

    /// `bounded` or `full`, for report titles.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Bounded => "bounded",
            Scale::Full => "full",
        }
    }

    /// Picks the bounded or the full value.
    pub fn pick<T>(self, bounded: T, full: T) -> T {
        match self {
            Scale::Bounded => bounded,
            Scale::Full => full,
        }
    }
}

/// A small seeded generator (xorshift64*), so a failing run can be repeated with its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `NATSGEN_FAULTS_SEED` when set, else from the clock; the seed is returned to
    /// print.
    pub fn from_env() -> (Rng, u64) {
        let seed = std::env::var("NATSGEN_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
            });
        (Rng::new(seed), seed)
    }

    /// A generator with this seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// A duration in `low..=high`.
    pub fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let span = high.saturating_sub(low).as_millis() as u64;
        low + Duration::from_millis(self.below(span + 1))
    }
}

/// The table of counts a scenario prints: one row per quantity, with a note.
#[derive(Debug, Default)]
pub struct Table {
    title: String,
    rows: Vec<(String, String, String)>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Table {
        Table {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Adds a row.
    pub fn row(&mut self, name: &str, value: impl std::fmt::Display, note: &str) -> &mut Self {
        self.rows
            .push((name.to_owned(), value.to_string(), note.to_owned()));
        self
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let name_width = self.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let value_width = self.rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let mut out = format!("\n== {} ==\n", self.title);
        for (name, value, note) in &self.rows {
            let _ = writeln!(
                out,
                "  {name:<name_width$}  {value:>value_width$}  {note}",
                name_width = name_width,
                value_width = value_width
            );
        }
        out
    }

    /// Prints the table on stderr (shown with `--nocapture`, and with a failing test's output).
    pub fn print(&self) {
        eprintln!("{}", self.render());
    }
}

/// Megabytes, one decimal, from kilobytes.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// A GET of a nats-server monitoring endpoint (`/connz?state=closed`, `/jsz`, ...) as JSON.
pub async fn monitor_get(monitor_url: &str, path: &str) -> Option<serde_json::Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = monitor_url.strip_prefix("http://")?;
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response);
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str(body).ok()
    };
    tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .ok()
        .flatten()
}

/// Connections the server closed or saw closed whose client name is `name`, with the reason of
/// each: how often a process of that name lost its connection.
pub async fn closed_connections(monitor_url: &str, name: &str) -> Vec<String> {
    let Some(connz) = monitor_get(monitor_url, "/connz?state=closed&limit=10000").await else {
        return vec!["(monitoring unavailable)".to_owned()];
    };
    connz
        .get("connections")
        .and_then(serde_json::Value::as_array)
        .map(|connections| {
            connections
                .iter()
                .filter(|c| c.get("name").and_then(serde_json::Value::as_str) == Some(name))
                .map(|c| {
                    c.get("reason")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}
