//! One test at a time for the control surfaces (control socket, MCP server).
//!
//! The record store, the registered variables and the console are process-wide, so two tests
//! started by two clients at once would mix their records. A control surface takes the slot
//! before it starts a test; a client asking for a second one is told that one is running (and
//! by whom) instead of getting a run queued behind it or mixed into it.

use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;

struct Holder {
    owner: String,
    since: Instant,
}

static SLOT: Mutex<Option<Holder>> = Mutex::new(None);

/// A test is already running.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "a test is already running (started by {owner} {}s ago); this one was not started",
    running_for.as_secs()
)]
pub struct RunBusy {
    /// Who started the running test.
    pub owner: String,
    /// For how long it has run.
    pub running_for: Duration,
}

/// The slot, held until dropped.
#[derive(Debug)]
pub struct RunGuard(());

impl Drop for RunGuard {
    fn drop(&mut self) {
        *SLOT.lock() = None;
    }
}

/// Takes the slot for `owner` (e.g. `control socket client 127.0.0.1:5000`).
///
/// # Errors
/// [`RunBusy`] when another test holds it.
pub fn try_start(owner: impl Into<String>) -> Result<RunGuard, RunBusy> {
    let mut slot = SLOT.lock();
    if let Some(holder) = slot.as_ref() {
        return Err(RunBusy {
            owner: holder.owner.clone(),
            running_for: holder.since.elapsed(),
        });
    }
    *slot = Some(Holder {
        owner: owner.into(),
        since: Instant::now(),
    });
    Ok(RunGuard(()))
}

/// Whether an action document may start a test: it names `LD_start_test` anywhere, or runs
/// files (`LD_execute_files`), whose contents are not known yet.
pub fn may_start_a_test(document: &Value) -> bool {
    match document {
        Value::String(text) => text == "LD_start_test" || text == "LD_execute_files",
        Value::Array(items) => items.iter().any(may_start_a_test),
        Value::Object(map) => map.values().any(may_start_a_test),
        _ => false,
    }
}
