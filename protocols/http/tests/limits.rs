//! Response bodies a hostile target sends cannot grow an `http_user`'s memory: a body no check
//! reads is counted and dropped as it streams; one a check reads is capped by `max_body_size`.

mod common;

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

const LEN: u64 = 256 * 1024 * 1024;

/// A server answering each connection's one request with `LEN` zero bytes (Content-Length),
/// then closing it.
async fn zero_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                if stream.read(&mut request).await.unwrap_or(0) == 0 {
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {LEN}\r\nConnection: close\r\n\r\n"
                );
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let zeros = vec![0u8; 64 * 1024];
                for _ in 0..LEN / zeros.len() as u64 {
                    if stream.write_all(&zeros).await.is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_body_nothing_reads_is_counted_with_memory_flat_and_a_read_one_is_capped() {
    let addr = zero_server().await;
    let mut h = Group::new(
        "http_user",
        json!([
            {"method": "get", "url": "/big", "timeout": 60},
            {"method": "get", "url": "/big", "timeout": 60,
             "assertions": [{"type": "contains", "value": "needle"}]},
        ]),
    )
    .host(format!("http://{addr}"))
    .options(json!({"max_body_size": 1_048_576}))
    .step(std::time::Duration::from_secs(90))
    .harness(Default::default())
    .await;
    let before = rss();
    let event = h.once(0).await;
    let grown = rss().saturating_sub(before);
    assert!(event.is_success(), "{event:?}");
    assert_eq!(event.response_length, LEN);
    assert!(grown < 48 << 20, "RSS grew by {} MiB", grown >> 20);

    let event = h.once(1).await;
    assert_eq!(
        event.error.as_deref(),
        Some("response body larger than max_body_size (1048576 bytes)"),
        "{event:?}"
    );
    assert_eq!(event.status, Some(200));
}
