//! What a hostile or broken target cannot do to a `fast_http_user`: make it hold a huge or
//! endless body in memory, or make it send a `POST` twice.

mod common;

use std::time::Duration;

use common::{ok, prepare, Harness, RawServer, Reply};
use load_density_testkit::harness::Group;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// The resident set size of this process, in bytes (Linux `/proc/self/status`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Most the RSS may grow while a user reads a body of hundreds of MiB that nothing keeps.
const RSS_MARGIN: u64 = 48 * 1024 * 1024;

/// A server that answers every connection's first request with `head` and then up to
/// `body_limit` zero bytes (a `/dev/zero` stand-in, bounded so that a regression cannot eat the
/// machine), then holds the connection open until the client goes.
async fn zero_server(head: &'static str, body_limit: u64) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                if stream.read(&mut request).await.unwrap_or(0) == 0 {
                    return;
                }
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let zeros = vec![0u8; 64 * 1024];
                let mut sent = 0u64;
                while sent < body_limit {
                    let n = (body_limit - sent).min(zeros.len() as u64) as usize;
                    if stream.write_all(&zeros[..n]).await.is_err() {
                        return;
                    }
                    sent += n as u64;
                }
                // Hold the connection until the client closes it.
                let _ = stream.read(&mut request).await;
            });
        }
    });
    addr
}

/// User 1 of a `fast_http_user` group on `addr`, its tasks run with their checks applied.
async fn user(
    addr: std::net::SocketAddr,
    tasks: serde_json::Value,
    options: serde_json::Value,
) -> Harness {
    Group::new("fast_http_user", tasks)
        .host(format!("http://{addr}"))
        .options(options)
        .harness(Default::default())
        .await
}

#[tokio::test]
async fn an_endless_body_nothing_reads_leaves_memory_flat_and_ends_at_the_timeout() {
    // Close-delimited: the body ends only when the server closes, which it never does.
    let addr = zero_server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 1 << 30).await;
    let mut h = user(
        addr,
        json!([{"method": "get", "url": "/zero", "timeout": 3}]),
        json!({}),
    )
    .await;
    let before = rss();
    let e = h.once(0).await;
    let grown = rss().saturating_sub(before);
    assert_eq!(e.error.as_deref(), Some("timed out after 3s"), "{e:?}");
    assert!(grown < RSS_MARGIN, "RSS grew by {} MiB", grown >> 20);
}

#[tokio::test]
async fn a_huge_body_nothing_reads_is_counted_and_dropped() {
    const LEN: u64 = 384 * 1024 * 1024;
    let head: &'static str =
        Box::leak(format!("HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\n\r\n").into_boxed_str());
    let addr = zero_server(head, LEN).await;
    let mut h = user(
        addr,
        json!([{"method": "get", "url": "/big", "timeout": 30}]),
        json!({}),
    )
    .await;
    let before = rss();
    let e = h.once(0).await;
    let grown = rss().saturating_sub(before);
    assert!(e.is_success(), "{e:?}");
    assert_eq!(e.response_length, LEN);
    assert!(grown < RSS_MARGIN, "RSS grew by {} MiB", grown >> 20);
}

#[tokio::test]
async fn a_chunked_huge_body_nothing_reads_is_counted_and_dropped() {
    // One chunk of 256 MiB of zeros, then the last chunk.
    const LEN: u64 = 256 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).await;
        let head = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{LEN:x}\r\n");
        let _ = stream.write_all(head.as_bytes()).await;
        let zeros = vec![0u8; 64 * 1024];
        for _ in 0..LEN / zeros.len() as u64 {
            if stream.write_all(&zeros).await.is_err() {
                return;
            }
        }
        let _ = stream.write_all(b"\r\n0\r\n\r\n").await;
        let _ = stream.read(&mut request).await;
    });
    let mut h = user(
        addr,
        json!([{"method": "get", "url": "/chunked", "timeout": 30}]),
        json!({}),
    )
    .await;
    let before = rss();
    let e = h.once(0).await;
    let grown = rss().saturating_sub(before);
    assert!(e.is_success(), "{e:?}");
    assert_eq!(e.response_length, LEN);
    assert!(grown < RSS_MARGIN, "RSS grew by {} MiB", grown >> 20);
}

#[tokio::test]
async fn a_body_an_assertion_reads_is_capped_by_max_body_size() {
    let addr = zero_server("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 1 << 30).await;
    let tasks = json!([{"method": "get", "url": "/zero", "timeout": 20,
                        "assertions": [{"type": "contains", "value": "needle"}]}]);
    let mut h = user(addr, tasks, json!({"max_body_size": 1_048_576})).await;
    let e = h.once(0).await;
    assert_eq!(
        e.error.as_deref(),
        Some("response body larger than max_body_size (1048576 bytes)"),
        "{e:?}"
    );
    assert!(e.response_time < Duration::from_secs(15), "{e:?}");

    // A announced length above the cap fails before any of it is read.
    let addr = zero_server("HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\n", 0).await;
    let tasks = json!([{"method": "get", "url": "/zero", "timeout": 20,
                        "extract": [{"var": "x", "from": "regex", "pattern": "(a+)"}]}]);
    let mut h = user(addr, tasks, json!({})).await;
    let e = h.once(0).await;
    assert_eq!(
        e.error.as_deref(),
        Some("response body larger than max_body_size (67108864 bytes)"),
        "{e:?}"
    );
}

#[tokio::test]
async fn max_body_size_must_be_a_positive_whole_number() {
    for bad in [json!(0), json!(-1), json!(1.5), json!("big")] {
        let error = prepare(
            json!([{"method": "get", "url": "/"}]),
            Some("http://127.0.0.1:1".into()),
            json!({"max_body_size": bad}),
        )
        .await
        .err()
        .expect("an error");
        assert!(
            error
                .to_string()
                .contains("option \"max_body_size\" must be a positive whole number of bytes"),
            "{error}"
        );
    }
}

/// A server that answers the first request of each connection and closes the connection,
/// without a word, when a second request arrives on it.
async fn closes_kept_connections() -> RawServer {
    RawServer::start(|seen| {
        if seen.on_connection == 0 {
            Reply::keep(ok("first"))
        } else {
            Reply::close(Vec::new())
        }
    })
    .await
}

#[tokio::test]
async fn a_post_is_not_sent_again_after_a_reset_on_a_kept_connection() {
    for method in ["post", "patch"] {
        let raw = closes_kept_connections().await;
        let factory = prepare(
            json!([{"method": method, "url": "/submit", "json": {"n": 1}}]),
            Some(raw.base_url()),
            json!({}),
        )
        .await
        .expect("prepare");
        let mut h = Harness::new(&factory);
        h.run(0, 4).await;
        let events = h.take();
        // Every request that reached the server is one recorded event, and no more.
        assert_eq!(raw.requests().len(), events.len(), "{method}: {events:?}");
        assert_eq!(events.len(), 4);
        // Connections alternate: a success, then the reset on its second request.
        assert_eq!(
            events.iter().filter(|e| e.is_success()).count(),
            2,
            "{events:?}"
        );
        assert!(events
            .iter()
            .filter(|e| !e.is_success())
            .all(|e| e.error.as_deref() == Some("connection closed before the response")));
    }
}

#[tokio::test]
async fn a_get_is_sent_again_after_a_reset_on_a_kept_connection() {
    let raw = closes_kept_connections().await;
    let factory = prepare(
        json!([{"method": "get", "url": "/page"}]),
        Some(raw.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    h.run(0, 3).await;
    let events = h.take();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    // Requests 2 and 3 each met a closed kept connection and went again on a new one.
    assert_eq!(raw.requests().len(), 5);
}
