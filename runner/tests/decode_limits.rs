//! What a peer's claimed lengths and counts cannot do to a master or worker: make it allocate
//! before the bytes are there. And property tests: whatever bytes arrive, decoding a Locust
//! message, a report or its HDR histograms ends in a value or an error, never a panic.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use load_density::core::{RequestEvent, RequestStats};
use load_density::distributed::locust_stats::{read_report, LD_STATS_KEY};
use load_density::distributed::wire::{Message, WireError};
use proptest::prelude::*;
use rmpv::Value;

/// The resident set size of this process, in bytes (Linux `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Runs `decode` and asserts the process grew by less than 64 MiB meanwhile.
fn flat<T>(what: &str, decode: impl FnOnce() -> T) -> T {
    bounded(what, 64 << 20, decode)
}

/// Runs `decode` and asserts the process grew by less than `margin` bytes meanwhile.
fn bounded<T>(what: &str, margin: u64, decode: impl FnOnce() -> T) -> T {
    let before = rss();
    let result = decode();
    let grown = rss().saturating_sub(before);
    assert!(grown < margin, "{what}: RSS grew by {} MiB", grown >> 20);
    result
}

fn event(name: &str, ms: u64) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from(name),
        status: Some(200),
        response_time: Duration::from_millis(ms),
        response_length: 10,
        error: None,
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

/// A `stats` message from a LoadDensity worker carrying `stats` as its exact statistics, with
/// every serialized histogram replaced by `histogram` (raw HDR bytes).
fn report_with_histograms(stats: &RequestStats, histogram: &[u8]) -> Message {
    let bytes = rmp_serde::to_vec_named(stats).expect("encode stats");
    let mut value = rmpv::decode::read_value(&mut bytes.as_slice()).expect("msgpack");
    let encoded = base64::engine::general_purpose::STANDARD.encode(histogram);
    replace_histograms(&mut value, &encoded);
    let mut patched = Vec::new();
    rmpv::encode::write_value(&mut patched, &value).expect("encode");
    Message::new(
        "stats",
        Value::Map(vec![(Value::from(LD_STATS_KEY), Value::Binary(patched))]),
        "worker_1",
    )
}

fn replace_histograms(value: &mut Value, encoded: &str) {
    match value {
        Value::Map(entries) => {
            for (key, item) in entries.iter_mut() {
                if key.as_str() == Some("histogram") {
                    *item = Value::from(encoded);
                } else {
                    replace_histograms(item, encoded);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| replace_histograms(i, encoded)),
        _ => {}
    }
}

/// A V2 HDR header (uncompressed cookie) with these claims, and no payload.
fn hdr_header(payload_len: u32, digits: u32, low: u64, high: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&0x1c84_9313u32.to_be_bytes());
    bytes.extend_from_slice(&payload_len.to_be_bytes());
    bytes.extend_from_slice(&0u32.to_be_bytes());
    bytes.extend_from_slice(&digits.to_be_bytes());
    bytes.extend_from_slice(&low.to_be_bytes());
    bytes.extend_from_slice(&high.to_be_bytes());
    bytes.extend_from_slice(&1.0f64.to_be_bytes());
    bytes
}

fn one_entry_stats() -> RequestStats {
    let mut stats = RequestStats::new();
    stats.add(&event("/a", 5));
    stats
}

#[test]
fn a_message_above_max_message_size_is_dropped_before_decoding() {
    let message = Message::new("heartbeat", Value::from("x".repeat(2000)), "w").encode();
    assert_eq!(
        Message::decode_limited(&message, 1024),
        Err(WireError::TooLarge {
            size: message.len(),
            max: 1024
        })
    );
    assert!(Message::decode_limited(&message, 4096).is_ok());
    assert!(WireError::TooLarge { size: 2, max: 1 }
        .to_string()
        .contains("larger than max_message_size (1 bytes)"));
}

#[test]
fn claimed_msgpack_lengths_leave_memory_flat() {
    // An array, a map, a string and binary data each claiming 4 GiB, in a few bytes.
    for claim in [
        vec![0xdd, 0xff, 0xff, 0xff, 0xff],
        vec![0xdf, 0xff, 0xff, 0xff, 0xff],
        vec![0x93, 0xdb, 0xff, 0xff, 0xff, 0xff, b'a'],
        vec![0x93, 0xa1, b's', 0xc6, 0xff, 0xff, 0xff, 0xff, 0],
    ] {
        let result = flat("msgpack claim", || Message::decode(&claim));
        assert!(result.is_err(), "{claim:?}: {result:?}");
    }
}

#[test]
fn an_hdr_header_claiming_4_gib_of_payload_is_refused_with_memory_flat() {
    let message = report_with_histograms(&one_entry_stats(), &hdr_header(u32::MAX, 3, 1, 2));
    let error = flat("payload_len 0xFFFFFFFF", || read_report(&message)).expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("the header claims 4294967295 payload bytes, the histogram carries 0"),
        "{error}"
    );
}

#[test]
fn hdr_bounds_beyond_what_statistics_use_are_refused() {
    let message = report_with_histograms(&one_entry_stats(), &hdr_header(0, 5, 1, 1 << 62));
    let error = flat("5 digits", || read_report(&message)).expect_err("refused");
    assert!(
        error.to_string().contains("5 significant digits"),
        "{error}"
    );
    let message = report_with_histograms(&one_entry_stats(), &hdr_header(0, 3, 1, u64::MAX / 4));
    let error = flat("high", || read_report(&message)).expect_err("refused");
    assert!(
        error.to_string().contains("highest trackable value"),
        "{error}"
    );
}

#[test]
fn many_wide_histograms_in_one_report_exceed_the_decode_budget() {
    // Each claims the widest accepted range (about 360 KiB of counters) in 40 bytes.
    let mut stats = RequestStats::new();
    for i in 0..2000 {
        stats.add(&event(&format!("/n{i}"), 5));
    }
    let message = report_with_histograms(&stats, &hdr_header(0, 3, 1, 1 << 53));
    // Unbounded, they would take 2000 x 360 KiB = 700 MiB; the budget stops them at
    // 32 MiB plus 128 bytes per byte of the report (about 40 MiB here).
    let error =
        bounded("2000 wide histograms", 128 << 20, || read_report(&message)).expect_err("refused");
    assert!(error.to_string().contains("decode budget"), "{error}");
    // An honest report of the same statistics is read.
    let honest = Message::new(
        "stats",
        Value::Map(vec![(
            Value::from(LD_STATS_KEY),
            Value::Binary(rmp_serde::to_vec_named(&stats).expect("encode")),
        )]),
        "worker_1",
    );
    let report = read_report(&honest).expect("an honest report");
    assert_eq!(report.requests, 2000);
}

#[test]
fn a_locust_report_claiming_huge_counts_is_refused_with_memory_flat() {
    let entry = |name: &str, requests: u64| {
        Value::Map(vec![
            (Value::from("name"), Value::from(name)),
            (Value::from("method"), Value::from("GET")),
            (Value::from("num_requests"), Value::from(requests)),
        ])
    };
    for entries in [
        vec![entry("/a", u64::MAX)],
        // Two claims whose sum wraps around.
        vec![entry("/a", u64::MAX / 2 + 1), entry("/b", u64::MAX / 2 + 1)],
        vec![entry("/a", 5_000_000)],
    ] {
        let message = Message::new(
            "stats",
            Value::Map(vec![(Value::from("stats"), Value::Array(entries))]),
            "locust_worker",
        );
        let error = flat("claimed requests", || read_report(&message)).expect_err("refused");
        assert!(
            error.to_string().contains("at most 1000000 are accepted"),
            "{error}"
        );
    }
}

/// The exact statistics of one entry as msgpack, cut where its two histograms go.
fn stats_around_histograms() -> &'static [Vec<u8>] {
    static PARTS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    PARTS.get_or_init(|| {
        const MARKER: &str = "HISTOGRAM_MARKER";
        let bytes = rmp_serde::to_vec_named(&one_entry_stats()).expect("encode stats");
        let mut value = rmpv::decode::read_value(&mut bytes.as_slice()).expect("msgpack");
        replace_histograms(&mut value, MARKER);
        let mut marked = Vec::new();
        rmpv::encode::write_value(&mut marked, &value).expect("encode");
        let mut marker = Vec::new();
        rmpv::encode::write_value(&mut marker, &Value::from(MARKER)).expect("encode");
        let mut parts = Vec::new();
        let mut rest = marked.as_slice();
        while let Some(at) = rest
            .windows(marker.len())
            .position(|w| w == marker.as_slice())
        {
            parts.push(rest[..at].to_vec());
            rest = &rest[at + marker.len()..];
        }
        parts.push(rest.to_vec());
        assert_eq!(
            parts.len(),
            3,
            "an entry and the total, each with a histogram"
        );
        parts
    })
}

/// Decodes exact statistics whose two histograms are `histogram` (raw HDR bytes), as a master
/// reads a worker's report.
fn decode_stats_with_histograms(histogram: &[u8]) -> Result<RequestStats, String> {
    let mut encoded = Vec::new();
    let text = base64::engine::general_purpose::STANDARD.encode(histogram);
    rmpv::encode::write_value(&mut encoded, &Value::from(text)).expect("encode");
    let bytes = stats_around_histograms().join(encoded.as_slice());
    load_density::core::stats::histogram_limits::with_budget(64 << 20, || {
        rmp_serde::from_slice::<RequestStats>(&bytes)
    })
    .map_err(|e| e.to_string())
}

/// Pieces Locust messages are made of, so that random sequences reach the report reader.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0x93]),
        Just(vec![0xa5, b's', b't', b'a', b't', b's']),
        Just(vec![0xa8, b'w', b'o', b'r', b'k', b'e', b'r', b'_', b'1']),
        Just(vec![0x81, 0xa5, b's', b't', b'a', b't', b's', 0x91]),
        Just(vec![0x83, 0xa4, b'n', b'a', b'm', b'e', 0xa1, b'/']),
        Just(vec![
            0xa6, b'm', b'e', b't', b'h', b'o', b'd', 0xa3, b'G', b'E', b'T'
        ]),
        Just(b"\xacnum_requests".to_vec()),
        Just(b"\xaeresponse_times\x81".to_vec()),
        Just(b"\xa8ld_stats".to_vec()),
        Just(vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Just(vec![0xc4, 0x28]),
        Just(hdr_header(0, 3, 1, 2)),
        proptest::collection::vec(any::<u8>(), 0..16),
    ]
}

fn message_like() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(piece(), 0..10).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_message_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(message) = Message::decode(&bytes) {
            let _ = read_report(&message);
        }
    }

    #[test]
    fn message_like_bytes_never_panic_the_decoders(bytes in message_like()) {
        if let Ok(message) = Message::decode(&bytes) {
            let _ = read_report(&message);
        }
    }

    #[test]
    fn arbitrary_histogram_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..64), payload_len in 0u32..80, digits in 0u32..6, low in 0u64..4, high_bits in 0u32..64) {
        let mut histogram = hdr_header(payload_len, digits, low, 1u64 << high_bits);
        histogram.extend_from_slice(&tail);
        let _ = decode_stats_with_histograms(&histogram);
    }
}

#[test]
fn the_fuzzed_decoder_reads_real_histograms() {
    use hdrhistogram::serialization::Serializer as _;
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).expect("a histogram");
    histogram.auto(true);
    histogram.record(1500).expect("record");
    histogram.record(70_000_000).expect("record");
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2Serializer::new()
        .serialize(&histogram, &mut bytes)
        .expect("serialize");
    let stats = decode_stats_with_histograms(&bytes).expect("a real histogram");
    assert_eq!(stats.entries()[0].histogram().len(), 2);
    assert!(decode_stats_with_histograms(&hdr_header(u32::MAX, 3, 1, 2)).is_err());
}
