//! Reading streams and consumers through the JetStream API's JSON, so that nothing stored —
//! not even a dead letter carrying a copied header block no client library would parse — can
//! break the reader: the message-get API returns headers as base64 data, parsed here leniently.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use serde_json::Value;

use super::raw::parse_header_block;

/// How long one JetStream API request may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Message gets in flight at once.
const GETS_IN_FLIGHT: usize = 64;

/// A stored message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its stream sequence.
    pub seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its headers, leniently parsed.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub payload: Bytes,
}

impl Stored {
    /// The first value of header `name` (exact match).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }
}

/// Sends a JetStream API request and parses the JSON answer; an `error` in it is an error.
pub async fn api(client: &async_nats::Client, subject: &str, body: Value) -> Result<Value, String> {
    let payload = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let request = client.request(subject.to_owned(), payload);
    let reply = tokio::time::timeout(API_TIMEOUT, request)
        .await
        .map_err(|_| format!("{subject}: no answer within {API_TIMEOUT:?}"))?
        .map_err(|e| format!("{subject}: {e}"))?;
    let value: Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| format!("{subject}: the answer is not JSON: {e}"))?;
    if let Some(error) = value.get("error") {
        return Err(format!("{subject}: {error}"));
    }
    Ok(value)
}

/// The first and last sequence of a stream and its message count; `None` when it does not exist.
pub async fn stream_bounds(
    client: &async_nats::Client,
    stream: &str,
) -> Result<Option<(u64, u64, u64)>, String> {
    match api(
        client,
        &format!("$JS.API.STREAM.INFO.{stream}"),
        Value::Null,
    )
    .await
    {
        Ok(info) => {
            let state = info.get("state").cloned().unwrap_or(Value::Null);
            let number = |key: &str| state.get(key).and_then(Value::as_u64).unwrap_or(0);
            Ok(Some((
                number("first_seq"),
                number("last_seq"),
                number("messages"),
            )))
        }
        Err(e) if e.contains("10059") => Ok(None),
        Err(e) => Err(e),
    }
}

/// The message at `seq`; `None` when there is none (deleted, or never stored).
pub async fn get_stored(
    client: &async_nats::Client,
    stream: &str,
    seq: u64,
) -> Result<Option<Stored>, String> {
    let answer = match api(
        client,
        &format!("$JS.API.STREAM.MSG.GET.{stream}"),
        serde_json::json!({ "seq": seq }),
    )
    .await
    {
        Ok(answer) => answer,
        // 10037: no message found.
        Err(e) if e.contains("10037") => return Ok(None),
        Err(e) => return Err(e),
    };
    let message = answer.get("message").ok_or("no message in the answer")?;
    let decode = |key: &str| -> Result<Vec<u8>, String> {
        match message.get(key).and_then(Value::as_str) {
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| format!("{key} is not base64: {e}")),
            None => Ok(Vec::new()),
        }
    };
    let header_block = decode("hdrs")?;
    let (_, headers) = parse_header_block(&header_block);
    Ok(Some(Stored {
        seq,
        subject: message
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        headers,
        payload: Bytes::from(decode("data")?),
    }))
}

/// Every message of `stream` with a sequence in `from..=to`, in order.
pub async fn read_range(
    client: &async_nats::Client,
    stream: &str,
    from: u64,
    to: u64,
) -> Result<Vec<Stored>, String> {
    let results: Vec<Result<Option<Stored>, String>> = stream::iter(from..=to)
        .map(|seq| get_stored(client, stream, seq))
        .buffered(GETS_IN_FLIGHT)
        .collect()
        .await;
    let mut messages = Vec::new();
    for result in results {
        if let Some(message) = result? {
            messages.push(message);
        }
    }
    Ok(messages)
}

/// Follows a stream from its start: each [`Follower::poll`] returns what was stored since.
#[derive(Debug)]
pub struct Follower {
    stream: String,
    next: u64,
}

impl Follower {
    /// Starts at sequence 1.
    pub fn new(stream: &str) -> Follower {
        Follower {
            stream: stream.to_owned(),
            next: 1,
        }
    }

    /// The messages stored since the last poll (none while the stream does not exist).
    pub async fn poll(&mut self, client: &async_nats::Client) -> Result<Vec<Stored>, String> {
        let Some((_, last, _)) = stream_bounds(client, &self.stream).await? else {
            return Ok(Vec::new());
        };
        if last < self.next {
            return Ok(Vec::new());
        }
        let messages = read_range(client, &self.stream, self.next, last).await?;
        self.next = last + 1;
        Ok(messages)
    }
}

/// What a consumer's info says about its progress.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerState {
    /// Messages not delivered yet.
    pub pending: u64,
    /// Messages delivered and not acked yet.
    pub ack_pending: u64,
    /// Messages delivered more than once and not acked yet.
    pub redelivered: u64,
    /// Deliveries so far (the consumer sequence).
    pub delivered: u64,
    /// Pull requests waiting.
    pub waiting: u64,
}

impl ConsumerState {
    /// Nothing pending and nothing unacked.
    pub fn is_idle(&self) -> bool {
        self.pending == 0 && self.ack_pending == 0
    }
}

/// The state of consumer `consumer` on `stream`.
pub async fn consumer_state(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
) -> Result<ConsumerState, String> {
    let info = api(
        client,
        &format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
        Value::Null,
    )
    .await?;
    let number = |value: Option<&Value>| value.and_then(Value::as_u64).unwrap_or(0);
    Ok(ConsumerState {
        pending: number(info.get("num_pending")),
        ack_pending: number(info.get("num_ack_pending")),
        redelivered: number(info.get("num_redelivered")),
        delivered: number(info.get("delivered").and_then(|d| d.get("consumer_seq"))),
        waiting: number(info.get("num_waiting")),
    })
}

/// Waits (at most `patience`) until every consumer in `consumers` (stream, consumer) has nothing
/// pending and nothing unacked; returns the last state of each.
pub async fn wait_idle(
    client: &async_nats::Client,
    consumers: &[(&str, &str)],
    patience: Duration,
) -> Vec<(String, Result<ConsumerState, String>)> {
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        let mut states = Vec::new();
        for (stream, consumer) in consumers {
            states.push((
                format!("{stream}/{consumer}"),
                consumer_state(client, stream, consumer).await,
            ));
        }
        let idle = states
            .iter()
            .all(|(_, state)| state.as_ref().is_ok_and(ConsumerState::is_idle));
        if idle || tokio::time::Instant::now() >= give_up {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
