//! The hostile corpus: bad JSON, wrong types, out-of-range numbers and timestamps, deep nesting,
//! bodies near `max_payload`, hostile control headers (deadlines, caller chains, call ids,
//! `traceparent`) and malformed or non-UTF-8 header blocks, sent over a raw TCP connection to the
//! RPC, async, event and `$SRV` subjects of `hostile_target`, which runs in its own process
//! (`faults_worker hostile`).
//!
//! Each item must get its expected error reply (RPC, `$SRV`) or, once stored, be processed or
//! dead-lettered (async calls and events) — never a panic, a missing reply, an endless
//! redelivery or a lost connection. After every item a normal call must be answered. At the end
//! every consumer must be idle, and the process's peak memory is reported (and bounded).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use natsgen_tests::chaos::procs::ServiceProcess;
use natsgen_tests::chaos::raw::{RawConnection, RawMessage};
use natsgen_tests::chaos::store::{self, Follower};
use natsgen_tests::chaos::{closed_connections, mib, Scale, Table};
use serde_json::{json, Value};

use super::common::{
    create_records_stream, describe_states, spawn_worker, start_server, within, DLQ, RECORDS,
};

const CHECK: &str = "hostile_target.rpc.check";
const MIRROR: &str = "hostile_target.rpc.mirror";
const NAP: &str = "hostile_target.rpc.nap";
const PING: &str = "hostile_target.rpc.ping";
const CHECK_LATER: &str = "hostile_target.async.check_later";
const SAMPLED: &str = "faults.sampled";
const ASYNC_STREAM: &str = "ASYNC_hostile_target";
const EVENT_STREAM: &str = "EVENTS_faults";
const CONSUMERS: [(&str, &str); 4] = [
    (ASYNC_STREAM, "hostile_target"),
    (EVENT_STREAM, "hostile_target_on_sampled"),
    (EVENT_STREAM, "hostile_shadow_shadow_sampled"),
    (EVENT_STREAM, "hostile_target_on_kind"),
];

/// The handlers a stored message on `subject` owes an outcome: `faults.sampled` is handled by two
/// services, so an undecodable one owes two dead letters.
fn handlers_of(subject: &str) -> &'static [&'static str] {
    match subject {
        CHECK_LATER => &["check_later"],
        SAMPLED => &["on_sampled", "shadow_sampled"],
        _ if subject.starts_with("faults.kinds.") => &["on_kind"],
        _ => &[],
    }
}

/// How long an RPC item waits for its reply (the schema timeouts are 5 s; the handlers answer at
/// once).
const REPLY_WAIT: Duration = Duration::from_secs(6);
/// How long a normal call after an item may take to be answered, retried, before the service
/// counts as down.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);
/// The peak resident memory the service process may reach.
const RSS_BOUND_KIB: u64 = 512 * 1024;

/// What an item must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A reply with one of these codes (200: a result, or a `$SRV` answer).
    Codes(&'static [u16]),
    /// Any reply at all (a result or an error), within the wait.
    AnyReply,
    /// Stored, then processed (and not dead-lettered).
    Processed,
    /// Stored, then dead-lettered (and not processed).
    Lettered,
    /// Stored, then processed or dead-lettered.
    Settled,
    /// Not stored (no stream captures the subject), or stored and dead-lettered.
    RefusedOrLettered,
}

const OK: &[u16] = &[200];
const BAD: &[u16] = &[400];
const OK_OR_BAD: &[u16] = &[200, 400];
const OK_OR_TOO_LARGE: &[u16] = &[200, 413];
const OK_OR_EXPIRED: &[u16] = &[200, 504];
const EXPIRED: &[u16] = &[504];

/// One hostile message.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    subject: String,
    /// A whole header block, sent as is with `HPUB`.
    headers: Option<Vec<u8>>,
    body: Vec<u8>,
    expect: Expect,
    /// For deadline items: the reply must come before this much time passed.
    answer_within: Option<Duration>,
}

/// What an item got when it was sent.
#[derive(Debug, Clone)]
enum Sent {
    Reply { code: u16, kind: String },
    NoReply(String),
    Stored { stream: String, seq: u64 },
    Refused(String),
}

/// What became of a stored item at one handler.
#[derive(Debug, Clone, Default)]
struct Fate {
    processed: usize,
    letters: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Building the corpus
// ---------------------------------------------------------------------------------------------

/// A valid sample whose tag is `tag`.
fn sample(tag: &str) -> Value {
    json!({
        "tag": tag,
        "f": 1.5,
        "d": 2.5,
        "n": -3,
        "u": 4,
        "t": "2024-01-02T03:04:05Z",
        "id": "0190b0b0-1234-7000-8000-000000000000",
        "raw": "AQID",
        "shape": "circle",
        "tags": ["a"],
        "attrs": {"k": 1},
    })
}

/// The sample with `field` set to the JSON text `raw` (which may be no valid `serde_json::Value`,
/// such as `1e400`).
fn with_raw(tag: &str, field: &str, raw: &str) -> Vec<u8> {
    let mut value = sample(tag);
    value[field] = json!("__RAW__");
    value
        .to_string()
        .replacen("\"__RAW__\"", raw, 1)
        .into_bytes()
}

fn with(tag: &str, field: &str, value: Value) -> Vec<u8> {
    let mut sample = sample(tag);
    sample[field] = value;
    sample.to_string().into_bytes()
}

fn without(tag: &str, field: &str) -> Vec<u8> {
    let mut sample = sample(tag);
    sample.as_object_mut().unwrap().remove(field);
    sample.to_string().into_bytes()
}

/// The tag of a variant before it becomes an item.
const TAG: &str = "__TAG__";

/// `haystack` with every `from` replaced by `to`.
fn replace_all(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Is a correct runtime bound to accept it, to refuse it, or free to do either?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    Valid,
    Invalid,
    Either,
}

/// A body variant: a sample (wrapped as `{"sample": ...}` for RPC and async calls) or a whole
/// body sent as is.
enum Body {
    Sample(Vec<u8>),
    Whole(Vec<u8>),
}

struct Variant {
    name: &'static str,
    body: Body,
    validity: Validity,
    /// Close to `max_payload`: the mirror's reply may be too large.
    huge: bool,
}

fn variant(name: &'static str, body: Body, validity: Validity) -> Variant {
    Variant {
        name,
        body,
        validity,
        huge: false,
    }
}

/// `sample` with one tag long enough to make it `size` bytes of JSON.
fn padded(mut sample: Value, size: usize) -> Vec<u8> {
    sample["tags"] = json!([""]);
    let bare = sample.to_string().len();
    sample["tags"] = json!(["x".repeat(size.saturating_sub(bare))]);
    sample.to_string().into_bytes()
}

/// Nested JSON arrays, `depth` deep.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// A sample whose `next` chain is `depth` samples deep.
fn nested_samples(tag: &str, depth: usize) -> Vec<u8> {
    let leaf = sample(tag).to_string();
    let open = leaf.trim_end_matches('}').to_owned() + ",\"next\":";
    let mut text = String::with_capacity((open.len() + 1) * depth + leaf.len());
    for _ in 0..depth {
        text.push_str(&open);
    }
    text.push_str(&leaf);
    for _ in 0..depth {
        text.push('}');
    }
    text.into_bytes()
}

/// The body corpus for one item id (used as the sample's tag, so a processed item is found).
fn body_variants(tag: &str, max_payload: usize) -> Vec<Variant> {
    use Body::{Sample as S, Whole as W};
    use Validity::{Either, Invalid, Valid};
    // Samples of `max_payload - 256` bytes: with the `{"sample":...}` wrapper and a message id
    // they still fit, but a dead letter's headers would push them over.
    let near_max = padded(sample(tag), max_payload - 256);
    let mut near_max_invalid = sample(tag);
    near_max_invalid["shape"] = json!("triangle");
    let near_max_invalid = padded(near_max_invalid, max_payload - 256);
    let mut unknown_fields = sample(tag);
    for i in 0..20_000 {
        unknown_fields[format!("unknown_{i}")] = json!(i);
    }
    let mut many_tags = sample(tag);
    many_tags["tags"] = json!((0..50_000).map(|i| i.to_string()).collect::<Vec<_>>());
    let valid = sample(tag).to_string();
    let mut variants = vec![
        variant("valid", S(valid.clone().into_bytes()), Valid),
        variant(
            "valid_json_100_deep",
            S(with_raw(tag, "extra", &nested_arrays(100))),
            Valid,
        ),
        variant("valid_next_20_deep", S(nested_samples(tag, 20)), Valid),
        variant(
            "valid_20k_unknown_fields",
            S(unknown_fields.to_string().into_bytes()),
            Valid,
        ),
        variant(
            "valid_50k_tags",
            S(many_tags.to_string().into_bytes()),
            Valid,
        ),
        variant(
            "valid_f32_max",
            S(with_raw(tag, "f", "3.4028235e38")),
            Valid,
        ),
        variant(
            "valid_t_max_offset",
            S(with(tag, "t", json!("9999-12-31T23:59:59+23:59"))),
            Valid,
        ),
        variant(
            "valid_nul_in_string",
            S(with(tag, "tags", json!(["\u{0}", "\u{1F600}"]))),
            Valid,
        ),
        variant("f32_1e39", S(with_raw(tag, "f", "1e39")), Invalid),
        variant("f32_minus_1e39", S(with_raw(tag, "f", "-1e39")), Invalid),
        variant("f32_3.5e38", S(with_raw(tag, "f", "3.5e38")), Invalid),
        variant("f32_1e-50", S(with_raw(tag, "f", "1e-50")), Either),
        variant("f32_string", S(with(tag, "f", json!("1.5"))), Invalid),
        variant("f32_null", S(with(tag, "f", Value::Null)), Invalid),
        variant("f64_1e309", S(with_raw(tag, "d", "1e309")), Invalid),
        variant("f64_minus_1e400", S(with_raw(tag, "d", "-1e400")), Invalid),
        variant("i32_2^31", S(with_raw(tag, "n", "2147483648")), Invalid),
        variant("i32_-2^31-1", S(with_raw(tag, "n", "-2147483649")), Invalid),
        variant("i32_float", S(with_raw(tag, "n", "1.5")), Invalid),
        variant("i32_string", S(with(tag, "n", json!("1"))), Invalid),
        variant("u64_negative", S(with_raw(tag, "u", "-1")), Invalid),
        variant(
            "u64_2^64",
            S(with_raw(tag, "u", "18446744073709551616")),
            Invalid,
        ),
        variant("u64_1e20", S(with_raw(tag, "u", "1e20")), Invalid),
        variant("u64_bool", S(with(tag, "u", json!(true))), Invalid),
        variant(
            "timestamp_past_9999_utc",
            S(with(tag, "t", json!("9999-12-31T23:59:59-00:01"))),
            Invalid,
        ),
        variant(
            "timestamp_year_10000",
            S(with(tag, "t", json!("+10000-01-01T00:00:00Z"))),
            Invalid,
        ),
        variant(
            "timestamp_before_year_0_utc",
            S(with(tag, "t", json!("0000-01-01T00:00:00+00:01"))),
            Either,
        ),
        variant(
            "timestamp_month_13",
            S(with(tag, "t", json!("2024-13-01T00:00:00Z"))),
            Invalid,
        ),
        variant(
            "timestamp_feb_29_2023",
            S(with(tag, "t", json!("2023-02-29T00:00:00Z"))),
            Invalid,
        ),
        variant(
            "timestamp_no_offset",
            S(with(tag, "t", json!("2024-01-01T00:00:00"))),
            Invalid,
        ),
        variant(
            "timestamp_words",
            S(with(tag, "t", json!("yesterday"))),
            Invalid,
        ),
        variant(
            "timestamp_number",
            S(with(tag, "t", json!(1_700_000_000))),
            Invalid,
        ),
        variant("timestamp_empty", S(with(tag, "t", json!(""))), Invalid),
        variant(
            "uuid_garbage",
            S(with(tag, "id", json!("not-a-uuid"))),
            Invalid,
        ),
        variant("uuid_number", S(with(tag, "id", json!(7))), Invalid),
        variant(
            "bytes_not_base64",
            S(with(tag, "raw", json!("!!!"))),
            Invalid,
        ),
        variant("bytes_number", S(with(tag, "raw", json!(1))), Invalid),
        variant(
            "enum_unknown",
            S(with(tag, "shape", json!("triangle"))),
            Invalid,
        ),
        variant(
            "enum_wrong_case",
            S(with(tag, "shape", json!("Circle"))),
            Invalid,
        ),
        variant("enum_number", S(with(tag, "shape", json!(0))), Invalid),
        variant("list_is_string", S(with(tag, "tags", json!("a"))), Invalid),
        variant(
            "list_of_numbers",
            S(with(tag, "tags", json!([1, 2]))),
            Invalid,
        ),
        variant(
            "list_with_null",
            S(with(tag, "tags", json!([null]))),
            Invalid,
        ),
        variant(
            "map_float_value",
            S(with(tag, "attrs", json!({"k": 1.5}))),
            Invalid,
        ),
        variant(
            "map_value_past_i64",
            S(with_raw(tag, "attrs", "{\"k\":9223372036854775808}")),
            Invalid,
        ),
        variant("map_is_list", S(with(tag, "attrs", json!([]))), Invalid),
        variant("missing_field", S(without(tag, "u")), Invalid),
        variant("json_1e400", S(with_raw(tag, "extra", "1e400")), Invalid),
        variant(
            "json_200k_deep",
            S(with_raw(tag, "extra", &nested_arrays(200_000))),
            Invalid,
        ),
        variant("next_1000_deep", S(nested_samples(tag, 1000)), Invalid),
        variant("whole_empty", W(Vec::new()), Invalid),
        variant("whole_open_brace", W(b"{".to_vec()), Invalid),
        variant("whole_null", W(b"null".to_vec()), Invalid),
        variant("whole_array", W(b"[]".to_vec()), Invalid),
        variant("whole_string", W(b"\"sample\"".to_vec()), Invalid),
        variant("whole_number", W(b"123".to_vec()), Invalid),
        variant("whole_empty_object", W(b"{}".to_vec()), Invalid),
        variant("whole_nan", W(b"{\"sample\": NaN}".to_vec()), Invalid),
        variant(
            "whole_not_utf8",
            W(b"\xff\xfe\x00{\"sample\":".to_vec()),
            Invalid,
        ),
        variant(
            "whole_bom",
            W([b"\xef\xbb\xbf".as_slice(), valid.as_bytes()].concat()),
            Invalid,
        ),
        variant(
            "sample_trailing_garbage",
            S([valid.as_bytes(), b"} x".as_slice()].concat()),
            Invalid,
        ),
    ];
    variants.push(Variant {
        name: "valid_near_max_payload",
        body: S(near_max),
        validity: Valid,
        huge: true,
    });
    variants.push(Variant {
        name: "invalid_near_max_payload",
        body: S(near_max_invalid),
        validity: Invalid,
        huge: true,
    });
    variants
}

/// A header block: the status line, then `name: value` lines, then the blank line.
fn block(headers: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = b"NATS/1.0\r\n".to_vec();
    for (name, value) in headers {
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value);
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    block
}

/// The body of an RPC or async call with `sample` (bytes of a sample) as its param.
fn wrap(sample: &[u8]) -> Vec<u8> {
    [b"{\"sample\":".as_slice(), sample, b"}".as_slice()].concat()
}

struct Corpus {
    items: Vec<Item>,
    next: usize,
}

impl Corpus {
    fn new() -> Corpus {
        Corpus {
            items: Vec::new(),
            next: 0,
        }
    }

    fn id(&mut self, name: &str) -> String {
        self.next += 1;
        format!("h{:04}-{name}", self.next)
    }

    fn push(
        &mut self,
        id: String,
        subject: &str,
        headers: Option<Vec<u8>>,
        body: Vec<u8>,
        expect: Expect,
    ) {
        self.items.push(Item {
            id,
            subject: subject.to_owned(),
            headers,
            body,
            expect,
            answer_within: None,
        });
    }

    /// Every body variant to `check`, `mirror`, `check_later` and `faults.sampled`.
    fn bodies(&mut self, max_payload: usize) {
        for (subject, stored) in [
            (CHECK, false),
            (MIRROR, false),
            (CHECK_LATER, true),
            (SAMPLED, true),
        ] {
            // Built once with a placeholder tag, which each item replaces with its own id.
            for variant in body_variants(TAG, max_payload) {
                let id = self.id(&format!("{}@{subject}", variant.name));
                let body = match (&variant.body, subject == SAMPLED) {
                    (Body::Sample(sample), false) => wrap(sample),
                    (Body::Sample(sample), true) => sample.clone(),
                    (Body::Whole(whole), _) => whole.clone(),
                };
                let body = replace_all(&body, TAG.as_bytes(), id.as_bytes());
                let expect = match (stored, variant.validity) {
                    (true, Validity::Valid) => Expect::Processed,
                    (true, Validity::Invalid) => Expect::Lettered,
                    (true, Validity::Either) => Expect::Settled,
                    (false, Validity::Valid) if variant.huge && subject == MIRROR => {
                        Expect::Codes(OK_OR_TOO_LARGE)
                    }
                    (false, Validity::Valid) => Expect::Codes(OK),
                    (false, Validity::Invalid) => Expect::Codes(BAD),
                    (false, Validity::Either) => Expect::Codes(OK_OR_BAD),
                };
                let headers = stored.then(|| block(&[("Nats-Msg-Id", id.as_bytes())]));
                self.push(id, subject, headers, body, expect);
            }
        }
    }

    /// Payloads of the wrong variant (and of no variant) for the wildcard handler `on_kind`.
    fn wildcard(&mut self) {
        let cases: [(&str, &str, &str, Expect); 7] = [
            (
                "alpha_valid",
                "faults.kinds.alpha",
                "{\"a\":1}",
                Expect::Processed,
            ),
            (
                "alpha_negative",
                "faults.kinds.alpha",
                "{\"a\":-1}",
                Expect::Lettered,
            ),
            (
                "alpha_past_u32",
                "faults.kinds.alpha",
                "{\"a\":4294967296}",
                Expect::Lettered,
            ),
            (
                "beta_with_alphas_payload",
                "faults.kinds.beta",
                "{\"a\":1}",
                Expect::Lettered,
            ),
            (
                "beta_wrong_type",
                "faults.kinds.beta",
                "{\"b\":5}",
                Expect::Lettered,
            ),
            ("beta_not_json", "faults.kinds.beta", "b", Expect::Lettered),
            (
                "undeclared_variant",
                "faults.kinds.gamma",
                "{\"a\":1}",
                Expect::RefusedOrLettered,
            ),
        ];
        for (name, subject, body, expect) in cases {
            let id = self.id(name);
            let headers = Some(block(&[("Nats-Msg-Id", id.as_bytes())]));
            self.push(id, subject, headers, body.as_bytes().to_vec(), expect);
        }
    }

    /// Control headers natsgen reads, with hostile values, on otherwise valid messages.
    fn control_headers(&mut self) {
        let chain_10k = (0..10_000)
            .map(|i| format!("0190b0b0-1234-7000-8000-{i:012}"))
            .collect::<Vec<_>>()
            .join(",");
        let long = "7".repeat(100_000);
        let cases: Vec<(&str, &str, Vec<u8>, &'static [u16])> = vec![
            (
                "deadline_u64_max",
                "Natsgen-Deadline-Ms",
                b"18446744073709551615".to_vec(),
                OK,
            ),
            (
                "deadline_past_u64",
                "Natsgen-Deadline-Ms",
                b"18446744073709551616".to_vec(),
                OK,
            ),
            (
                "deadline_30_digits",
                "Natsgen-Deadline-Ms",
                b"999999999999999999999999999999".to_vec(),
                OK,
            ),
            (
                "deadline_i64_max",
                "Natsgen-Deadline-Ms",
                b"9223372036854775807".to_vec(),
                OK,
            ),
            (
                "deadline_minus_1",
                "Natsgen-Deadline-Ms",
                b"-1".to_vec(),
                OK_OR_EXPIRED,
            ),
            (
                "deadline_i64_min",
                "Natsgen-Deadline-Ms",
                b"-9223372036854775808".to_vec(),
                OK_OR_EXPIRED,
            ),
            (
                "deadline_zero",
                "Natsgen-Deadline-Ms",
                b"0".to_vec(),
                OK_OR_EXPIRED,
            ),
            (
                "deadline_words",
                "Natsgen-Deadline-Ms",
                b"soon".to_vec(),
                OK,
            ),
            ("deadline_float", "Natsgen-Deadline-Ms", b"1e9".to_vec(), OK),
            ("deadline_empty", "Natsgen-Deadline-Ms", Vec::new(), OK),
            (
                "chain_10k_ids",
                "Natsgen-Caller-Chain",
                chain_10k.into_bytes(),
                OK,
            ),
            (
                "chain_commas",
                "Natsgen-Caller-Chain",
                ",".repeat(10_000).into_bytes(),
                OK,
            ),
            (
                "chain_one_100k_id",
                "Natsgen-Caller-Chain",
                long.clone().into_bytes(),
                OK,
            ),
            (
                "chain_unicode",
                "Natsgen-Caller-Chain",
                "\u{1F600},\u{0301}é,\u{202E}".as_bytes().to_vec(),
                OK,
            ),
            (
                "call_id_100k",
                "Natsgen-Call-Id",
                long.clone().into_bytes(),
                OK,
            ),
            (
                "call_id_unicode",
                "Natsgen-Call-Id",
                "\u{1F600}".as_bytes().to_vec(),
                OK,
            ),
            ("traceparent_words", "traceparent", b"garbage".to_vec(), OK),
            (
                "traceparent_zero_ids",
                "traceparent",
                format!("00-{}-{}-01", "0".repeat(32), "0".repeat(16)).into_bytes(),
                OK,
            ),
            (
                "traceparent_version_ff",
                "traceparent",
                b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
                OK,
            ),
            (
                "traceparent_v00_with_extra",
                "traceparent",
                b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra".to_vec(),
                OK,
            ),
            (
                "traceparent_multibyte",
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01"
                    .as_bytes()
                    .to_vec(),
                OK,
            ),
            ("traceparent_100k", "traceparent", long.into_bytes(), OK),
        ];
        for (name, header, value, codes) in cases {
            for subject in [CHECK, CHECK_LATER, SAMPLED, "$SRV.PING"] {
                let id = self.id(&format!("{name}@{subject}"));
                let headers = block(&[("Nats-Msg-Id", id.as_bytes()), (header, &value)]);
                let (body, expect) = match subject {
                    CHECK => (
                        wrap(sample(&id).to_string().as_bytes()),
                        Expect::Codes(codes),
                    ),
                    CHECK_LATER => (wrap(sample(&id).to_string().as_bytes()), Expect::Processed),
                    SAMPLED => (sample(&id).to_string().into_bytes(), Expect::Processed),
                    _ => (Vec::new(), Expect::Codes(OK)),
                };
                self.push(id, subject, Some(headers), body, expect);
            }
        }
        // Two deadline headers, and many headers.
        let id = self.id("deadline_twice");
        let headers = block(&[
            ("Nats-Msg-Id", id.as_bytes()),
            ("Natsgen-Deadline-Ms", b"18446744073709551615"),
            ("Natsgen-Deadline-Ms", b"-5"),
        ]);
        let body = wrap(sample(&id).to_string().as_bytes());
        self.push(id, CHECK, Some(headers), body, Expect::Codes(OK_OR_EXPIRED));
        let id = self.id("5000_headers");
        let names: Vec<String> = (0..5000).map(|i| format!("X-Pad-{i}")).collect();
        let mut pairs: Vec<(&str, &[u8])> = vec![("Nats-Msg-Id", id.as_bytes())];
        pairs.extend(names.iter().map(|n| (n.as_str(), b"v".as_slice())));
        let headers = block(&pairs);
        let body = wrap(sample(&id).to_string().as_bytes());
        self.push(id, CHECK, Some(headers), body, Expect::Codes(OK));
    }

    /// A header block just under JetStream's 64 KiB limit on stored messages: a dead letter
    /// that copied it and added its own headers would be refused.
    fn big_stored_headers(&mut self) {
        for subject in [CHECK_LATER, SAMPLED] {
            for valid in [true, false] {
                let name = if valid { "valid" } else { "undecodable" };
                let id = self.id(&format!("header_64k_{name}@{subject}"));
                let bare = block(&[("Nats-Msg-Id", id.as_bytes()), ("X-Pad", b"")]).len();
                let pad = "v".repeat(64 * 1024 - 64 - bare);
                let headers = block(&[("Nats-Msg-Id", id.as_bytes()), ("X-Pad", pad.as_bytes())]);
                let mut sample = sample(&id);
                if !valid {
                    sample["shape"] = json!("triangle");
                }
                let sample = sample.to_string().into_bytes();
                let body = if subject == SAMPLED {
                    sample
                } else {
                    wrap(&sample)
                };
                let expect = if valid {
                    Expect::Processed
                } else {
                    Expect::Lettered
                };
                self.push(id, subject, Some(headers), body, expect);
            }
        }
    }

    /// A caller's deadline can shorten a method's schema timeout, never lengthen it: `nap`
    /// (schema timeout 1 s) asked to sleep 20 s must be answered `deadline_exceeded` long
    /// before the 20 s, whatever the deadline header says.
    fn deadline_caps(&mut self) {
        let cases: [(&str, Option<&[u8]>); 5] = [
            ("nap_no_deadline", None),
            ("nap_deadline_u64_max", Some(b"18446744073709551615")),
            ("nap_deadline_past_u64", Some(b"99999999999999999999999")),
            ("nap_deadline_1h", Some(b"3600000")),
            ("nap_deadline_negative", Some(b"-1")),
        ];
        for (name, deadline) in cases {
            let id = self.id(name);
            let headers = deadline.map(|value| block(&[("Natsgen-Deadline-Ms", value)]));
            self.items.push(Item {
                id,
                subject: NAP.to_owned(),
                headers,
                body: b"{\"ms\":20000}".to_vec(),
                expect: Expect::Codes(EXPIRED),
                // The schema timeout is 1 s; 20 s would be the handler's own sleep.
                answer_within: Some(Duration::from_secs(10)),
            });
        }
    }

    /// Header blocks no well-behaved client sends: not UTF-8, lines without a colon, a bogus
    /// status line, bare line feeds, huge values, thousands of lines.
    fn header_blocks(&mut self) {
        type Make = fn(&str) -> Vec<u8>;
        let cases: [(&str, Make); 15] = [
            ("value_not_utf8", |id| {
                [
                    format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\nX-Bin: ").as_bytes(),
                    b"\xff\xfe\xfd\r\n\r\n",
                ]
                .concat()
            }),
            ("name_not_utf8", |id| {
                [
                    format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n").as_bytes(),
                    b"\xff\xfe: v\r\n\r\n",
                ]
                .concat()
            }),
            ("line_without_colon", |id| {
                format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\nNoColonHere\r\n\r\n").into_bytes()
            }),
            ("empty_name", |id| {
                format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n: value\r\n\r\n").into_bytes()
            }),
            ("space_in_name", |id| {
                format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\nBad Name: v\r\n\r\n").into_bytes()
            }),
            ("status_words", |id| {
                format!("NATS/1.0 abc\r\nNats-Msg-Id: {id}\r\n\r\n").into_bytes()
            }),
            ("status_408_on_a_request", |id| {
                format!("NATS/1.0 408 Request Timeout\r\nNats-Msg-Id: {id}\r\n\r\n").into_bytes()
            }),
            ("version_2", |id| {
                format!("NATS/2.0\r\nNats-Msg-Id: {id}\r\n\r\n").into_bytes()
            }),
            ("bare_line_feeds", |id| {
                format!("NATS/1.0\nNats-Msg-Id: {id}\nX-A: b\n\n").into_bytes()
            }),
            ("unterminated", |id| {
                format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\nX-A: b").into_bytes()
            }),
            ("folded_line", |id| {
                format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\nX-A: b\r\n  folded\r\n\r\n").into_bytes()
            }),
            ("control_characters", |id| {
                [
                    format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\nX-C: ").as_bytes(),
                    b"\x00\x01\x1b[2J\x7f\r\n\r\n",
                ]
                .concat()
            }),
            ("value_200k", |id| {
                format!(
                    "NATS/1.0\r\nNats-Msg-Id: {id}\r\nX-Big: {}\r\n\r\n",
                    "v".repeat(200_000)
                )
                .into_bytes()
            }),
            ("20k_lines", |id| {
                let mut text = format!("NATS/1.0\r\nNats-Msg-Id: {id}\r\n");
                for i in 0..20_000 {
                    text.push_str(&format!("X-{i}: v\r\n"));
                }
                text.push_str("\r\n");
                text.into_bytes()
            }),
            ("no_status_line", |id| {
                format!("Nats-Msg-Id: {id}\r\nX-A: b\r\n\r\n").into_bytes()
            }),
        ];
        for (name, make) in cases {
            for subject in [
                CHECK,
                CHECK_LATER,
                SAMPLED,
                "$SRV.PING",
                "$SRV.INFO.hostile_target",
            ] {
                let id = self.id(&format!("{name}@{subject}"));
                let (body, expect) = match subject {
                    CHECK => (wrap(sample(&id).to_string().as_bytes()), Expect::AnyReply),
                    CHECK_LATER => (wrap(sample(&id).to_string().as_bytes()), Expect::Settled),
                    SAMPLED => (sample(&id).to_string().into_bytes(), Expect::Settled),
                    _ => (Vec::new(), Expect::AnyReply),
                };
                self.push(id.clone(), subject, Some(make(&id)), body, expect);
            }
        }
    }

    /// Garbage requests to every discovery subject.
    fn discovery(&mut self, max_payload: usize) {
        let bodies: [(&str, Vec<u8>); 5] = [
            ("empty", Vec::new()),
            ("not_json", b"{".to_vec()),
            ("not_utf8", b"\xff\xfe".to_vec()),
            ("object", b"{\"name\":\"x\"}".to_vec()),
            (
                "near_max_payload",
                "x".repeat(max_payload.saturating_sub(4096)).into_bytes(),
            ),
        ];
        for subject in [
            "$SRV.PING",
            "$SRV.INFO",
            "$SRV.STATS",
            "$SRV.PING.hostile_target",
            "$SRV.INFO.hostile_target",
            "$SRV.STATS.hostile_target",
        ] {
            for (name, body) in &bodies {
                let id = self.id(&format!("{name}@{subject}"));
                self.push(id, subject, None, body.clone(), Expect::Codes(OK));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Running a corpus
// ---------------------------------------------------------------------------------------------

/// The service error code of a reply (200 for a result or a `$SRV` answer, 503 with kind
/// `no_responders` when nobody listened).
fn classify(reply: &RawMessage) -> (u16, String) {
    if let Some(code) = reply.header("Nats-Service-Error-Code") {
        let kind = serde_json::from_slice::<Value>(&reply.payload)
            .ok()
            .and_then(|v| v["error"]["kind"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "(no kind)".to_owned());
        return (code.parse().unwrap_or(0), kind);
    }
    if reply.status == Some(503) && reply.payload.is_empty() {
        return (503, "no_responders".to_owned());
    }
    match serde_json::from_slice::<Value>(&reply.payload) {
        Ok(value) if value.get("result").is_some() || value.get("type").is_some() => {
            (200, "ok".to_owned())
        }
        _ => (
            0,
            format!(
                "unrecognised reply: status {:?}, {} bytes",
                reply.status,
                reply.payload.len()
            ),
        ),
    }
}

struct Rig {
    server: natsgen::testing::NatsServer,
    process: ServiceProcess,
    raw: RawConnection,
    client: async_nats::Client,
    raw_reconnects: usize,
}

impl Rig {
    async fn start() -> Rig {
        let server = start_server().await;
        let client = within(async_nats::connect(server.url())).await.unwrap();
        create_records_stream(&client).await;
        let process = spawn_worker(&["hostile".to_owned(), server.url()]).await;
        let raw = within(RawConnection::connect(
            &format!("127.0.0.1:{}", server.port()),
            "faults-raw",
        ))
        .await
        .unwrap();
        Rig {
            server,
            process,
            raw,
            client,
            raw_reconnects: 0,
        }
    }

    /// A new raw connection when the server closed ours (it refuses some header blocks).
    async fn raw(&mut self) -> &RawConnection {
        if !self.raw.is_open() {
            self.raw_reconnects += 1;
            self.raw = within(RawConnection::connect(
                &format!("127.0.0.1:{}", self.server.port()),
                "faults-raw",
            ))
            .await
            .unwrap();
        }
        &self.raw
    }

    /// Sends one item and waits for its reply or its PubAck.
    async fn send(&mut self, item: &Item) -> (Sent, Duration) {
        let started = Instant::now();
        let stored = !(item.subject.starts_with("$SRV") || item.subject.contains(".rpc."));
        let raw = self.raw().await;
        let was_open = raw.is_open();
        let result = raw
            .request(
                &item.subject,
                item.headers.as_deref(),
                &item.body,
                REPLY_WAIT,
            )
            .await;
        let elapsed = started.elapsed();
        let sent = match result {
            Ok(reply) if stored => {
                let ack: Value = serde_json::from_slice(&reply.payload).unwrap_or(Value::Null);
                match (ack["stream"].as_str(), ack["seq"].as_u64()) {
                    (Some(stream), Some(seq)) if ack.get("error").is_none() => Sent::Stored {
                        stream: stream.to_owned(),
                        seq,
                    },
                    _ if ack.get("error").is_some() => {
                        Sent::Refused(format!("jetstream error: {}", ack["error"]))
                    }
                    _ => Sent::Refused(format!(
                        "status {:?}: {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.payload)
                    )),
                }
            }
            Ok(reply) => {
                let (code, kind) = classify(&reply);
                Sent::Reply { code, kind }
            }
            Err(e) if was_open && !self.raw.is_open() => {
                Sent::Refused(format!("the server closed the raw connection: {e}"))
            }
            Err(e) => Sent::NoReply(e.to_string()),
        };
        (sent, elapsed)
    }

    /// A normal call: true when answered on the first try; retried until [`RECOVERY_WAIT`]
    /// otherwise (`None`: never answered).
    async fn ping(&mut self) -> Option<bool> {
        let give_up = Instant::now() + RECOVERY_WAIT;
        let mut first = true;
        loop {
            let raw = self.raw().await;
            let reply = raw.request(PING, None, b"{}", Duration::from_secs(5)).await;
            if let Ok(reply) = reply {
                if classify(&reply).0 == 200 {
                    return Some(first);
                }
            }
            first = false;
            if Instant::now() >= give_up {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Sends `items` one by one, each followed by a normal call; waits for every stored item to be
/// processed or dead-lettered and for the consumers to go idle; prints the counts; panics with
/// every violation.
async fn run(title: &str, items: Vec<Item>) {
    let scale = Scale::from_env();
    let mut rig = Rig::start().await;
    let max_payload = rig.raw.max_payload();
    let rss_before = rig.process.rss_kib().unwrap_or(0);
    let mut violations: Vec<String> = Vec::new();
    let mut sent: Vec<(usize, Sent)> = Vec::new();
    let (mut first_try_failures, mut never_recovered) = (0usize, 0usize);
    let mut codes: HashMap<String, usize> = HashMap::new();
    let mut refusals: HashMap<String, usize> = HashMap::new();
    // Which items raised the peak RSS, and by how much.
    let mut peak_so_far = rig.process.peak_rss_kib();
    let mut growth: Vec<(u64, String)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        assert!(
            item.headers.as_ref().map_or(0, Vec::len) + item.body.len() <= max_payload,
            "{} is larger than max_payload",
            item.id
        );
        let (outcome, elapsed) = rig.send(item).await;
        match (&outcome, item.expect) {
            (Sent::Reply { code, kind }, Expect::Codes(allowed)) => {
                *codes.entry(format!("{code} {kind}")).or_default() += 1;
                if !allowed.contains(code) {
                    violations.push(format!(
                        "{} on {}: got {code} {kind}, expected one of {allowed:?}",
                        item.id, item.subject
                    ));
                }
            }
            (Sent::Reply { code, kind }, Expect::AnyReply) => {
                *codes.entry(format!("{code} {kind}")).or_default() += 1;
                if *code == 0 || *code == 503 {
                    violations.push(format!(
                        "{} on {}: got {code} {kind}",
                        item.id, item.subject
                    ));
                }
            }
            (Sent::Stored { .. }, _) | (Sent::Refused(_), Expect::RefusedOrLettered) => {}
            (Sent::Refused(reason), _)
                if reason.starts_with("jetstream error") || reason.contains("closed the raw") =>
            {
                // nats-server itself refused it (a header block over JetStream's 64 KiB, a frame
                // it cannot parse): the publisher was told, nothing reached the service.
                let short: String = reason.chars().take(100).collect();
                *refusals.entry(short).or_default() += 1;
            }
            (Sent::NoReply(reason), expect) => violations.push(format!(
                "{} on {}: no reply ({reason}) within {REPLY_WAIT:?}, expected {expect:?}",
                item.id, item.subject
            )),
            (other, expect) => violations.push(format!(
                "{} on {}: got {other:?}, expected {expect:?}",
                item.id, item.subject
            )),
        }
        if let (Some(limit), Sent::Reply { .. }) = (item.answer_within, &outcome) {
            if elapsed > limit {
                violations.push(format!(
                    "{} on {}: answered after {elapsed:?}, past {limit:?}",
                    item.id, item.subject
                ));
            }
        }
        sent.push((index, outcome));
        let peak_now = rig.process.peak_rss_kib();
        if peak_now > peak_so_far {
            growth.push((peak_now - peak_so_far, item.id.clone()));
            peak_so_far = peak_now;
        }
        match rig.ping().await {
            Some(true) => {}
            Some(false) => {
                first_try_failures += 1;
                violations.push(format!(
                    "after {}: the service missed a normal call (recovered)",
                    item.id
                ));
            }
            None => {
                never_recovered += 1;
                violations.push(format!(
                    "after {}: the service answered no normal call within {RECOVERY_WAIT:?}",
                    item.id
                ));
                break;
            }
        }
    }

    // Stored items: each handler that owes one processed or dead-lettered it, within a bounded
    // wait. A handler is named by the last token of its record's or letter's subject.
    let stored: HashMap<(String, u64), usize> = sent
        .iter()
        .filter_map(|(index, outcome)| match outcome {
            Sent::Stored { stream, seq } => Some(((stream.clone(), *seq), *index)),
            _ => None,
        })
        .collect();
    let owed: Vec<(usize, &str)> = stored
        .values()
        .flat_map(|index| {
            handlers_of(&items[*index].subject)
                .iter()
                .map(move |handler| (*index, *handler))
        })
        .collect();
    let mut fates: HashMap<(usize, String), Fate> = HashMap::new();
    let mut records = Follower::new(RECORDS);
    let mut letters = Follower::new(DLQ);
    let mut letter_reasons: HashMap<String, usize> = HashMap::new();
    let mut unmatched = 0usize;
    let ids: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(index, item)| (item.id.as_str(), index))
        .collect();
    let last_token = |subject: &str| subject.rsplit('.').next().unwrap_or_default().to_owned();
    let settle_by = Instant::now() + scale.pick(Duration::from_secs(60), Duration::from_secs(120));
    loop {
        for record in within(records.poll(&rig.client)).await.unwrap() {
            let body = record.json().unwrap_or(Value::Null);
            let keys = [body["k"].as_str(), body["m"].as_str()];
            match keys.iter().flatten().find_map(|key| ids.get(key).copied()) {
                Some(index) => {
                    fates
                        .entry((index, last_token(&record.subject)))
                        .or_default()
                        .processed += 1;
                }
                None => unmatched += 1,
            }
        }
        for letter in within(letters.poll(&rig.client)).await.unwrap() {
            let reason = letter
                .header(natsgen::streams::DLQ_REASON)
                .unwrap_or("(none)")
                .to_owned();
            *letter_reasons.entry(reason.clone()).or_default() += 1;
            let key = (
                letter
                    .header(natsgen::streams::DLQ_STREAM_HEADER)
                    .unwrap_or_default()
                    .to_owned(),
                letter
                    .header(natsgen::streams::DLQ_SEQUENCE)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            );
            match stored.get(&key) {
                Some(index) => fates
                    .entry((*index, last_token(&letter.subject)))
                    .or_default()
                    .letters
                    .push(reason),
                None => unmatched += 1,
            }
        }
        let settled = owed.iter().all(|(index, handler)| {
            fates
                .get(&(*index, (*handler).to_owned()))
                .is_some_and(|fate| fate.processed > 0 || !fate.letters.is_empty())
        });
        if settled || Instant::now() >= settle_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let idle = store::wait_idle(
        &rig.client,
        &CONSUMERS,
        scale.pick(Duration::from_secs(20), Duration::from_secs(60)),
    )
    .await;
    if !idle
        .iter()
        .all(|(_, state)| state.as_ref().is_ok_and(store::ConsumerState::is_idle))
    {
        violations.push(format!(
            "consumers not idle (endless redelivery?): {}",
            describe_states(&idle)
        ));
    }

    let (mut processed, mut lettered, mut lost, mut duplicates) = (0, 0, 0, 0);
    for (index, handler) in &owed {
        let item = &items[*index];
        let fate = fates
            .get(&(*index, (*handler).to_owned()))
            .cloned()
            .unwrap_or_default();
        processed += usize::from(fate.processed > 0);
        lettered += usize::from(!fate.letters.is_empty());
        duplicates += fate.processed.saturating_sub(1) + fate.letters.len().saturating_sub(1);
        let ok = match item.expect {
            Expect::Processed => fate.processed > 0 && fate.letters.is_empty(),
            Expect::Lettered | Expect::RefusedOrLettered => {
                fate.processed == 0 && !fate.letters.is_empty()
            }
            Expect::Settled => fate.processed > 0 || !fate.letters.is_empty(),
            Expect::Codes(_) | Expect::AnyReply => true,
        };
        if fate.processed == 0 && fate.letters.is_empty() {
            lost += 1;
        }
        if !ok {
            let (stream, seq) = stored
                .iter()
                .find(|(_, i)| *i == index)
                .map(|(key, _)| key.clone())
                .unwrap_or_default();
            violations.push(format!(
                "{} ({stream} seq {seq}), handler {handler}: processed {} times, dead letters \
                 {:?}; expected {:?}",
                item.id, fate.processed, fate.letters, item.expect
            ));
        }
    }

    let reconnects = closed_connections(
        &rig.server.monitor_url().unwrap_or_default(),
        "faults-hostile",
    )
    .await;
    if !reconnects.is_empty() {
        violations.push(format!(
            "the service lost its connection {} times: {reconnects:?}",
            reconnects.len()
        ));
    }
    let panics = rig.process.panics();
    if !panics.is_empty() {
        violations.push(format!("the service panicked: {panics:?}"));
    }
    let peak = rig.process.peak_rss_kib();
    if peak > RSS_BOUND_KIB {
        violations.push(format!(
            "peak RSS {} above the bound {}",
            mib(peak),
            mib(RSS_BOUND_KIB)
        ));
    }

    let mut table = Table::new(format!("{title} ({} form)", scale.name()));
    table
        .row("sent", items.len(), "items, each followed by a normal call")
        .row(
            "answered",
            sent.iter()
                .filter(|(_, s)| matches!(s, Sent::Reply { .. }))
                .count(),
            "RPC and $SRV replies",
        )
        .row(
            "unanswered",
            sent.iter()
                .filter(|(_, s)| matches!(s, Sent::NoReply(_)))
                .count(),
            "must be 0",
        )
        .row(
            "refused",
            sent.iter()
                .filter(|(_, s)| matches!(s, Sent::Refused(_)))
                .count(),
            "not stored by nats-server (no stream, or a frame it rejects)",
        )
        .row(
            "stored",
            stored.len(),
            "async calls and events with a PubAck",
        )
        .row(
            "owed",
            owed.len(),
            "(stored item, handler) pairs: faults.sampled has two handlers",
        )
        .row("processed", processed, "pairs whose handler completed")
        .row(
            "dead-lettered",
            lettered,
            &format!("pairs; {letter_reasons:?}"),
        )
        .row("duplicates", duplicates, "extra completions or letters")
        .row(
            "lost",
            lost,
            "pairs neither processed nor dead-lettered: must be 0",
        )
        .row(
            "records or letters for nothing sent",
            unmatched,
            "must be 0",
        )
        .row("missed normal calls", first_try_failures, "recovered later")
        .row("service down", never_recovered, "must be 0")
        .row(
            "reconnects",
            reconnects.len(),
            "connections the service lost",
        )
        .row(
            "raw reconnects",
            rig.raw_reconnects,
            "the corpus sender's own, after frames nats-server refused",
        )
        .row("panics", panics.len(), "lines of stderr")
        .row("RSS before", mib(rss_before), "")
        .row(
            "peak RSS",
            mib(peak),
            &format!("VmHWM of the service process, bound {}", mib(RSS_BOUND_KIB)),
        )
        .row("violations", violations.len(), "must be 0");
    let mut replies: Vec<_> = codes.into_iter().collect();
    replies.sort();
    for (code, count) in replies {
        table.row(&format!("  reply {code}"), count, "");
    }
    let mut refusals: Vec<_> = refusals.into_iter().collect();
    refusals.sort();
    for (reason, count) in refusals {
        table.row("  refused", count, &reason);
    }
    growth.sort_by(|a, b| b.cmp(a));
    for (kib, id) in growth.iter().take(3) {
        table.row("  peak raised by", format!("+{}", mib(*kib)), id);
    }
    table.print();
    rig.process.terminate(Duration::from_secs(10)).await;
    assert!(
        violations.is_empty(),
        "{} violations:\n{}\n--- service stderr ---\n{}",
        violations.len(),
        violations.join("\n"),
        rig.process.stderr_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_error_replies_or_dead_letters() {
    let max_payload = 1024 * 1024;
    let mut corpus = Corpus::new();
    corpus.bodies(max_payload);
    corpus.wildcard();
    run("hostile bodies", corpus.items).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_control_headers_are_ignored_and_deadlines_capped() {
    let mut corpus = Corpus::new();
    corpus.control_headers();
    corpus.big_stored_headers();
    corpus.deadline_caps();
    run("hostile control headers", corpus.items).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_header_blocks_cost_no_connection_and_no_stored_work() {
    let mut corpus = Corpus::new();
    corpus.header_blocks();
    run("malformed header blocks", corpus.items).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_discovery_requests_are_answered() {
    let mut corpus = Corpus::new();
    corpus.discovery(1024 * 1024);
    run("hostile discovery requests", corpus.items).await;
}
