//! The chart history stays small over a long run without losing what it shows.

use load_density::web::{ChartHistory, ChartPoint, OLD_POINTS_CAP, RECENT_POINTS};

fn point(second: u64) -> ChartPoint {
    ChartPoint {
        time_s: 1_700_000_000 + second,
        width_s: 1,
        users: (second / 600) as f64,
        rps: 100.0 + (second % 13) as f64,
        fps: (second % 3) as f64,
        p50_ms: 10.0,
        p95_ms: 50.0 + (second % 7) as f64,
        corrected_p95_ms: 70.0 + (second % 5) as f64,
        target_rate: 100.0,
        iteration_rate: 95.0 + (second % 11) as f64,
    }
}

#[test]
fn a_day_of_points_stays_bounded_contiguous_and_keeps_the_request_count() {
    let mut history = ChartHistory::new();
    let mut requests = 0.0;
    for second in 0..86_400 {
        let p = point(second);
        requests += p.rps;
        history.push(p);
        assert!(history.len() <= RECENT_POINTS + OLD_POINTS_CAP);
        if second == 3_599 {
            assert!(history.len() <= 1_500, "an hour: {} points", history.len());
        }
    }
    let points: Vec<&ChartPoint> = history.points().collect();
    assert!(points.len() < 1_000, "a day: {} points", points.len());
    // Contiguous from the first second to the last, no gap and no overlap.
    assert_eq!(points[0].time_s, 1_700_000_000);
    for pair in points.windows(2) {
        assert_eq!(pair[0].time_s + pair[0].width_s, pair[1].time_s);
    }
    let last = points.last().expect("points");
    assert_eq!(last.time_s, 1_700_000_000 + 86_399);
    assert_eq!(history.last_time_s(), Some(last.time_s));
    // The last five minutes keep one-second resolution.
    assert!(points[points.len() - RECENT_POINTS..]
        .iter()
        .all(|p| p.width_s == 1));
    assert!(history.resolution_s() >= 64);
    // Time-weighted means keep the area under the rate curve: the request count.
    let kept: f64 = points.iter().map(|p| p.rps * p.width_s as f64).sum();
    assert!(
        (kept - requests).abs() / requests < 1e-9,
        "{kept} vs {requests}"
    );
    // Serialized compactly, as the page reads it.
    let json = serde_json::to_value(&history).expect("json");
    assert_eq!(json["recent"][0].as_array().expect("array").len(), 10);
    assert_eq!(
        json["old"].as_array().expect("old").len() + RECENT_POINTS,
        history.len()
    );
}
