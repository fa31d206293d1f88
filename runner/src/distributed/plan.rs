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
//! gRPC `proto_files` travel with every file they import (found under `import_paths`, else
//! each named file's directory; the built-in `google/protobuf/*` types excepted), each entry
//! reading `ld-proto:<index>:<path under the import root>` (`ld-proto-import:` for an
//! import), at most [`MAX_SHIPPED_PROTO_FILES`] per options map; the worker writes them under a
//! directory of its own and compiles them there.
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
/// A shipped `.proto` file named in `proto_files`: `ld-proto:<index>:<path under the root>`.
const PROTO_PREFIX: &str = "ld-proto:";
/// A shipped `.proto` file another one imports: `ld-proto-import:<index>:<import path>`.
const PROTO_IMPORT_PREFIX: &str = "ld-proto-import:";
/// The most `.proto` files (named and imported) one options map ships.
pub const MAX_SHIPPED_PROTO_FILES: usize = 1_000;

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
    // gRPC `.proto` files and the files they import: shipped with their import paths, so a
    // worker compiles them under a directory of its own.
    for_each_option_map(&mut plan, |options, at| {
        ship_proto_files(options, at, &mut files)
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
    for_each_option_map(&mut config, |options, at| {
        receive_proto_files(msg, options, at, &files, &dir.join("proto"))
    })?;
    config.runner_mode = "worker".to_owned();
    Ok(config)
}

/// A string or a list of strings at `options[key]` (`None` when absent or null).
fn string_list(
    options: &Map<String, serde_json::Value>,
    key: &str,
) -> Option<Result<Vec<String>, String>> {
    match options.get(key)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(one) => Some(Ok(vec![one.clone()])),
        serde_json::Value::Array(list) => Some(
            list.iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("{key} holds {item}, not a path"))
                })
                .collect(),
        ),
        other => Some(Err(format!(
            "{key} is {other}, not a path or a list of paths"
        ))),
    }
}

/// The files a `.proto` source imports (`import "a/b.proto";`, also `public` and `weak`),
/// but the well-known `google/protobuf/*` types, which the compiler has built in.
fn proto_imports(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("import")?;
            let rest = rest.trim_start();
            let rest = rest
                .strip_prefix("public")
                .or_else(|| rest.strip_prefix("weak"))
                .unwrap_or(rest)
                .trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let inner = &rest[1..];
            let end = inner.find(quote)?;
            Some(inner[..end].to_owned())
        })
        .filter(|path| !path.starts_with("google/protobuf/"))
        .collect()
}

/// The `.proto` files of one options map on their way into the plan.
#[derive(Default)]
struct ProtoShipping {
    /// The entries `proto_files` gets.
    shipped: Vec<serde_json::Value>,
    /// Paths under the root already shipped (or looked for).
    seen: Vec<String>,
    /// Imports still to look for.
    pending: Vec<String>,
}

impl ProtoShipping {
    fn ship(
        &mut self,
        path: &Path,
        relative: String,
        prefix: &str,
        at: &str,
        files: &mut Vec<Value>,
    ) -> Result<(), RunError> {
        if self.seen.len() >= MAX_SHIPPED_PROTO_FILES {
            return Err(RunError::Config(format!(
                "{at}proto_files: more than {MAX_SHIPPED_PROTO_FILES} .proto files with their \
                 imports, too many to send to workers"
            )));
        }
        let contents = read_capped(&path.display().to_string(), &format!("{at}proto_files"))?;
        self.pending
            .extend(proto_imports(&String::from_utf8_lossy(&contents)));
        self.seen.push(relative.clone());
        self.shipped
            .push(json!(format!("{prefix}{}:{relative}", files.len())));
        files.push(Value::Binary(contents));
        Ok(())
    }
}

/// Master side: replaces `proto_files` (and `import_paths`) by the shipped files, named and
/// imported, each with its path under the import root, as the compiler will look it up.
fn ship_proto_files(
    options: &mut Map<String, serde_json::Value>,
    at: &str,
    files: &mut Vec<Value>,
) -> Result<(), RunError> {
    let Some(named) = string_list(options, "proto_files") else {
        return Ok(());
    };
    let config_error = |e: String| RunError::Config(format!("{at}{e}"));
    let named = named.map_err(config_error)?;
    let import_paths = string_list(options, "import_paths")
        .transpose()
        .map_err(config_error)?
        .unwrap_or_default();
    // As the gRPC user compiles them: the import paths, else each named file's directory.
    let roots: Vec<PathBuf> = if import_paths.is_empty() {
        named
            .iter()
            .map(|file| {
                Path::new(file)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
            })
            .collect()
    } else {
        import_paths.iter().map(PathBuf::from).collect()
    };
    let mut shipping = ProtoShipping::default();
    for file in &named {
        let path = Path::new(file);
        let relative = roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())
            .or_else(|| path.file_name().map(Path::new))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| file.clone());
        shipping.ship(path, relative, PROTO_PREFIX, at, files)?;
    }
    while let Some(import) = shipping.pending.pop() {
        if shipping.seen.contains(&import) {
            continue;
        }
        // An import found under no root is left to the worker's compiler, whose error names it.
        match roots
            .iter()
            .map(|root| root.join(&import))
            .find(|p| p.is_file())
        {
            Some(path) => shipping.ship(&path, import, PROTO_IMPORT_PREFIX, at, files)?,
            None => shipping.seen.push(import),
        }
    }
    let shipped = shipping.shipped;
    options.insert("proto_files".to_owned(), serde_json::Value::Array(shipped));
    options.remove("import_paths");
    Ok(())
}

/// Worker side: writes the shipped `.proto` files under `root` (each at its path under the
/// import root, which must stay under it) and points `proto_files` and `import_paths` there.
/// A plan naming a `.proto` file or an import path of the worker's file system is refused.
fn receive_proto_files(
    msg: &Message,
    options: &mut Map<String, serde_json::Value>,
    at: &str,
    files: &[Value],
    root: &Path,
) -> Result<(), WireError> {
    if options.get("import_paths").is_some_and(|v| !v.is_null()) {
        return Err(msg.field_error(format!(
            "{at}import_paths is set: a worker opens no path its master names (a LoadDensity \
             master ships .proto files with their imports)"
        )));
    }
    let Some(entries) = string_list(options, "proto_files") else {
        return Ok(());
    };
    let entries = entries.map_err(|e| msg.field_error(format!("{at}{e}")))?;
    let mut named = Vec::new();
    for entry in &entries {
        let (is_named, rest) = match (
            entry.strip_prefix(PROTO_PREFIX),
            entry.strip_prefix(PROTO_IMPORT_PREFIX),
        ) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            (None, None) => {
                return Err(msg.field_error(format!(
                    "{at}proto_files holds {entry:?}, not a file shipped with the plan: a \
                     worker opens no file its master names"
                )))
            }
        };
        let parsed = rest
            .split_once(':')
            .and_then(|(index, relative)| Some((index.parse::<usize>().ok()?, relative)));
        let relative_ok = |relative: &str| {
            let path = Path::new(relative);
            !relative.is_empty()
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
        };
        let Some((index, relative)) = parsed.filter(|(_, r)| relative_ok(r)) else {
            return Err(msg.field_error(format!(
                "{at}proto_files holds {entry:?}, not <index>:<a relative path under the root>"
            )));
        };
        let Some(Value::Binary(contents)) = files.get(index) else {
            return Err(msg.field_error(format!("files[{index}] is missing or not binary")));
        };
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| msg.field_error(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, contents)
            .map_err(|e| msg.field_error(format!("cannot write {}: {e}", path.display())))?;
        if is_named {
            named.push(json!(path.display().to_string()));
        }
    }
    options.insert("proto_files".to_owned(), serde_json::Value::Array(named));
    options.insert(
        "import_paths".to_owned(),
        json!([root.display().to_string()]),
    );
    Ok(())
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
