//! What became of every unit of work: the completion records the handlers stored in
//! `FAULTS_REC` and the dead letters in `NATSGEN_DLQ`, keyed by handler and key.
//!
//! A unit is an async call of `fault_worker.work` (handler `work`, key: the call's key) or one
//! handler's share of a `faults.happened` event (handlers `audit` and `billing`, key: the event
//! number).

use std::collections::{BTreeMap, HashMap, HashSet};

use natsgen_tests::chaos::store::{Follower, Stored};

use super::common::{within, DLQ, RECORDS};

pub const HANDLERS: [&str; 3] = ["work", "audit", "billing"];

/// A unit of work: (handler, key).
pub type Unit = (&'static str, String);

#[derive(Debug, Default)]
pub struct Ledger {
    /// The pid of every completion of a unit, in order.
    pub done: HashMap<Unit, Vec<u32>>,
    /// The attempts of a unit that started.
    pub started: HashMap<Unit, HashSet<u64>>,
    /// The reason of every dead letter of a unit.
    pub letters: HashMap<Unit, Vec<String>>,
    /// Dead letters of no known unit.
    pub stray_letters: Vec<String>,
    records: Option<Follower>,
    dlq: Option<Follower>,
}

fn handler(name: &str) -> Option<&'static str> {
    HANDLERS.into_iter().find(|h| *h == name)
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            records: Some(Follower::new(RECORDS)),
            dlq: Some(Follower::new(DLQ)),
            ..Ledger::default()
        }
    }

    /// Reads what was stored since the last call.
    pub async fn poll(&mut self, client: &async_nats::Client) {
        let mut records = self.records.take().expect("a follower");
        for record in within(records.poll(client)).await.unwrap() {
            self.record(&record);
        }
        self.records = Some(records);
        let mut dlq = self.dlq.take().expect("a follower");
        for letter in within(dlq.poll(client)).await.unwrap() {
            self.letter(&letter);
        }
        self.dlq = Some(dlq);
    }

    fn record(&mut self, record: &Stored) {
        let mut tokens = record.subject.split('.').skip(1);
        let (Some(phase), Some(name)) = (tokens.next(), tokens.next()) else {
            return;
        };
        let (Some(handler), Some(body)) = (handler(name), record.json()) else {
            return;
        };
        let key = body["k"].as_str().unwrap_or_default().to_owned();
        let unit = (handler, key);
        match phase {
            "start" => {
                self.started
                    .entry(unit)
                    .or_default()
                    .insert(body["a"].as_u64().unwrap_or(0));
            }
            "done" => self
                .done
                .entry(unit)
                .or_default()
                .push(body["p"].as_u64().unwrap_or(0) as u32),
            _ => {}
        }
    }

    fn letter(&mut self, letter: &Stored) {
        let reason = letter
            .header(natsgen::streams::DLQ_REASON)
            .unwrap_or("(no reason)")
            .to_owned();
        let body = letter.json().unwrap_or_default();
        let unit = match letter.subject.as_str() {
            "natsgen.dlq.fault_worker.work" => body["key"].as_str().map(|k| ("work", k.to_owned())),
            "natsgen.dlq.fault_audit.record" => {
                body["event_no"].as_u64().map(|n| ("audit", n.to_string()))
            }
            "natsgen.dlq.fault_billing.charge" => body["event_no"]
                .as_u64()
                .map(|n| ("billing", n.to_string())),
            _ => None,
        };
        match unit {
            Some(unit) => self.letters.entry(unit).or_default().push(reason),
            None => self
                .stray_letters
                .push(format!("{} ({reason})", letter.subject)),
        }
    }

    /// Completed or dead-lettered.
    pub fn settled(&self, unit: &Unit) -> bool {
        self.done.contains_key(unit) || self.letters.contains_key(unit)
    }

    /// Dead letters by reason.
    pub fn letter_reasons(&self) -> BTreeMap<String, usize> {
        let mut reasons = BTreeMap::new();
        for reason in self.letters.values().flatten() {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
        reasons
    }
}
