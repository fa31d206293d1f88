//! The test plan a LoadDensity master sends its workers (message [`PLAN_MESSAGE`]): the whole
//! `start_test` configuration with the registered variables folded in, the task proxy's tasks
//! filled in, and every CSV source's file contents, so a worker needs nothing but the master's
//! address.
//!
//! Data: `{"config": "<StartTest as JSON>", "files": [bin, ...]}`; each CSV source's
//! `file_path` in the config reads `ld-file:<index into files>`.

use std::path::{Path, PathBuf};

use rmpv::Value;
use serde_json::{json, Map};

use super::wire::{self, get, kind_of, Message, WireError};
use super::PLAN_MESSAGE;
use crate::config::StartTest;
use crate::error::RunError;
use crate::globals;

const FILE_PREFIX: &str = "ld-file:";

/// Builds the plan's data from the master's configuration.
pub(crate) fn build(config: &StartTest) -> Result<Value, RunError> {
    let mut plan = config.clone();
    plan.runner_mode = "worker".to_owned();
    // A worker serves no UI; its master does.
    plan.web_ui_dict = None;
    // Registered variables under the run's own.
    let mut variables: Map<String, serde_json::Value> = Map::new();
    let registered = globals::registered_variables();
    for (name, value) in registered.iter() {
        variables.insert(name.to_owned(), value.clone());
    }
    if let Some(own) = &config.variables {
        variables.extend(own.clone());
    }
    plan.variables = (!variables.is_empty()).then_some(variables);
    // Tasks registered through the task proxy travel as plain tasks.
    if plan.tasks.is_none() && plan.user_groups.is_none() {
        let user_type = config.user_type().map_err(RunError::Config)?;
        plan.tasks = load_density_core::locust_wrapper_proxy()
            .get(user_type)
            .map(|entry| entry.tasks);
    }
    // CSV sources: the registered ones, replaced by the run's own of the same name.
    let mut sources: Vec<serde_json::Value> = globals::registered_csv_sources()
        .into_iter()
        .map(|s| json!({"name": s.name, "file_path": s.file_path, "cycle": s.cycle}))
        .collect();
    if let Some(own) = &config.csv_sources {
        let list = own
            .as_array()
            .cloned()
            .ok_or_else(|| RunError::Config(format!("csv_sources must be a list, got {own}")))?;
        for source in list {
            let name = source.get("name").cloned();
            sources.retain(|s| name.is_none() || s.get("name") != name.as_ref());
            sources.push(source);
        }
    }
    let mut files = Vec::with_capacity(sources.len());
    for source in &mut sources {
        let Some(path) = source.get("file_path").and_then(|p| p.as_str()) else {
            return Err(RunError::Config(format!(
                "csv source {source} has no file_path"
            )));
        };
        let contents = std::fs::read(path).map_err(|e| {
            RunError::Config(format!(
                "cannot read csv source file {path} to send it to workers: {e}"
            ))
        })?;
        source["file_path"] = json!(format!("{FILE_PREFIX}{}", files.len()));
        files.push(Value::Binary(contents));
    }
    plan.csv_sources = (!sources.is_empty()).then(|| serde_json::Value::Array(sources));
    let text = serde_json::to_string(&plan)
        .map_err(|e| RunError::Config(format!("cannot serialize the plan: {e}")))?;
    Ok(wire::map([
        ("config", Value::from(text)),
        ("files", Value::Array(files)),
    ]))
}

/// Reads a plan message, writes its CSV files under `dir` and returns the configuration with
/// their paths.
pub(crate) fn read(msg: &Message, dir: &Path) -> Result<StartTest, WireError> {
    debug_assert_eq!(msg.kind, PLAN_MESSAGE);
    let text = wire::req_str(msg, "config")?;
    let mut config: StartTest = serde_json::from_str(text)
        .map_err(|e| msg.field_error(format!("config is not a start_test configuration: {e}")))?;
    let files = match get(&msg.data, "files") {
        None | Some(Value::Nil) => Vec::new(),
        Some(Value::Array(files)) => files.clone(),
        Some(other) => {
            return Err(msg.field_error(format!("files is {}, not an array", kind_of(other))))
        }
    };
    let mut written: Vec<Option<PathBuf>> = vec![None; files.len()];
    let sources = match config.csv_sources.as_mut() {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(sources)) => Some(sources),
        Some(other) => {
            return Err(msg.field_error(format!("csv_sources is {other}, not a list")));
        }
    };
    // A worker reads CSV data only from what its master ships: a path of the worker's own
    // file system would let a plan read local files and send them to a target.
    for (position, source) in sources.into_iter().flatten().enumerate() {
        let path = source.get("file_path");
        let Some(index) = path
            .and_then(|p| p.as_str())
            .and_then(|p| p.strip_prefix(FILE_PREFIX))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            return Err(msg.field_error(format!(
                "csv_sources[{position}].file_path is {}, not a file shipped with the plan \
                 ({FILE_PREFIX}N): a worker reads CSV data only from its master's plan",
                path.map_or_else(|| "missing".to_owned(), ToString::to_string)
            )));
        };
        let Some(Value::Binary(contents)) = files.get(index) else {
            return Err(msg.field_error(format!("files[{index}] is missing or not binary")));
        };
        let path = match &written[index] {
            Some(path) => path.clone(),
            None => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    msg.field_error(format!("cannot create {}: {e}", dir.display()))
                })?;
                let path = dir.join(format!("{index}.csv"));
                std::fs::write(&path, contents).map_err(|e| {
                    msg.field_error(format!("cannot write {}: {e}", path.display()))
                })?;
                written[index] = Some(path.clone());
                path
            }
        };
        source["file_path"] = json!(path.display().to_string());
    }
    config.runner_mode = "worker".to_owned();
    Ok(config)
}
