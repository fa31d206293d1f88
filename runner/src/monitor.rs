//! The run monitor: one task per run that samples the live statistics once a second and feeds
//! everything that needs a per-second view of the run:
//! - the thresholds ([`crate::thresholds`]): evaluated each second, an abort stops the run;
//! - the report history ([`ReportPoint`]s in a [`ChartHistory`]): the HTML report's charts;
//! - Locust's CSV files ([`crate::reports::locust_csv`]), when `csv_prefix` is set.
//!
//! It reads statistics the run keeps anyway ([`RunControl::stats`], one copy a second); it
//! adds nothing on the request path. `start_test` starts it for local runs and for a master
//! (which samples its merged statistics); [`RunMonitor::finish`] evaluates the thresholds
//! once more on the final statistics and writes the CSV files' final contents.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use load_density_core::RequestStats;
use parking_lot::Mutex;

use crate::control::RunControl;
use crate::env::RunState;
use crate::error::RunError;
use crate::history::{ChartHistory, HistoryPoint};
use crate::reports::locust_files::LocustFiles;
use crate::thresholds::{Observation, ThresholdResult, Thresholds, Verdict};
use crate::Summary;

/// How often the monitor samples the run.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// One second (or, once downsampled, several) of the run, as the HTML report charts it.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ReportPoint {
    /// Unix second the point starts at.
    pub time_s: u64,
    /// Seconds it covers.
    pub width_s: u64,
    /// Users running.
    pub users: f64,
    /// Requests per second.
    pub rps: f64,
    /// Failures per second.
    pub fps: f64,
    /// Median latency of the requests that ended in the point (ms).
    pub p50_ms: f64,
    /// 95th percentile (ms).
    pub p95_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Iterations the schedule dropped per second (0 for runs without a schedule).
    pub dropped_per_s: f64,
}

impl HistoryPoint for ReportPoint {
    fn width_s(&self) -> u64 {
        self.width_s
    }
    fn time_s(&self) -> u64 {
        self.time_s
    }
    fn absorb(&mut self, other: &Self) {
        let (a, b) = (self.width_s as f64, other.width_s as f64);
        let mean = |x: f64, y: f64| (x * a + y * b) / (a + b);
        self.users = mean(self.users, other.users);
        self.rps = mean(self.rps, other.rps);
        self.fps = mean(self.fps, other.fps);
        self.p50_ms = mean(self.p50_ms, other.p50_ms);
        self.p95_ms = mean(self.p95_ms, other.p95_ms);
        self.p99_ms = mean(self.p99_ms, other.p99_ms);
        self.dropped_per_s = mean(self.dropped_per_s, other.dropped_per_s);
        self.width_s += other.width_s;
    }
}

/// What the monitor does besides keeping the history.
#[derive(Debug, Clone, Default)]
pub struct MonitorSettings {
    /// Thresholds to evaluate.
    pub thresholds: Option<Thresholds>,
    /// Write Locust's CSV files with this prefix.
    pub csv_prefix: Option<String>,
    /// Per-name rows in the CSV history.
    pub csv_full_history: bool,
    /// The run's load model as given (`None`: closed users at `user_count`), for the reports.
    pub load_model: Option<serde_json::Value>,
    /// The run's base host, for the reports.
    pub host: Option<String>,
}

/// The process-wide Locust CSV prefix (the CLI's `--csv`), for runs that set none.
static DEFAULT_CSV: Mutex<Option<(String, bool)>> = Mutex::new(None);

/// Sets the Locust CSV prefix (and full history) used by every later run whose
/// configuration has no `csv_prefix`; `None` clears it. This is what `--csv PREFIX` does:
/// like Locust's, the files describe the last run of the process.
pub fn set_default_csv(prefix: Option<String>, full_history: bool) {
    *DEFAULT_CSV.lock() = prefix.map(|p| (p, full_history));
}

impl MonitorSettings {
    /// The settings of a `start_test` configuration.
    pub fn of(config: &crate::StartTest) -> Self {
        let (csv_prefix, csv_full_history) = match &config.csv_prefix {
            Some(prefix) => (Some(prefix.clone()), config.csv_full_history),
            None => match DEFAULT_CSV.lock().clone() {
                Some((prefix, full)) => (Some(prefix), full || config.csv_full_history),
                None => (None, false),
            },
        };
        Self {
            thresholds: config.thresholds.clone().filter(|t| !t.is_empty()),
            csv_prefix,
            csv_full_history,
            load_model: config.load_model.clone(),
            host: config.host.clone(),
        }
    }
}

#[derive(Default)]
struct State {
    history: ChartHistory<ReportPoint>,
    /// The most workers seen at once (a master).
    workers: usize,
    /// The total's histogram at the previous sample, for per-second percentiles.
    previous: Option<Histogram<u64>>,
    /// Dropped iterations at the previous sample, for the per-second rate.
    previous_dropped: u64,
    latest: Vec<ThresholdResult>,
    /// The flattened index of the condition that aborted the run.
    aborted_by: Option<usize>,
    locust: Option<LocustFiles>,
    /// The first error writing the CSV files (they stop being written after it).
    csv_error: Option<String>,
    /// Set by `finish`: a sample taken before it must not overwrite the final files.
    finished: bool,
}

/// The monitor of one run; see the [module docs](self).
pub struct RunMonitor {
    control: Arc<dyn RunControl>,
    settings: MonitorSettings,
    started: Instant,
    checks_base: (u64, u64),
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMonitor")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

fn checks_since(base: (u64, u64)) -> Option<(u64, u64)> {
    let (passed, failed) = load_density_core::checks::assertion_counts();
    Some((passed.saturating_sub(base.0), failed.saturating_sub(base.1)))
}

/// Starts monitoring `control` on the current tokio runtime until the run stops.
///
/// # Errors
/// The Locust CSV files cannot be created.
pub fn start(
    control: Arc<dyn RunControl>,
    settings: MonitorSettings,
) -> Result<RunMonitor, RunError> {
    let locust = match &settings.csv_prefix {
        Some(prefix) => Some(LocustFiles::create(prefix, settings.csv_full_history)?),
        None => None,
    };
    let started = Instant::now();
    let checks_base = load_density_core::checks::assertion_counts();
    crate::thresholds::live::publish(&[]);
    let state = Arc::new(Mutex::new(State {
        locust,
        ..State::default()
    }));
    let task = tokio::spawn({
        let control = control.clone();
        let thresholds = settings.thresholds.clone();
        let state = state.clone();
        async move {
            let mut interval = tokio::time::interval_at(
                tokio::time::Instant::now() + SAMPLE_INTERVAL,
                SAMPLE_INTERVAL,
            );
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if control.state() == RunState::Stopped {
                    break;
                }
                let stats = control.stats();
                let elapsed_s = started.elapsed().as_secs_f64();
                let workers = control.workers().len();
                let mut state = state.lock();
                if state.finished {
                    break;
                }
                state.workers = state.workers.max(workers);
                sample(&mut state, &stats, control.user_count(), SystemTime::now());
                let Some(thresholds) = &thresholds else {
                    continue;
                };
                let groups = control.group_stats();
                let results = thresholds.evaluate(&Observation {
                    stats: Some(&stats),
                    elapsed_s,
                    checks: checks_since(checks_base),
                    dropped_iterations: Some(stats.dropped_iterations()),
                    groups: &groups,
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
                crate::thresholds::live::publish(&results);
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
    Ok(RunMonitor {
        control,
        settings,
        started,
        checks_base,
        state,
        task,
    })
}

/// One sample: a history point and the CSV history row.
fn sample(state: &mut State, stats: &RequestStats, users: u64, now: SystemTime) {
    let total = stats.total();
    let histogram = total.histogram();
    let (p50, p95, p99) = match &state.previous {
        Some(previous) => {
            let mut diff = histogram.clone();
            match diff.subtract(previous) {
                Ok(()) if !diff.is_empty() => (
                    diff.value_at_quantile(0.5) as f64 / 1000.0,
                    diff.value_at_quantile(0.95) as f64 / 1000.0,
                    diff.value_at_quantile(0.99) as f64 / 1000.0,
                ),
                _ => (0.0, 0.0, 0.0),
            }
        }
        None => (
            total.percentile_ms(50.0),
            total.percentile_ms(95.0),
            total.percentile_ms(99.0),
        ),
    };
    state.previous = Some(histogram.clone());
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (rps, fps) = total.current_rates(now, 1);
    let dropped = stats.dropped_iterations();
    let previous_dropped = std::mem::replace(&mut state.previous_dropped, dropped);
    let time_s = now_s.saturating_sub(1);
    let fresh = state.history.last_time_s().is_none_or(|last| last < time_s);
    if fresh {
        state.history.push(ReportPoint {
            time_s,
            width_s: 1,
            users: users as f64,
            rps,
            fps,
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            dropped_per_s: dropped.saturating_sub(previous_dropped) as f64,
        });
    }
    if let Some(files) = &mut state.locust {
        if let Err(error) = files.sample(stats, users, now) {
            tracing::warn!(%error, "the Locust CSV files are no longer written");
            state.csv_error = Some(error.to_string());
            state.locust = None;
        }
    }
}

/// What a finished run's monitor hands to the reports.
#[derive(Debug, Clone, Default)]
pub struct RunRecording {
    /// The per-second history.
    pub history: ChartHistory<ReportPoint>,
    /// The most workers the run had at once (0 for a local run).
    pub workers: usize,
    /// The run's load model as given (`None`: closed users).
    pub load_model: Option<serde_json::Value>,
    /// The run's base host.
    pub host: Option<String>,
}

impl RunMonitor {
    /// The latest threshold results during the run.
    pub fn latest(&self) -> Vec<ThresholdResult> {
        self.state.lock().latest.clone()
    }

    /// Stops monitoring; evaluates the thresholds on the final statistics into `summary`
    /// (`thresholds`, `verdict`) and prints the verdict block to stderr; writes the Locust
    /// CSV files' final contents and a last history row.
    pub fn finish(self, summary: &mut Summary) -> RunRecording {
        self.task.abort();
        let stats = self.control.stats();
        let mut state = self.state.lock();
        state.finished = true;
        // The last (partial) second: a history point, the CSV files' final contents.
        sample(
            &mut state,
            &stats,
            self.control.user_count(),
            SystemTime::now(),
        );
        if let Some(thresholds) = &self.settings.thresholds {
            let elapsed_s = if summary.duration_s > 0.0 {
                summary.duration_s
            } else {
                self.started.elapsed().as_secs_f64()
            };
            let groups = self.control.group_stats();
            let mut results = thresholds.evaluate(&Observation {
                stats: Some(&stats),
                elapsed_s,
                checks: checks_since(self.checks_base),
                dropped_iterations: Some(stats.dropped_iterations()),
                groups: &groups,
            });
            let verdict = if let Some(index) = state.aborted_by {
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
            crate::thresholds::live::publish(&results);
            eprintln!("{}", crate::thresholds::verdict_block(&results, verdict));
            summary.thresholds = Some(results);
            summary.verdict = Some(verdict);
        }
        let workers = state.workers.max(self.control.workers().len());
        RunRecording {
            history: std::mem::take(&mut state.history),
            workers,
            load_model: self.settings.load_model.clone(),
            host: self.settings.host.clone(),
        }
    }
}
