//! The wire format (envelope, Locust's stats report, bucketing) and the dispatcher, without
//! sockets.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use load_density::core::{RequestEvent, RequestListener, RequestStats};
use load_density::distributed::dispatch::{self, Dispatcher};
use load_density::distributed::locust_stats::{
    bucket_response_time, read_report, RecordShipping, ReportBuilder, LD_RECORDS_KEY, LD_STATS_KEY,
};
use load_density::distributed::wire::{self, Message, WireError};
use rmpv::Value;

#[test]
fn buckets_round_half_to_even_like_python() {
    // The table of the protocol notes (observed output of Locust's bucket_response_time).
    let cases = [
        (0.5, 0),
        (1.5, 2),
        (2.5, 2),
        (99.5, 100),
        (145.0, 140),
        (147.3, 150),
        (155.0, 160),
        (105.0, 100),
        (115.0, 120),
        (1050.0, 1000),
        (1150.0, 1200),
        (1250.0, 1200),
        (1350.0, 1400),
        (10500.0, 10000),
        (11500.0, 12000),
        (58760.0, 59000),
    ];
    for (ms, key) in cases {
        assert_eq!(bucket_response_time(ms), key, "{ms} ms");
    }
}

#[test]
fn the_envelope_is_a_three_element_array_of_str_any_str() {
    let message = Message::new(
        "heartbeat",
        wire::map([
            ("state", "ready".into()),
            ("current_cpu_usage", Value::from(1.5)),
        ]),
        "host_0123",
    );
    let bytes = message.encode();
    // fixarray of 3, then a fixstr "heartbeat" (never bin).
    assert_eq!(bytes[0], 0x93);
    assert_eq!(bytes[1], 0xa0 | 9);
    assert_eq!(&bytes[2..11], b"heartbeat");
    assert_eq!(Message::decode(&bytes).expect("decode"), message);

    let mut trailing = bytes.clone();
    trailing.push(0xc0);
    assert_eq!(Message::decode(&trailing), Err(WireError::Trailing(1)));
    let mut two = Vec::new();
    rmpv::encode::write_value(&mut two, &Value::Array(vec!["a".into(), Value::Nil]))
        .expect("encode");
    assert!(matches!(Message::decode(&two), Err(WireError::Envelope(_))));
    let mut bin_type = Vec::new();
    rmpv::encode::write_value(
        &mut bin_type,
        &Value::Array(vec![Value::Binary(b"ack".to_vec()), Value::Nil, "x".into()]),
    )
    .expect("encode");
    assert!(matches!(
        Message::decode(&bin_type),
        Err(WireError::Envelope(_))
    ));
    assert!(Message::decode(&[0xc1]).is_err(), "a reserved byte");
    assert!(matches!(
        Message::decode(&[0x93, 0xa9]),
        Err(WireError::Msgpack(_))
    ));
}

fn event(name: &str, ms: f64, error: Option<&str>, at: SystemTime) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from(format!("http://h{name}")),
        status: Some(if error.is_some() { 500 } else { 200 }),
        response_time: Duration::from_secs_f64(ms / 1000.0),
        response_length: 10,
        error: error.map(Arc::from),
        start_time: at,
        start_delay: None,
    }
}

fn int_keyed(map: &Value) -> Vec<(i64, u64)> {
    let Value::Map(items) = map else {
        panic!("not a map: {map}")
    };
    items
        .iter()
        .map(|(k, v)| {
            assert!(matches!(k, Value::Integer(_)), "keys are msgpack ints: {k}");
            (k.as_i64().expect("int key"), v.as_u64().expect("count"))
        })
        .collect()
}

#[test]
fn a_report_is_a_locust_delta_with_a_consistent_total_and_exact_extras() {
    let builder = ReportBuilder::new();
    builder.ship_records(Some(RecordShipping::Errors));
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let events = vec![
        event("/a", 2.5, None, at),
        event("/a", 145.0, None, at),
        event("/a", 155.0, Some("HTTP 500"), at + Duration::from_secs(1)),
        event("/b", 1.0, None, at),
    ];
    builder.on_requests(&events);
    let counts = vec![("fast_http_user".to_owned(), 3)];
    let (data, requests) = builder.take_report(&counts, true);
    assert_eq!(requests, 4);
    let get = |key: &str| wire::get(&data, key).unwrap_or_else(|| panic!("{key} missing"));
    let Value::Array(entries) = get("stats") else {
        panic!("stats is a list")
    };
    assert_eq!(entries.len(), 2);
    let a = &entries[0];
    assert_eq!(wire::get(a, "name").and_then(Value::as_str), Some("/a"));
    assert_eq!(wire::get(a, "method").and_then(Value::as_str), Some("GET"));
    assert_eq!(
        wire::get(a, "num_requests").and_then(Value::as_u64),
        Some(3)
    );
    assert_eq!(
        wire::get(a, "num_failures").and_then(Value::as_u64),
        Some(1)
    );
    assert_eq!(
        int_keyed(wire::get(a, "response_times").expect("response_times")),
        vec![(2, 1), (140, 1), (160, 1)]
    );
    assert_eq!(
        int_keyed(wire::get(a, "num_reqs_per_sec").expect("per second")),
        vec![(1_800_000_000, 2), (1_800_000_001, 1)]
    );
    let total = get("stats_total");
    assert_eq!(
        wire::get(total, "name").and_then(Value::as_str),
        Some("Aggregated")
    );
    assert_eq!(wire::get(total, "method").and_then(Value::as_str), Some(""));
    assert_eq!(
        wire::get(total, "num_requests").and_then(Value::as_u64),
        Some(4)
    );
    assert_eq!(
        int_keyed(wire::get(total, "response_times").expect("total histogram"))
            .iter()
            .map(|(_, c)| c)
            .sum::<u64>(),
        4
    );
    let Value::Map(errors) = get("errors") else {
        panic!("errors is a map")
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(
        wire::get(&errors[0].1, "occurrences").and_then(Value::as_u64),
        Some(1)
    );
    assert_eq!(
        wire::counts(get("user_classes_count")).expect("counts"),
        counts
    );
    assert_eq!(get("user_count").as_u64(), Some(3));
    assert!(matches!(get(LD_STATS_KEY), Value::Binary(_)));
    assert!(matches!(get(LD_RECORDS_KEY), Value::Binary(_)));

    // What a LoadDensity master reads back: exact stats, failure records only.
    let message = Message::new("stats", data, "w_1");
    let read = read_report(&Message::decode(&message.encode()).expect("decode")).expect("read");
    let exact = read.exact.expect("exact statistics");
    let mut whole = RequestStats::new();
    whole.add_all(&events);
    assert_eq!(exact.total().num_requests(), 4);
    assert_eq!(
        exact.total().percentile_ms(50.0),
        whole.total().percentile_ms(50.0)
    );
    assert_eq!(read.records.len(), 1, "distributed_records = errors");
    assert_eq!(read.records[0].error.as_deref(), Some("HTTP 500"));
    assert_eq!(read.records[0].response_time, events[2].response_time);

    // The next report is a delta: empty.
    let (next, requests) = builder.take_report(&counts, false);
    assert_eq!(requests, 0);
    assert!(matches!(wire::get(&next, "stats"), Some(Value::Array(e)) if e.is_empty()));
    assert!(wire::get(&next, LD_STATS_KEY).is_none());
}

#[test]
fn a_locust_report_without_extras_is_rebuilt_request_for_request() {
    // Shaped as a Python worker sends it.
    let entry = wire::map([
        ("name", "/x".into()),
        ("method", "POST".into()),
        ("last_request_timestamp", Value::from(1_800_000_001.5)),
        ("start_time", Value::from(1_800_000_000.0)),
        ("num_requests", Value::from(5)),
        ("num_none_requests", Value::from(0)),
        ("num_failures", Value::from(2)),
        ("total_response_time", Value::from(70.25)),
        ("max_response_time", Value::from(30.0)),
        ("min_response_time", Value::from(2.0)),
        ("total_content_length", Value::from(103)),
        (
            "response_times",
            Value::Map(vec![
                (Value::from(2), Value::from(1)),
                (Value::from(30), Value::from(4)),
            ]),
        ),
        (
            "num_reqs_per_sec",
            Value::Map(vec![
                (Value::from(1_800_000_000), Value::from(3)),
                (Value::from(1_800_000_001), Value::from(2)),
            ]),
        ),
        ("num_fail_per_sec", Value::Map(vec![])),
    ]);
    let error = wire::map([
        ("name", "/x".into()),
        ("method", "POST".into()),
        ("error", "HTTPError('500 Server Error')".into()),
        ("occurrences", Value::from(2)),
        ("first_seen", Value::from(1_800_000_000.0)),
        ("last_seen", Value::from(1_800_000_001.0)),
    ]);
    let data = Value::Map(vec![
        ("stats".into(), Value::Array(vec![entry])),
        ("stats_total".into(), Value::Map(vec![])),
        ("errors".into(), Value::Map(vec![("k".into(), error)])),
        (
            "user_classes_count".into(),
            Value::Map(vec![("web".into(), Value::from(2))]),
        ),
        ("user_count".into(), Value::from(2)),
    ]);
    let read = read_report(&Message::new("stats", data, "py_1")).expect("read");
    assert!(read.exact.is_none());
    assert_eq!(read.requests, 5);
    let mut stats = RequestStats::new();
    stats.add_all(&read.rebuilt);
    let entry = stats.entry("POST", "/x").expect("entry");
    assert_eq!(entry.num_requests(), 5);
    assert_eq!(entry.num_failures(), 2);
    assert_eq!(entry.total_content_length(), 103);
    assert_eq!(entry.max_response_time_us(), 30_000);
    assert_eq!(entry.min_response_time_us(), 2_000);
    let errors = stats.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(&*errors[0].message, "HTTPError('500 Server Error')");
    assert_eq!(errors[0].occurrences, 2);
    assert_eq!(read.user_classes_count, vec![("web".to_owned(), 2)]);
}

#[test]
fn the_dispatcher_splits_evenly_and_moves_few_users() {
    assert_eq!(dispatch::step_size(0.5), 1);
    assert_eq!(dispatch::step_size(7.9), 7);
    let ramp = |from, to, step| dispatch::ramp_totals(from, to, step).collect::<Vec<_>>();
    assert_eq!(ramp(0, 7, 3), vec![3, 6, 7]);
    assert_eq!(ramp(7, 2, 3), vec![4, 2]);
    assert!(ramp(5, 5, 3).is_empty());
    // A ramp to the largest count is lazy: taking its first steps allocates nothing more.
    let mut huge = dispatch::ramp_totals(0, u64::MAX, 1_000);
    assert_eq!((huge.next(), huge.next()), (Some(1_000), Some(2_000)));
    assert_eq!(
        dispatch::ramp_totals(u64::MAX - 1, u64::MAX, 10).last(),
        Some(u64::MAX)
    );
    // Hosts first: a's second worker comes after b's first.
    assert_eq!(
        dispatch::ordered_workers(["a_2", "a_1", "b_1"]),
        vec!["a_1", "b_1", "a_2"]
    );

    let mut d = Dispatcher::new(vec!["browse".into(), "api".into()]);
    let workers = ["h_1", "h_2", "h_3"];
    // A ramp-up only adds users.
    let mut before: Vec<Vec<(String, u64)>> = Vec::new();
    for total in [3u64, 6, 9, 10] {
        d.assign(workers, &[total - total / 4, total / 4]);
        let now: Vec<Vec<(String, u64)>> = workers.iter().map(|w| d.counts_of(w)).collect();
        for (old, new) in before.iter().zip(&now) {
            for ((_, o), (_, n)) in old.iter().zip(new) {
                assert!(n >= o, "a ramp step moved users: {before:?} -> {now:?}");
            }
        }
        let totals: Vec<u64> = now.iter().map(|c| c.iter().map(|(_, n)| n).sum()).collect();
        let (min, max) = (totals.iter().min(), totals.iter().max());
        assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1), "{totals:?}");
        before = now;
    }
    assert_eq!(d.class_totals(), vec![8, 2]);
    // Every class is present in every worker's target, zeros included.
    assert!(workers.iter().all(|w| d.counts_of(w).len() == 2));
    // A worker leaves: its users go to the two others, the others keep theirs.
    let kept: Vec<u64> = ["h_1", "h_2"]
        .iter()
        .map(|w| d.counts_of(w).iter().map(|(_, n)| n).sum())
        .collect();
    d.remove_worker("h_3");
    d.assign(["h_1", "h_2"], &[8, 2]);
    let after: Vec<u64> = ["h_1", "h_2"]
        .iter()
        .map(|w| d.counts_of(w).iter().map(|(_, n)| n).sum())
        .collect();
    assert_eq!(after.iter().sum::<u64>(), 10);
    assert!(
        after.iter().zip(&kept).all(|(a, k)| a >= k),
        "{kept:?} -> {after:?}"
    );
    assert_eq!(after, vec![5, 5]);
    // One joins: it gets a fair share at once.
    d.assign(["h_1", "h_2", "h_4"], &[8, 2]);
    let mut shares: Vec<u64> = ["h_1", "h_2", "h_4"]
        .iter()
        .map(|w| d.counts_of(w).iter().map(|(_, n)| n).sum())
        .collect();
    shares.sort_unstable();
    assert_eq!(shares, vec![3, 3, 4]);
    assert_eq!(d.class_totals(), vec![8, 2]);
}
