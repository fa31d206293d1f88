//! Statistics keyed by strings the target controls stay bounded: 100,000 distinct names and
//! reason phrases keep the entries and error groups at their caps, and totals stay exact.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use load_density_core::cardinality::{Limits, DEFAULT_MAX_ERROR_GROUPS, DEFAULT_MAX_NAMES, OTHER};
use load_density_core::{RequestEvent, RequestStats};

/// A failed request named `name` whose error is `message`.
fn failure(name: &str, message: &str) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from(name),
        status: Some(599),
        response_time: Duration::from_millis(3),
        response_length: 7,
        error: Some(Arc::from(message)),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

#[test]
fn distinct_reason_phrases_and_names_stay_at_the_cap() {
    let mut stats = RequestStats::new();
    for i in 0..100_000 {
        stats.add(&failure(
            &format!("/item/{i}"),
            &format!("HTTP 599 Reason {i}"),
        ));
    }
    // The cap plus one (other) each.
    assert_eq!(stats.entries().len(), DEFAULT_MAX_NAMES + 1);
    assert_eq!(stats.errors().len(), DEFAULT_MAX_ERROR_GROUPS + 1);
    assert_eq!(stats.total().num_requests(), 100_000);
    assert_eq!(stats.total().num_failures(), 100_000);
    let other = stats.entry("", OTHER).expect("an (other) entry");
    assert_eq!(other.num_requests(), 100_000 - DEFAULT_MAX_NAMES as u64);
    let other_errors = stats
        .errors()
        .into_iter()
        .find(|g| &*g.message == OTHER)
        .expect("an (other) group");
    assert_eq!(
        other_errors.occurrences,
        100_000 - DEFAULT_MAX_ERROR_GROUPS as u64
    );
    // Known names keep counting under their own entry.
    stats.add(&failure("/item/5", "HTTP 599 Reason 5"));
    assert_eq!(
        stats.entry("GET", "/item/5").map(|e| e.num_requests()),
        Some(2)
    );
}

#[test]
fn merging_respects_the_receivers_caps() {
    let mut worker = RequestStats::new();
    for i in 0..50 {
        worker.add(&failure(&format!("/w/{i}"), &format!("reason {i}")));
    }
    let mut master = RequestStats::with_limits(Limits::new(10, 5));
    master.merge(&worker);
    master.merge(&worker);
    assert_eq!(master.entries().len(), 11);
    assert_eq!(master.errors().len(), 6);
    assert_eq!(master.total().num_requests(), 100);
    assert_eq!(master.entry("", OTHER).map(|e| e.num_requests()), Some(80));
    // Reset keeps the caps.
    master.reset();
    master.merge(&worker);
    assert_eq!(master.entries().len(), 11);
}
