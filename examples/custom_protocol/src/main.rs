//! Run with `cargo run -p example-custom-protocol`: load-tests a local line-echo server with
//! the `line_echo_user` this example crate defines.

use std::sync::atomic::Ordering;

use example_custom_protocol::start_echo_server;
use load_density::{start_test_async, StartTest};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (addr, answered) = start_echo_server().await?;
    let config: StartTest = serde_json::from_value(serde_json::json!({
        "user_detail_dict": {"user": "line_echo_user"},
        "user_count": 10,
        "spawn_rate": 10,
        "test_time": 3,
        "tasks": [{"target": addr.to_string(), "line": "hello from ${var.who}", "name": "hello"}],
        "variables": {"who": "the example"},
    }))?;
    let summary = start_test_async(config).await?;
    println!(
        "server answered {} lines; LoadDensity recorded {} requests ({} failed)",
        answered.load(Ordering::Relaxed),
        summary.totals.requests,
        summary.totals.failures
    );
    Ok(())
}
