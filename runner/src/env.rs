//! [`Environment`]: one configured test that a program can start, watch and stop.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use load_density_core::data::DataSources;
use load_density_core::event::{EventBus, RequestListener};
use load_density_core::registry;
use load_density_core::scenario::Scenario;
use load_density_core::stats::SharedStats;
use load_density_core::template::JsonTemplate;
use load_density_core::{
    test_record_instance, GroupPlan, PlanError, RequestStats, TestRecord, Variables,
};
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Generator, StartTest, Summary};
use crate::console;
use crate::error::RunError;
use crate::globals;
use crate::plan::{ArrivalModel, LoadModel, PlannedGroup, RunPlan, RunnerMode};
use crate::run::closed::{self, Pool};
use crate::run::generator::GeneratorMonitor;
use crate::run::{arrival, iterations, log_join, GroupRuntime, RunShared, Share};

/// Option keys the runner itself reads, whatever the protocol.
pub const RUNNER_OPTIONS: &[&str] = &[
    "record_capacity",
    "print_stats",
    "stats_interval",
    "source_addresses",
];

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

async fn prepare_group(
    group: &PlannedGroup,
    variables: &Arc<Variables>,
    data: &Arc<DataSources>,
    run_bus: &Arc<EventBus>,
    own_stats: bool,
) -> Result<GroupRuntime, RunError> {
    let spec = group.spec();
    let registration = registry::lookup(&spec.user_type)?;
    let protocol = registration.protocol();
    let plan_error = |source| RunError::Plan {
        group: spec.name.clone(),
        source,
    };
    let tasks = group.tasks().clone();
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
    // A group that keeps its own statistics reports to a bus of its own, which feeds them
    // (and, through `RunShared::add_listener`, the run's other listeners): the request path
    // is the same, and each event is still counted in one statistics only.
    let (bus, stats) = if own_stats {
        let bus = Arc::new(EventBus::new(worker_threads() + 1));
        let stats = SharedStats::new();
        bus.attach_stats(stats.clone());
        (bus, Some(stats))
    } else {
        (run_bus.clone(), None)
    };
    Ok(GroupRuntime {
        name: spec.name.clone(),
        data: data.clone(),
        active: AtomicU64::new(0),
        factory,
        scenario: Arc::new(scenario),
        pacing: group.pacing(),
        bus,
        stats,
        sources: group.source_addresses().cloned(),
        next_source: AtomicU64::new(0),
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
    "load_model",
    "thresholds",
    "csv_prefix",
    "csv_full_history",
];

struct Inner {
    plan: RunPlan,
    shared: Arc<RunShared>,
    /// The closed models' pools (the run's own first, when it has one).
    pools: Vec<Arc<Pool>>,
    /// The arrival-rate groups and the share of their schedule this process runs.
    arrivals: Vec<(usize, ArrivalModel, watch::Sender<Option<Share>>)>,
    stats: SharedStats,
    state: Arc<watch::Sender<RunState>>,
    summary: Mutex<Option<Summary>>,
    started: Mutex<Option<Instant>>,
    /// The generator's CPU and start lag, from the start of the run.
    generator: Mutex<Option<GeneratorMonitor>>,
}

impl Inner {
    /// A copy of the run's statistics: its own, with those of the groups that keep their own
    /// merged in. (Start lags are counted in the run's own only.)
    fn stats_snapshot(&self) -> RequestStats {
        let mut stats = self.stats.snapshot();
        for group in &self.shared.groups {
            if let Some(own) = &group.stats {
                own.with(|own| stats.merge(own));
            }
        }
        stats
    }
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

impl Environment {
    /// Validates `config` and prepares every user group (Python's `create_env`). No user
    /// starts. Everything that can be wrong with the configuration is reported here.
    pub async fn create(config: StartTest) -> Result<Self, RunError> {
        Self::from_plan(RunPlan::compile(config)?).await
    }

    /// Prepares every user group of a compiled plan. No user starts.
    ///
    /// # Errors
    /// A `master` plan (a master runs no users itself), a task its protocol rejects, a CSV
    /// source that cannot be opened.
    pub async fn from_plan(plan: RunPlan) -> Result<Self, RunError> {
        if plan.mode() == RunnerMode::Master {
            return Err(RunError::Config(
                "runner_mode \"master\" runs no users itself: start it with start_test or \
                 distributed::Master::start"
                    .to_owned(),
            ));
        }
        let config = plan.source();
        // Variables and CSV sources: registered ones first, this run's on top (for this run
        // only: a run's own csv_sources are not registered for later runs).
        let mut variables = globals::registered_variables();
        if let Some(own) = &config.variables {
            variables.extend(own.clone());
        }
        if let Some(allowed) = plan.env_allowed() {
            variables.restrict_env(allowed.iter().cloned());
        }
        let variables = Arc::new(variables);
        let data = Arc::new(globals::open_data_sources(config.csv_sources.as_ref())?);
        let bus = Arc::new(EventBus::new(worker_threads() + 1));
        // Groups that a threshold looks at keep statistics of their own.
        let watched = plan.watched_groups();
        let mut prepared = Vec::with_capacity(plan.groups().len());
        for group in plan.groups() {
            let own_stats = watched.iter().any(|name| name == group.name());
            prepared.push(prepare_group(group, &variables, &data, &bus, own_stats).await?);
        }
        if let Some(capacity) = plan.runner_options().record_capacity() {
            test_record_instance().set_capacity(capacity);
        }
        let shared = RunShared::new(prepared, variables, bus);
        // The run's statistics count the events of the run's bus; those of a group with
        // statistics of its own are counted there only, and merged in when read
        // (`Inner::stats_snapshot`), so that no event is counted twice.
        let stats = SharedStats::new();
        shared.bus.attach_stats(stats.clone());
        // A worker ships its records to its master, which keeps them; it attaches the local
        // record store itself when its master cannot take them (a Locust master).
        if plan.mode() != RunnerMode::Worker {
            shared.attach_record_store(test_record_instance().clone());
        }
        let driven = plan.is_driven();
        let mut pools = Vec::new();
        let mut arrivals = Vec::new();
        let sharing: Vec<usize> = (0..plan.groups().len())
            .filter(|&i| plan.groups()[i].own_model().is_none())
            .collect();
        // A worker's groups all wait for their master: the run's closed model is its pool.
        if let (false, LoadModel::Users(model)) = (sharing.is_empty(), plan.shared_model()) {
            pools.push(Arc::new(Pool::new(
                sharing.clone(),
                sharing
                    .iter()
                    .map(|&i| plan.groups()[i].spec().clone())
                    .collect(),
                model.stages().to_vec(),
                plan.shared_model().end(),
                true,
                driven,
            )));
        }
        for (index, group) in plan.groups().iter().enumerate() {
            if let Some(LoadModel::Users(model)) = group.own_model() {
                pools.push(Arc::new(Pool::new(
                    vec![index],
                    vec![group.spec().clone()],
                    model.stages().to_vec(),
                    group.own_model().and_then(LoadModel::end),
                    false,
                    driven,
                )));
            }
            if let Some(LoadModel::Arrivals(model)) = plan.model_of(index) {
                let share = (!driven).then_some(Share::WHOLE);
                arrivals.push((index, model.clone(), watch::channel(share).0));
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                pools,
                arrivals,
                stats,
                state: Arc::new(watch::channel(RunState::Ready).0),
                summary: Mutex::new(None),
                started: Mutex::new(None),
                generator: Mutex::new(None),
                plan,
            }),
        })
    }

    /// Adds a listener that sees every batch of finished requests of this run.
    pub fn add_listener(&self, listener: Arc<dyn RequestListener>) {
        self.inner.shared.add_listener(listener);
    }

    /// Aggregates this run's requests (every group's) into `stats` too (per worker thread,
    /// merged at each flush; see [`EventBus::attach_stats`]).
    pub fn attach_stats(&self, stats: SharedStats) {
        self.inner.shared.attach_stats(stats);
    }

    /// Keeps this run's requests (every group's) in `store` (see
    /// [`EventBus::attach_record_store`]).
    pub fn attach_record_store(&self, store: Arc<TestRecord>) {
        self.inner.shared.attach_record_store(store);
    }

    /// Adds a listener of one user group's own statistics: it sees the batches of the group's
    /// own bus only. `false` (nothing added) when no group `group` keeps statistics of its own.
    pub(crate) fn add_group_listener(
        &self,
        group: &str,
        listener: Arc<dyn RequestListener>,
    ) -> bool {
        match self
            .inner
            .shared
            .groups
            .iter()
            .find(|g| g.name == group && g.stats.is_some())
        {
            Some(runtime) => {
                runtime.bus.add_listener(listener);
                true
            }
            None => false,
        }
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
        self.inner.shared.stop.stop();
    }

    /// Cuts off the tasks still in flight: each is recorded as a failure, "stopped by the
    /// end of the test". Call it after [`Environment::stop`], once in-flight tasks have had
    /// their grace (a distributed worker gives them `stop_timeout`).
    pub fn cancel_in_flight(&self) {
        self.inner.shared.stop.stop();
        self.inner.shared.cancel.stop();
    }

    /// Stops the run and waits for it: tasks in flight get `grace` to finish, then are cut
    /// off ([`Environment::cancel_in_flight`]).
    pub async fn stop_within(&self, grace: Duration) -> Summary {
        self.stop();
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(summary) => summary,
            Err(_) => {
                tracing::info!(
                    grace_s = grace.as_secs_f64(),
                    "tasks still in flight after the stop grace: cutting them off"
                );
                self.cancel_in_flight();
                self.wait().await
            }
        }
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        *self.inner.state.borrow()
    }

    /// Users currently running.
    pub fn user_count(&self) -> u64 {
        self.inner.shared.active.load(Ordering::Relaxed)
    }

    /// Changes the number of users while the run goes (Locust's swarm): the new count is split
    /// over the groups as at the start (fixed counts first, then weights) and users are started
    /// or stopped one at a time at `spawn_rate` per second. Stopped users finish their task in
    /// flight first.
    ///
    /// # Errors
    /// A spawn rate that is not a positive number; a run whose own load model is not a closed
    /// one, or that runs an arrival-rate model (its schedule decides how many users run).
    pub fn set_user_count(&self, user_count: u64, spawn_rate: f64) -> Result<(), RunError> {
        crate::limits::check_user_count(user_count).map_err(RunError::Config)?;
        crate::limits::check_spawn_rate(spawn_rate).map_err(RunError::Config)?;
        let pool = self
            .inner
            .pools
            .iter()
            .find(|p| p.shared)
            .filter(|_| !self.inner.plan.has_open_model())
            .ok_or_else(|| RunError::Config(OPEN_MODEL_REFUSES_USER_COUNT.to_owned()))?;
        pool.set_total(user_count, spawn_rate);
        Ok(())
    }

    /// Sets the number of users of each named group (a master's per-class dispatch). Groups not
    /// named get none.
    pub fn set_group_user_counts(
        &self,
        counts: &[(String, u64)],
        spawn_rate: f64,
    ) -> Result<(), RunError> {
        check_spawn_rate(spawn_rate)?;
        let groups = &self.inner.shared.groups;
        let mut per_group = vec![0; groups.len()];
        for (name, count) in counts {
            let index = groups.iter().position(|g| &g.name == name).ok_or_else(|| {
                RunError::Config(format!(
                    "no user group named {name:?} (groups: {})",
                    self.group_names().join(", ")
                ))
            })?;
            per_group[index] = *count;
        }
        for pool in &self.inner.pools {
            pool.set(
                pool.groups.iter().map(|&i| per_group[i]).collect(),
                spawn_rate,
            );
        }
        Ok(())
    }

    /// Gives this process its share of every arrival-rate schedule (a master splitting the
    /// rate over its workers). Ignored by runs without an arrival-rate model.
    pub fn set_arrival_share(&self, share: Share) {
        for (_, _, sender) in &self.inner.arrivals {
            sender.send_replace(Some(share));
        }
    }

    /// Iterations per second the arrival-rate schedules ask for now (0 before the start,
    /// after the end, or without one).
    pub fn target_rate(&self) -> f64 {
        let Some(started) = *self.inner.started.lock() else {
            return 0.0;
        };
        if self.state() == RunState::Stopped {
            return 0.0;
        }
        let elapsed = started.elapsed().as_secs_f64();
        self.inner
            .arrivals
            .iter()
            .map(|(_, model, _)| model.curve().rate_at(elapsed))
            .sum()
    }

    /// The generator's CPU use and start lag so far, and whether it limits the run (`None`
    /// before the start).
    pub fn generator(&self) -> Option<Generator> {
        // Start lags are always counted in the run's own statistics (the run's bus).
        let lag = self.inner.stats.with(|s| {
            (
                s.start_lag_percentile_ms(50.0),
                s.start_lag_percentile_ms(99.0),
            )
        });
        self.inner.generator.lock().as_ref().map(|g| g.status(lag))
    }

    /// The user count the run is heading for (closed models).
    pub fn target_user_count(&self) -> u64 {
        self.inner.pools.iter().map(|p| p.target_total()).sum()
    }

    /// The groups' names, in configuration order.
    pub fn group_names(&self) -> Vec<String> {
        self.inner
            .shared
            .groups
            .iter()
            .map(|g| g.name.clone())
            .collect()
    }

    /// Starts the measurement over (Locust's reset): clears this run's statistics and the
    /// record store (as `LD_clear_records` does), so that the tables, the web UI, the summary
    /// `start_test` returns, `LD_summary` and every report count from the reset, and rates are
    /// over the time since it. A worker's records belong to its master: a worker clears only
    /// its statistics.
    pub fn reset_stats(&self) {
        self.inner.shared.flush();
        self.inner.stats.with(|stats| stats.reset());
        for group in &self.inner.shared.groups {
            if let Some(stats) = &group.stats {
                stats.with(|stats| stats.reset());
            }
        }
        if self.inner.plan.mode() != RunnerMode::Worker {
            test_record_instance().clear_records();
        }
    }

    /// Users currently running, per group: (group name, users).
    pub fn group_user_counts(&self) -> Vec<(String, u64)> {
        self.inner
            .shared
            .groups
            .iter()
            .map(|g| (g.name.clone(), g.active.load(Ordering::Relaxed)))
            .collect()
    }

    /// Users started so far.
    pub fn users_spawned(&self) -> u64 {
        self.inner.shared.spawned.load(Ordering::Relaxed)
    }

    /// Live statistics of this run (buffered events are delivered first).
    pub fn stats(&self) -> RequestStats {
        self.inner.shared.flush();
        self.inner.stats_snapshot()
    }

    /// Live statistics of each user group that keeps its own: those a threshold looks at
    /// (`{group:G}` filters, `user_groups[i].thresholds`), as (group name, statistics), in
    /// configuration order. Other groups' requests are only in the run's [`stats`](Self::stats).
    pub fn group_stats(&self) -> Vec<(String, RequestStats)> {
        self.inner.shared.flush();
        self.inner
            .shared
            .groups
            .iter()
            .filter_map(|g| g.stats.as_ref().map(|s| (g.name.clone(), s.snapshot())))
            .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &StartTest {
        self.inner.plan.source()
    }

    /// The compiled plan.
    pub fn plan(&self) -> &RunPlan {
        &self.inner.plan
    }

    /// The run-level variables.
    pub fn variables(&self) -> &Arc<Variables> {
        &self.inner.shared.variables
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

/// Why a user count cannot be set on a run with an open (or iteration) load model.
pub const OPEN_MODEL_REFUSES_USER_COUNT: &str =
    "this run's load model is not a closed one (an arrival-rate schedule or an iteration model \
     decides how many users run), so its user count cannot be set: stop it and start a new run";

fn check_spawn_rate(spawn_rate: f64) -> Result<(), RunError> {
    if spawn_rate.is_finite() && spawn_rate > 0.0 {
        Ok(())
    } else {
        Err(RunError::Config(format!(
            "spawn_rate must be a positive number, got {spawn_rate}"
        )))
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
    let stats = inner.stats_snapshot();
    let mut summary = Summary::of_run(
        inner.plan.source(),
        inner.plan.mode().name(),
        inner.shared.spawned.load(Ordering::Relaxed),
        &stats,
        duration,
    );
    summary.achieved_spawn_rate = inner.shared.achieved_spawn_rate();
    if summary.users_spawned < summary.user_count && inner.plan.mode() == RunnerMode::Local {
        tracing::warn!(
            users_spawned = summary.users_spawned,
            user_count = summary.user_count,
            "the run ended before every user was started"
        );
    }
    // After a statistics reset, the rates are over the time since the reset.
    let summary = summary.counted_from_reset(&stats, duration);
    match inner.generator.lock().as_ref() {
        Some(generator) => summary.with_generator(generator.status((
            stats.start_lag_percentile_ms(50.0),
            stats.start_lag_percentile_ms(99.0),
        ))),
        None => summary,
    }
}

async fn run(inner: Arc<Inner>) {
    let started = Instant::now();
    *inner.started.lock() = Some(started);
    *inner.generator.lock() = Some(GeneratorMonitor::new());
    let shared = inner.shared.clone();
    let print_stats = inner.plan.runner_options().print_stats();
    let now = std::time::SystemTime::now();
    inner.stats.with(|stats| stats.mark_start(now));
    for group in &shared.groups {
        if let Some(stats) = &group.stats {
            stats.with(|stats| stats.mark_start(now));
        }
    }

    let collector = tokio::spawn({
        let shared = shared.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                // Off the worker threads: the users on them never wait for a flush (they
                // wait only for their shard's buffer to be swapped).
                let shared = shared.clone();
                if let Err(error) = tokio::task::spawn_blocking(move || shared.flush()).await {
                    tracing::error!(%error, "a statistics flush failed");
                }
            }
        }
    });
    // Is the generator the bottleneck? Sampled once a second; warns once.
    let monitor = tokio::spawn({
        let inner = inner.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let lag = inner.stats.with(|s| s.start_lag_percentile_ms(99.0));
                if let Some(generator) = inner.generator.lock().as_mut() {
                    generator.sample(lag);
                }
            }
        }
    });
    let printer = print_stats.then(|| {
        let inner = inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(inner.plan.runner_options().stats_interval());
            tick.tick().await;
            loop {
                tick.tick().await;
                // Off the worker threads too: a flush, a copy of every histogram and a table
                // written to the console would hold a worker's users for milliseconds.
                let inner = inner.clone();
                let printed = tokio::task::spawn_blocking(move || {
                    inner.shared.flush();
                    console::print_live(
                        &inner.stats_snapshot(),
                        inner.shared.active.load(Ordering::Relaxed),
                        started.elapsed(),
                        inner.plan.end().map(|end| end.as_secs_f64()),
                    );
                })
                .await;
                if let Err(error) = printed {
                    tracing::error!(%error, "printing the live statistics failed");
                }
            }
        })
    });
    // test_time; the models' own end comes from their drivers ending (below), so that
    // iterations an arrival-rate model delayed still run after its last due time.
    let timer = inner.plan.test_time().map(|end| {
        let stop = shared.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(end).await;
            stop.stop();
        })
    });

    let mut drivers = JoinSet::new();
    for pool in &inner.pools {
        drivers.spawn(closed::run_pool(
            shared.clone(),
            pool.clone(),
            inner.state.clone(),
        ));
    }
    // Models that end by themselves; when all have, the run ends.
    let mut ending = JoinSet::new();
    if !inner.plan.is_driven() {
        for pool in &inner.pools {
            if pool.stages.len() > 1 || pool.end.is_some() {
                ending.spawn(closed::drive_stages(shared.clone(), pool.clone(), started));
            }
        }
        for (index, group) in inner.plan.groups().iter().enumerate() {
            if let Some(LoadModel::Iterations(model)) = inner.plan.model_of(index) {
                let _ = group;
                ending.spawn(iterations::drive(shared.clone(), index, *model));
            }
        }
    }
    for (index, model, share) in &inner.arrivals {
        ending.spawn(arrival::drive(
            shared.clone(),
            *index,
            model.clone(),
            share.subscribe(),
        ));
    }
    if inner.pools.is_empty() {
        inner.state.send_replace(RunState::Running);
    }
    let every_model_ends = !inner.plan.is_driven()
        && (0..inner.plan.groups().len()).all(|i| {
            inner
                .plan
                .model_of(i)
                .is_some_and(|m| matches!(m, LoadModel::Iterations(_)) || m.end().is_some())
        });
    let mut stop = shared.stop.signal();
    loop {
        tokio::select! {
            joined = ending.join_next() => match joined {
                Some(joined) => log_join(joined),
                None => {
                    if every_model_ends {
                        tracing::info!("every load model has ended: the run stops");
                        shared.stop.stop();
                    }
                    break;
                }
            },
            _ = stop.stopped() => break,
        }
    }
    let _ = stop.stopped().await;
    inner.state.send_replace(RunState::Stopping);
    while let Some(joined) = ending.join_next().await {
        log_join(joined);
    }
    while let Some(joined) = drivers.join_next().await {
        log_join(joined);
    }
    if let Some(timer) = timer {
        timer.abort();
    }
    if let Some(printer) = printer {
        printer.abort();
    }
    collector.abort();
    monitor.abort();
    shared.flush();
    let duration = started.elapsed();
    if print_stats {
        console::print_final(&inner.stats_snapshot());
    }
    *inner.summary.lock() = Some(summarize(&inner, duration));
    inner.state.send_replace(RunState::Stopped);
}
