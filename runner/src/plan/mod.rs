//! The run plan: `start_test`'s configuration ([`StartTest`]) compiled once, at the top, into
//! typed and validated values.
//!
//! [`RunPlan::compile`] reads every keyword once and reports every mistake before anything
//! starts, naming its JSON path (`user_groups[1].load_model.stages[0].target: must be ...`).
//! The local runner ([`Environment`](crate::Environment)), the
//! [`Master`](crate::distributed::Master) and the [`Worker`](crate::distributed::Worker) all
//! run from a plan and never read the JSON again. What needs the protocol crates (each
//! protocol validating its tasks, the CSV sources being opened) happens when an environment
//! is created from the plan, still before any user starts.
//!
//! ```
//! use load_density::plan::{LoadModel, RunPlan};
//!
//! let config: load_density::StartTest = serde_json::from_value(serde_json::json!({
//!     "user_detail_dict": {"user": "fast_http_user"},
//!     "test_time": 30,
//!     "load_model": {"type": "constant_arrival_rate", "rate": 50, "duration": 10,
//!                    "pre_allocated_users": 5, "max_users": 20},
//!     "tasks": [{"method": "get", "request_url": "http://127.0.0.1:8080/"}]
//! })).unwrap();
//! let plan = RunPlan::compile(config).unwrap();
//! assert!(matches!(plan.shared_model(), LoadModel::Arrivals(_)));
//! // The model's own end (10 s) comes before test_time (30 s).
//! assert_eq!(plan.end(), Some(std::time::Duration::from_secs(10)));
//!
//! let bad: load_density::StartTest = serde_json::from_value(serde_json::json!({
//!     "load_model": {"type": "constant_arrival_rate", "rate": 0},
//!     "tasks": [{"method": "get", "request_url": "http://127.0.0.1:8080/"}]
//! })).unwrap();
//! let text = RunPlan::compile(bad).unwrap_err().to_string();
//! assert!(text.contains("load_model.rate: must be > 0"), "{text}");
//! ```
//!
//! Adding a keyword: a field on [`StartTest`] (or a key read from its `extra` map), one typed
//! field here with its accessor, and its validation in [`RunPlan::compile`].

mod json;
pub mod model;
pub mod schedule;
mod sources;

use load_density_core::task::options::saturating_seconds;
use std::sync::Arc;
use std::time::Duration;

use load_density_core::source_address::SourceAddresses;
use load_density_core::{registry, Pacing, PlanError, TaskList};
use serde_json::Value;

pub use model::{
    ArrivalModel, IterationModel, LoadModel, UserModel, UserStage, WhenBusy, MODEL_TYPES,
};
pub use schedule::{ArrivalCursor, RateCurve};

use crate::config::StartTest;
use crate::distributed::DistributedOptions;
use crate::env::{RUNNER_OPTIONS, START_TEST_KEYS};
use crate::error::RunError;
use crate::groups::{self, GroupSpec};
use json::invalid;

/// Where a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerMode {
    /// In this process (`"local"`, the default).
    Local,
    /// A master dispatching to workers (`"master"`).
    Master,
    /// A worker following a master (`"worker"`).
    Worker,
}

impl RunnerMode {
    /// The `runner_mode` name.
    pub fn name(self) -> &'static str {
        match self {
            RunnerMode::Local => "local",
            RunnerMode::Master => "master",
            RunnerMode::Worker => "worker",
        }
    }
}

/// The runner's own options (`print_stats`, `stats_interval`, `record_capacity`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerOptions {
    print_stats: bool,
    stats_interval: Duration,
    record_capacity: Option<usize>,
}

impl RunnerOptions {
    /// Whether the live and final tables are printed (default true; a worker never prints).
    pub fn print_stats(&self) -> bool {
        self.print_stats
    }
    /// How often the live table is printed (default 2 s).
    pub fn stats_interval(&self) -> Duration {
        self.stats_interval
    }
    /// The record store's capacity, when given.
    pub fn record_capacity(&self) -> Option<usize> {
        self.record_capacity
    }
}

/// One user group, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedGroup {
    spec: GroupSpec,
    tasks: TaskList,
    pacing: Pacing,
    model: Option<LoadModel>,
    source_addresses: Option<Arc<SourceAddresses>>,
}

impl PlannedGroup {
    /// The group as configured (name, user type, weight, host, options).
    pub fn spec(&self) -> &GroupSpec {
        &self.spec
    }
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    /// Its tasks.
    pub fn tasks(&self) -> &TaskList {
        &self.tasks
    }
    /// Its pacing (`wait_time`).
    pub fn pacing(&self) -> Pacing {
        self.pacing
    }
    /// Its own load model (`user_groups[i].load_model`); `None` when it shares the run's.
    pub fn own_model(&self) -> Option<&LoadModel> {
        self.model.as_ref()
    }
    /// The local addresses its users bind to, round-robin (`source_addresses`); `None`:
    /// the system picks.
    pub fn source_addresses(&self) -> Option<&Arc<SourceAddresses>> {
        self.source_addresses.as_ref()
    }
}

/// A compiled `start_test` configuration (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct RunPlan {
    source: StartTest,
    mode: RunnerMode,
    groups: Vec<PlannedGroup>,
    shared_model: LoadModel,
    test_time: Option<Duration>,
    runner: RunnerOptions,
    distributed: DistributedOptions,
    /// Driven by a master: user counts and arrival shares come from it.
    driven: bool,
    /// The environment variables `${env.NAME}` may read (`None`: every one).
    env_allowed: Option<Vec<String>>,
    #[cfg(feature = "web-ui")]
    web_ui: Option<crate::web::WebUiSettings>,
}

fn option_in<'a>(config: &'a StartTest, specs: &'a [GroupSpec], key: &str) -> Option<&'a Value> {
    config
        .extra
        .get(key)
        .or_else(|| config.user_detail_dict.get(key))
        .or_else(|| specs.iter().find_map(|g| g.options.get(key)))
        .filter(|v| !v.is_null())
}

fn runner_options(
    config: &StartTest,
    specs: &[GroupSpec],
    mode: RunnerMode,
) -> Result<RunnerOptions, RunError> {
    let print_stats = match option_in(config, specs, "print_stats") {
        None => true,
        // Python-shaped: a number counts as Python's bool() reads it.
        Some(value) => load_density_core::task::values::bool_of(value).ok_or_else(|| {
            invalid(
                "print_stats",
                format!("must be true or false (or 0 / 1), got {value}"),
            )
        })?,
    };
    let stats_interval = match option_in(config, specs, "stats_interval") {
        None => 2.0,
        // Seconds, or a duration such as "2s".
        Some(v) => load_density_core::task::values::seconds_of(v)
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or_else(|| {
                invalid(
                    "stats_interval",
                    format!("must be a positive number of seconds or a duration such as \"2s\", got {v}"),
                )
            })?,
    };
    let record_capacity = match option_in(config, specs, "record_capacity") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            invalid(
                "record_capacity",
                format!("must be a whole number >= 0, got {v}"),
            )
        })? as usize),
    };
    Ok(RunnerOptions {
        // A worker prints nothing: its master shows the run.
        print_stats: print_stats && mode != RunnerMode::Worker,
        stats_interval: saturating_seconds(stats_interval).max(Duration::from_millis(1)),
        record_capacity,
    })
}

/// The JSON path of group `index`'s key (`user_groups[1].tasks`, or `tasks` for the
/// single-group shorthand).
fn group_path(config: &StartTest, index: usize, key: &str) -> String {
    if config.user_groups.is_some() {
        format!("user_groups[{index}].{key}")
    } else {
        key.to_owned()
    }
}

/// The JSON path of group `index`'s `source_addresses`: its own key, or the top-level one it
/// inherits (`source_addresses`, or `user_detail_dict.source_addresses`).
fn sources_path(config: &StartTest, index: usize) -> String {
    let own = config
        .user_groups
        .as_ref()
        .and_then(|g| g.get(index))
        .is_some_and(|g| g.get(sources::KEY).is_some());
    if own {
        group_path(config, index, sources::KEY)
    } else if config.extra.contains_key(sources::KEY) {
        sources::KEY.to_owned()
    } else {
        format!("user_detail_dict.{}", sources::KEY)
    }
}

fn check_options(spec: &GroupSpec) -> Result<(), RunError> {
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
    Ok(())
}

/// Whether a worker configuration carries a plan of its own (tasks, groups, or the task
/// proxy's tasks for its user type).
fn has_plan(config: &StartTest) -> bool {
    config.tasks.is_some()
        || config.user_groups.is_some()
        || config
            .user_type()
            .ok()
            .is_some_and(|t| load_density_core::locust_wrapper_proxy().get(t).is_some())
}

/// Folds each group's `user_groups[i].thresholds` into the run's `thresholds` (scoped to the
/// group), and checks that every `{group:G}` filter names a group of the plan.
fn group_thresholds(
    config: &mut StartTest,
    specs: &[GroupSpec],
    mode: RunnerMode,
) -> Result<(), RunError> {
    let mut more = serde_json::Map::new();
    if let Some(entries) = &config.user_groups {
        for (index, (entry, spec)) in entries.iter().zip(specs).enumerate() {
            let Some(value) = entry.get("thresholds").filter(|v| !v.is_null()) else {
                continue;
            };
            let keys =
                crate::thresholds::Thresholds::group_keys(value, &spec.name).map_err(|error| {
                    let mut path = format!("user_groups[{index}].thresholds");
                    if !error.key.is_empty() {
                        path = format!("{path}.{:?}", error.key);
                    }
                    invalid(&path, error.message)
                })?;
            for (key, conditions) in keys {
                let list = |v: Value| match v {
                    Value::Array(items) => items,
                    single => vec![single],
                };
                let mut conditions = list(conditions);
                if let Some(before) = more.remove(&key) {
                    let mut before = list(before);
                    before.append(&mut conditions);
                    conditions = before;
                }
                more.insert(key, Value::Array(conditions));
            }
        }
    }
    if !more.is_empty() {
        let merged = crate::thresholds::Thresholds::extended(config.thresholds.as_ref(), more)
            .map_err(|error| invalid("thresholds", error))?;
        config.thresholds = Some(merged);
    }
    let Some(thresholds) = &config.thresholds else {
        return Ok(());
    };
    for threshold in thresholds.thresholds() {
        let Some(group) = &threshold.filter.group else {
            continue;
        };
        // A master judges `{group:G}` on the per-group statistics its LoadDensity workers
        // ship (`distributed::group_stats`); a worker runs its master's (checked) plan.
        match mode {
            RunnerMode::Worker => {}
            RunnerMode::Master | RunnerMode::Local => {
                if !specs.iter().any(|s| &s.name == group) {
                    return Err(invalid(
                        &format!("thresholds.{:?}", threshold.key),
                        format!(
                            "no user group named {group:?} (groups: {})",
                            specs
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

impl RunPlan {
    /// Compiles and validates `config` (see the [module docs](self)).
    ///
    /// # Errors
    /// The first mistake found, naming its JSON path: an unknown runner mode, user type or
    /// key; an invalid `spawn_rate`, `test_time` (0 is an error: give `null` to run until
    /// stopped), `user_count` (0 with a closed model), task list (empty, or invalid), pacing,
    /// load model, distributed option or `web_ui_dict`.
    pub fn compile(mut config: StartTest) -> Result<Self, RunError> {
        let mode = match config.runner_mode.as_str() {
            "local" => RunnerMode::Local,
            "master" => RunnerMode::Master,
            "worker" => RunnerMode::Worker,
            other => return Err(RunError::UnsupportedMode(other.to_owned())),
        };
        if mode == RunnerMode::Local {
            // The distributed options mean nothing to a local run: accepted (so one plan
            // serves every mode) and ignored, with a note.
            for key in crate::distributed::DISTRIBUTED_OPTION_KEYS {
                let given = |map: &serde_json::Map<String, serde_json::Value>| {
                    map.get(*key).is_some_and(|v| !v.is_null())
                };
                if given(&config.extra) || given(&config.user_detail_dict) {
                    tracing::warn!(
                        key,
                        "ignored: this option applies to distributed runs (runner_mode \"master\" \
                         or \"worker\")"
                    );
                }
            }
        }
        let distributed = DistributedOptions::take_from(&mut config)?;
        if !(config.spawn_rate.is_finite() && config.spawn_rate > 0.0) {
            return Err(invalid(
                "spawn_rate",
                format!("must be a positive number, got {}", config.spawn_rate),
            ));
        }
        let test_time = match config.test_time {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(saturating_seconds(t)),
            Some(t) => {
                return Err(invalid(
                    "test_time",
                    format!(
                        "must be a number of seconds > 0, or null to run until stopped, got {t}"
                    ),
                ))
            }
        };
        // A worker started without a plan gets its plan from its master.
        let specs = if mode == RunnerMode::Worker && !has_plan(&config) {
            Vec::new()
        } else {
            groups::groups_of(&config)?
        };
        group_thresholds(&mut config, &specs, mode)?;
        let runner = runner_options(&config, &specs, mode)?;
        let top_model = match &config.load_model {
            None => None,
            Some(value) => Some(LoadModel::parse(
                value,
                "load_model",
                config.user_count,
                config.spawn_rate,
            )?),
        };
        let mut groups = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            check_options(&spec)?;
            let source_addresses = match spec.options.get(sources::KEY).filter(|v| !v.is_null()) {
                None => None,
                Some(value) => Some(sources::compile(
                    value,
                    &sources_path(&config, index),
                    &spec.user_type,
                    registry::lookup(&spec.user_type)?
                        .protocol()
                        .binds_source_address(),
                )?),
            };
            let plan_error = |source: PlanError| RunError::Plan {
                group: spec.name.clone(),
                source,
            };
            let pacing = match &spec.wait_time {
                None => Pacing::None,
                Some(value) => {
                    Pacing::from_json(value).map_err(|e| plan_error(PlanError::Config(e)))?
                }
            };
            let tasks = TaskList::from_json(&spec.tasks).map_err(plan_error)?;
            if tasks.is_empty() {
                return Err(invalid(
                    &group_path(&config, index, "tasks"),
                    format!(
                        "group {:?} has no tasks: give at least one (an empty list runs nothing)",
                        spec.name
                    ),
                ));
            }
            let own = config
                .user_groups
                .as_ref()
                .and_then(|g| g.get(index))
                .and_then(|g| g.get("load_model"))
                .filter(|v| !v.is_null());
            let model = match own {
                None => None,
                Some(value) => Some(LoadModel::parse(
                    value,
                    &format!("user_groups[{index}].load_model"),
                    spec.fixed_count.unwrap_or(config.user_count),
                    config.spawn_rate,
                )?),
            };
            groups.push(PlannedGroup {
                spec,
                tasks,
                pacing,
                model,
                source_addresses,
            });
        }
        let sharing = groups.iter().filter(|g| g.model.is_none()).count();
        let shared_model = match top_model {
            Some(model) => {
                if sharing == 0 && !groups.is_empty() {
                    return Err(invalid(
                        "load_model",
                        "every user group has its own load_model, so this one applies to none",
                    ));
                }
                if !model.is_closed() && sharing > 1 {
                    return Err(invalid(
                        "load_model",
                        "an arrival-rate or iteration model applies to one user group: give each \
                         group its own (user_groups[i].load_model)",
                    ));
                }
                model
            }
            None => LoadModel::constant_users(config.user_count, config.spawn_rate),
        };
        let plan = Self {
            mode,
            groups,
            shared_model,
            test_time,
            runner,
            distributed,
            driven: false,
            env_allowed: None,
            #[cfg(feature = "web-ui")]
            web_ui: crate::web::WebUiSettings::from_config(&config)
                .map_err(|e| invalid("web_ui_dict", crate::executor::error_chain(&e)))?,
            source: config,
        };
        #[cfg(not(feature = "web-ui"))]
        if plan.source.web_ui_dict.is_some() {
            return Err(invalid(
                "web_ui_dict",
                "needs the web UI, which this build leaves out (cargo feature `web-ui`)",
            ));
        }
        plan.check_models()?;
        Ok(plan)
    }

    fn check_models(&self) -> Result<(), RunError> {
        let sharing = self.groups.iter().any(|g| g.model.is_none());
        if let (true, LoadModel::Users(model)) = (sharing, &self.shared_model) {
            if model.initial_target() == 0 && !model.is_ramping() && self.mode != RunnerMode::Worker
            {
                let path = if self.source.load_model.is_some() {
                    "load_model.users"
                } else {
                    "user_count"
                };
                return Err(invalid(
                    path,
                    "must be at least 1: a closed model with no users runs nothing",
                ));
            }
        }
        for (index, group) in self.groups.iter().enumerate() {
            let path = format!("user_groups[{index}].load_model");
            match &group.model {
                Some(LoadModel::Users(model))
                    if model.initial_target() == 0 && !model.is_ramping() =>
                {
                    return Err(invalid(
                        &format!("{path}.users"),
                        "must be at least 1: a closed model with no users runs nothing",
                    ));
                }
                Some(LoadModel::Iterations(model)) if model.users() == 0 => {
                    return Err(invalid(&format!("{path}.users"), "must be at least 1"));
                }
                _ => {}
            }
            if self.mode == RunnerMode::Master {
                match &group.model {
                    Some(LoadModel::Users(_)) => {
                        return Err(invalid(
                            &path,
                            "a master runs one closed model for the whole run: give it at the \
                             top level (load_model) rather than per group",
                        ))
                    }
                    Some(LoadModel::Iterations(_)) => {
                        return Err(invalid(
                            &path,
                            "iteration models run locally only, not under a master",
                        ))
                    }
                    _ => {}
                }
            }
        }
        if let LoadModel::Iterations(model) = &self.shared_model {
            if sharing && model.users() == 0 {
                return Err(invalid("load_model.users", "must be at least 1"));
            }
            if self.mode == RunnerMode::Master && sharing {
                return Err(invalid(
                    "load_model",
                    "iteration models run locally only, not under a master",
                ));
            }
        }
        Ok(())
    }

    /// The configuration the plan was compiled from (distributed options taken out).
    pub fn source(&self) -> &StartTest {
        &self.source
    }
    /// Where it runs.
    pub fn mode(&self) -> RunnerMode {
        self.mode
    }
    /// The user groups, in configuration order.
    pub fn groups(&self) -> &[PlannedGroup] {
        &self.groups
    }
    /// The groups' specs, in configuration order.
    pub fn specs(&self) -> Vec<GroupSpec> {
        self.groups.iter().map(|g| g.spec.clone()).collect()
    }
    /// The model of the groups without their own (the top-level `load_model`, by default
    /// `constant_users` of `user_count` at `spawn_rate`).
    pub fn shared_model(&self) -> &LoadModel {
        &self.shared_model
    }
    /// The load model group `index` runs.
    pub fn model_of(&self, index: usize) -> Option<&LoadModel> {
        let group = self.groups.get(index)?;
        Some(group.model.as_ref().unwrap_or(&self.shared_model))
    }
    /// Whether some group runs an arrival-rate model.
    pub fn has_open_model(&self) -> bool {
        (0..self.groups.len()).any(|i| matches!(self.model_of(i), Some(LoadModel::Arrivals(_))))
    }
    /// `test_time`: `None` runs until stopped (or until the models end).
    pub fn test_time(&self) -> Option<Duration> {
        self.test_time
    }
    /// When the run ends by itself: `test_time` or the end of the load models, whichever
    /// comes first. The models end when the last of them ends; a model without an end
    /// (`constant_users`, an arrival rate without `duration`) leaves only `test_time`.
    /// Iteration models also end when their iterations are done.
    pub fn end(&self) -> Option<Duration> {
        match (self.test_time, self.models_end()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the last load model ends by itself (`None`: some model has no end, or only
    /// iteration models without `max_duration`, which end when their iterations are done).
    pub fn models_end(&self) -> Option<Duration> {
        let mut models_end = Some(Duration::ZERO);
        for index in 0..self.groups.len() {
            let end = self.model_of(index).and_then(|m| match m {
                LoadModel::Iterations(_) => Some(m.end().unwrap_or(Duration::MAX)),
                other => other.end(),
            });
            models_end = match (models_end, end) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        models_end.filter(|e| *e != Duration::MAX && !self.groups.is_empty())
    }
    /// The runner's options.
    pub fn runner_options(&self) -> &RunnerOptions {
        &self.runner
    }
    /// The distributed options.
    pub fn distributed(&self) -> &DistributedOptions {
        &self.distributed
    }
    /// Whether a master drives this plan (a worker's environment).
    pub fn is_driven(&self) -> bool {
        self.driven
    }
    /// Lets `${env.NAME}` read only the environment variables named here (a worker does this
    /// to the plan its master sent, with its `allow_env` list).
    pub fn restrict_env(mut self, allowed: Vec<String>) -> Self {
        self.env_allowed = Some(allowed);
        self
    }
    /// The environment variables `${env.NAME}` may read, when restricted.
    pub fn env_allowed(&self) -> Option<&[String]> {
        self.env_allowed.as_deref()
    }
    /// The web UI settings, when `web_ui_dict` was given (never on a worker).
    #[cfg(feature = "web-ui")]
    pub fn web_ui(&self) -> Option<&crate::web::WebUiSettings> {
        self.web_ui.as_ref()
    }

    /// The names of the user groups a threshold looks at (`{group:G}` filters, among them
    /// those of `user_groups[i].thresholds`): these groups keep statistics of their own.
    pub fn watched_groups(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(thresholds) = &self.source.thresholds {
            for threshold in thresholds.thresholds() {
                if let Some(group) = &threshold.filter.group {
                    if !names.contains(group) {
                        names.push(group.clone());
                    }
                }
            }
        }
        names
    }

    /// The plan of a new run of this one started from a lingering web UI (`POST /swarm` after
    /// the run ended, as Locust allows): the same groups, tasks, pacing and options, with
    /// `user_count` users at `spawn_rate` when the run's shared model is the default
    /// `constant_users` (a `load_model` given explicitly, and groups' own models, run again as
    /// written), and `run_time` as its `test_time` when given (otherwise the plan's).
    ///
    /// # Errors
    /// `user_count` 0 with the default closed model (a run with no users runs nothing).
    pub fn for_new_run(
        &self,
        user_count: u64,
        spawn_rate: f64,
        run_time: Option<u64>,
    ) -> Result<RunPlan, RunError> {
        let mut plan = self.clone();
        let sharing = self.groups.iter().any(|g| g.model.is_none());
        if self.source.load_model.is_none() && sharing && user_count == 0 {
            return Err(invalid(
                "user_count",
                "must be at least 1: a closed model with no users runs nothing",
            ));
        }
        if self.source.load_model.is_none() {
            plan.shared_model = LoadModel::constant_users(user_count, spawn_rate);
            plan.source.user_count = user_count;
            plan.source.spawn_rate = spawn_rate;
        }
        if let Some(seconds) = run_time.filter(|s| *s > 0) {
            plan.test_time = Some(Duration::from_secs(seconds));
            plan.source.test_time = Some(seconds as f64);
        }
        Ok(plan)
    }

    /// The plan a worker's environment runs: driven by its master (no users and no arrivals
    /// until told, no time limit), relative URLs resolved against `host` where the plan names
    /// none.
    pub fn for_worker(&self, host: Option<&str>) -> RunPlan {
        let mut plan = self.clone();
        plan.mode = RunnerMode::Worker;
        plan.source.runner_mode = "worker".to_owned();
        plan.test_time = None;
        plan.driven = true;
        plan.runner.print_stats = false;
        #[cfg(feature = "web-ui")]
        {
            plan.web_ui = None;
        }
        if let Some(host) = host.filter(|h| !h.is_empty()) {
            for group in &mut plan.groups {
                if group.spec.host.is_none() {
                    group.spec.host = Some(host.to_owned());
                }
            }
        }
        plan
    }
}
