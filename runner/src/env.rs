//! [`Environment`]: one configured test that a program can start, watch and stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use load_density_core::context::{StopHandle, StopSignal};
use load_density_core::data::DataSources;
use load_density_core::event::{EventBus, RequestListener};
use load_density_core::registry;
use load_density_core::scenario::{run_user, Scenario};
use load_density_core::stats::SharedStats;
use load_density_core::template::JsonTemplate;
use load_density_core::variables::UserVariables;
use load_density_core::{
    test_record_instance, GroupPlan, Pacing, PlanError, RequestStats, TaskList, UserContext,
    UserFactory, Variables,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{StartTest, Summary};
use crate::console;
use crate::error::RunError;
use crate::globals;
use crate::groups::{self, GroupSpec};
use crate::spawn;

/// Option keys the runner itself reads, whatever the protocol.
pub const RUNNER_OPTIONS: &[&str] = &["record_capacity", "print_stats", "stats_interval"];

/// How many users each group should have, and how fast to get there.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    per_group: Vec<u64>,
    spawn_rate: f64,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Configured, not started.
    Ready,
    /// Starting users.
    Spawning,
    /// Every user started.
    Running,
    /// Stop asked; in-flight requests are finishing.
    Stopping,
    /// Finished.
    Stopped,
}

struct Group {
    name: String,
    data: Arc<DataSources>,
    active: AtomicU64,
    factory: Arc<dyn UserFactory>,
    scenario: Arc<Scenario>,
    pacing: Pacing,
}

async fn prepare_group(
    spec: GroupSpec,
    variables: &Arc<Variables>,
    data: &Arc<DataSources>,
) -> Result<Group, RunError> {
    let registration = registry::lookup(&spec.user_type)?;
    let protocol = registration.protocol();
    let known: Vec<&str> = RUNNER_OPTIONS
        .iter()
        .chain(protocol.option_names())
        .copied()
        .collect();
    if let Some(unknown) = spec.options.keys().find(|k| !known.contains(&k.as_str())) {
        let mut sorted = known.clone();
        sorted.sort_unstable();
        return Err(RunError::Config(format!(
            "unknown key {unknown:?} for user type {:?} (start_test keys: {}; options of this user type: {})",
            spec.user_type,
            START_TEST_KEYS.join(", "),
            sorted.join(", ")
        )));
    }
    let plan_error = |source| RunError::Plan {
        group: spec.name.clone(),
        source,
    };
    let pacing = match &spec.wait_time {
        None => Pacing::None,
        Some(value) => Pacing::from_json(value).map_err(|e| plan_error(PlanError::Config(e)))?,
    };
    let tasks = TaskList::from_json(&spec.tasks).map_err(plan_error)?;
    // Every `${csv.SOURCE.COLUMN}` must name a registered source and one of its columns.
    for task in tasks.tasks() {
        let all_keys = JsonTemplate::new(Value::Object(task.keys().clone()));
        data.check_json_template(&all_keys)
            .map_err(|e| plan_error(PlanError::task(task.index(), "", e.to_string())))?;
        for unknown in all_keys.unknown_placeholders() {
            tracing::warn!(
                group = %spec.name,
                task = task.index(),
                placeholder = unknown.raw(),
                reason = unknown.reason(),
                "this placeholder is not understood and will be sent as written"
            );
        }
    }
    let scenario = Scenario::new(&tasks).map_err(plan_error)?;
    let plan = GroupPlan::new(spec.user_type.clone(), tasks)
        .with_name(spec.name.clone())
        .with_host(spec.host.clone())
        .with_options(spec.options.clone())
        .with_variables(variables.clone());
    let factory = protocol.prepare(&plan).await.map_err(plan_error)?;
    Ok(Group {
        name: spec.name,
        data: data.clone(),
        active: AtomicU64::new(0),
        factory,
        scenario: Arc::new(scenario),
        pacing,
    })
}

/// The keys `start_test` itself takes.
pub const START_TEST_KEYS: &[&str] = &[
    "user_detail_dict",
    "user_count",
    "spawn_rate",
    "test_time",
    "web_ui_dict",
    "runner_mode",
    "master_bind_host",
    "master_bind_port",
    "master_host",
    "master_port",
    "expected_workers",
    "tasks",
    "variables",
    "csv_sources",
    "host",
    "wait_time",
    "user_groups",
];

struct Inner {
    config: StartTest,
    groups: Vec<Group>,
    /// Weights and fixed counts, to split a new user count over the groups.
    specs: Vec<GroupSpec>,
    target: watch::Sender<Target>,
    variables: Arc<Variables>,
    bus: Arc<EventBus>,
    stats: SharedStats,
    stop: StopHandle,
    state: watch::Sender<RunState>,
    spawned: AtomicU64,
    active: AtomicU64,
    print_stats: bool,
    stats_interval: Duration,
    summary: Mutex<Option<Summary>>,
    started: Mutex<Option<Instant>>,
    /// Users per second the last ramp achieved.
    achieved_spawn_rate: Mutex<Option<f64>>,
    /// Whether the log already said the rate asked could not be kept.
    spawn_warned: std::sync::atomic::AtomicBool,
}

/// A configured test. Cheap to clone; clones share the run.
#[derive(Clone)]
pub struct Environment {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("state", &self.state())
            .field("users", &self.user_count())
            .finish_non_exhaustive()
    }
}

fn option_bool(options: &Map<String, Value>, key: &str, default: bool) -> Result<bool, RunError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(value) if load_density_core::task::values::bool_of(value).is_some() => {
            Ok(load_density_core::task::values::bool_of(value).unwrap_or(default))
        }
        Some(other) => Err(RunError::Config(format!(
            "{key} must be true or false (or 0 / 1), got {other}"
        ))),
    }
}

fn option_f64(options: &Map<String, Value>, key: &str) -> Result<Option<f64>, RunError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        // A duration such as "2s" for stats_interval.
        Some(Value::String(text)) if key == "stats_interval" => {
            load_density_core::task::values::parse_duration(text)
                .map(Some)
                .map_err(|e| RunError::Config(format!("{key}: {e}")))
        }
        Some(other) => Err(RunError::Config(format!(
            "{key} must be a number, got {other}"
        ))),
    }
}

impl Environment {
    /// Validates `config` and prepares every user group (Python's `create_env`). No user
    /// starts. Everything that can be wrong with the configuration is reported here.
    pub async fn create(mut config: StartTest) -> Result<Self, RunError> {
        // The distributed options (stop_timeout, distributed_records, ...) mean nothing to a
        // local run: accepted and ignored, with a note, so one plan serves both modes.
        for key in crate::distributed::DISTRIBUTED_OPTION_KEYS {
            let given = config.extra.remove(*key).is_some()
                | config.user_detail_dict.remove(*key).is_some();
            if given && config.runner_mode == "local" {
                tracing::warn!(
                    key,
                    "ignored: this option applies to distributed runs (runner_mode \"master\" or \"worker\")"
                );
            }
        }
        // A worker's environment is driven by its master (user counts, start and stop);
        // a master runs no users itself (see `crate::distributed`).
        let worker = match config.runner_mode.as_str() {
            "local" => false,
            "worker" => true,
            "master" => {
                return Err(RunError::Config(
                    "runner_mode \"master\" runs no users itself: start it with start_test or \
                     distributed::Master::start"
                        .to_owned(),
                ))
            }
            other => return Err(RunError::UnsupportedMode(other.to_owned())),
        };
        if !(config.spawn_rate.is_finite() && config.spawn_rate > 0.0) {
            return Err(RunError::Config(format!(
                "spawn_rate must be a positive number, got {}",
                config.spawn_rate
            )));
        }
        if let Some(t) = config.test_time {
            if !(t.is_finite() && t >= 0.0) {
                return Err(RunError::Config(format!(
                    "test_time must be a number of seconds >= 0 or null, got {t}"
                )));
            }
        }
        let specs = groups::groups_of(&config)?;
        // Runner options may sit in any group's options (or user_detail_dict); read them from
        // the first group that has them.
        let runner_options: Map<String, Value> = specs
            .iter()
            .flat_map(|g| g.options.iter())
            .filter(|(k, _)| RUNNER_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // A worker prints nothing: its master shows the run.
        let print_stats = option_bool(&runner_options, "print_stats", true)? && !worker;
        let stats_interval = option_f64(&runner_options, "stats_interval")?.unwrap_or(2.0);
        if !(stats_interval.is_finite() && stats_interval > 0.0) {
            return Err(RunError::Config(format!(
                "stats_interval must be a positive number of seconds, got {stats_interval}"
            )));
        }
        let record_capacity = match option_f64(&runner_options, "record_capacity")? {
            Some(c) if c < 0.0 || c.fract() != 0.0 => {
                return Err(RunError::Config(format!(
                    "record_capacity must be a whole number >= 0, got {c}"
                )))
            }
            other => other,
        };

        // Variables and CSV sources: registered ones first, this run's on top (for this run
        // only: a run's own csv_sources are not registered for later runs).
        let mut variables = globals::registered_variables();
        if let Some(own) = &config.variables {
            variables.extend(own.clone());
        }
        let variables = Arc::new(variables);
        let data = Arc::new(globals::open_data_sources(config.csv_sources.as_ref())?);

        let targets = groups::distribute(config.user_count, &specs);
        let mut prepared = Vec::with_capacity(specs.len());
        let kept_specs = specs.clone();
        let spawn_rate = config.spawn_rate;
        for spec in specs {
            prepared.push(prepare_group(spec, &variables, &data).await?);
        }
        if let Some(capacity) = record_capacity {
            test_record_instance().set_capacity(capacity as usize);
        }
        let bus = Arc::new(EventBus::new(worker_threads() + 1));
        let stats = SharedStats::new();
        bus.add_listener(Arc::new(stats.clone()));
        // A worker ships its records to its master, which keeps them; it adds the local
        // record store itself when its master cannot take them (a Locust master).
        if !worker {
            bus.add_listener(test_record_instance().clone() as Arc<dyn RequestListener>);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                target: watch::channel(Target {
                    per_group: targets,
                    spawn_rate,
                })
                .0,
                specs: kept_specs,
                groups: prepared,
                variables,
                bus,
                stats,
                stop: StopHandle::new(),
                state: watch::channel(RunState::Ready).0,
                spawned: AtomicU64::new(0),
                active: AtomicU64::new(0),
                print_stats,
                stats_interval: Duration::from_secs_f64(stats_interval),
                summary: Mutex::new(None),
                started: Mutex::new(None),
                achieved_spawn_rate: Mutex::new(None),
                spawn_warned: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Adds a listener that sees every batch of finished requests of this run.
    pub fn add_listener(&self, listener: Arc<dyn RequestListener>) {
        self.inner.bus.add_listener(listener);
    }

    /// Starts the run on the current tokio runtime. Calling it again does nothing.
    pub fn start(&self) {
        if self.inner.state.send_if_modified(|state| {
            if *state == RunState::Ready {
                *state = RunState::Spawning;
                true
            } else {
                false
            }
        }) {
            let inner = self.inner.clone();
            tokio::spawn(run(inner));
        }
    }

    /// Asks the run to stop: no new task starts; requests in flight finish (or time out) and
    /// are recorded.
    pub fn stop(&self) {
        self.inner.stop.stop();
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        *self.inner.state.borrow()
    }

    /// Users currently running.
    pub fn user_count(&self) -> u64 {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Changes the number of users while the run goes (Locust's swarm): the new count is split
    /// over the groups as at the start (fixed counts first, then weights) and users are started
    /// or stopped one at a time at `spawn_rate` per second. Stopped users finish their task in
    /// flight first.
    pub fn set_user_count(&self, user_count: u64, spawn_rate: f64) -> Result<(), RunError> {
        let per_group = groups::distribute(user_count, &self.inner.specs);
        self.set_targets(per_group, spawn_rate)
    }

    /// Sets the number of users of each named group (a master's per-class dispatch). Groups not
    /// named get none.
    pub fn set_group_user_counts(
        &self,
        counts: &[(String, u64)],
        spawn_rate: f64,
    ) -> Result<(), RunError> {
        let mut per_group = vec![0; self.inner.groups.len()];
        for (name, count) in counts {
            let index = self
                .inner
                .groups
                .iter()
                .position(|g| &g.name == name)
                .ok_or_else(|| {
                    RunError::Config(format!(
                        "no user group named {name:?} (groups: {})",
                        self.group_names().join(", ")
                    ))
                })?;
            per_group[index] = *count;
        }
        self.set_targets(per_group, spawn_rate)
    }

    fn set_targets(&self, per_group: Vec<u64>, spawn_rate: f64) -> Result<(), RunError> {
        if !(spawn_rate.is_finite() && spawn_rate > 0.0) {
            return Err(RunError::Config(format!(
                "spawn_rate must be a positive number, got {spawn_rate}"
            )));
        }
        self.inner.target.send_replace(Target {
            per_group,
            spawn_rate,
        });
        Ok(())
    }

    /// The user count the run is heading for.
    pub fn target_user_count(&self) -> u64 {
        self.inner.target.borrow().per_group.iter().sum()
    }

    /// The groups' names, in configuration order.
    pub fn group_names(&self) -> Vec<String> {
        self.inner.groups.iter().map(|g| g.name.clone()).collect()
    }

    /// Starts the measurement over (Locust's reset): clears this run's statistics and the
    /// record store (as `LD_clear_records` does), so that the tables, the web UI, the summary
    /// `start_test` returns, `LD_summary` and every report count from the reset, and rates are
    /// over the time since it. A worker's records belong to its master: a worker clears only
    /// its statistics.
    pub fn reset_stats(&self) {
        self.inner.bus.flush();
        self.inner.stats.with(|stats| stats.reset());
        if self.inner.config.runner_mode != "worker" {
            test_record_instance().clear_records();
        }
    }

    /// Users currently running, per group: (group name, users).
    pub fn group_user_counts(&self) -> Vec<(String, u64)> {
        self.inner
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.active.load(Ordering::Relaxed)))
            .collect()
    }

    /// Users started so far.
    pub fn users_spawned(&self) -> u64 {
        self.inner.spawned.load(Ordering::Relaxed)
    }

    /// Live statistics of this run (buffered events are delivered first).
    pub fn stats(&self) -> RequestStats {
        self.inner.bus.flush();
        self.inner.stats.snapshot()
    }

    /// The configuration.
    pub fn config(&self) -> &StartTest {
        &self.inner.config
    }

    /// The run-level variables.
    pub fn variables(&self) -> &Arc<Variables> {
        &self.inner.variables
    }

    /// Waits until the run has stopped and returns its summary.
    pub async fn wait(&self) -> Summary {
        let mut state = self.inner.state.subscribe();
        // The sender lives in `inner`, which we hold, so this cannot fail.
        let _ = state.wait_for(|s| *s == RunState::Stopped).await;
        self.inner
            .summary
            .lock()
            .clone()
            .unwrap_or_else(|| summarize(&self.inner, Duration::ZERO))
    }
}

/// Worker threads the runtime uses: one per CPU this process may run on (its affinity mask and
/// cgroup quota, as `available_parallelism` reports on Linux), not the machine's core count.
pub fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(std::num::NonZeroUsize::get)
        .unwrap_or(1)
}

fn summarize(inner: &Inner, duration: Duration) -> Summary {
    let stats = inner.stats.snapshot();
    let mut summary = Summary::of_run(
        &inner.config,
        &inner.config.runner_mode,
        inner.spawned.load(Ordering::Relaxed),
        stats.total(),
        duration,
    );
    summary.achieved_spawn_rate = *inner.achieved_spawn_rate.lock();
    if summary.users_spawned < summary.user_count && inner.config.runner_mode == "local" {
        tracing::warn!(
            users_spawned = summary.users_spawned,
            user_count = summary.user_count,
            "the run ended before every user was started"
        );
    }
    // After a statistics reset, the rates are over the time since the reset.
    summary.counted_from_reset(&stats, duration)
}

/// Keeps the rate a finished (or stopped) ramp achieved, for the summary.
fn ramp_done(inner: &Inner, elapsed: Duration, done: u64, rate: f64) {
    if let Some(achieved) = spawn::achieved_rate(elapsed, done, rate, &inner.spawn_warned) {
        *inner.achieved_spawn_rate.lock() = Some(achieved);
    }
}

fn spawn_user(
    inner: &Arc<Inner>,
    users: &mut JoinSet<()>,
    group_index: usize,
    user_id: u64,
    stop: StopSignal,
) {
    let group = &inner.groups[group_index];
    let user = group.factory.new_user(user_id);
    let ctx = UserContext::new(
        user_id,
        inner.bus.clone(),
        UserVariables::with_data(inner.variables.clone(), group.data.clone(), user_id),
        stop,
    )
    .with_run_stop(inner.stop.clone());
    let scenario = group.scenario.clone();
    let pacing = group.pacing;
    let active = inner.clone();
    active.active.fetch_add(1, Ordering::Relaxed);
    group.active.fetch_add(1, Ordering::Relaxed);
    users.spawn(async move {
        run_user(user, ctx, scenario, pacing).await;
        active.active.fetch_sub(1, Ordering::Relaxed);
        active.groups[group_index]
            .active
            .fetch_sub(1, Ordering::Relaxed);
    });
    inner.spawned.fetch_add(1, Ordering::Relaxed);
}

async fn run(inner: Arc<Inner>) {
    let started = Instant::now();
    *inner.started.lock() = Some(started);
    inner
        .stats
        .with(|stats| stats.mark_start(std::time::SystemTime::now()));
    let mut stop: StopSignal = inner.stop.signal();

    let collector = tokio::spawn({
        let bus = inner.bus.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                bus.flush();
            }
        }
    });
    let printer = inner.print_stats.then(|| {
        let inner = inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(inner.stats_interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                inner.bus.flush();
                console::print_live(
                    &inner.stats.snapshot(),
                    inner.active.load(Ordering::Relaxed),
                    started.elapsed(),
                    inner.config.test_time,
                );
            }
        })
    });
    let timer = inner.config.test_time.map(|secs| {
        let stop = inner.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            stop.stop();
        })
    });

    let mut users = JoinSet::new();
    let mut running: Vec<Vec<StopHandle>> = vec![Vec::new(); inner.groups.len()];
    let mut target_rx = inner.target.subscribe();
    let mut next_user_id = 0u64;
    // The ramp under way: when it started, toward which target, and how many steps it made.
    // Step `n` of a ramp is due `n / spawn_rate` seconds after its start; each wake-up makes
    // every step due by then in one batch, so the rate asked is the rate achieved even when it
    // is far above what one timer wake-up per user allows.
    let mut ramp: Option<(Instant, Target, u64)> = None;
    loop {
        if inner.stop.is_stopped() {
            break;
        }
        let target = target_rx.borrow_and_update().clone();
        let mut current: Vec<u64> = running.iter().map(|g| g.len() as u64).collect();
        let Some(mut step) = groups::next_step(&target.per_group, &current) else {
            if let Some((start, _, done)) = ramp.take() {
                ramp_done(&inner, start.elapsed(), done, target.spawn_rate);
            }
            if *inner.state.borrow() == RunState::Spawning {
                inner.state.send_replace(RunState::Running);
                tracing::info!(users = current.iter().sum::<u64>(), "all users spawned");
            }
            tokio::select! {
                changed = target_rx.changed() => {
                    if changed.is_err() { break; }
                    inner.state.send_replace(RunState::Spawning);
                }
                _ = stop.stopped() => break,
            }
            continue;
        };
        let (start, done) = match &ramp {
            Some((start, ramp_target, done)) if *ramp_target == target => (*start, *done),
            _ => (Instant::now(), 0),
        };
        let due_at = start + Duration::from_secs_f64(done as f64 / target.spawn_rate);
        tokio::select! {
            _ = tokio::time::sleep_until(due_at.into()) => {}
            _ = stop.stopped() => break,
        }
        let due = spawn::steps_due(start.elapsed(), target.spawn_rate);
        let mut done = done;
        let mut batch = 0;
        while done < due && batch < spawn::MAX_BATCH {
            match step {
                groups::Step::Stop(group_index) => {
                    if let Some(handle) = running[group_index].pop() {
                        handle.stop();
                    }
                    current[group_index] -= 1;
                }
                groups::Step::Spawn(group_index) => {
                    let user_id = next_user_id;
                    next_user_id += 1;
                    let handle = StopHandle::new();
                    spawn_user(&inner, &mut users, group_index, user_id, handle.signal());
                    running[group_index].push(handle);
                    current[group_index] += 1;
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
            if let Err(error) = joined {
                tracing::error!(%error, "a user task ended abnormally");
            }
        }
        if batch >= spawn::MAX_BATCH {
            // A long catch-up: let the users just started run between batches.
            tokio::task::yield_now().await;
        }
    }
    if let Some((start, target, done)) = ramp.take() {
        ramp_done(&inner, start.elapsed(), done, target.spawn_rate);
    }
    inner.state.send_replace(RunState::Stopping);
    for handle in running.iter().flatten() {
        handle.stop();
    }
    while let Some(joined) = users.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a user task ended abnormally");
        }
    }
    if let Some(timer) = timer {
        timer.abort();
    }
    if let Some(printer) = printer {
        printer.abort();
    }
    collector.abort();
    inner.bus.flush();
    let duration = started.elapsed();
    if inner.print_stats {
        console::print_final(&inner.stats.snapshot());
    }
    *inner.summary.lock() = Some(summarize(&inner, duration));
    inner.state.send_replace(RunState::Stopped);
}
