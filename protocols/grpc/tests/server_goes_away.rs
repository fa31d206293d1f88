//! The server going away mid-test: calls fail with UNAVAILABLE (cut mid-call, then refused),
//! the users keep running, and they recover on their own once the server is back.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{assert_success, error_of, harness, proto_options};
use load_density_core::context::StopHandle;
use load_density_core::scenario::{run_user, Scenario};
use load_density_core::variables::UserVariables;
use load_density_core::{EventBus, Pacing, RequestEvent, TaskList, UserContext};
use load_density_testkit::GrpcTarget;
use serde_json::json;
use tokio::task::JoinSet;

#[tokio::test]
async fn a_call_cut_mid_stream_then_refused_then_recovered() {
    let server = GrpcTarget::start().await.expect("start");
    let mut user = harness(
        json!([
            {"call": "loadtest.Echo/ServerStream", "target": server.target(),
             "payload": {"message": "tick", "count": 50, "delay_ms": 50}},
            {"call": "loadtest.Echo/Unary", "target": server.target(), "payload": {"message": "x"}},
        ]),
        proto_options(),
    )
    .await;
    assert_success(&user.once(1).await);
    let stop_soon = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        server.stop().await;
    };
    let (cut, ()) = tokio::join!(user.once(0), stop_soon);
    let error = error_of(&cut);
    assert!(error.starts_with("UNAVAILABLE: connection lost"), "{cut:?}");
    assert_eq!(cut.status, None, "{cut:?}");
    assert!(
        cut.response_length > 0,
        "messages before the cut are counted: {cut:?}"
    );
    assert!(cut.response_time < Duration::from_secs(2), "{cut:?}");

    let refused = user.once(1).await;
    assert!(
        error_of(&refused).starts_with("UNAVAILABLE: connection refused (127.0.0.1:"),
        "{refused:?}"
    );
    assert_eq!(refused.status, None);

    server.restart().await.expect("restart on the same port");
    assert_success(&user.once(1).await);
    assert_eq!(
        server.connections(),
        2,
        "one reconnection after the restart"
    );
    user.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_fail_while_the_server_is_away_and_recover() {
    let server = GrpcTarget::start().await.expect("start");
    let tasks = json!([{"call": "loadtest.Echo/Unary", "target": server.target(),
                        "payload": {"message": "x", "delay_ms": 5}, "timeout": 2}]);
    let factory = common::prepare(&tasks, None, proto_options())
        .await
        .expect("prepare");
    let scenario =
        Arc::new(Scenario::new(&TaskList::from_json(&tasks).expect("tasks")).expect("scenario"));
    let bus = Arc::new(EventBus::new(3));
    let events: Arc<Mutex<Vec<RequestEvent>>> = Arc::default();
    let sink = events.clone();
    bus.add_listener(Arc::new(move |batch: &[RequestEvent]| {
        sink.lock().expect("events").extend_from_slice(batch)
    }));
    let stop = StopHandle::new();
    let mut users = JoinSet::new();
    for user_id in 0..10 {
        let ctx = UserContext::new(
            user_id,
            bus.clone(),
            UserVariables::default(),
            stop.signal(),
        );
        users.spawn(run_user(
            factory.new_user(user_id),
            ctx,
            scenario.clone(),
            Pacing::Constant(Duration::from_millis(20)),
        ));
    }
    let flusher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                bus.flush();
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    let stop_began = SystemTime::now();
    server.stop().await;
    let stopped_at = SystemTime::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let restarted_at = SystemTime::now();
    server.restart().await.expect("restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ended_at = SystemTime::now();
    stop.stop();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(joined) = users.join_next().await {
            joined.expect("user task");
        }
    })
    .await
    .expect("users stopped in time");
    flusher.abort();
    bus.flush();

    let events = events.lock().expect("events").clone();
    let started_in = |from: SystemTime, to: SystemTime| {
        events
            .iter()
            .filter(move |e| e.start_time >= from && e.start_time < to)
            .collect::<Vec<_>>()
    };
    let before = started_in(
        stop_began - Duration::from_secs(1),
        stop_began - Duration::from_millis(100),
    );
    assert!(before.len() >= 50, "{} calls before the stop", before.len());
    assert!(
        before.iter().all(|e| e.is_success()),
        "all succeed while the server is up"
    );

    let away = started_in(stopped_at + Duration::from_millis(100), restarted_at);
    assert!(
        away.len() >= 50,
        "the users keep running: {} calls while away",
        away.len()
    );
    for event in &away {
        assert!(error_of(event).starts_with("UNAVAILABLE: "), "{event:?}");
        assert_eq!(event.status, None, "{event:?}");
    }
    assert!(
        away.iter()
            .any(|e| error_of(e).contains("connection refused")),
        "new connections are refused while away"
    );

    let back = started_in(restarted_at + Duration::from_millis(500), ended_at);
    assert!(back.len() >= 50, "{} calls after the restart", back.len());
    let failed: Vec<_> = back.iter().filter(|e| !e.is_success()).collect();
    assert!(failed.is_empty(), "every user recovered: {failed:?}");
    // Each user reconnected once (10 first connections, 10 after the restart).
    assert_eq!(server.connections(), 20);
}
