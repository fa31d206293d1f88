//! The watcher: evaluates thresholds once a second during a run and stops it on an abort.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{Observation, ThresholdResult, Thresholds, Verdict};
use crate::control::RunControl;
use crate::env::RunState;

/// How often conditions are evaluated during a run.
pub const EVALUATION_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Shared {
    /// The flattened index of the condition that aborted the run.
    aborted_by: Option<usize>,
    latest: Vec<ThresholdResult>,
}

/// Evaluates a run's thresholds; see [`watch`].
pub struct Watcher {
    control: Arc<dyn RunControl>,
    thresholds: Thresholds,
    started: Instant,
    checks_base: (u64, u64),
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

fn checks_since(base: (u64, u64)) -> Option<(u64, u64)> {
    let (passed, failed) = load_density_core::checks::assertion_counts();
    Some((passed.saturating_sub(base.0), failed.saturating_sub(base.1)))
}

/// Starts evaluating `thresholds` on `control`'s live statistics once a second, on the
/// current tokio runtime, until the run stops. A failing `abort_on_fail` condition past its
/// delay stops the run. Call [`Watcher::finish`] once the run has stopped.
pub fn watch(control: Arc<dyn RunControl>, thresholds: Thresholds) -> Watcher {
    let started = Instant::now();
    let checks_base = load_density_core::checks::assertion_counts();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let task = tokio::spawn({
        let control = control.clone();
        let thresholds = thresholds.clone();
        let shared = shared.clone();
        async move {
            let mut interval = tokio::time::interval_at(
                tokio::time::Instant::now() + EVALUATION_INTERVAL,
                EVALUATION_INTERVAL,
            );
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if control.state() == RunState::Stopped {
                    break;
                }
                let stats = control.stats();
                let elapsed_s = started.elapsed().as_secs_f64();
                let results = thresholds.evaluate(&Observation {
                    stats: Some(&stats),
                    elapsed_s,
                    checks: checks_since(checks_base),
                    dropped_iterations: None,
                });
                let abort =
                    thresholds
                        .conditions()
                        .zip(&results)
                        .position(|(condition, result)| {
                            condition.abort_on_fail
                                && !result.ok
                                && elapsed_s >= condition.delay_abort_eval_s
                        });
                let mut state = shared.lock();
                state.latest = results;
                if let Some(index) = abort {
                    state.aborted_by = Some(index);
                    let result = &state.latest[index];
                    tracing::warn!(
                        metric = %result.metric,
                        condition = %result.condition,
                        value = %result.value_text(),
                        "threshold failed with abort_on_fail: stopping the run"
                    );
                    drop(state);
                    control.stop();
                    break;
                }
            }
        }
    });
    Watcher {
        control,
        thresholds,
        started,
        checks_base,
        shared,
        task,
    }
}

impl Watcher {
    /// The results of the latest evaluation during the run.
    pub fn latest(&self) -> Vec<ThresholdResult> {
        self.shared.lock().latest.clone()
    }

    /// Whether an abort condition stopped the run.
    pub fn aborted(&self) -> bool {
        self.shared.lock().aborted_by.is_some()
    }

    /// Stops watching and evaluates once more on the final statistics; `duration_s` is the
    /// run's length (rates divide by it; 0 uses the time since [`watch`]).
    pub fn finish(self, duration_s: f64) -> (Vec<ThresholdResult>, Verdict) {
        self.task.abort();
        let stats = self.control.stats();
        let elapsed_s = if duration_s > 0.0 {
            duration_s
        } else {
            self.started.elapsed().as_secs_f64()
        };
        let mut results = self.thresholds.evaluate(&Observation {
            stats: Some(&stats),
            elapsed_s,
            checks: checks_since(self.checks_base),
            dropped_iterations: None,
        });
        let aborted_by = self.shared.lock().aborted_by;
        let verdict = if let Some(index) = aborted_by {
            // The condition that stopped the run failed, whatever the last seconds did.
            if let Some(result) = results.get_mut(index) {
                result.ok = false;
            }
            Verdict::Aborted
        } else if results.iter().all(|r| r.ok) {
            Verdict::Passed
        } else {
            Verdict::Failed
        };
        (results, verdict)
    }

    /// [`finish`](Self::finish) into `summary` (its `thresholds` and `verdict`), and prints
    /// the verdict block to stderr.
    pub fn finish_into(self, summary: &mut crate::Summary) {
        let (results, verdict) = self.finish(summary.duration_s);
        eprintln!("{}", super::verdict_block(&results, verdict));
        summary.thresholds = Some(results);
        summary.verdict = Some(verdict);
    }
}
