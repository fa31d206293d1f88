//! The latest threshold results of the run being monitored in this process, for the web UI.
//!
//! The run monitor publishes each evaluation here (and the final one at the end); the web UI's
//! once-a-second update carries it. A process runs one monitored test at a time in practice
//! (the CLI, an action document); when two run at once, the page shows the latest evaluation of
//! either.

use parking_lot::Mutex;

use super::ThresholdResult;

static LIVE: Mutex<Vec<ThresholdResult>> = Mutex::new(Vec::new());

/// Replaces the published results.
pub(crate) fn publish(results: &[ThresholdResult]) {
    let mut live = LIVE.lock();
    live.clear();
    live.extend_from_slice(results);
}

/// The latest published results (empty without thresholds).
pub fn live_results() -> Vec<ThresholdResult> {
    LIVE.lock().clone()
}
