//! `load-density demo`: a short load test against the testkit's in-process servers (HTTP,
//! WebSocket, TCP and UDP echo on 127.0.0.1), one user group per protocol, ending with a check
//! that the servers counted as many requests as LoadDensity recorded.

use anyhow::Context as _;
use load_density::core::test_record_instance;
use load_density::StartTest;
use load_density_testkit::{HttpTarget, TcpEchoServer, UdpEchoServer, WsEchoServer};
use serde_json::{json, Value};

/// `demo`'s options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Simulated users.
    #[arg(long, default_value_t = 20)]
    users: u64,
    /// Users started per second.
    #[arg(long, default_value_t = 10.0)]
    spawn_rate: f64,
    /// Run length in seconds.
    #[arg(long, default_value_t = 10.0)]
    time: f64,
}

/// The demo's HTTP tasks: three successes and one expected failure per iteration.
fn http_tasks() -> Value {
    json!([
        {"method": "get", "request_url": "/"},
        {"method": "get", "request_url": "/get?demo=1", "name": "/get"},
        {"method": "post", "request_url": "/post", "json": {"demo": true, "items": [1, 2, 3]}},
        {"method": "get", "request_url": "/status/503", "name": "/status/503 (expected failure)"}
    ])
}

/// Runs the demo; `Ok(false)` when the counts disagree.
pub fn run(args: &DemoArgs) -> anyhow::Result<bool> {
    if !(args.time.is_finite() && args.time > 0.0) {
        anyhow::bail!(
            "--time must be a positive number of seconds, got {}",
            args.time
        );
    }
    // `start_test` blocks and builds its own runtime, so the target gets a runtime of its own
    // whose worker thread serves it meanwhile.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("demo-target")
        .enable_all()
        .build()
        .context("cannot start the target server's runtime")?;
    let (target, ws, tcp, udp) = runtime
        .block_on(async {
            anyhow::Ok((
                HttpTarget::start().await?,
                WsEchoServer::start().await?,
                TcpEchoServer::start().await?,
                UdpEchoServer::start().await?,
            ))
        })
        .context("cannot start the demo servers on 127.0.0.1")?;
    tracing::info!(
        http = %target.base_url(),
        websocket = %ws.url("/"),
        tcp = %tcp.target(),
        udp = %udp.target(),
        "demo servers listening"
    );

    let config = StartTest {
        user_count: args.users,
        spawn_rate: args.spawn_rate,
        test_time: Some(args.time),
        user_groups: Some(vec![
            json!({"name": "http", "user": "fast_http_user", "weight": 2,
                   "host": target.base_url(), "tasks": http_tasks()}),
            json!({"name": "websocket", "user": "websocket_user", "weight": 1,
                   "tasks": [{"method": "sendrecv", "request_url": ws.url("/chat"),
                              "name": "echo", "payload": "hello ${uuid()}", "expect": "hello"}]}),
            json!({"name": "tcp", "user": "socket_user", "weight": 1,
                   "tasks": [{"protocol": "tcp", "target": tcp.target(), "name": "tcp echo",
                              "payload": "ping ${randint(1,1000)}\n", "read_until": "\n"}]}),
            json!({"name": "udp", "user": "socket_user", "weight": 1,
                   "tasks": [{"protocol": "udp", "target": udp.target(), "name": "udp echo",
                              "payload": "ping", "expect_substring": "ping"}]}),
        ]),
        ..StartTest::default()
    };

    test_record_instance().clear_records();
    let outcome = load_density::start_test(config);
    let served = target.served() + ws.messages() + tcp.messages() + udp.datagrams();
    runtime.block_on(target.shutdown());
    drop((ws, tcp, udp));
    outcome.context("the demo run failed")?;

    let recorded = test_record_instance().stats().total().num_requests();
    load_density::console::print_line(format_args!(
        "servers counted {served} requests and messages; LoadDensity recorded {recorded}"
    ))
    .context("cannot write to stdout")?;
    if served != recorded {
        load_density::console::eprint_line(format_args!(
            "error: the counts differ by {}",
            served.abs_diff(recorded)
        ));
        return Ok(false);
    }
    Ok(true)
}
