//! Under load: 200 users for 10 s against the echo server. Every line the server received is
//! exactly one recorded event, and each user kept one connection.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load_density_core::context::StopHandle;
use load_density_core::scenario::{run_user, Scenario};
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{EventBus, Pacing, RequestEvent, TaskList, UserContext};
use load_density_testkit::TcpEchoServer;
use serde_json::json;

const USERS: u64 = 200;
const RUN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_counted_messages_equal_recorded_events_with_200_users() {
    let server = TcpEchoServer::start().await.expect("start");
    let tasks = json!([
        {"target": server.target(), "payload": "ping ${var.n}\n", "read_until": "\n",
         "expect_substring": "ping"},
        {"target": server.target(), "payload": "pong\n", "read_until": "\n", "name": "pong"},
    ]);
    let f = common::prepare(tasks.clone(), None, json!({}))
        .await
        .expect("valid tasks");
    let scenario = Arc::new(
        Scenario::new(&TaskList::from_json(&tasks).expect("task list")).expect("scenario"),
    );
    let bus = Arc::new(EventBus::new(2));
    let successes = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    {
        let (successes, failures) = (successes.clone(), failures.clone());
        bus.add_listener(Arc::new(move |events: &[RequestEvent]| {
            for event in events {
                if event.is_success() {
                    successes.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failure: {event:?}");
                }
            }
        }));
    }
    let stop = StopHandle::new();
    // The payload has a placeholder, so the per-request render path is under load too.
    let run_variables: Variables = [("n".to_owned(), json!(1))].into_iter().collect();
    let variables = UserVariables::new(Arc::new(run_variables));
    // Bounded in count too: each user starts at most 100 iterations (200 requests) per second.
    let pacing = Pacing::ConstantPacing(Duration::from_millis(10));
    let mut users = Vec::new();
    for id in 0..USERS {
        let ctx = UserContext::new(id, bus.clone(), variables.clone(), stop.signal());
        let user = f.new_user(id);
        users.push(tokio::spawn(run_user(user, ctx, scenario.clone(), pacing)));
    }
    let flusher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                bus.flush();
            }
        })
    };
    tokio::time::sleep(RUN).await;
    stop.stop();
    for user in users {
        tokio::time::timeout(Duration::from_secs(30), user)
            .await
            .expect("user stopped in time")
            .expect("user task did not panic");
    }
    flusher.abort();
    bus.flush();
    let recorded = successes.load(Ordering::Relaxed) + failures.load(Ordering::Relaxed);
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(recorded > USERS * 10, "only {recorded} requests in 10 s");
    assert_eq!(
        server.messages(),
        recorded,
        "server lines == recorded events"
    );
    assert_eq!(server.connections(), USERS, "one kept connection per user");
    common::eventually("on_stop closed every connection", || {
        server.open_connections() == 0
    })
    .await;
}
