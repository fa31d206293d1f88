//! Statistics aggregated per worker thread (the bus's shards) and merged at each flush equal
//! the statistics of one aggregation over the same requests in the order the collector used
//! to see them (each flush: shard 0's requests in order, then shard 1's, ...): counts,
//! histograms and percentiles, corrected latencies, per-second series, errors, the caps on
//! names and error groups, iterations and start lags. The series the shards keep for
//! exporters hold every request the event stream holds, in the same order per name.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use load_density_core::cardinality::Limits;
use load_density_core::series::{Point, Series};
use load_density_core::stats::SharedStats;
use load_density_core::{EventBus, RequestEvent, RequestListener, RequestStats, StatsEntry};
use proptest::prelude::*;

const SHARDS: usize = 3;
const TYPES: [&str; 2] = ["GET", "POST"];
const MESSAGES: [&str; 4] = ["HTTP 500", "connection refused", "timeout", "HTTP 404"];

#[derive(Debug, Clone)]
struct Request {
    shard: usize,
    request_type: usize,
    name: usize,
    /// Whether the strings are fresh allocations (a meta built per request) rather than the
    /// task's shared ones.
    fresh: bool,
    latency_us: u64,
    error: Option<usize>,
    start_delay_us: Option<u64>,
    second: u64,
    length: u64,
    iterations: u64,
    start_lag_us: Option<u64>,
    flush_after: bool,
}

fn request(names: usize) -> impl Strategy<Value = Request> {
    (
        (0..SHARDS, 0..TYPES.len(), 0..names, any::<bool>()),
        prop_oneof![0..2_000u64, 0..5_000_000u64],
        prop::option::weighted(0.3, 0..MESSAGES.len()),
        prop::option::weighted(0.3, prop_oneof![0..10u64, 0..3_000_000u64]),
        (0..45u64, 0..100_000u64, 0..3u64),
        prop::option::weighted(0.1, 0..50_000u64),
        prop::bool::weighted(0.08),
    )
        .prop_map(
            |(
                (shard, request_type, name, fresh),
                latency_us,
                error,
                start_delay_us,
                (second, length, iterations),
                start_lag_us,
                flush_after,
            )| Request {
                shard,
                request_type,
                name,
                fresh,
                latency_us,
                error,
                start_delay_us,
                second,
                length,
                iterations,
                start_lag_us,
                flush_after,
            },
        )
}

/// The task's strings, shared by every request that is not `fresh`.
struct Strings {
    types: Vec<Arc<str>>,
    names: Vec<Arc<str>>,
    url: Arc<str>,
}

impl Strings {
    fn new(names: usize) -> Self {
        Self {
            types: TYPES.iter().map(|t| Arc::from(*t)).collect(),
            names: (0..names).map(|i| Arc::from(format!("/n{i}"))).collect(),
            url: Arc::from("http://127.0.0.1/"),
        }
    }

    fn event(&self, r: &Request) -> RequestEvent {
        let (request_type, name) = if r.fresh {
            (
                Arc::from(&*self.types[r.request_type]),
                Arc::from(&*self.names[r.name]),
            )
        } else {
            (
                self.types[r.request_type].clone(),
                self.names[r.name].clone(),
            )
        };
        RequestEvent {
            request_type,
            name,
            url: self.url.clone(),
            status: Some(200),
            response_time: Duration::from_micros(r.latency_us),
            response_length: r.length,
            error: r.error.map(|m| Arc::from(MESSAGES[m])),
            start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + r.second),
            start_delay: r.start_delay_us.map(Duration::from_micros),
        }
    }
}

/// Runs `requests` through a bus of `SHARDS` shards, flushing where asked and at the end.
fn sharded(strings: &Strings, requests: &[Request], limits: (usize, usize)) -> RequestStats {
    let bus = EventBus::new(SHARDS);
    let shared = SharedStats::new();
    shared.with(|s| *s = RequestStats::with_limits(Limits::new(limits.0, limits.1)));
    bus.attach_stats(shared.clone());
    for r in requests {
        bus.emit_on(r.shard, strings.event(r));
        bus.count_iterations_on(r.shard, r.iterations);
        if let Some(lag) = r.start_lag_us {
            bus.record_start_lag(lag);
        }
        if r.flush_after {
            bus.flush();
        }
    }
    bus.flush();
    shared.snapshot()
}

/// One aggregation, in the order the collector saw the requests: per flush, shard by shard.
fn single(strings: &Strings, requests: &[Request], limits: (usize, usize)) -> RequestStats {
    let mut stats = RequestStats::with_limits(Limits::new(limits.0, limits.1));
    let mut segment: Vec<&Request> = Vec::new();
    let drain = |segment: &mut Vec<&Request>, stats: &mut RequestStats| {
        segment.sort_by_key(|r| r.shard);
        for r in segment.drain(..) {
            stats.add(&strings.event(r));
            stats.add_iterations(r.iterations, 0);
            if let Some(lag) = r.start_lag_us {
                stats.add_start_lags(&[lag]);
            }
        }
    };
    for r in requests {
        segment.push(r);
        if r.flush_after {
            drain(&mut segment, &mut stats);
        }
    }
    drain(&mut segment, &mut stats);
    stats
}

const PERCENTILES: [f64; 8] = [0.0, 1.0, 50.0, 90.0, 95.0, 99.0, 99.9, 100.0];

fn describe(entry: &StatsEntry) -> String {
    let percentiles: Vec<f64> = PERCENTILES
        .iter()
        .map(|&p| entry.percentile_ms(p))
        .collect();
    let corrected: Vec<Option<f64>> = PERCENTILES
        .iter()
        .map(|&p| entry.corrected_percentile_ms(p))
        .collect();
    format!(
        "{} {} n={} f={} sum={} min={} max={} bytes={} maxc={} rps={} p={percentiles:?} c={corrected:?} s={:?}",
        entry.request_type(),
        entry.name(),
        entry.num_requests(),
        entry.num_failures(),
        entry.total_response_time_us(),
        entry.min_response_time_us(),
        entry.max_response_time_us(),
        entry.total_content_length(),
        entry.max_corrected_us(),
        entry.total_rps(),
        entry.per_second().collect::<Vec<_>>(),
    )
}

fn assert_same(got: &RequestStats, want: &RequestStats) {
    let got_entries: Vec<String> = got.entries().into_iter().map(describe).collect();
    let want_entries: Vec<String> = want.entries().into_iter().map(describe).collect();
    assert_eq!(got_entries, want_entries);
    for (g, w) in got.entries().into_iter().zip(want.entries()) {
        assert!(g.histogram() == w.histogram(), "histogram of {}", w.name());
        assert_eq!(
            g.corrected_histogram().map(|h| h.len()),
            w.corrected_histogram().map(|h| h.len())
        );
        if let (Some(gc), Some(wc)) = (g.corrected_histogram(), w.corrected_histogram()) {
            assert!(gc == wc, "corrected histogram of {}", w.name());
        }
    }
    assert_eq!(describe(got.total()), describe(want.total()));
    assert!(got.total().histogram() == want.total().histogram());
    let sorted = |s: &RequestStats| {
        let mut errors: Vec<_> = s
            .errors()
            .into_iter()
            .map(|e| (e.request_type, e.name, e.message, e.occurrences))
            .collect();
        errors.sort();
        errors
    };
    assert_eq!(sorted(got), sorted(want));
    assert_eq!(got.iterations(), want.iterations());
    assert_eq!(got.dropped_iterations(), want.dropped_iterations());
    assert_eq!(got.has_schedule(), want.has_schedule());
    for p in PERCENTILES {
        assert_eq!(
            got.start_lag_percentile_ms(p),
            want.start_lag_percentile_ms(p)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn per_thread_statistics_merged_equal_one_aggregation(
        requests in prop::collection::vec(request(6), 0..400),
        max_names in 1usize..10,
        max_errors in 1usize..8,
    ) {
        let strings = Strings::new(6);
        let got = sharded(&strings, &requests, (max_names, max_errors));
        let want = single(&strings, &requests, (max_names, max_errors));
        assert_same(&got, &want);
    }
}

#[test]
fn names_past_what_a_shard_keeps_are_still_exact() {
    // 700 names on one shard (more than a shard keeps entries for), capped at 500 overall.
    let strings = Strings::new(700);
    let requests: Vec<Request> = (0..3000u64)
        .map(|i| Request {
            shard: (i % 7 == 0) as usize,
            request_type: 0,
            name: ((i * 7919) % 700) as usize,
            fresh: i % 3 == 0,
            latency_us: (i * 37) % 90_000,
            error: (i % 5 == 0).then_some((i % 4) as usize),
            start_delay_us: (i % 2 == 0).then_some(i),
            second: i / 100,
            length: i,
            iterations: i % 2,
            start_lag_us: None,
            flush_after: i % 1000 == 999,
        })
        .collect();
    let got = sharded(&strings, &requests, (500, 3));
    let want = single(&strings, &requests, (500, 3));
    assert_same(&got, &want);
    assert_eq!(got.total().num_requests(), 3000);
}

#[test]
fn a_flush_reports_the_requests_it_drained() {
    let strings = Strings::new(1);
    let bus = EventBus::new(2);
    let shared = SharedStats::new();
    bus.attach_stats(shared.clone());
    let r = Request {
        shard: 0,
        request_type: 0,
        name: 0,
        fresh: false,
        latency_us: 1500,
        error: None,
        start_delay_us: None,
        second: 0,
        length: 3,
        iterations: 0,
        start_lag_us: None,
        flush_after: false,
    };
    bus.emit_on(0, strings.event(&r));
    bus.emit_on(1, strings.event(&r));
    assert_eq!(bus.pending(), 2);
    assert_eq!(shared.snapshot().total().num_requests(), 0);
    assert_eq!(bus.flush(), 2);
    assert_eq!(bus.flush(), 0);
    assert_eq!(shared.snapshot().total().num_requests(), 2);
    assert_eq!(
        shared
            .snapshot()
            .entry("GET", "/n0")
            .map(|e| e.percentile_ms(50.0)),
        Some(1.5)
    );
}

#[test]
fn an_attached_record_store_keeps_what_a_listening_one_keeps() {
    use load_density_core::TestRecord;
    // 5,000 distinct URLs in one flush: more than a shard's table of strings holds, so some
    // records take the way of whole records.
    let strings = Strings::new(3);
    let attached = Arc::new(TestRecord::with_capacity(100_000));
    let listening = Arc::new(TestRecord::with_capacity(100_000));
    let bus = EventBus::new(2);
    bus.attach_record_store(attached.clone());
    bus.add_listener(listening.clone());
    for i in 0..12_000u64 {
        let r = Request {
            shard: (i % 3 == 0) as usize,
            request_type: (i % 2) as usize,
            name: (i % 3) as usize,
            fresh: false,
            latency_us: i * 13,
            error: (i % 4 == 0).then_some((i % 3) as usize),
            start_delay_us: None,
            second: i / 1000,
            length: i,
            iterations: 1,
            start_lag_us: None,
            flush_after: i % 6000 == 5999,
        };
        let mut event = strings.event(&r);
        if i < 5_000 {
            event.url = Arc::from(format!("http://127.0.0.1/item/{i}"));
        }
        bus.emit_on(r.shard, event);
        bus.count_iterations_on(r.shard, 1);
        if r.flush_after {
            bus.flush();
        }
    }
    bus.flush();
    let sorted = |mut records: Vec<load_density_core::Record>| {
        records.sort_by_key(|r| (r.start_time_us, r.response_time_us));
        records
    };
    assert_eq!(attached.counts(), (9_000, 3_000));
    assert_eq!(
        sorted(attached.test_record_list()),
        sorted(listening.test_record_list())
    );
    assert_eq!(
        sorted(attached.error_record_list()),
        sorted(listening.error_record_list())
    );
    assert_same(&attached.stats(), &listening.stats());
    assert_eq!(attached.stats().iterations(), 12_000);
}

/// Reads both the event stream and the series, as two exporters would.
#[derive(Default)]
struct BothStreams {
    /// Per flush: every event's (type, name, point), in the order delivered.
    events: parking_lot::Mutex<Vec<(String, String, Point)>>,
    /// Per flush: every series' points with their series' names, in the order delivered.
    series: parking_lot::Mutex<Vec<(String, String, Point)>>,
    /// Series delivered, and how many of them shared a name with another of the same flush.
    deliveries: parking_lot::Mutex<Vec<Vec<(String, String)>>>,
}

impl RequestListener for BothStreams {
    fn on_requests(&self, events: &[RequestEvent]) {
        self.events.lock().extend(events.iter().map(|e| {
            (
                e.request_type.to_string(),
                e.name.to_string(),
                Point::started_at(
                    e.start_time,
                    e.response_time,
                    e.response_length,
                    e.error.clone(),
                ),
            )
        }));
    }

    fn wants_series(&self) -> bool {
        true
    }

    fn on_series(&self, series: &[Series]) {
        let mut seen = self.series.lock();
        for one in series {
            assert!(!one.points.is_empty(), "an empty series was delivered");
            for point in &one.points {
                seen.push((
                    one.request_type.to_string(),
                    one.name.to_string(),
                    point.clone(),
                ));
            }
        }
        self.deliveries.lock().push(
            series
                .iter()
                .map(|s| (s.request_type.to_string(), s.name.to_string()))
                .collect(),
        );
    }
}

/// Each name's points in the order delivered.
fn per_name(points: &[(String, String, Point)]) -> BTreeMap<(String, String), Vec<Point>> {
    let mut by_name: BTreeMap<(String, String), Vec<Point>> = BTreeMap::new();
    for (request_type, name, point) in points {
        by_name
            .entry((request_type.clone(), name.clone()))
            .or_default()
            .push(point.clone());
    }
    by_name
}

/// Runs `requests` through a bus with a listener of both streams.
fn both_streams(strings: &Strings, requests: &[Request]) -> Arc<BothStreams> {
    let bus = EventBus::new(SHARDS);
    let both = Arc::new(BothStreams::default());
    bus.add_listener(both.clone());
    for r in requests {
        bus.emit_on(r.shard, strings.event(r));
        if r.flush_after {
            bus.flush();
        }
    }
    bus.flush();
    both
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn series_hold_every_request_the_events_hold_in_the_same_order_per_name(
        requests in prop::collection::vec(request(6), 0..400),
    ) {
        let strings = Strings::new(6);
        let both = both_streams(&strings, &requests);
        let events = both.events.lock();
        let series = both.series.lock();
        prop_assert_eq!(series.len(), requests.len());
        prop_assert_eq!(per_name(&series), per_name(&events));
    }
}

#[test]
fn series_keep_names_past_what_a_shard_keeps() {
    // 700 names on two shards between flushes: more than a shard keeps entries for, so some
    // requests take the spilled way.
    let strings = Strings::new(700);
    let requests: Vec<Request> = (0..6000u64)
        .map(|i| Request {
            shard: (i % 3 == 0) as usize,
            request_type: (i % 2) as usize,
            name: ((i * 7919) % 700) as usize,
            fresh: i % 5 == 0,
            latency_us: (i * 37) % 90_000,
            error: (i % 7 == 0).then_some((i % 4) as usize),
            start_delay_us: None,
            second: i / 100,
            length: i,
            iterations: 0,
            start_lag_us: None,
            flush_after: i % 2000 == 1999,
        })
        .collect();
    let both = both_streams(&strings, &requests);
    let events = both.events.lock();
    let series = both.series.lock();
    assert_eq!(series.len(), 6000);
    assert_eq!(per_name(&series), per_name(&events));
    // Three flushes of 2,000 requests under 700 names: every name in each, grouped (fewer
    // series than requests) where the shards keep entries for them.
    let deliveries = both.deliveries.lock();
    assert_eq!(deliveries.len(), 3);
    for delivered in deliveries.iter() {
        let names: std::collections::BTreeSet<_> = delivered.iter().collect();
        assert_eq!(names.len(), 700);
        assert!(delivered.len() < 2000, "{} series", delivered.len());
    }
}

#[test]
fn no_point_is_kept_while_no_listener_wants_series() {
    struct Switch(std::sync::atomic::AtomicBool, parking_lot::Mutex<usize>);
    impl RequestListener for Switch {
        fn on_requests(&self, _: &[RequestEvent]) {}
        fn wants_events(&self) -> bool {
            false
        }
        fn wants_series(&self) -> bool {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
        fn on_series(&self, series: &[Series]) {
            *self.1.lock() += series.iter().map(|s| s.points.len()).sum::<usize>();
        }
    }
    let strings = Strings::new(2);
    let bus = EventBus::new(2);
    let switch = Arc::new(Switch(false.into(), parking_lot::Mutex::new(0)));
    bus.add_listener(switch.clone());
    let request = |name: usize| Request {
        shard: name % 2,
        request_type: 0,
        name,
        fresh: false,
        latency_us: 10,
        error: None,
        start_delay_us: None,
        second: 0,
        length: 1,
        iterations: 0,
        start_lag_us: None,
        flush_after: false,
    };
    bus.emit_on(0, strings.event(&request(0)));
    assert_eq!(bus.flush(), 1);
    assert_eq!(*switch.1.lock(), 0, "nobody wanted series");
    switch.0.store(true, std::sync::atomic::Ordering::Relaxed);
    load_density_core::event::listeners_changed();
    for name in [0, 1, 1] {
        bus.emit_on(name, strings.event(&request(name)));
    }
    assert_eq!(bus.flush(), 3);
    assert_eq!(*switch.1.lock(), 3);
    switch.0.store(false, std::sync::atomic::Ordering::Relaxed);
    load_density_core::event::listeners_changed();
    bus.emit_on(1, strings.event(&request(1)));
    assert_eq!(bus.flush(), 1);
    assert_eq!(*switch.1.lock(), 3);
}
