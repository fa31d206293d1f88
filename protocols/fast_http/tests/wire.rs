//! HTTP/1.x framing against a scripted raw server: chunked bodies, close-delimited bodies,
//! `Connection: close`, HTTP/1.0, interim responses, servers that close idle connections, and
//! broken responses.

mod common;

use common::{ok, prepare, Harness, RawServer, Reply};
use serde_json::json;

async fn user_for(raw: &RawServer, tasks: serde_json::Value) -> Harness {
    let factory = prepare(tasks, Some(raw.base_url()), json!({}))
        .await
        .expect("prepare");
    Harness::new(&factory)
}

fn get(path: &str) -> serde_json::Value {
    json!([{"method": "get", "url": path}])
}

#[tokio::test]
async fn chunked_bodies_are_decoded_and_the_connection_kept() {
    let raw = RawServer::start(|_| {
        Reply::keep(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n"
                .as_bytes(),
        )
    })
    .await;
    let mut h = user_for(&raw, get("/")).await;
    h.run(0, 5).await;
    let events = h.take();
    assert_eq!(events.len(), 5);
    assert!(
        events
            .iter()
            .all(|e| e.is_success() && e.response_length == 31),
        "{events:?}"
    );
    assert_eq!(raw.connections(), 1);
}

#[tokio::test]
async fn a_large_chunked_body_arrives_whole() {
    let raw = RawServer::start(|_| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            bytes.extend_from_slice(format!("{:x}\r\n", 50_000).as_bytes());
            bytes.extend(std::iter::repeat_n(b'z', 50_000));
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"0\r\n\r\n");
        Reply::keep(bytes)
    })
    .await;
    let mut h = user_for(&raw, get("/")).await;
    h.run(0, 3).await;
    let events = h.take();
    assert!(events
        .iter()
        .all(|e| e.is_success() && e.response_length == 1_000_000));
    assert_eq!(raw.connections(), 1);
}

#[tokio::test]
async fn connection_close_makes_the_next_request_reconnect() {
    let raw = RawServer::start(|_| {
        Reply::close(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok".as_bytes(),
        )
    })
    .await;
    let mut h = user_for(&raw, get("/")).await;
    h.run(0, 4).await;
    let events = h.take();
    assert!(
        events
            .iter()
            .all(|e| e.is_success() && e.response_length == 2),
        "{events:?}"
    );
    assert_eq!(raw.connections(), 4);
}

#[tokio::test]
async fn close_delimited_and_http10_bodies() {
    let raw = RawServer::start(|seen| match seen.request_line() {
        l if l.starts_with("GET /eof") => {
            Reply::close("HTTP/1.1 200 OK\r\n\r\nuntil the end".as_bytes())
        }
        l if l.starts_with("GET /ten-keep") => Reply::keep(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc".as_bytes(),
        ),
        _ => Reply::close("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc".as_bytes()),
    })
    .await;
    let mut h = user_for(
        &raw,
        json!([{"method": "get", "url": "/eof"}, {"method": "get", "url": "/ten"},
               {"method": "get", "url": "/ten-keep"}]),
    )
    .await;
    h.run(0, 2).await;
    h.run(1, 2).await;
    h.run(2, 3).await;
    let events = h.take();
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    assert_eq!(events[0].response_length, 13);
    assert_eq!(events[2].response_length, 3);
    // 2 close-delimited + 2 HTTP/1.0 without keep-alive + 1 for the three kept-alive ones.
    assert_eq!(raw.connections(), 5);
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let raw = RawServer::start(|_| {
        Reply::keep(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
             HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone"
                .as_bytes(),
        )
    })
    .await;
    let mut h = user_for(&raw, get("/")).await;
    let e = h.once(0).await;
    assert_eq!((e.status, e.response_length), (Some(201), 4));
    assert!(e.is_success());
}

#[tokio::test]
async fn a_server_closing_an_idle_keep_alive_connection_is_retried_once() {
    // Each connection serves one response and then closes without saying so.
    let raw = RawServer::start(|_| Reply::close(ok("one"))).await;
    let mut h = user_for(&raw, get("/")).await;
    h.run(0, 3).await;
    let events = h.take();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    assert_eq!(raw.requests().len(), 3);
    assert_eq!(raw.connections(), 3);
}

#[tokio::test]
async fn a_server_that_closes_without_answering_is_a_failure() {
    let raw = RawServer::start(|seen| {
        if seen.request_line().starts_with("GET /silent") {
            Reply::close(Vec::new())
        } else {
            Reply::keep(ok("fine"))
        }
    })
    .await;
    let mut h = user_for(
        &raw,
        json!([{"method": "get", "url": "/silent"}, {"method": "get", "url": "/fine"}]),
    )
    .await;
    let e = h.once(0).await;
    assert_eq!(
        e.error.as_deref(),
        Some("connection closed before the response")
    );
    assert_eq!(e.status, None);
    // On a fresh connection there is no retry: one request reached the server.
    assert_eq!(raw.requests().len(), 1);
    assert!(h.once(1).await.is_success());
}

#[tokio::test]
async fn broken_responses_are_failures() {
    let raw = RawServer::start(|seen| match seen.request_line() {
        l if l.starts_with("GET /garbage") => Reply::close("SSH-2.0-OpenSSH\r\n\r\n".as_bytes()),
        l if l.starts_with("GET /short") => {
            Reply::close("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".as_bytes())
        }
        l if l.starts_with("GET /badchunk") => {
            Reply::close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".as_bytes())
        }
        _ => Reply::keep(ok("fine")),
    })
    .await;
    let mut h = user_for(
        &raw,
        json!([{"method": "get", "url": "/garbage"}, {"method": "get", "url": "/short"},
               {"method": "get", "url": "/badchunk"}, {"method": "get", "url": "/fine"}]),
    )
    .await;
    let garbage = h.once(0).await;
    assert!(
        garbage
            .error
            .as_deref()
            .is_some_and(|m| m.starts_with("invalid HTTP response:")),
        "{garbage:?}"
    );
    let short = h.once(1).await;
    assert_eq!(
        short.error.as_deref(),
        Some("connection closed before the end of the response body")
    );
    let bad = h.once(2).await;
    assert_eq!(
        bad.error.as_deref(),
        Some("invalid HTTP response: invalid chunk size")
    );
    assert!(h.once(3).await.is_success());
}
