//! Helpers shared by the HAR tests.

#![allow(dead_code)]

use anyhow::{anyhow, Context};
use load_density::core::test_record_instance;
use load_density::executor::{self, error_chain};
use serde_json::{json, Value};

/// Replays `plan` for `seconds` with two users; returns (requests, failures) of the run.
pub fn replay(mut plan: Value, seconds: u64) -> anyhow::Result<(u64, u64)> {
    let start = &mut plan["load_density"][0][1];
    start["user_count"] = json!(2);
    start["spawn_rate"] = json!(10);
    start["test_time"] = json!(seconds);
    start["print_stats"] = json!(false);
    test_record_instance().clear_records();
    let results = executor::execute_document(&plan)?;
    let summary = match &results[0].outcome {
        Ok(summary) => summary.clone(),
        Err(error) => return Err(anyhow!("replay failed: {}", error_chain(error))),
    };
    let requests = summary["totals"]["requests"].as_u64().context("requests")?;
    let failures = summary["totals"]["failures"].as_u64().context("failures")?;
    Ok((requests, failures))
}
