//! Closed models: pools of users that loop over their scenario, heading for a user count.
//!
//! A pool holds the groups that share one closed model: the run's (split by weight and
//! `fixed_count`) or a group's own. Its users start (or stop) one at a time at the spawn
//! rate until each group has its share; a stage driver moves the target over time
//! (`ramping_users`), and stops the pool's users when the last stage ends.

use load_density_core::task::options::saturating_seconds;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use load_density_core::context::StopHandle;
use load_density_core::scenario::run_user;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{log_join, RunShared};
use crate::env::RunState;
use crate::groups::{self, GroupSpec, Step};
use crate::plan::UserStage;
use crate::spawn;

/// How many users each group of a pool should have, and how fast to get there.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) per_group: Vec<u64>,
    pub(crate) spawn_rate: f64,
}

/// The groups sharing one closed model.
pub(crate) struct Pool {
    /// Indices into the run's groups.
    pub(crate) groups: Vec<usize>,
    /// Their specs, to split a user count by weight.
    pub(crate) specs: Vec<GroupSpec>,
    pub(crate) target: watch::Sender<Target>,
    pub(crate) stages: Vec<UserStage>,
    pub(crate) end: Option<Duration>,
    /// The pool of the run's own model (what a user count from the web UI or a master sets).
    pub(crate) shared: bool,
}

impl Pool {
    pub(crate) fn new(
        groups: Vec<usize>,
        specs: Vec<GroupSpec>,
        stages: Vec<UserStage>,
        end: Option<Duration>,
        shared: bool,
        driven: bool,
    ) -> Self {
        let first = stages.first().copied();
        let per_group = match first {
            Some(stage) if !driven => groups::distribute(stage.target, &specs),
            _ => vec![0; groups.len()],
        };
        let spawn_rate = first.map_or(1.0, |s| s.spawn_rate);
        Self {
            groups,
            specs,
            target: watch::channel(Target {
                per_group,
                spawn_rate,
            })
            .0,
            stages,
            end,
            shared,
        }
    }

    /// Heads for `total` users split over the pool's groups.
    pub(crate) fn set_total(&self, total: u64, spawn_rate: f64) {
        self.set(groups::distribute(total, &self.specs), spawn_rate);
    }

    pub(crate) fn set(&self, per_group: Vec<u64>, spawn_rate: f64) {
        self.target.send_replace(Target {
            per_group,
            spawn_rate,
        });
    }

    /// The users the pool is heading for.
    pub(crate) fn target_total(&self) -> u64 {
        self.target.borrow().per_group.iter().sum()
    }
}

/// Starts and stops the pool's users towards its target until the run stops; then stops
/// them all and waits for them.
///
/// Step `n` of a ramp (a start or a stop) is due `n / spawn_rate` seconds after the ramp
/// started; each wake-up makes every step due by then in one batch (at most
/// [`spawn::MAX_BATCH`](crate::spawn::MAX_BATCH)), so the rate asked is the rate achieved
/// even when it is far above one timer wake-up per user.
pub(crate) async fn run_pool(
    shared: Arc<RunShared>,
    pool: Arc<Pool>,
    state: Arc<watch::Sender<RunState>>,
) {
    let mut stop = shared.stop.signal();
    let mut users = JoinSet::new();
    let mut running: Vec<Vec<StopHandle>> = vec![Vec::new(); pool.groups.len()];
    let mut target_rx = pool.target.subscribe();
    // The ramp under way: when it started, toward which target, and the steps it made.
    let mut ramp: Option<(Instant, Target, u64)> = None;
    loop {
        if shared.stop.is_stopped() {
            break;
        }
        let target = target_rx.borrow_and_update().clone();
        let mut current: Vec<u64> = running.iter().map(|g| g.len() as u64).collect();
        let Some(mut step) = groups::next_step(&target.per_group, &current) else {
            if let Some((start, _, done)) = ramp.take() {
                shared.ramp_done(start.elapsed(), done, target.spawn_rate);
            }
            if *state.borrow() == RunState::Spawning {
                state.send_replace(RunState::Running);
                tracing::info!(users = current.iter().sum::<u64>(), "all users spawned");
            }
            tokio::select! {
                changed = target_rx.changed() => {
                    if changed.is_err() { break; }
                    state.send_replace(RunState::Spawning);
                }
                _ = stop.stopped() => break,
            }
            continue;
        };
        let (start, done) = match &ramp {
            Some((start, ramp_target, done)) if *ramp_target == target => (*start, *done),
            _ => (Instant::now(), 0),
        };
        let due_at = start + saturating_seconds(done as f64 / target.spawn_rate);
        tokio::select! {
            _ = tokio::time::sleep_until(due_at.into()) => {}
            _ = stop.stopped() => break,
        }
        let due = spawn::steps_due(start.elapsed(), target.spawn_rate);
        let mut done = done;
        let mut batch = 0;
        while done < due && batch < spawn::MAX_BATCH {
            match step {
                Step::Stop(index) => {
                    if let Some(handle) = running[index].pop() {
                        handle.stop();
                    }
                    current[index] = current[index].saturating_sub(1);
                }
                Step::Spawn(index) => {
                    let handle = StopHandle::new();
                    let new = shared.new_user(pool.groups[index], handle.signal());
                    let active = new.active;
                    // Not an `async` block around `run_user`: it would hold the user's
                    // context twice (captured, and inside `run_user`'s future).
                    users.spawn(
                        run_user(new.user, new.ctx, new.scenario, new.pacing)
                            .map(move |()| drop(active)),
                    );
                    running[index].push(handle);
                    current[index] += 1;
                }
            }
            done += 1;
            batch += 1;
            match groups::next_step(&target.per_group, &current) {
                Some(next) => step = next,
                None => break,
            }
        }
        ramp = Some((start, target, done));
        // Reap users that ended on their own (their data ran out).
        while let Some(joined) = users.try_join_next() {
            log_join(joined);
        }
        if batch >= spawn::MAX_BATCH {
            // A long catch-up: let the users just started run between batches.
            tokio::task::yield_now().await;
        }
    }
    if let Some((start, target, done)) = ramp.take() {
        shared.ramp_done(start.elapsed(), done, target.spawn_rate);
    }
    for handle in running.iter().flatten() {
        handle.stop();
    }
    while let Some(joined) = users.join_next().await {
        log_join(joined);
    }
}

/// Moves a ramping pool from stage to stage (`origin` is the start of the run); when the
/// last stage ends, stops the pool's users. Returns when the model has ended (or the run
/// stopped).
pub(crate) async fn drive_stages(shared: Arc<RunShared>, pool: Arc<Pool>, origin: Instant) {
    let mut stop = shared.stop.signal();
    for stage in pool.stages.iter().skip(1) {
        tokio::select! {
            _ = tokio::time::sleep_until((origin + stage.start).into()) => {}
            _ = stop.stopped() => return,
        }
        tracing::info!(
            users = stage.target,
            spawn_rate = stage.spawn_rate,
            "load model: next stage"
        );
        pool.set_total(stage.target, stage.spawn_rate);
    }
    let Some(end) = pool.end else {
        return;
    };
    tokio::select! {
        _ = tokio::time::sleep_until((origin + end).into()) => {}
        _ = stop.stopped() => return,
    }
    // The model is over: its users stop (all at once).
    pool.set(vec![0; pool.groups.len()], f64::MAX);
}
