//! The run's lifecycle: wait for workers, ramp, run, stop, and wait for the final reports.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmpv::Value;

use super::merge::summarize;
use super::{Inner, Node, NodeState};
use crate::console;
use crate::distributed::dispatch::{self};
use crate::distributed::wire::{self, Message};
use crate::env::RunState;
use crate::plan::LoadModel;

/// How long after the last ramp step the master waits for the workers to report the target.
const RAMP_REPORT_WAIT: Duration = Duration::from_secs(1);
/// How long past the end of its arrival-rate schedules a master lets its workers run, so the
/// iterations due last start and finish before the workers are told to quit.
const MODEL_END_GRACE: Duration = Duration::from_secs(1);
/// Extra time, beyond `stop_timeout`, the master waits for workers to quit at the end.
const QUIT_GRACE: Duration = Duration::from_secs(5);

impl Inner {
    pub(super) fn reported_users(&self) -> u64 {
        let core = self.core.lock();
        core.nodes
            .values()
            .filter(|n| n.state.live())
            .map(Node::user_count)
            .sum()
    }

    pub(super) fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Waits for `wake` or `timeout`, whichever first; false when the run must stop.
pub(super) async fn pause(inner: &Inner, timeout: Duration) -> bool {
    let mut stop = inner.stop.subscribe();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = inner.wake.notified() => {}
        _ = tokio::time::sleep(timeout) => {}
        _ = stop.wait_for(|s| *s) => return false,
    }
    !inner.is_stopped()
}

pub(super) async fn drive(inner: Arc<Inner>) {
    // 1. Wait for the expected workers.
    let expected = u64::from(inner.plan.source().expected_workers);
    let waited = Instant::now();
    loop {
        let live = inner.core.lock().live_ids().len() as u64;
        if live >= expected {
            break;
        }
        if waited.elapsed() >= inner.options.expected_workers_timeout {
            tracing::warn!(
                expected,
                connected = live,
                "not every expected worker joined in time; starting with those that did"
            );
            break;
        }
        if !pause(&inner, Duration::from_millis(200)).await {
            break;
        }
    }
    let started = Instant::now();
    let now = std::time::SystemTime::now();
    inner.stats.lock().mark_start(now);
    for stats in inner.group_stats.lock().iter_mut() {
        stats.mark_start(now);
    }
    let mut stopping = inner.stop.subscribe();
    if !*stopping.borrow() {
        inner.state.send_replace(RunState::Spawning);
        let (users, spawn_rate, workers) = {
            let core = inner.core.lock();
            (core.target, core.spawn_rate, core.live_ids().len())
        };
        tracing::info!(users, spawn_rate, workers, "starting the run");
    }
    inner.core.lock().run_started = Some(started);
    inner.send_shares(true);
    // test_time, or the end of the load models, whichever comes first. When the models end
    // first and some are arrival-rate schedules, the workers get MODEL_END_GRACE to start and
    // finish the last iterations due (their clocks started a message later than ours).
    let end = match (inner.plan.test_time(), inner.plan.models_end()) {
        (test_time, Some(models)) if test_time.is_none_or(|t| models < t) => {
            let grace = if inner.plan.has_open_model() {
                MODEL_END_GRACE
            } else {
                Duration::ZERO
            };
            let end = models + grace;
            Some(test_time.map_or(end, |t| t.min(end)))
        }
        _ => inner.plan.end(),
    };
    let timer = end.map(|end| {
        let stop = inner.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(end).await;
            stop.send_replace(true);
        })
    });
    let stages = ramp_stages(&inner, started);
    let print_stats = inner.plan.runner_options().print_stats();
    let printer = print_stats.then(|| {
        let inner = inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(inner.plan.runner_options().stats_interval());
            tick.tick().await;
            loop {
                tick.tick().await;
                let stats = inner.stats.lock().clone();
                console::print_live(
                    &stats,
                    inner.reported_users(),
                    started.elapsed(),
                    inner.plan.end().map(|end| end.as_secs_f64()),
                );
            }
        })
    });

    // 2. Ramp, re-dispatch on changes, until stopped.
    let mut ramp_done_at: Option<Instant> = None;
    let mut announced_complete = false;
    while !*stopping.borrow_and_update() {
        let (target, rate, stale, current) = {
            let core = inner.core.lock();
            (
                core.target,
                core.spawn_rate,
                core.placement_stale,
                core.dispatched_total,
            )
        };
        if current != target {
            let step = dispatch::step_size(rate);
            let next = dispatch::ramp_totals(current, target, step)
                .next()
                .unwrap_or(target);
            inner.state.send_replace(RunState::Spawning);
            inner.dispatch(next);
            announced_complete = false;
            ramp_done_at = None;
            let delay = load_density_core::task::options::saturating_seconds(
                current.abs_diff(next) as f64 / rate,
            );
            let until = Instant::now() + delay;
            // Sleep the step out; a worker change meanwhile is placed at once.
            while Instant::now() < until {
                if !pause(&inner, until.saturating_duration_since(Instant::now())).await {
                    break;
                }
                if inner.core.lock().placement_stale {
                    let total = inner.core.lock().dispatched_total;
                    inner.dispatch(total);
                }
                if inner.core.lock().target != target {
                    break;
                }
            }
            continue;
        }
        if stale {
            inner.dispatch(current);
        }
        if !announced_complete {
            let done_at = *ramp_done_at.get_or_insert_with(Instant::now);
            let reported = inner.reported_users();
            if reported == target || done_at.elapsed() >= RAMP_REPORT_WAIT {
                if reported != target {
                    tracing::info!(
                        target,
                        reported,
                        "ramp done; not every worker has reported its users yet"
                    );
                } else {
                    tracing::info!(users = target, "All users spawned");
                }
                let live = inner.core.lock().live_ids();
                for id in &live {
                    let data = wire::map([("user_count", Value::from(target))]);
                    inner.send(id, Message::new("spawning_complete", data, id.clone()));
                }
                announced_complete = true;
                inner.state.send_replace(RunState::Running);
                inner.peak_users.fetch_max(reported, Ordering::Relaxed);
                continue;
            }
            pause(&inner, Duration::from_millis(100)).await;
            continue;
        }
        pause(&inner, Duration::from_secs(1)).await;
    }

    // 3. Quit every worker and wait for their final reports.
    inner.state.send_replace(RunState::Stopping);
    let quit_ids: Vec<String> = {
        let mut core = inner.core.lock();
        core.stopping = true;
        core.nodes.keys().cloned().collect()
    };
    tracing::info!(
        workers = quit_ids.len(),
        "stopping: telling every worker to quit"
    );
    for id in &quit_ids {
        inner.send(id, Message::new("quit", Value::Nil, id.clone()));
    }
    let deadline = Instant::now()
        + load_density_core::task::options::saturating_seconds(inner.options.stop_timeout)
        + QUIT_GRACE;
    loop {
        let waiting = {
            let core = inner.core.lock();
            core.nodes
                .values()
                .filter(|n| !n.quit && n.state != NodeState::Missing)
                .count()
        };
        if waiting == 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(waiting, "some workers did not quit in time");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(timer) = timer {
        timer.abort();
    }
    if let Some(printer) = printer {
        printer.abort();
    }
    if let Some(stages) = stages {
        stages.abort();
    }
    let duration = started.elapsed();
    if print_stats {
        console::print_final(&inner.stats.lock().clone());
    }
    *inner.summary.lock() = Some(summarize(&inner, duration));
    inner.state.send_replace(RunState::Stopped);
}

/// Drives the stages of a ramping closed model: at each stage start, the new target and
/// spawn rate, dispatched over every worker as a user count change is.
pub(super) fn ramp_stages(
    inner: &Arc<Inner>,
    started: Instant,
) -> Option<tokio::task::JoinHandle<()>> {
    let LoadModel::Users(model) = inner.plan.shared_model() else {
        return None;
    };
    if model.stages().len() < 2 {
        return None;
    }
    let stages = model.stages().to_vec();
    let inner = inner.clone();
    Some(tokio::spawn(async move {
        for stage in stages.iter().skip(1) {
            tokio::time::sleep_until((started + stage.start).into()).await;
            tracing::info!(
                users = stage.target,
                spawn_rate = stage.spawn_rate,
                "load model: next stage"
            );
            {
                let mut core = inner.core.lock();
                core.target = stage.target;
                core.spawn_rate = stage.spawn_rate;
            }
            inner.wake.notify_one();
        }
    }))
}
