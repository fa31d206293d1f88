//! The floor loads run against the testkit servers: each counts exactly what the server
//! served, and a measured load does the same requests as a bare one.

use std::time::{Duration, Instant};

use ld_bench_targets::floor::{self, Target, Work};
use load_density_testkit::{HttpTarget, WsEchoServer};

/// How long each floor load runs.
const RUN: Duration = Duration::from_millis(300);

#[tokio::test]
async fn http_floors_count_what_the_server_served() {
    let server = HttpTarget::start().await.expect("start the HTTP target");
    for work in [Work::Bare, Work::Measured] {
        server.reset_counts();
        let target = Target::parse(&server.url("/"), "http").expect("a loopback URL");
        let until = Instant::now() + RUN;
        let done = floor::run_users(4, until, |count| {
            floor::http(target.clone(), work, until, count)
        })
        .await
        .expect("the floor users ran");
        assert!(done > 0, "{work:?}: no request done");
        assert_eq!(done, server.served(), "{work:?}");
    }
}

#[tokio::test]
async fn websocket_floors_count_what_the_server_echoed() {
    let server = WsEchoServer::start().await.expect("start the echo server");
    let target = Target::parse(&server.url("/echo"), "ws").expect("a loopback URL");
    let mut expected = 0;
    for kind in ["bare", "tungstenite", "measured"] {
        let until = Instant::now() + RUN;
        let done = floor::run_users(4, until, |count| {
            let target = target.clone();
            async move {
                match kind {
                    "bare" => floor::ws_bare(target, until, count).await,
                    "tungstenite" => floor::ws_tungstenite(target, Work::Bare, until, count).await,
                    _ => floor::ws_tungstenite(target, Work::Measured, until, count).await,
                }
            }
        })
        .await
        .expect("the floor users ran");
        assert!(done > 0, "{kind}: no message echoed");
        expected += done;
        assert_eq!(server.messages(), expected, "{kind}");
    }
}
