//! `LD_execute_action` and `LD_execute_files`: documents run from inside a document.
//!
//! The nested results come back in order, as JSON: a list of `{"index", "command", "ok" |
//! "error"}` for a document, and a list of `{"file", "results" | "error"}` for files. When a
//! nested action fails, the outer action fails too ([`ExecutorError::Nested`]) and still carries
//! every nested result. Nesting is limited to [`MAX_DEPTH`] levels, which stops a file that runs
//! itself.

use std::cell::Cell;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::{error_chain, ActionResult, ExecutorError};

/// How deep documents may nest (a document running a document running ...).
pub const MAX_DEPTH: usize = 16;

thread_local! {
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Holds one nesting level while it lives.
struct Level;

impl Level {
    fn enter(command: &'static str) -> Result<Self, ExecutorError> {
        let depth = DEPTH.with(Cell::get);
        if depth >= MAX_DEPTH {
            return Err(ExecutorError::TooDeep {
                command,
                max: MAX_DEPTH,
            });
        }
        DEPTH.with(|d| d.set(depth + 1));
        Ok(Level)
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// Runs `document` (a list of actions, or `{"load_density": [...]}`).
pub(super) fn execute_action(
    command: &'static str,
    document: &Value,
) -> Result<Value, ExecutorError> {
    let _level = Level::enter(command)?;
    let results = super::execute_document(document).map_err(|error| ExecutorError::Arguments {
        command,
        message: format!("argument \"action_list\": {}", error_chain(&error)),
    })?;
    let failed = results.iter().filter(|r| !r.is_ok()).count();
    let total = results.len();
    let value = results_json(&results);
    finish(command, failed, total, value)
}

/// Runs each file in order; a file that cannot be read does not stop the others.
pub(super) fn execute_files(
    command: &'static str,
    files: &[PathBuf],
) -> Result<Value, ExecutorError> {
    let _level = Level::enter(command)?;
    let mut failed = 0;
    let mut list = Vec::with_capacity(files.len());
    for file in super::execute_files(files) {
        let path = file.path.display().to_string();
        if !file.all_ok() {
            failed += 1;
        }
        list.push(match &file.outcome {
            Ok(results) => json!({"file": path, "results": results_json(results)}),
            Err(error) => json!({"file": path, "error": error_chain(error)}),
        });
    }
    finish(command, failed, files.len(), Value::Array(list))
}

fn results_json(results: &[ActionResult]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or_else(|e| json!({"error": e.to_string()})))
            .collect(),
    )
}

fn finish(
    command: &'static str,
    failed: usize,
    total: usize,
    results: Value,
) -> Result<Value, ExecutorError> {
    if failed == 0 {
        Ok(results)
    } else {
        Err(ExecutorError::Nested {
            command,
            failed,
            total,
            results,
        })
    }
}
