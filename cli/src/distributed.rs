//! `load-density master` and `load-density worker`: shorthands for `LD_start_test` with
//! `runner_mode` `"master"` or `"worker"`.
//!
//! ```text
//! load-density master --expect-workers 3 plan.json     bind *:5557, wait for 3 workers, run plan.json
//! load-density worker --master-host 10.0.0.5           join that master; it sends the plan
//! load-density worker --master-host locust-master plan.json
//!                                                      join a Locust master, running plan.json
//! LOAD_DENSITY_CLUSTER_TOKEN=s3cret load-density master plan.json
//!                                                      admit only workers that prove the token
//! ```
//!
//! A plan file holds `LD_start_test`'s keyword arguments as one JSON object (`user_count`,
//! `spawn_rate`, `test_time`, `tasks` or `user_groups`, `host`, `variables`, `csv_sources`...).
//! The summary is printed to stdout as one line of JSON; a worker whose master disappears
//! exits with status 1 and says so on stderr.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use load_density::StartTest;
use serde_json::{Map, Value};

/// `master`'s options.
#[derive(Debug, clap::Args)]
pub struct MasterArgs {
    /// Workers to wait for before starting (up to --expect-workers-timeout).
    #[arg(long, default_value_t = 1)]
    expect_workers: u32,
    /// Seconds to wait for them (or a duration such as "2m"); the run then starts with those
    /// that joined, and fails when none did.
    #[arg(long, value_parser = seconds_arg)]
    expect_workers_timeout: Option<f64>,
    /// Interface to listen on ("*" = all).
    #[arg(long, default_value = "*")]
    bind_host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 5557)]
    bind_port: u16,
    /// Total users (overrides the plan's user_count).
    #[arg(long, short = 'u')]
    users: Option<u64>,
    /// Users started per second (overrides the plan's spawn_rate).
    #[arg(long, short = 'r')]
    spawn_rate: Option<f64>,
    /// Run length (overrides the plan's test_time): seconds, or a duration such as "30s",
    /// "5m" or "1h30m".
    #[arg(long, short = 't', value_parser = seconds_arg)]
    run_time: Option<f64>,
    /// Shared secret LoadDensity workers prove (HMAC challenge) before the master admits
    /// them; default: env LOAD_DENSITY_CLUSTER_TOKEN. Locust workers cannot present one.
    #[arg(long)]
    cluster_token: Option<String>,
    /// The plan: LD_start_test's keyword arguments as a JSON object.
    plan: PathBuf,
}

/// `worker`'s options.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The master's host.
    #[arg(long, default_value = "127.0.0.1")]
    master_host: String,
    /// The master's port.
    #[arg(long, default_value_t = 5557)]
    master_port: u16,
    /// Seconds a master that has answered may then stay silent before this worker gives up
    /// (status 1; default 60). Until the master first answers, the worker keeps retrying
    /// (every few seconds), however long that takes. Seconds or a duration ("30s").
    #[arg(long, value_parser = seconds_arg)]
    master_timeout: Option<f64>,
    /// Shared secret LoadDensity workers prove (HMAC challenge) before the master admits
    /// them; default: env LOAD_DENSITY_CLUSTER_TOKEN. Locust workers cannot present one.
    #[arg(long)]
    cluster_token: Option<String>,
    /// Environment variables `${env.NAME}` in the master's plan may read (repeat, or
    /// comma-separated); by default none is read.
    #[arg(long, value_delimiter = ',')]
    allow_env: Vec<String>,
    /// A plan to run when the master is a Locust master (a LoadDensity master sends its own);
    /// its user groups must be named like the master's user classes.
    plan: Option<PathBuf>,
}

/// A number of seconds or a Locust duration ("30s", "1h30m").
fn seconds_arg(text: &str) -> Result<f64, String> {
    load_density::core::task::values::parse_duration(text)
}

fn read_plan(path: &Path) -> anyhow::Result<Map<String, Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    match value {
        Value::Object(map) => Ok(map),
        other => anyhow::bail!(
            "{} must hold one JSON object of LD_start_test keyword arguments, not {}",
            path.display(),
            match other {
                Value::Array(_) => "a list",
                _ => "a scalar",
            }
        ),
    }
}

fn run_config(mut plan: Map<String, Value>) -> anyhow::Result<bool> {
    let config: StartTest = serde_json::from_value(Value::Object(std::mem::take(&mut plan)))
        .context("invalid LD_start_test arguments")?;
    let summary = load_density::start_test(config)?;
    let summary = serde_json::json!({ "summary": summary });
    crate::output::note_summary(&summary["summary"]);
    load_density::console::print_line(summary).context("cannot write to stdout")?;
    Ok(true)
}

/// Runs a master to the end of its run.
pub fn master(args: &MasterArgs) -> anyhow::Result<bool> {
    let mut plan = read_plan(&args.plan)?;
    plan.insert("runner_mode".into(), "master".into());
    plan.insert("expected_workers".into(), args.expect_workers.into());
    plan.insert("master_bind_host".into(), args.bind_host.clone().into());
    plan.insert("master_bind_port".into(), args.bind_port.into());
    if let Some(timeout) = args.expect_workers_timeout {
        plan.insert("expected_workers_timeout".into(), timeout.into());
    }
    if let Some(users) = args.users {
        plan.insert("user_count".into(), users.into());
    }
    if let Some(rate) = args.spawn_rate {
        plan.insert("spawn_rate".into(), rate.into());
    }
    if let Some(time) = args.run_time {
        plan.insert("test_time".into(), time.into());
    }
    if let Some(token) = &args.cluster_token {
        plan.insert("cluster_token".into(), token.clone().into());
    }
    run_config(plan)
}

/// Runs a worker until its master tells it to quit (or disappears).
pub fn worker(args: &WorkerArgs) -> anyhow::Result<bool> {
    let mut plan = match &args.plan {
        Some(path) => read_plan(path)?,
        None => Map::new(),
    };
    plan.insert("runner_mode".into(), "worker".into());
    plan.insert("master_host".into(), args.master_host.clone().into());
    plan.insert("master_port".into(), args.master_port.into());
    if let Some(timeout) = args.master_timeout {
        plan.insert("master_timeout".into(), timeout.into());
    }
    if let Some(token) = &args.cluster_token {
        plan.insert("cluster_token".into(), token.clone().into());
    }
    if !args.allow_env.is_empty() {
        plan.insert("allow_env".into(), args.allow_env.clone().into());
    }
    run_config(plan)
}
