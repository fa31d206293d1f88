//! Frames a server sends in the same write as its handshake response reach the user: the
//! connection is rebuilt after the handshake around the same stream (to drop tungstenite's
//! handshake buffer), and the buffer under it is given back only when it holds no unread byte.

mod common;

use common::factory;
use load_density_testkit::harness::{run_one, EventRecorder};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// An unmasked server frame (FIN set) with a payload of any length.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        len @ 0..=125 => out.push(len as u8),
        len @ 126..=65_535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A server that answers one handshake and, in the same write, sends `after` (then keeps the
/// connection open until the test ends).
async fn server(after: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/greet", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).await.expect("request head");
            head.push(byte[0]);
        }
        let text = String::from_utf8(head).expect("utf-8 head");
        let key = text
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("a key");
        let mut reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            derive_accept_key(key.as_bytes())
        )
        .into_bytes();
        reply.extend_from_slice(&after);
        socket.write_all(&reply).await.expect("reply");
        // Hold the connection until the client goes.
        let mut rest = [0u8; 1024];
        while matches!(socket.read(&mut rest).await, Ok(n) if n > 0) {}
    });
    (url, task)
}

#[tokio::test]
async fn frames_sent_with_the_handshake_response_are_received() {
    let large: Vec<u8> = (0..6000u32).map(|i| (i % 251) as u8).collect();
    let mut after = frame(0x1, b"welcome");
    after.extend_from_slice(&frame(0x2, &large));
    let (url, server) = server(after).await;
    let factory = factory(
        json!([
            {"method": "connect", "url": url},
            {"method": "recv", "expect": "welcome"},
            {"method": "recv"},
        ]),
        None,
    )
    .await;
    let recorder = EventRecorder::new();
    let mut ctx = recorder.context(1);
    let mut user = factory.new_user(1);
    let mut events = Vec::new();
    for index in 0..3 {
        events.push(run_one(user.as_mut(), index, &mut ctx, &recorder).await);
        // Between tasks the user goes idle: unread bytes must stay.
        user.on_idle();
    }
    for event in &events {
        assert_eq!(event.error, None, "task {}: {event:?}", event.name);
    }
    assert_eq!(events[1].response_length, 7);
    assert_eq!(events[2].response_length, 6000);
    user.on_stop(&mut ctx).await;
    server.abort();
}
