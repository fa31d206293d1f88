//! The live side of the UI: one task samples the run about once a second, keeps the chart
//! history and the recent latency window, and publishes one update that every page receives
//! (the work does not grow with the number of pages open).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use load_density_core::{RequestStats, StatsEntry};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

use super::history::{ChartHistory, ChartPoint};
use super::Shared;
use crate::control::RunControl;
use crate::env::RunState;

/// Rows the table and `/stats/requests` show at most (Locust's limit), besides the total.
pub(crate) const MAX_ROWS: usize = 500;
/// Error groups shown at most (Locust's limit).
pub(crate) const MAX_ERRORS: usize = 500;
/// The window of the "current" rates and percentiles, in seconds (Locust's).
const CURRENT_WINDOW_S: u64 = 10;
/// After a stall, the most seconds charted at once (older ones are left out).
const MAX_CATCH_UP_S: u64 = 30;
/// How often the sampler looks at the run's state.
const POLL: Duration = Duration::from_millis(100);
/// Past a second boundary, how long the sampler waits for that second's requests to be
/// flushed before it charts the second.
const SETTLE: Duration = Duration::from_millis(300);

/// One published update.
pub(crate) struct Frame {
    /// The update, as JSON text.
    pub(crate) update: String,
    /// Whether it is the last one (the run has ended).
    pub(crate) last: bool,
}

type ErrorKey = (Arc<str>, Arc<str>, Arc<str>);

/// When an error group was first and last seen to grow (unix seconds, sampler resolution).
#[derive(Clone, Copy)]
struct Seen {
    first: f64,
    last: f64,
    occurrences: u64,
}

#[derive(Default)]
struct Window {
    /// The total's histogram once per sample: (unix second, histogram).
    ring: VecDeque<(u64, Histogram<u64>)>,
    /// p50 and p95 (ms) over the last ~10 s.
    current: Option<(f64, f64)>,
    errors_seen: HashMap<ErrorKey, Seen>,
    last_point_s: Option<u64>,
    seq: u64,
    /// The total's corrected histogram once per sample, like `ring`.
    corrected_ring: VecDeque<(u64, Histogram<u64>)>,
    /// Iterations counted at the previous sample, and when.
    last_iterations: Option<(Instant, u64)>,
    /// Iterations per second between the last two samples.
    iteration_rate: f64,
}

/// The corrected p95 (ms) over the last ~10 s: the newest corrected histogram minus the one
/// about `CURRENT_WINDOW_S` ago (the whole run's while the window is young).
fn windowed_p95(
    ring: &mut VecDeque<(u64, Histogram<u64>)>,
    latest: Histogram<u64>,
    now_s: u64,
) -> f64 {
    let reference = ring
        .iter()
        .filter(|(s, _)| *s < now_s)
        .min_by_key(|(s, _)| s.abs_diff(now_s.saturating_sub(CURRENT_WINDOW_S)))
        .map(|(_, h)| h.clone());
    let mut window = latest.clone();
    let p95 = match reference.map(|old| window.subtract(&old)) {
        Some(Err(_)) => {
            ring.clear();
            0.0
        }
        _ if window.is_empty() => 0.0,
        _ => window.value_at_quantile(0.95) as f64 / 1000.0,
    };
    if ring.back().is_some_and(|(s, _)| *s == now_s) {
        ring.pop_back();
    }
    ring.push_back((now_s, latest));
    while ring
        .front()
        .is_some_and(|(s, _)| *s + 2 * CURRENT_WINDOW_S < now_s)
    {
        ring.pop_front();
    }
    p95
}

/// The sampler's state, shared with the handlers.
pub(crate) struct Live {
    /// The run shown: a new run started from the lingering UI replaces it.
    control: RwLock<Arc<dyn RunControl>>,
    distributed: bool,
    /// Whether a new run can be started from this UI once the run has ended.
    relaunchable: bool,
    /// Set while the UI lingers after a run; a `POST /swarm` that starts a new run takes it.
    pub(crate) lingering: AtomicBool,
    /// The number of the run shown (0 for the first); bumped by [`Live::switch`].
    runs: watch::Sender<u64>,
    cache: Mutex<Option<(Instant, Arc<RequestStats>)>>,
    window: Mutex<Window>,
    history: Mutex<ChartHistory>,
    frames: watch::Sender<Arc<Frame>>,
    ended: watch::Sender<bool>,
}

pub(crate) fn unix_secs_f64(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Requests and failures per second over the last seconds elapsed since the statistics
/// started (the run's start or the last reset), at most ten: the console's figures.
pub(crate) fn current_rates(
    stats: &RequestStats,
    entry: &StatsEntry,
    now: SystemTime,
) -> (f64, f64) {
    stats.current_rates_of(entry, now)
}

/// Requests and failures per second over the entry's life (Locust's `total_rps`).
pub(crate) fn total_rates(stats: &RequestStats, entry: &StatsEntry, now: SystemTime) -> (f64, f64) {
    stats.total_rates_of(entry, now)
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub(crate) fn state_name(state: RunState) -> &'static str {
    match state {
        RunState::Ready => "ready",
        RunState::Spawning => "spawning",
        RunState::Running => "running",
        RunState::Stopping => "stopping",
        RunState::Stopped => "stopped",
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A table row: `[type, name, requests, failures, median, p95, p99, average, min, max,
/// average size, current rps, current failures/s]`.
fn row(stats: &RequestStats, entry: &StatsEntry, now: SystemTime) -> Value {
    let (rps, fps) = current_rates(stats, entry, now);
    json!([
        entry.request_type(),
        entry.name(),
        entry.num_requests(),
        entry.num_failures(),
        round2(entry.percentile_ms(50.0)),
        round2(entry.percentile_ms(95.0)),
        round2(entry.percentile_ms(99.0)),
        round2(entry.mean_response_time_ms()),
        round2(us_to_ms(entry.min_response_time_us())),
        round2(us_to_ms(entry.max_response_time_us())),
        round2(entry.avg_content_length()),
        round2(rps),
        round2(fps),
    ])
}

impl Live {
    pub(crate) fn new(control: Arc<dyn RunControl>, distributed: bool, relaunchable: bool) -> Self {
        Self {
            control: RwLock::new(control),
            distributed,
            relaunchable,
            lingering: AtomicBool::new(false),
            runs: watch::channel(0).0,
            cache: Mutex::new(None),
            window: Mutex::new(Window::default()),
            history: Mutex::new(ChartHistory::new()),
            frames: watch::channel(Arc::new(Frame {
                update: "{}".to_owned(),
                last: false,
            }))
            .0,
            ended: watch::channel(false).0,
        }
    }

    /// The run shown now.
    pub(crate) fn control(&self) -> Arc<dyn RunControl> {
        self.control.read().clone()
    }

    /// Shows `control`, a new run, from now on: everything derived from the run before
    /// (cached statistics, the latency window, the chart history) starts over, and the
    /// sampler, waiting in the linger, resumes on the new run.
    pub(crate) fn switch(&self, control: Arc<dyn RunControl>) {
        *self.control.write() = control;
        *self.cache.lock() = None;
        {
            let mut window = self.window.lock();
            let seq = window.seq;
            *window = Window::default();
            window.seq = seq;
        }
        *self.history.lock() = ChartHistory::new();
        self.runs.send_modify(|run| *run += 1);
        // A page (re)connecting from now on gets the new run at once, not the last update of
        // the run before until the sampler's next tick.
        self.tick(false);
    }

    /// Wakes the linger without a new run (a new run asked for could not start).
    pub(crate) fn relaunch_failed(&self) {
        self.lingering.store(true, Ordering::SeqCst);
        self.runs.send_modify(|_| {});
    }

    /// The run's statistics, at most `max_age` old: many requests at once share one copy.
    pub(crate) fn stats(&self, max_age: Duration) -> Arc<RequestStats> {
        let mut cache = self.cache.lock();
        if let Some((at, stats)) = cache.as_ref() {
            if at.elapsed() <= max_age {
                return stats.clone();
            }
        }
        let stats = Arc::new(self.control().stats());
        *cache = Some((Instant::now(), stats.clone()));
        stats
    }

    /// Forgets what was derived from statistics that were just reset.
    pub(crate) fn on_reset(&self) {
        *self.cache.lock() = None;
        let mut window = self.window.lock();
        window.ring.clear();
        window.current = None;
        window.errors_seen.clear();
        window.corrected_ring.clear();
        window.last_iterations = None;
    }

    /// The current p50 and p95 (ms) of the total, over the last ~10 s; `None` before the
    /// first sample.
    pub(crate) fn current_percentiles(&self) -> Option<(f64, f64)> {
        self.window.lock().current
    }

    /// When an error group was first and last seen (unix seconds).
    pub(crate) fn error_seen(&self, key: &ErrorKey, now: f64) -> (f64, f64) {
        self.window
            .lock()
            .errors_seen
            .get(key)
            .map_or((now, now), |s| (s.first, s.last))
    }

    /// Updates as they are published.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Frame>> {
        self.frames.subscribe()
    }

    /// Resolves once the last update is out.
    pub(crate) fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut ended = self.ended.subscribe();
        async move {
            let _ = ended.wait_for(|e| *e).await;
        }
    }

    /// The first event a page gets: settings, the chart history and the latest update.
    pub(crate) fn init_event(&self, frame: &Frame) -> String {
        let head = json!({
            "distributed": self.distributed,
            "host": self.control().host(),
        });
        let history = serde_json::to_string(&*self.history.lock()).unwrap_or_default();
        let head = head.to_string();
        // Splice the pieces into one object without re-parsing the update.
        format!(
            "{{\"settings\":{head},\"history\":{history},\"update\":{}}}",
            frame.update
        )
    }

    /// Samples the run and publishes one update.
    fn tick(&self, last: bool) {
        let now = SystemTime::now();
        let now_s = unix_secs(now);
        let control = self.control();
        let stats = self.stats(Duration::ZERO);
        let total = stats.total();
        let users = control.user_count();
        let state = control.state();
        let mut window = self.window.lock();
        window.seq += 1;

        // The recent latency window: the total's histogram now minus ~10 s ago.
        let latest = total.histogram().clone();
        let reference = window
            .ring
            .iter()
            .filter(|(s, _)| *s < now_s)
            .min_by_key(|(s, _)| s.abs_diff(now_s.saturating_sub(CURRENT_WINDOW_S)))
            .map(|(_, h)| h.clone());
        window.current = match reference {
            Some(old) => {
                let mut diff = latest.clone();
                match diff.subtract(&old) {
                    Ok(()) if !diff.is_empty() => Some((
                        diff.value_at_quantile(0.5) as f64 / 1000.0,
                        diff.value_at_quantile(0.95) as f64 / 1000.0,
                    )),
                    Ok(()) => Some((0.0, 0.0)),
                    // The statistics were reset under us: start the window again.
                    Err(_) => {
                        window.ring.clear();
                        None
                    }
                }
            }
            None if total.num_requests() > 0 => {
                Some((total.percentile_ms(50.0), total.percentile_ms(95.0)))
            }
            None => None,
        };
        if window.ring.back().is_some_and(|(s, _)| *s == now_s) {
            window.ring.pop_back();
        }
        window.ring.push_back((now_s, latest));
        while window
            .ring
            .front()
            .is_some_and(|(s, _)| *s + 2 * CURRENT_WINDOW_S < now_s)
        {
            window.ring.pop_front();
        }

        // The corrected latency (runs with a schedule) and the iterations per second.
        let corrected_p95 = match total.corrected_histogram() {
            Some(corrected) => windowed_p95(&mut window.corrected_ring, corrected.clone(), now_s),
            None => 0.0,
        };
        let iterations = stats.iterations();
        let sampled = Instant::now();
        if let Some((at, before)) = window.last_iterations {
            let secs = sampled.duration_since(at).as_secs_f64();
            if secs > 0.0 && iterations >= before {
                window.iteration_rate = (iterations - before) as f64 / secs;
            }
        }
        window.last_iterations = Some((sampled, iterations));
        let iteration_rate = window.iteration_rate;
        let target_rate = control.target_rate();

        // When error groups grew.
        let now_f = unix_secs_f64(now);
        let groups = stats.errors();
        for group in &groups {
            let key = (
                group.request_type.clone(),
                group.name.clone(),
                group.message.clone(),
            );
            let seen = window.errors_seen.entry(key).or_insert(Seen {
                first: now_f,
                last: now_f,
                occurrences: group.occurrences,
            });
            if seen.occurrences != group.occurrences {
                seen.occurrences = group.occurrences;
                seen.last = now_f;
            }
        }

        // One chart point per complete second since the last one.
        let (p50, p95) = window.current.unwrap_or((0.0, 0.0));
        let newest = now_s.saturating_sub(1);
        let from = window.last_point_s.map_or(newest, |s| {
            (s + 1).max(newest.saturating_sub(MAX_CATCH_UP_S))
        });
        let mut points = Vec::new();
        for second in from..=newest {
            let (rps, fps) = total.current_rates(UNIX_EPOCH + Duration::from_secs(second + 1), 1);
            points.push(ChartPoint {
                time_s: second,
                width_s: 1,
                users: users as f64,
                rps,
                fps,
                p50_ms: p50,
                p95_ms: p95,
                corrected_p95_ms: corrected_p95,
                target_rate,
                iteration_rate,
            });
            window.last_point_s = Some(second);
        }
        let seq = window.seq;
        drop(window);
        {
            let mut history = self.history.lock();
            for point in &points {
                history.push(*point);
            }
        }

        let (rps, fps) = current_rates(&stats, total, now);
        let entries = stats.entries();
        let rows: Vec<Value> = entries
            .iter()
            .take(MAX_ROWS)
            .map(|e| row(&stats, e, now))
            .collect();
        let errors: Vec<Value> = groups
            .iter()
            .take(MAX_ERRORS)
            .map(|g| json!([&*g.request_type, &*g.name, &*g.message, g.occurrences]))
            .collect();
        let workers: Value = if self.distributed {
            control
                .workers()
                .iter()
                .map(|w| {
                    json!({
                        "id": w.id,
                        "state": w.state,
                        "user_count": w.user_count,
                        "cpu_percent": round2(w.cpu_percent),
                        "memory_bytes": w.memory_bytes,
                        "heartbeat_age_s": now
                            .duration_since(w.last_heartbeat)
                            .map(|d| round2(d.as_secs_f64()))
                            .unwrap_or(0.0),
                    })
                })
                .collect()
        } else {
            Value::Null
        };
        let update = json!({
            "seq": seq,
            "last": last,
            "run": *self.runs.borrow(),
            "new_run": self.relaunchable && self.lingering.load(Ordering::SeqCst),
            "time": now_f,
            "state": state_name(state),
            "users": users,
            "target_users": control.target_user_count(),
            "requests": total.num_requests(),
            "failures": total.num_failures(),
            "rps": round2(rps),
            "fps": round2(fps),
            "fail_ratio": total.failure_ratio(),
            "p50": round2(p50),
            "p95": round2(p95),
            "corrected_p95": round2(corrected_p95),
            "iterations": iterations,
            "dropped_iterations": stats.dropped_iterations(),
            "iteration_rate": round2(iteration_rate),
            "target_rate": round2(target_rate),
            "generator": control.generator(),
            "rows": rows,
            "more_rows": entries.len().saturating_sub(MAX_ROWS),
            "total": row(&stats, total, now),
            "errors": errors,
            "workers": workers,
            "points": points,
            "thresholds": crate::thresholds::live_results()
                .iter()
                .map(|r| json!([r.metric, r.condition, r.value, r.ok]))
                .collect::<Vec<Value>>(),
        });
        self.frames.send_replace(Arc::new(Frame {
            update: update.to_string(),
            last,
        }));
    }
}

/// Samples the run until it has stopped (or `close` is set); lingers (`web_ui_dict.linger`),
/// and samples each new run started from the lingering UI the same way; then publishes the
/// last update.
pub(crate) async fn run(shared: &Shared, mut close: watch::Receiver<bool>) {
    let live = &shared.live;
    loop {
        sample_run(shared, &mut close).await;
        if *close.borrow() || shared.settings.linger() == Some(Duration::ZERO) {
            break;
        }
        live.lingering.store(true, Ordering::SeqCst);
        // The stopped run, still served (with the new-run button where one can start).
        live.tick(false);
        if !linger(shared, &mut close).await {
            break;
        }
    }
    live.tick(true);
    live.ended.send_replace(true);
}

/// Samples the run shown until it has stopped (or `close` is set).
async fn sample_run(shared: &Shared, close: &mut watch::Receiver<bool>) {
    let live = &shared.live;
    live.tick(false);
    let mut last_sample_s = unix_secs(SystemTime::now());
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = close.wait_for(|c| *c) => break,
        }
        if shared.control().state() == RunState::Stopped {
            break;
        }
        let now = SystemTime::now();
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        if since_epoch.as_secs() > last_sample_s
            && since_epoch.subsec_nanos() as u128 >= SETTLE.as_nanos()
        {
            last_sample_s = since_epoch.as_secs();
            live.tick(false);
        }
    }
}

/// Keeps serving the finished run for `web_ui_dict.linger` (see the module docs of `web`):
/// until the time is up, `POST /quit`, Ctrl-C, or the UI is shut down (false), or until a
/// `POST /swarm` has started a new run (true).
async fn linger(shared: &Shared, close: &mut watch::Receiver<bool>) -> bool {
    let live = &shared.live;
    let limit = shared.settings.linger();
    match limit {
        Some(limit) => tracing::info!(
            seconds = limit.as_secs_f64(),
            "the run has ended; the web UI stays up (POST /quit or Ctrl-C ends it)"
        ),
        None => tracing::info!("the run has ended; the web UI stays up until Ctrl-C or POST /quit"),
    }
    let deadline = limit.map(|limit| tokio::time::Instant::now() + limit);
    let mut quit = shared.quit.subscribe();
    let mut runs = live.runs.subscribe();
    let run_before = *runs.borrow_and_update();
    let mut ending = false;
    loop {
        // Whoever takes the linger first wins: the end of the linger, or a new run.
        if ending && live.lingering.swap(false, Ordering::SeqCst) {
            return false;
        }
        tokio::select! {
            _ = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            }, if !ending => ending = true,
            _ = quit.wait_for(|q| *q), if !ending => ending = true,
            _ = close.wait_for(|c| *c), if !ending => ending = true,
            _ = tokio::signal::ctrl_c(), if !ending => {
                tracing::info!("Ctrl-C: closing the web UI");
                ending = true;
            }
            changed = runs.changed() => {
                if changed.is_err() {
                    return false;
                }
                if *runs.borrow_and_update() != run_before {
                    return true;
                }
            }
        }
    }
}
