//! Printing action results: one JSON line each on stdout, failures also on stderr.

use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use load_density::console::eprint_line;
use load_density::executor::{error_chain, ActionResult, ExecutorError, FileResults};
use serde_json::{Map, Value};

static THRESHOLD_FAILED: AtomicBool = AtomicBool::new(false);

/// Notes a run's summary: a `verdict` other than `passed` makes the exit status 99.
pub fn note_summary(summary: &Value) {
    if matches!(
        summary.get("verdict").and_then(Value::as_str),
        Some("failed" | "aborted")
    ) {
        THRESHOLD_FAILED.store(true, Ordering::Relaxed);
    }
}

/// Whether a run's thresholds failed or aborted it.
pub fn threshold_failed() -> bool {
    THRESHOLD_FAILED.load(Ordering::Relaxed)
}

/// Prints every file's results; `Ok(true)` when every file ran and every action succeeded.
pub fn print_files(files: &[FileResults]) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for file in files {
        match &file.outcome {
            Ok(results) => all_ok &= print_results(Some(&file.path), results)?,
            Err(error) => {
                // The error result line on stdout too, as for a failed action.
                let line = serde_json::json!({
                    "file": file.path.display().to_string(),
                    "error": error_chain(error),
                });
                let mut stdout = std::io::stdout().lock();
                writeln!(stdout, "{line}").context("cannot write to stdout")?;
                stdout.flush().context("cannot write to stdout")?;
                eprint_line(format_args!("error: {}", error_chain(error)));
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

/// Prints one document's results; `Ok(true)` when every action succeeded.
pub fn print_results(file: Option<&Path>, results: &[ActionResult]) -> anyhow::Result<bool> {
    let mut stdout = std::io::stdout().lock();
    let mut all_ok = true;
    for result in results {
        if let (Some("LD_start_test"), Ok(summary)) = (result.command.as_deref(), &result.outcome) {
            note_summary(summary);
        }
        let line = result_line(file, result)?;
        writeln!(stdout, "{line}").context("cannot write to stdout")?;
        if let Err(error) = &result.outcome {
            all_ok = false;
            stdout.flush().context("cannot write to stdout")?;
            eprint_line(format_args!(
                "error: {}",
                describe_failure(file, result, error)
            ));
        }
    }
    stdout.flush().context("cannot write to stdout")?;
    Ok(all_ok)
}

/// `{"file"?, "index", "command", "ok" | "error"}` as one line.
fn result_line(file: Option<&Path>, result: &ActionResult) -> anyhow::Result<String> {
    let Value::Object(fields) =
        serde_json::to_value(result).context("cannot convert a result to JSON")?
    else {
        anyhow::bail!("an action result did not serialize to a JSON object");
    };
    let mut line = Map::new();
    if let Some(file) = file {
        line.insert("file".to_owned(), Value::String(file.display().to_string()));
    }
    line.extend(fields);
    Ok(Value::Object(line).to_string())
}

/// `a.json: action 1 (LD_x): <message>`; shape errors already name their action.
fn describe_failure(file: Option<&Path>, result: &ActionResult, error: &ExecutorError) -> String {
    let mut text = String::new();
    if let Some(file) = file {
        text.push_str(&format!("{}: ", file.display()));
    }
    if !matches!(error, ExecutorError::Action { .. }) {
        match &result.command {
            Some(command) => text.push_str(&format!("action {} ({command}): ", result.index)),
            None => text.push_str(&format!("action {}: ", result.index)),
        }
    }
    text.push_str(&error_chain(error));
    text
}
