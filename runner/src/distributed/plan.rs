//! The test plan a LoadDensity master sends its workers (message [`PLAN_MESSAGE`]): the whole
//! `start_test` configuration with the registered variables folded in, the task proxy's tasks
//! filled in, and every CSV source's file contents, so a worker needs nothing but the master's
//! address.
//!
//! Data: `{"config": "<StartTest as JSON>", "files": [bin, ...]}`; each CSV source's
//! `file_path` in the config reads `ld-file:<index into files>`, and so does every option
//! naming a file a protocol reads when the run is prepared ([`FILE_OPTIONS`]: `ca_file`,
//! `descriptor_set`), wherever it is given: a top-level keyword, `user_detail_dict`, a
//! `user_groups` entry, or a task. Those files are at most [`MAX_SHIPPED_FILE`] bytes each.
//! A worker writes what it received under its own directory and opens nothing else: a plan
//! that names a path of the worker's file system is refused.

use std::path::{Path, PathBuf};

use rmpv::Value;
use serde_json::{json, Map};

use super::wire::{self, get, kind_of, Message, WireError};
use super::PLAN_MESSAGE;
use crate::config::StartTest;
use crate::error::RunError;
use crate::globals;

const FILE_PREFIX: &str = "ld-file:";

/// Options whose value is the path of a file a protocol reads when a run is prepared.
pub const FILE_OPTIONS: &[&str] = &["ca_file", "descriptor_set"];

/// The largest `ca_file` or `descriptor_set` a master reads and ships (16 MiB).
pub const MAX_SHIPPED_FILE: u64 = 16 * 1024 * 1024;

/// Calls `f` on every options map of `config` where a [`FILE_OPTIONS`] key may sit, with the
/// JSON path of the map (`""`, `"user_detail_dict."`, `"user_groups[1]."`, `"tasks[0]."`,
/// `"user_groups[1].tasks[0]."`).
fn for_each_option_map<E>(
    config: &mut StartTest,
    mut f: impl FnMut(&mut Map<String, serde_json::Value>, &str) -> Result<(), E>,
) -> Result<(), E> {
    f(&mut config.extra, "")?;
    f(&mut config.user_detail_dict, "user_detail_dict.")?;
    fn tasks<E>(
        tasks: Option<&mut serde_json::Value>,
        at: &str,
        f: &mut impl FnMut(&mut Map<String, serde_json::Value>, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(serde_json::Value::Array(list)) = tasks {
            for (i, task) in list.iter_mut().enumerate() {
                if let serde_json::Value::Object(task) = task {
                    f(task, &format!("{at}tasks[{i}]."))?;
                }
            }
        }
        Ok(())
    }
    tasks(config.tasks.as_mut(), "", &mut f)?;
    for (i, group) in config.user_groups.iter_mut().flatten().enumerate() {
        if let serde_json::Value::Object(group) = group {
            let at = format!("user_groups[{i}].");
            f(group, &at)?;
            tasks(group.get_mut("tasks"), &at, &mut f)?;
        }
    }
    Ok(())
}

/// Reads a [`FILE_OPTIONS`] file to ship, refusing one larger than [`MAX_SHIPPED_FILE`].
fn read_capped(path: &str, at: &str) -> Result<Vec<u8>, RunError> {
    use std::io::Read as _;
    let cannot = |e: std::io::Error| {
        RunError::Config(format!(
            "{at}: cannot read {path:?} to send it to workers: {e}"
        ))
    };
    let mut contents = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_SHIPPED_FILE + 1)
        .read_to_end(&mut contents)
        .map_err(cannot)?;
    if contents.len() as u64 > MAX_SHIPPED_FILE {
        return Err(RunError::Config(format!(
            "{at}: {path:?} is larger than {MAX_SHIPPED_FILE} bytes, too large to send to workers"
        )));
    }
    Ok(contents)
}

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
    // CA files and descriptor sets: shipped too, so a worker opens no path its master named.
    for_each_option_map(&mut plan, |options, at| {
        for key in FILE_OPTIONS {
            if let Some(serde_json::Value::String(path)) = options.get(*key) {
                let contents = read_capped(path, &format!("{at}{key}"))?;
                options.insert(
                    (*key).to_owned(),
                    json!(format!("{FILE_PREFIX}{}", files.len())),
                );
                files.push(Value::Binary(contents));
            }
        }
        Ok::<(), RunError>(())
    })?;
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
        let path = materialize(msg, dir, &files, &mut written, index, "csv")?;
        source["file_path"] = json!(path.display().to_string());
    }
    // The same for CA files and descriptor sets: only shipped files, never a local path.
    for_each_option_map(&mut config, |options, at| {
        for key in FILE_OPTIONS {
            let Some(value) = options.get(*key) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let Some(index) = value
                .as_str()
                .and_then(|p| p.strip_prefix(FILE_PREFIX))
                .and_then(|i| i.parse::<usize>().ok())
            else {
                return Err(msg.field_error(format!(
                    "{at}{key} is {value}, not a file shipped with the plan ({FILE_PREFIX}N): \
                     a worker opens no file its master names"
                )));
            };
            let path = materialize(msg, dir, &files, &mut written, index, key)?;
            options.insert((*key).to_owned(), json!(path.display().to_string()));
        }
        Ok(())
    })?;
    config.runner_mode = "worker".to_owned();
    Ok(config)
}

/// Writes shipped file `index` under `dir` (once) and returns its path.
fn materialize(
    msg: &Message,
    dir: &Path,
    files: &[Value],
    written: &mut [Option<PathBuf>],
    index: usize,
    kind: &str,
) -> Result<PathBuf, WireError> {
    let Some(Value::Binary(contents)) = files.get(index) else {
        return Err(msg.field_error(format!("files[{index}] is missing or not binary")));
    };
    if let Some(path) = &written[index] {
        return Ok(path.clone());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| msg.field_error(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{index}.{kind}"));
    std::fs::write(&path, contents)
        .map_err(|e| msg.field_error(format!("cannot write {}: {e}", path.display())))?;
    written[index] = Some(path.clone());
    Ok(path)
}
