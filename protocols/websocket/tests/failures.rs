//! Failures with clear reasons, and recovery: the server closing, a silent server, a refused
//! port. After each, the user reconnects and the run goes on.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_success, error_of, factory, Harness};
use load_density_core::context::StopHandle;
use load_density_core::scenario::{run_user, Scenario};
use load_density_core::variables::UserVariables;
use load_density_core::{EventBus, Pacing, RequestEvent, TaskList, UserContext};
use load_density_testkit::{unused_local_port, WsEchoServer};
use serde_json::{json, Value};

#[tokio::test]
async fn the_server_closing_is_a_failure_then_the_user_reconnects() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "sendrecv", "url": server.url("/"), "payload": "close-me", "timeout": 2},
            {"method": "sendrecv", "payload": "hello", "expect": "hello"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(2).await;
    assert_eq!(error_of(&events[0]), "server closed the connection");
    assert_eq!(events[0].response_length, 0);
    assert_success(&events[1]);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_silent_server_times_out_then_the_user_reconnects() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "sendrecv", "url": server.url("/"), "payload": "silent", "timeout": 0.3},
            {"method": "sendrecv", "payload": "hello"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let started = Instant::now();
    h.run(0, 1).await;
    let took = started.elapsed();
    let events = h.take();
    assert_eq!(
        error_of(&events[0]),
        "timed out after 0.3s waiting for a frame"
    );
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_success(&h.once(1).await);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_refused_port_is_a_failure_and_the_user_goes_on() {
    let server = WsEchoServer::start().await.expect("start");
    let port = unused_local_port();
    let factory = factory(
        json!([
            {"method": "sendrecv", "url": format!("ws://127.0.0.1:{port}/"), "payload": "x"},
            {"method": "sendrecv", "url": server.url("/"), "payload": "y"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    for _ in 0..3 {
        let events = h.all(2).await;
        assert_eq!(
            error_of(&events[0]),
            format!("connection refused (127.0.0.1:{port})")
        );
        assert_eq!(events[0].status, None);
        assert_eq!(events[0].response_length, 0);
        assert_eq!(&*events[0].url, format!("ws://127.0.0.1:{port}/"));
        assert_success(&events[1]);
    }
    // The refused task names another URL, so it replaces the server connection each
    // iteration, and the next task reconnects.
    assert_eq!(server.connections(), 3);
}

/// A server that completes the WebSocket handshake, then never reads: the client's writes
/// fill the socket buffers and block.
async fn server_that_stops_reading() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let ws = tokio_tungstenite::accept_async(stream)
            .await
            .expect("handshake");
        // Keep the connection open, unread, until the test ends (bounded).
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(ws);
    });
    (url, task)
}

#[tokio::test]
async fn a_server_that_stops_reading_makes_a_send_time_out() {
    let (url, server) = server_that_stops_reading().await;
    // 1 MiB frames: a few fill the loopback socket buffers.
    let payload = "x".repeat(1 << 20);
    let factory = factory(
        json!([{"method": "send", "url": url, "payload": payload, "timeout": 0.3}]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let mut sent = 0;
    let reason = loop {
        let event = h.once(0).await;
        match &event.error {
            None => sent += 1,
            Some(reason) => break reason.to_string(),
        }
        assert!(
            sent < 200,
            "200 MiB were sent to a server that reads nothing"
        );
    };
    assert_eq!(reason, "timed out after 0.3s sending a frame");
    server.abort();
}

/// Runs one user through the scenario loop (as the runner does) for `duration`.
async fn run_for(tasks: Value, duration: Duration) -> Vec<RequestEvent> {
    let factory = factory(tasks.clone(), None).await;
    let scenario =
        Arc::new(Scenario::new(&TaskList::from_json(&tasks).expect("tasks")).expect("scenario"));
    let bus = Arc::new(EventBus::new(2));
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    bus.add_listener(Arc::new(move |batch: &[RequestEvent]| {
        sink.lock().expect("events lock").extend_from_slice(batch)
    }));
    let stop = StopHandle::new();
    let ctx = UserContext::new(1, bus.clone(), UserVariables::default(), stop.signal());
    let user = tokio::spawn(run_user(
        factory.new_user(1),
        ctx,
        scenario,
        Pacing::Constant(Duration::from_millis(20)),
    ));
    tokio::time::sleep(duration).await;
    stop.stop();
    tokio::time::timeout(common::STEP, user)
        .await
        .expect("the user stopped in time")
        .expect("the user did not panic");
    bus.flush();
    let taken = std::mem::take(&mut *events.lock().expect("events lock"));
    taken
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_goes_on_through_repeated_server_closes() {
    let server = WsEchoServer::start().await.expect("start");
    let events = run_for(
        json!([
            {"method": "sendrecv", "url": server.url("/"), "payload": "close-me", "timeout": 2, "name": "closing"},
            {"method": "sendrecv", "payload": "hello", "expect": "hello", "name": "after"},
        ]),
        Duration::from_millis(800),
    )
    .await;
    let closing: Vec<&RequestEvent> = events.iter().filter(|e| &*e.name == "closing").collect();
    let after: Vec<&RequestEvent> = events.iter().filter(|e| &*e.name == "after").collect();
    assert!(closing.len() >= 3, "{events:?}");
    assert!(closing
        .iter()
        .all(|e| error_of(e) == "server closed the connection"));
    assert!(after.iter().all(|e| e.error.is_none()), "{after:?}");
    assert!(after.len() + 1 >= closing.len());
    // The closing task reuses the connection the previous "after" task opened; "after"
    // reconnects every time.
    assert_eq!(server.connections() as usize, 1 + after.len());
    assert_eq!(server.messages() as usize, events.len());
}
