//! The action-document executor: runs JSON lists of `LD_*` commands.
//!
//! An **action document** is a list of actions, or an object whose `"load_density"` key holds
//! that list (other keys are ignored). An **action** is one of:
//!
//! - `["LD_command"]`: no arguments;
//! - `["LD_command", {"name": value, ...}]`: keyword arguments;
//! - `["LD_command", [value, ...]]`: positional arguments, matched to the command's parameter
//!   names in order.
//!
//! ```no_run
//! use load_density::executor;
//!
//! let results = executor::execute_str(r#"[
//!     ["LD_register_variable", {"name": "token", "value": "abc"}],
//!     ["LD_summary"]
//! ]"#)?;
//! assert!(results.iter().all(executor::ActionResult::is_ok));
//! # Ok::<(), executor::ExecutorError>(())
//! ```
//!
//! Every action runs, even when an earlier one failed, and the results come back as an
//! **ordered list**, one [`ActionResult`] per action: unlike the Python version, whose result
//! dict is keyed by the action's text, two identical actions give two results. The caller
//! decides what a failure means (the `load-density` CLI exits 1 when any action failed).
//!
//! Other differences from the Python executor, all on purpose:
//! - arguments must be an object or a list; a string is an error, not spread into characters;
//! - an unknown or mistyped argument is an error naming the command and the argument;
//! - only the commands of [`known_commands`] exist: no Python builtins, no package loading;
//!   crates add commands at build time instead ([`plugin`], [`register_command!`](crate::register_command));
//! - `LD_execute_action` and `LD_execute_files` return their nested results as ordered lists,
//!   and fail when a nested action failed (the nested results are kept in the `"results"` key);
//! - `LD_register_csv_sources` rejects an item without a name or a file path instead of
//!   skipping it;
//! - [`execute_dir`] fails on a missing directory or one without action files instead of
//!   quietly running nothing.

mod commands;
mod descriptions;
mod error;
mod nested;
pub mod plugin;

use std::fs;
use std::path::{Path, PathBuf};

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

pub use error::{error_chain, ExecutorError};
pub use nested::MAX_DEPTH;

/// The key of an object document that holds the action list.
pub const DOCUMENT_KEY: &str = "load_density";

/// The outcome of one action.
#[derive(Debug)]
pub struct ActionResult {
    /// Position of the action in its document, from 0.
    pub index: usize,
    /// The command name, when the action had one.
    pub command: Option<String>,
    /// The command's return value, or why the action failed.
    pub outcome: Result<Value, ExecutorError>,
}

impl ActionResult {
    /// Whether the action succeeded.
    pub fn is_ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

impl Serialize for ActionResult {
    /// `{"index": 0, "command": "LD_summary", "ok": <value>}` for a success,
    /// `{"index": 0, "command": "LD_x", "error": "<message and its causes>"}` for a failure.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("index", &self.index)?;
        map.serialize_entry("command", &self.command)?;
        match &self.outcome {
            Ok(value) => map.serialize_entry("ok", value)?,
            Err(error) => {
                map.serialize_entry("error", &error_chain(error))?;
                // A nested document's results are kept beside the error.
                if let ExecutorError::Nested { results, .. } = error {
                    map.serialize_entry("results", results)?;
                }
            }
        }
        map.end()
    }
}

/// The results of one action file.
#[derive(Debug)]
pub struct FileResults {
    /// The file.
    pub path: PathBuf,
    /// Its actions' results, or why the file could not be run at all.
    pub outcome: Result<Vec<ActionResult>, ExecutorError>,
}

impl FileResults {
    /// Whether the file was read and every action in it succeeded.
    pub fn all_ok(&self) -> bool {
        self.outcome
            .as_ref()
            .is_ok_and(|results| results.iter().all(ActionResult::is_ok))
    }
}

/// The names of every command, sorted: the built-in ones and those that linked crates
/// registered with [`register_command!`](crate::register_command).
pub fn known_commands() -> Vec<&'static str> {
    commands::known_commands()
}

/// One command as `load-density commands` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct CommandInfo {
    /// `LD_...`.
    pub name: &'static str,
    /// Keyword arguments, in positional order.
    pub params: Vec<&'static str>,
    /// Whether further keyword arguments are accepted (`LD_start_test`'s options).
    pub more_keywords: bool,
    /// A one-line description (may be empty).
    pub description: &'static str,
    /// Who provides it: `load-density (built in)`, or a crate and module.
    pub provider: String,
}

/// Every command with its parameters, sorted by name.
pub fn commands() -> Vec<CommandInfo> {
    commands::command_infos()
}

/// Fails when two crates (or a crate and the built-in table) registered the same command name;
/// every action fails with this error until the duplicate is removed.
pub fn check_commands() -> Result<(), ExecutorError> {
    commands::check_plugins()
}

/// Runs an action document that is already parsed.
///
/// Fails only when the document itself has the wrong shape (not a list, an empty list, an
/// object without the `"load_density"` key); a failing action is reported in its
/// [`ActionResult`] and the following actions still run.
pub fn execute_document(doc: &Value) -> Result<Vec<ActionResult>, ExecutorError> {
    execute_from(doc, None)
}

/// Parses and runs an action document given as JSON text.
///
/// A document that is a JSON string holding JSON is parsed once more (some shells, on Windows
/// in particular, hand over double-encoded JSON).
pub fn execute_str(json: &str) -> Result<Vec<ActionResult>, ExecutorError> {
    let doc = parse(json, None)?;
    let doc = match doc {
        Value::String(inner) => parse(&inner, None)?,
        other => other,
    };
    execute_document(&doc)
}

/// Reads and runs one action file.
///
/// A missing or unreadable file is an error naming the path; malformed JSON is an error naming
/// the path, line and column.
pub fn execute_file(path: &Path) -> Result<Vec<ActionResult>, ExecutorError> {
    let text = fs::read_to_string(path).map_err(|source| ExecutorError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let doc = parse(&text, Some(path))?;
    execute_from(&doc, Some(path))
}

/// Runs several action files in order. A file that cannot be read or parsed does not stop the
/// ones after it.
pub fn execute_files<P: AsRef<Path>>(paths: &[P]) -> Vec<FileResults> {
    paths
        .iter()
        .map(|path| FileResults {
            path: path.as_ref().to_path_buf(),
            outcome: execute_file(path.as_ref()),
        })
        .collect()
}

/// Runs every `*.json` file under `dir` (recursively), in path order.
///
/// Fails when the directory cannot be read or holds no action file; otherwise each file's
/// outcome is in its [`FileResults`].
pub fn execute_dir(dir: &Path) -> Result<Vec<FileResults>, ExecutorError> {
    let files: Vec<PathBuf> = action_files(dir)?
        .into_iter()
        .filter(|path| match skip_reason(path) {
            Some(reason) => {
                tracing::warn!(
                    file = %path.display(),
                    "skipped: not an action document ({reason})"
                );
                false
            }
            None => true,
        })
        .collect();
    if files.is_empty() {
        return Err(ExecutorError::NoActionFiles {
            path: dir.to_path_buf(),
        });
    }
    Ok(execute_files(&files))
}

/// Why `run-dir` skips a file: it is JSON, but not an action document (a report it wrote
/// earlier, such as `summary.json`, or a plan). A file that cannot be read or parsed is not
/// skipped: running it reports the error.
fn skip_reason(path: &Path) -> Option<String> {
    let doc: Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
    if is_action_document(&doc) {
        None
    } else {
        Some(
            action_list(&doc).err().unwrap_or_else(|| {
                "no element is an action [\"LD_command\", arguments]".to_owned()
            }),
        )
    }
}

/// Whether `doc` is an action document: a list of actions (or `{"load_density": [...]}`) of
/// which at least one is `["<command>", ...]`.
pub fn is_action_document(doc: &Value) -> bool {
    action_list(doc).is_ok_and(|list| {
        list.iter().any(|action| {
            action
                .as_array()
                .and_then(|items| items.first())
                .is_some_and(Value::is_string)
        })
    })
}

/// Every `*.json` file under `dir`, recursively, sorted by path.
///
/// Like the Python version, the extension must be lower-case `json`.
pub fn action_files(dir: &Path) -> Result<Vec<PathBuf>, ExecutorError> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let read_error = |source| ExecutorError::ReadDir {
            path: current.clone(),
            source,
        };
        for entry in fs::read_dir(&current).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(read_error)?;
            // Follow symbolic links to files, not to directories (no cycles).
            if file_type.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn parse(text: &str, path: Option<&Path>) -> Result<Value, ExecutorError> {
    serde_json::from_str(text).map_err(|error| ExecutorError::json(path, &error))
}

fn execute_from(doc: &Value, path: Option<&Path>) -> Result<Vec<ActionResult>, ExecutorError> {
    let actions = action_list(doc).map_err(|reason| ExecutorError::Document {
        path: path.map(Path::to_path_buf),
        reason,
    })?;
    Ok(actions
        .iter()
        .enumerate()
        .map(|(index, action)| run_action(index, action))
        .collect())
}

fn action_list(doc: &Value) -> Result<&[Value], String> {
    let list = match doc {
        Value::Array(list) => list,
        Value::Object(map) => match map.get(DOCUMENT_KEY) {
            Some(Value::Array(list)) => list,
            Some(other) => {
                return Err(format!(
                    "\"{DOCUMENT_KEY}\" must be a list of actions, got {}",
                    kind(other)
                ))
            }
            None => {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(format!(
                    "the object has no \"{DOCUMENT_KEY}\" key holding the action list (keys: {})",
                    if keys.is_empty() {
                        "none".to_owned()
                    } else {
                        keys.join(", ")
                    }
                ));
            }
        },
        other => {
            return Err(format!(
                "expected a list of actions or an object with a \"{DOCUMENT_KEY}\" list, got {}",
                kind(other)
            ))
        }
    };
    if list.is_empty() {
        return Err("the action list is empty".to_owned());
    }
    Ok(list)
}

/// Commands a document skips once Ctrl-C was pressed: those that start a test. Everything
/// else (reports, summaries) still runs, so the results of what ran are written.
const SKIPPED_AFTER_CTRL_C: &[&str] = &["LD_start_test"];

fn run_action(index: usize, action: &Value) -> ActionResult {
    let invalid = |command: Option<String>, reason: String| ActionResult {
        index,
        command,
        outcome: Err(ExecutorError::Action { index, reason }),
    };
    let items = match action {
        Value::Array(items) => items,
        other => {
            return invalid(
                None,
                format!(
                    "expected [\"LD_command\"] or [\"LD_command\", arguments], got {}",
                    kind(other)
                ),
            )
        }
    };
    let name = match items.first() {
        None => {
            return invalid(
                None,
                "the action is empty; expected [\"LD_command\", ...]".into(),
            )
        }
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return invalid(
                None,
                format!("the command name must be a string, got {}", kind(other)),
            )
        }
    };
    if items.len() > 2 {
        return invalid(
            Some(name),
            format!(
                "expected [command] or [command, arguments], got {} elements (put several \
                 positional arguments in one list)",
                items.len()
            ),
        );
    }
    if SKIPPED_AFTER_CTRL_C.contains(&name.as_str()) && crate::interrupt::interrupted() {
        return invalid(
            Some(name),
            "not run: the document was interrupted by Ctrl-C".to_owned(),
        );
    }
    tracing::debug!(index, command = %name, "running action");
    let outcome = commands::dispatch(&name, items.get(1));
    if let Err(error) = &outcome {
        tracing::debug!(index, command = %name, error = %error_chain(error), "action failed");
    }
    ActionResult {
        index,
        command: Some(name),
        outcome,
    }
}

/// "a string", "an object", ... for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
