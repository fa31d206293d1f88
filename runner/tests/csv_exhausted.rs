//! A CSV source with `cycle: false` that runs out: its `on_end` takes effect before a request
//! is built, so no request ever carries the placeholder as written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use load_density::{prepare_env, StartTest};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A keep-alive HTTP server that answers 200 to every request and keeps each request line.
async fn counting_server() -> (
    std::net::SocketAddr,
    Arc<Mutex<Vec<String>>>,
    Arc<AtomicU64>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicU64::new(0));
    let (l, c) = (lines.clone(), count.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (lines, count) = (l.clone(), c.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let line = head.lines().next().unwrap_or_default().to_owned();
                        lines.lock().expect("lines").push(line);
                        count.fetch_add(1, Ordering::SeqCst);
                        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if stream.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, lines, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_source_sends_no_request_with_a_literal_placeholder() {
    let (addr, lines, count) = counting_server().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("users.csv");
    std::fs::write(&path, "name\nalice\nbob\ncarol\n").expect("write csv");
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 2, "spawn_rate": 50, "test_time": 2,
        "print_stats": false,
        "host": format!("http://{addr}"),
        "csv_sources": [{"name": "users", "file_path": path, "cycle": false}],
        "wait_time": {"constant": 0.05},
        "tasks": [{"method": "get", "request_url": "/?u=${csv.users.name}", "name": "by user"}]
    }))
    .expect("a StartTest");
    let env = prepare_env(config).await.expect("the run starts");
    let summary = tokio::time::timeout(Duration::from_secs(30), env.wait())
        .await
        .expect("the run ends");
    let lines = lines.lock().expect("lines").clone();
    let literal = lines
        .iter()
        .filter(|l| l.contains("csv") || l.contains('$'))
        .count();
    assert_eq!(
        literal, 0,
        "requests with the placeholder as written: {lines:?}"
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        3,
        "one request per row: {lines:?}"
    );
    assert_eq!(summary.totals.requests, 3);
    assert_eq!(summary.totals.failures, 0);
}
