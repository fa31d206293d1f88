//! A run's bus hands the exporters its requests as series (no event per request): the hub
//! merges each flush's series, one per name and worker thread, into one series per name,
//! keeps every request in the order its thread made them, and caps the names as it caps
//! published events. The hub is process-wide: this file has one test.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use load_density::sinks::{self, OTHER};
use load_density_core::{EventBus, RequestEvent, RequestListener};

const MAX_NAMES: usize = 50;

fn event(request_type: &Arc<str>, name: &Arc<str>, i: u64) -> RequestEvent {
    RequestEvent {
        request_type: request_type.clone(),
        name: name.clone(),
        url: Arc::from("http://127.0.0.1/"),
        status: Some(200),
        response_time: Duration::from_micros(100 + i),
        response_length: i,
        error: i.is_multiple_of(9).then(|| Arc::from("HTTP 500")),
        start_time: UNIX_EPOCH + Duration::from_micros(1_700_000_000_000_000 + i),
        start_delay: None,
    }
}

#[test]
fn a_runs_series_reach_the_exporters_merged_per_name_and_capped() {
    sinks::set_max_names(MAX_NAMES);
    let mut feed = sinks::hub().subscribe("test");
    let bus = EventBus::new(3);
    bus.add_listener(sinks::hub().clone() as Arc<dyn RequestListener>);

    // 80 names: 30 past the cap. Each request goes to shard i % 3, so every name comes from
    // every shard; the first 10 names are also sent with freshly allocated strings (a name
    // built per request), which must land in the same series.
    let get: Arc<str> = Arc::from("GET");
    let names: Vec<Arc<str>> = (0..80).map(|i| Arc::from(format!("/n{i}"))).collect();
    let mut flushes = 0;
    for i in 0..4_000u64 {
        let index = (i % 80) as usize;
        let name = if index < 10 && i % 2 == 0 {
            Arc::from(&*names[index])
        } else {
            names[index].clone()
        };
        bus.emit_on((i % 3) as usize, event(&get, &name, i));
        if i % 1_000 == 999 {
            assert_eq!(bus.flush(), 1_000);
            flushes += 1;
        }
    }

    // The names admitted are the first 50 the hub saw: in the first flush, thread by thread
    // (each thread's in the order it first made them), as the statistics admit theirs.
    let mut admitted: Vec<usize> = Vec::new();
    for shard in 0..3 {
        for i in (0..1_000u64).filter(|i| i % 3 == shard) {
            let index = (i % 80) as usize;
            if admitted.len() < MAX_NAMES && !admitted.contains(&index) {
                admitted.push(index);
            }
        }
    }
    let mut sent: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for i in 0..4_000u64 {
        let index = (i % 80) as usize;
        let key = if admitted.contains(&index) {
            names[index].to_string()
        } else {
            OTHER.to_owned()
        };
        sent.entry(key).or_default().push(i);
    }

    let mut received: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for _ in 0..flushes {
        let batch = feed.blocking_recv().expect("a batch per flush");
        let names: BTreeSet<_> = batch.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names.len(), batch.len(), "one series per name in a batch");
        assert_eq!(
            batch.len(),
            MAX_NAMES + 1,
            "the cap, plus the overflow series"
        );
        for series in batch.iter() {
            let expected_type = if &*series.name == OTHER { "" } else { "GET" };
            assert_eq!(&*series.request_type, expected_type);
            // A name's requests, per flush: each thread's in the order made, thread after
            // thread (the overflow series gathers several names, so only its count counts).
            let order: Vec<u64> = series.points.iter().map(|p| p.response_length).collect();
            if &*series.name != OTHER {
                let mut by_thread = order.clone();
                by_thread.sort_by_key(|i| (i % 3, *i));
                assert_eq!(order, by_thread, "{}", series.name);
            }
            let lengths = received.entry(series.name.to_string()).or_default();
            for point in &series.points {
                assert_eq!(point.is_success(), point.response_length % 9 != 0);
                assert_eq!(
                    point.end_ns,
                    (1_700_000_000_000_000 + 2 * point.response_length + 100) * 1_000
                );
                lengths.push(point.response_length);
            }
        }
    }
    // Every request once, under its name or the overflow series.
    for lengths in received.values_mut() {
        lengths.sort_unstable();
    }
    assert_eq!(received, sent);
    assert_eq!(sinks::overflowed(), 30 * 50);
    sinks::hub().unsubscribe(feed.id());
}
