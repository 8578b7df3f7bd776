//! A raw NATS protocol client over TCP, for sending what no well-behaved client library sends:
//! header blocks that are not UTF-8, header lines without a colon, bogus status lines.
//!
//! It speaks just enough of the protocol: `CONNECT` (headers and no-responders on), `PUB`,
//! `HPUB`, `SUB`, `PING`/`PONG`, and reads `MSG`/`HMSG` into [`RawMessage`]s whose header block
//! is parsed leniently (bytes that are not UTF-8 are replaced, lines without a colon are kept as
//! names with an empty value), so nothing a peer sends can break it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Mutex as AsyncMutex};
use tokio::task::JoinHandle;

/// What can go wrong on a raw connection.
#[derive(Debug)]
pub enum RawError {
    /// A socket error.
    Io(std::io::Error),
    /// The server sent something this client does not understand, or closed the connection.
    Protocol(String),
    /// No reply within the time given.
    Timeout,
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawError::Io(e) => write!(f, "i/o: {e}"),
            RawError::Protocol(e) => write!(f, "protocol: {e}"),
            RawError::Timeout => write!(f, "timed out"),
        }
    }
}

impl std::error::Error for RawError {}

impl From<std::io::Error> for RawError {
    fn from(e: std::io::Error) -> Self {
        RawError::Io(e)
    }
}

/// A message received on a raw connection.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Its subject.
    pub subject: String,
    /// Its reply subject, if any.
    pub reply: Option<String>,
    /// The status code of the header block's first line (`NATS/1.0 503` → 503), if any.
    pub status: Option<u16>,
    /// Headers, leniently parsed, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub payload: Bytes,
}

impl RawMessage {
    /// The first value of header `name` (exact match).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a header block leniently: the status code of its first line, then `name: value` lines.
pub fn parse_header_block(block: &[u8]) -> (Option<u16>, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(block);
    let mut lines = text.split('\n').map(|line| line.trim_end_matches('\r'));
    let status = lines.next().and_then(|first| {
        first
            .strip_prefix("NATS/1.0")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|code| code.parse().ok())
    });
    let headers = lines
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, value)) => (name.trim().to_owned(), value.trim().to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect();
    (status, headers)
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<RawMessage>>>>;

/// A raw NATS connection with one wildcard inbox subscription for requests.
#[derive(Debug)]
pub struct RawConnection {
    writer: Arc<AsyncMutex<OwnedWriteHalf>>,
    waiters: Waiters,
    pongs: Arc<Mutex<Vec<oneshot::Sender<()>>>>,
    inbox_prefix: String,
    next: AtomicU64,
    max_payload: usize,
    errors: Arc<Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

impl RawConnection {
    /// Connects to `addr` (`127.0.0.1:PORT`), sends `CONNECT` and waits for the first `PONG`.
    pub async fn connect(addr: &str, name: &str) -> Result<RawConnection, RawError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::with_capacity(256 * 1024, read);
        let mut info = String::new();
        read.read_line(&mut info).await?;
        let Some(json) = info.strip_prefix("INFO ") else {
            return Err(RawError::Protocol(format!("expected INFO, got {info:?}")));
        };
        let info: serde_json::Value = serde_json::from_str(json.trim())
            .map_err(|e| RawError::Protocol(format!("INFO is not JSON: {e}")))?;
        let max_payload = info
            .get("max_payload")
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1024 * 1024);
        let connect = serde_json::json!({
            "verbose": false,
            "pedantic": false,
            "headers": true,
            "no_responders": true,
            "protocol": 1,
            "lang": "raw",
            "version": "0.0.0",
            "name": name,
        });
        write
            .write_all(format!("CONNECT {connect}\r\n").as_bytes())
            .await?;
        let id = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        let inbox_prefix = format!("_RAW.{}.{id}", std::process::id());
        write
            .write_all(format!("SUB {inbox_prefix}.* 1\r\nPING\r\n").as_bytes())
            .await?;
        write.flush().await?;
        let waiters: Waiters = Arc::default();
        let pongs: Arc<Mutex<Vec<oneshot::Sender<()>>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (first_pong, pong) = oneshot::channel();
        lock(&pongs).push(first_pong);
        let writer = Arc::new(AsyncMutex::new(write));
        let reader = tokio::spawn(read_loop(
            read,
            Arc::clone(&writer),
            Arc::clone(&waiters),
            Arc::clone(&pongs),
            Arc::clone(&errors),
        ));
        let connection = RawConnection {
            writer,
            waiters,
            pongs,
            inbox_prefix,
            next: AtomicU64::new(0),
            max_payload,
            errors,
            reader,
        };
        match tokio::time::timeout(Duration::from_secs(10), pong).await {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(_)) => Err(RawError::Protocol(format!(
                "closed during the handshake: {:?}",
                connection.errors()
            ))),
            Err(_) => Err(RawError::Timeout),
        }
    }

    /// The server's `max_payload`.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// `-ERR` lines the server sent, and the reason the connection ended, if it did.
    pub fn errors(&self) -> Vec<String> {
        lock(&self.errors).clone()
    }

    /// Whether the connection is still read from (false once the server closed it).
    pub fn is_open(&self) -> bool {
        !self.reader.is_finished()
    }

    /// Publishes `payload` on `subject`; with `headers` (a whole header block, sent as is) as
    /// `HPUB`.
    pub async fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> Result<(), RawError> {
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut frame = Vec::with_capacity(payload.len() + 256);
        match headers {
            Some(block) => {
                frame.extend_from_slice(
                    format!(
                        "HPUB {subject}{reply} {} {}\r\n",
                        block.len(),
                        block.len() + payload.len()
                    )
                    .as_bytes(),
                );
                frame.extend_from_slice(block);
            }
            None => frame.extend_from_slice(
                format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes(),
            ),
        }
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        let mut writer = self.writer.lock().await;
        writer.write_all(&frame).await?;
        writer.flush().await?;
        Ok(())
    }

    /// Sends a request and waits up to `timeout` for the first reply (a no-responders status
    /// included).
    pub async fn request(
        &self,
        subject: &str,
        headers: Option<&[u8]>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<RawMessage, RawError> {
        let inbox = format!(
            "{}.{}",
            self.inbox_prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters).insert(inbox.clone(), sender);
        let sent = self.publish(subject, Some(&inbox), headers, payload).await;
        let result = match sent {
            Ok(()) => match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(message)) => Ok(message),
                Ok(Err(_)) => Err(RawError::Protocol(format!(
                    "the connection closed: {:?}",
                    self.errors()
                ))),
                Err(_) => Err(RawError::Timeout),
            },
            Err(e) => Err(e),
        };
        lock(&self.waiters).remove(&inbox);
        result
    }

    /// A round trip to the server (`PING`, `PONG`): everything sent before it was processed.
    pub async fn flush(&self, timeout: Duration) -> Result<(), RawError> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.pongs).push(sender);
        {
            let mut writer = self.writer.lock().await;
            writer.write_all(b"PING\r\n").await?;
            writer.flush().await?;
        }
        match tokio::time::timeout(timeout, receiver).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(RawError::Protocol("the connection closed".into())),
            Err(_) => Err(RawError::Timeout),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn read_loop(
    mut read: BufReader<OwnedReadHalf>,
    writer: Arc<AsyncMutex<OwnedWriteHalf>>,
    waiters: Waiters,
    pongs: Arc<Mutex<Vec<oneshot::Sender<()>>>>,
    errors: Arc<Mutex<Vec<String>>>,
) {
    let ended = read_messages(&mut read, &writer, &waiters, &pongs, &errors).await;
    let reason = match ended {
        Ok(()) => "closed by the server".to_owned(),
        Err(e) => e.to_string(),
    };
    lock(&errors).push(reason);
    // Wake everyone waiting: their senders drop.
    lock(&waiters).clear();
    lock(&pongs).clear();
}

async fn read_messages(
    read: &mut BufReader<OwnedReadHalf>,
    writer: &AsyncMutex<OwnedWriteHalf>,
    waiters: &Waiters,
    pongs: &Arc<Mutex<Vec<oneshot::Sender<()>>>>,
    errors: &Arc<Mutex<Vec<String>>>,
) -> Result<(), RawError> {
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let trimmed = line.trim_end();
        let (op, rest) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        match op.to_ascii_uppercase().as_str() {
            "PING" => {
                let mut writer = writer.lock().await;
                writer.write_all(b"PONG\r\n").await?;
                writer.flush().await?;
            }
            "PONG" => {
                let mut pongs = lock(pongs);
                if !pongs.is_empty() {
                    let first = pongs.remove(0);
                    let _ = first.send(());
                }
            }
            "+OK" | "INFO" => {}
            "-ERR" => lock(errors).push(rest.to_owned()),
            "MSG" | "HMSG" => {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                let with_headers = op.eq_ignore_ascii_case("HMSG");
                let numbers = if with_headers { 2 } else { 1 };
                if parts.len() < 2 + numbers {
                    return Err(RawError::Protocol(format!("bad {op} line {trimmed:?}")));
                }
                let subject = parts[0].to_owned();
                let reply = (parts.len() == 3 + numbers).then(|| parts[2].to_owned());
                let parse = |s: &str| {
                    s.parse::<usize>()
                        .map_err(|_| RawError::Protocol(format!("bad size in {trimmed:?}")))
                };
                let total = parse(parts[parts.len() - 1])?;
                let header_len = if with_headers {
                    parse(parts[parts.len() - 2])?
                } else {
                    0
                };
                let mut body = vec![0u8; total + 2];
                read.read_exact(&mut body).await?;
                body.truncate(total);
                let header_len = header_len.min(total);
                let (status, headers) = if with_headers {
                    parse_header_block(&body[..header_len])
                } else {
                    (None, Vec::new())
                };
                let payload = Bytes::from(body).slice(header_len..);
                let message = RawMessage {
                    subject,
                    reply,
                    status,
                    headers,
                    payload,
                };
                if let Some(waiter) = lock(waiters).remove(&message.subject) {
                    let _ = waiter.send(message);
                }
            }
            _ => return Err(RawError::Protocol(format!("unexpected line {trimmed:?}"))),
        }
    }
}
