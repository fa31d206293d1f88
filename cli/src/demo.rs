//! `load-density demo`: a short load test against the testkit's in-process HTTP server, ending
//! with a check that the server counted as many requests as LoadDensity recorded.

use anyhow::Context as _;
use load_density::core::test_record_instance;
use load_density::StartTest;
use load_density_testkit::HttpTarget;
use serde_json::{json, Map, Value};

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

/// The demo's tasks: three successes and one expected failure per iteration.
fn tasks() -> Value {
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
    let target = runtime
        .block_on(HttpTarget::start())
        .context("cannot start the demo HTTP server on 127.0.0.1")?;
    tracing::info!(url = %target.base_url(), "demo target listening");

    let mut user_detail_dict = Map::new();
    user_detail_dict.insert("user".to_owned(), json!("fast_http_user"));
    let config = StartTest {
        user_detail_dict,
        user_count: args.users,
        spawn_rate: args.spawn_rate,
        test_time: Some(args.time),
        host: Some(target.base_url()),
        tasks: Some(tasks()),
        ..StartTest::default()
    };

    test_record_instance().clear_records();
    let outcome = load_density::start_test(config);
    let served = target.served();
    runtime.block_on(target.shutdown());
    outcome.context("the demo run failed")?;

    let recorded = test_record_instance().stats().total().num_requests();
    println!("server counted {served} requests; LoadDensity recorded {recorded}");
    if served != recorded {
        eprintln!("error: the counts differ by {}", served.abs_diff(recorded));
        return Ok(false);
    }
    Ok(true)
}
