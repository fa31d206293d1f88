//! A worker under a master that sends numbers no Duration can hold: `stop_timeout: 1e300` in
//! a spawn message does not crash it; it stops, reports `client_stopped` and quits on `quit`.

use std::time::Duration;

use bytes::Bytes;
use load_density::distributed::wire::{self, Message};
use load_density::distributed::Worker;
use load_density::StartTest;
use rmpv::Value;
use serde_json::json;
use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

/// Receives messages until one of type `kind` arrives; returns it with the sender's identity.
async fn until(socket: &mut RouterSocket, kind: &str) -> (Bytes, Message) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let received = tokio::time::timeout_at(deadline, socket.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} from the worker in time"))
            .expect("receive");
        let frames = received.into_vec();
        let identity = frames[0].clone();
        let message = Message::decode(frames.last().expect("a payload")).expect("a message");
        if message.kind == kind {
            return (identity, message);
        }
    }
}

async fn send(socket: &mut RouterSocket, identity: &Bytes, message: Message) {
    let mut frames = ZmqMessage::from(message.encode());
    frames.push_front(identity.clone());
    socket.send(frames).await.expect("send");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_stop_timeout_in_a_spawn_message_does_not_crash_the_worker() {
    let mut master = RouterSocket::new();
    let endpoint = master.bind("tcp://127.0.0.1:0").await.expect("bind");
    let port = endpoint
        .to_string()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("a port");
    let target = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let target_port = target.local_addr().expect("addr").port();
    drop(target);
    let config: StartTest = serde_json::from_value(json!({
        "runner_mode": "worker", "master_host": "127.0.0.1", "master_port": port,
        "user_detail_dict": {"user": "fast_http_user"},
        "wait_time": {"constant": 0.05},
        "tasks": [{"method": "get", "request_url": format!("http://127.0.0.1:{target_port}/")}]
    }))
    .expect("a StartTest");
    let worker = Worker::start(config).await.expect("the worker starts");

    let (identity, ready) = until(&mut master, "client_ready").await;
    let node = ready.node_id.clone();
    send(
        &mut master,
        &identity,
        Message::new("ack", wire::map([("index", Value::from(0))]), node.clone()),
    )
    .await;
    let spawn = wire::map([
        ("timestamp", Value::from(1.0)),
        (
            "user_classes_count",
            wire::map([("fast_http_user", Value::from(1))]),
        ),
        ("host", Value::Nil),
        ("stop_timeout", Value::F64(1e300)),
        ("parsed_options", Value::Map(Vec::new())),
    ]);
    send(
        &mut master,
        &identity,
        Message::new("spawn", spawn, node.clone()),
    )
    .await;
    until(&mut master, "spawning").await;
    send(
        &mut master,
        &identity,
        Message::new("stop", Value::Nil, node.clone()),
    )
    .await;
    until(&mut master, "client_stopped").await;
    // Still alive and following its master.
    until(&mut master, "heartbeat").await;
    send(
        &mut master,
        &identity,
        Message::new("quit", Value::Nil, node),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker quits")
        .expect("without an error");
}
