//! DNS rebinding: the web UI answers only requests whose `Host` names it; `"*"` listens on
//! IPv4 and IPv6.

mod web_support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use load_density::web::{WebUi, WebUiSettings};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use web_support::Fake;

/// Sends one raw HTTP/1.1 request to `addr` with this `Host`, and returns the status code.
async fn status_with_host(addr: SocketAddr, method: &str, path: &str, host: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = if method == "POST" {
        "user_count=3&spawn_rate=1"
    } else {
        ""
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_header_of_another_name_is_refused() {
    let fake = Fake::new(Vec::new());
    let settings = WebUiSettings::from_value(&json!({"host": "127.0.0.1", "port": 0,
                                                     "allowed_hosts": ["LoadTest.Internal"]}))
    .expect("settings");
    let ui = WebUi::start(fake.clone(), settings)
        .await
        .expect("UI starts");
    let addr = ui.local_addr();
    let port = addr.port();

    for host in [
        "attacker.example",
        "attacker.example:8089",
        "127.0.0.1.attacker.example",
    ] {
        assert_eq!(
            status_with_host(addr, "GET", "/stats/requests", host).await,
            403,
            "{host}"
        );
        assert_eq!(
            status_with_host(addr, "POST", "/swarm", host).await,
            403,
            "{host}"
        );
    }
    assert_eq!(
        fake.set_calls.load(Ordering::Relaxed),
        0,
        "a refused /swarm changed nothing"
    );

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "[::1]:8089".to_owned(),
        format!("loadtest.internal:{port}"),
        "loadtest.internal.".to_owned(),
    ] {
        assert_eq!(
            status_with_host(addr, "GET", "/stats/requests", &host).await,
            200,
            "{host}"
        );
    }
    assert_eq!(
        status_with_host(addr, "POST", "/swarm", &format!("localhost:{port}")).await,
        200
    );
    assert_eq!(fake.set_calls.load(Ordering::Relaxed), 1);
    ui.shutdown().await;
}

#[test]
fn allowed_hosts_must_be_a_list_of_names() {
    for bad in [json!("a.example"), json!([1]), json!([""])] {
        let error = WebUiSettings::from_value(&json!({"allowed_hosts": bad}))
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("allowed_hosts must be a list of host names"),
            "{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interface_means_ipv4_and_ipv6() {
    let fake = Fake::new(Vec::new());
    let settings = WebUiSettings::from_value(&json!({"host": "*", "port": 0})).expect("settings");
    let ui = WebUi::start(fake, settings).await.expect("UI starts");
    let port = ui.local_addr().port();
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        status_with_host(v4, "GET", "/stats/requests", "127.0.0.1").await,
        200
    );
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    assert_eq!(
        status_with_host(v6, "GET", "/stats/requests", "[::1]").await,
        200
    );
    ui.shutdown().await;
}
