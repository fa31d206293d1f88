//! 500 publishers (stamped, QoS 1) and 50 subscribers for 10 s against the real mosquitto,
//! run by core's user loop: every stamped message is counted received or lost, and the
//! `MQTT_RECV` latency histogram is populated. One test function: the stamped counts are
//! process-wide.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{options, prepare, recorder};
use load_density_core::scenario::{run_user, Scenario};
use load_density_core::{Pacing, RequestStats, TaskList};
use load_density_mqtt::{reset_stamped_stats, stamped_stats};
use load_density_testkit::{Mosquitto, MosquittoConfig};
use serde_json::json;
use tokio::task::JoinSet;

const PUBLISHERS: u64 = 500;
const SUBSCRIBERS: u64 = 50;
const RUN: Duration = Duration::from_secs(10);
/// Each publisher publishes every 250 ms: about 2,000 messages a second in all.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_publishers_fifty_subscribers_ten_seconds() -> anyhow::Result<()> {
    reset_stamped_stats();
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    let group_options = options(&[("broker", json!(mosquitto.broker()))]);
    let prefix = common::topic("load");

    let sub_tasks = json!({"mode": "weighted", "tasks": [
        {"method": "subscribe", "topic": format!("{prefix}/${{slot}}"), "qos": 1, "weight": 0},
        {"method": "receive", "topic": format!("{prefix}/${{slot}}"), "timeout": 2, "weight": 1},
    ]});
    let pub_tasks = json!([
        {"method": "publish", "topic": format!("{prefix}/${{slot}}"), "qos": 1, "stamp": true,
         "payload": "load-density"},
    ]);
    let subscribers = prepare(sub_tasks.clone(), None, group_options.clone()).await?;
    let publishers = prepare(pub_tasks.clone(), None, group_options).await?;
    let sub_scenario = Arc::new(Scenario::new(&TaskList::from_json(&sub_tasks)?)?);
    let pub_scenario = Arc::new(Scenario::new(&TaskList::from_json(&pub_tasks)?)?);

    let recorder = recorder();
    let mut users = JoinSet::new();

    // Subscribers first: subscribed (task 0, run once by hand) before anyone publishes.
    let mut ready = JoinSet::new();
    for id in 0..SUBSCRIBERS {
        let mut user = subscribers.new_user(id);
        let mut ctx = recorder.context(id);
        ctx.variables_mut().set("slot", json!(id));
        ready.spawn(async move {
            user.run_task(0, &mut ctx).await;
            (user, ctx)
        });
    }
    while let Some(joined) = ready.join_next().await {
        let (user, ctx) = joined?;
        users.spawn(run_user(user, ctx, sub_scenario.clone(), Pacing::None));
    }
    let subscribed = recorder.take();
    assert_eq!(subscribed.len() as u64, SUBSCRIBERS);
    assert!(subscribed.iter().all(|e| e.is_success()), "{subscribed:?}");

    let started = Instant::now();
    for n in 0..PUBLISHERS {
        let id = SUBSCRIBERS + n;
        let user = publishers.new_user(id);
        let mut ctx = recorder.context(id);
        ctx.variables_mut().set("slot", json!(n % SUBSCRIBERS));
        users.spawn(run_user(
            user,
            ctx,
            pub_scenario.clone(),
            Pacing::ConstantPacing(PUBLISH_EVERY),
        ));
    }
    // Flush as the runner does, so the bus never holds the whole run.
    let mut events = Vec::new();
    while started.elapsed() < RUN {
        tokio::time::sleep(Duration::from_millis(200)).await;
        events.extend(recorder.take());
    }
    recorder.stop_handle().stop();
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(joined) = users.join_next().await {
            joined.expect("a user task ends cleanly");
        }
    })
    .await
    .expect("every user stops within 30 s");
    let stop_took = stopping.elapsed();
    events.extend(recorder.take());

    let mut stats = RequestStats::new();
    stats.add_all(&events);
    let published = stats
        .entries()
        .into_iter()
        .filter(|e| e.request_type() == "MQTT" && e.name().starts_with("publish:"))
        .fold((0, 0), |(n, f), e| {
            (n + e.num_requests(), f + e.num_failures())
        });
    let receives = stats
        .entries()
        .into_iter()
        .filter(|e| e.request_type() == "MQTT" && e.name().starts_with("receive:"))
        .fold((0, 0), |(n, f), e| {
            (n + e.num_requests(), f + e.num_failures())
        });
    let recv: Vec<_> = stats
        .entries()
        .into_iter()
        .filter(|e| e.request_type() == "MQTT_RECV")
        .collect();
    let recv_count: u64 = recv.iter().map(|e| e.num_requests()).sum();
    let counts = stamped_stats();
    eprintln!(
        "publishes {published:?}, receives {receives:?}, MQTT_RECV {recv_count}, \
         stamped {counts:?} (lost {}), stop took {stop_took:?}",
        counts.lost()
    );

    // The load really ran: about RUN / PUBLISH_EVERY publishes per publisher.
    let expected = PUBLISHERS * (RUN.as_millis() / PUBLISH_EVERY.as_millis()) as u64;
    assert!(
        published.0 >= expected / 2,
        "{} publishes, expected about {expected}",
        published.0
    );
    assert_eq!(published.1, 0, "no publish failed");
    assert_eq!(receives.1, 0, "no receive failed");

    // Every stamped QoS 1 message is accounted for: received by a subscriber or lost.
    assert!(counts.published >= published.0, "{counts:?}");
    assert_eq!(
        counts.published,
        counts.received + counts.lost(),
        "{counts:?}"
    );
    assert_eq!((counts.duplicates, counts.unrecorded), (0, 0), "{counts:?}");
    // Each message has exactly one subscriber, and every receipt is one MQTT_RECV event.
    assert_eq!(recv_count, counts.received, "{counts:?}");
    // Only messages in flight when the run stopped may be lost.
    assert!(
        counts.lost() * 50 <= counts.published,
        "lost {} of {}",
        counts.lost(),
        counts.published
    );

    // The latency histogram of MQTT_RECV is populated, per topic (one per subscriber).
    assert_eq!(recv.len() as u64, SUBSCRIBERS);
    for entry in &recv {
        assert!(entry.num_requests() > 0, "{}", entry.name());
        assert_eq!(entry.num_failures(), 0);
        assert_eq!(entry.histogram().len(), entry.num_requests());
        let p50 = entry.percentile_ms(50.0);
        let p99 = entry.percentile_ms(99.0);
        assert!(
            p50 > 0.0 && p50 <= p99,
            "{}: p50 {p50} p99 {p99}",
            entry.name()
        );
        assert!(entry.max_response_time_us() < 10_000_000, "under 10 s");
        assert_eq!(
            entry.total_content_length(),
            entry.num_requests() * (load_density_mqtt::STAMP_LEN as u64 + 12)
        );
    }
    assert!(
        stop_took < Duration::from_secs(10),
        "stop took {stop_took:?}"
    );
    Ok(())
}
