//! Identifiers for calls and traces.
//!
//! Ids must be unique, not secret, so they come from a per-thread wyrand generator seeded once
//! from the operating system, which costs a few nanoseconds instead of a syscall per call.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let random = uuid::Uuid::new_v4().as_u128();
    // Never zero, so that two threads seeded alike still diverge through their address.
    let local = &random as *const u128 as u64;
    ((random >> 64) as u64 ^ random as u64 ^ local.rotate_left(32)) | 1
}

/// The next pseudo-random 64-bit number of this thread (wyrand).
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let next = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(next);
        let product = u128::from(next) * u128::from(next ^ 0xe703_7ed1_a0b4_28db);
        ((product >> 64) as u64) ^ (product as u64)
    })
}

/// A new call id: a UUIDv7 (time-ordered, so ids sort by start time in logs).
pub(crate) fn new_call_id() -> String {
    let mut id = String::with_capacity(uuid::fmt::Hyphenated::LENGTH);
    push_call_id(&mut id);
    id
}

/// Appends a new call id (see [`new_call_id`]) to `out`, so it can be written straight into a
/// header value.
pub(crate) fn push_call_id(out: &mut String) {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&next_u64().to_le_bytes());
    random[8..].copy_from_slice(&next_u64().to_le_bytes()[..2]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    out.push_str(id.hyphenated().encode_lower(&mut buffer));
}

/// A new, non-zero W3C trace id.
pub(crate) fn new_trace_id() -> u128 {
    loop {
        let id = (u128::from(next_u64()) << 64) | u128::from(next_u64());
        if id != 0 {
            return id;
        }
    }
}

/// A new, non-zero W3C span (parent) id.
pub(crate) fn new_span_id() -> u64 {
    loop {
        let id = next_u64();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_are_uuid_v7_and_unique() {
        let a = new_call_id();
        let b = new_call_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }
}
