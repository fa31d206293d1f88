//! Load models: how many users run, or how often iterations start, over time.
//!
//! `load_model` (top level, or per user group) takes a `type` and that type's keys; every
//! mistake is an error naming its JSON path (`user_groups[1].load_model.stages[0].target`).
//! See the crate's README ("Load models") for the JSON.

use std::time::Duration;

use serde_json::Value;

use super::json::{invalid, Object};
use super::schedule::RateCurve;
use crate::error::RunError;

/// The model types, as `type` names them.
pub const MODEL_TYPES: &[&str] = &[
    "constant_users",
    "ramping_users",
    "constant_arrival_rate",
    "ramping_arrival_rate",
    "per_user_iterations",
    "shared_iterations",
];

/// Seconds `when_busy: "delay"` lets an iteration wait for a free user before dropping it.
pub const DEFAULT_MAX_START_DELAY: Duration = Duration::from_secs(5);

/// One load model.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// Closed: users loop over the scenario (`constant_users`, `ramping_users`).
    Users(UserModel),
    /// Open: iterations start on a schedule (`constant_arrival_rate`, `ramping_arrival_rate`).
    Arrivals(ArrivalModel),
    /// A fixed number of iterations (`per_user_iterations`, `shared_iterations`).
    Iterations(IterationModel),
}

impl LoadModel {
    /// `constant_users` with these numbers (the default model).
    pub fn constant_users(users: u64, spawn_rate: f64) -> Self {
        LoadModel::Users(UserModel {
            stages: vec![UserStage {
                start: Duration::ZERO,
                target: users,
                spawn_rate,
            }],
            end: None,
        })
    }

    /// When the model ends by itself, from the start of the run (`None`: it does not).
    pub fn end(&self) -> Option<Duration> {
        match self {
            LoadModel::Users(model) => model.end,
            LoadModel::Arrivals(model) => model.curve.end(),
            LoadModel::Iterations(model) => model.max_duration,
        }
    }

    /// Whether this is a closed model (a number of users).
    pub fn is_closed(&self) -> bool {
        matches!(self, LoadModel::Users(_))
    }

    /// Reads a `load_model` at `path`. `user_count` and `spawn_rate` are the run's, the
    /// defaults of the keys that take users.
    pub fn parse(
        value: &Value,
        path: &str,
        user_count: u64,
        spawn_rate: f64,
    ) -> Result<Self, RunError> {
        let object = Object::new(path, value)?;
        let kind = object.string("type")?.unwrap_or("constant_users");
        match kind {
            "constant_users" => {
                object.only(&["type", "users", "spawn_rate"], "constant_users")?;
                let users = object.count("users")?.unwrap_or(user_count);
                let rate = object.positive("spawn_rate")?.unwrap_or(spawn_rate);
                Ok(Self::constant_users(users, rate))
            }
            "ramping_users" => {
                object.only(&["type", "stages"], "ramping_users")?;
                UserModel::ramping(&object).map(LoadModel::Users)
            }
            "constant_arrival_rate" | "ramping_arrival_rate" => {
                ArrivalModel::parse(&object, kind).map(LoadModel::Arrivals)
            }
            "per_user_iterations" | "shared_iterations" => {
                object.only(&["type", "users", "iterations", "max_duration"], kind)?;
                let iterations = object.positive_count("iterations")?;
                Ok(LoadModel::Iterations(IterationModel {
                    shared: kind == "shared_iterations",
                    users: object.count("users")?.unwrap_or(user_count),
                    iterations: object.required(
                        "iterations",
                        iterations,
                        "a positive whole number",
                    )?,
                    max_duration: object.positive_seconds("max_duration")?,
                }))
            }
            other => Err(invalid(
                &object.at("type"),
                format!(
                    "unknown load model type {other:?} (known: {})",
                    MODEL_TYPES.join(", ")
                ),
            )),
        }
    }
}

/// A closed model: the user count over time.
#[derive(Debug, Clone, PartialEq)]
pub struct UserModel {
    stages: Vec<UserStage>,
    end: Option<Duration>,
}

/// From `start` on, head for `target` users at `spawn_rate` users per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UserStage {
    /// When the stage starts, from the start of the run.
    pub start: Duration,
    /// Users to reach.
    pub target: u64,
    /// Users started (or stopped) per second.
    pub spawn_rate: f64,
}

impl UserModel {
    /// The stages, in time order.
    pub fn stages(&self) -> &[UserStage] {
        &self.stages
    }

    /// The user count of the first stage (what a run starts towards).
    pub fn initial_target(&self) -> u64 {
        self.stages.first().map_or(0, |s| s.target)
    }

    /// Whether the users change over time (more than one stage).
    pub fn is_ramping(&self) -> bool {
        self.stages.len() > 1 || self.end.is_some()
    }

    fn ramping(object: &Object<'_>) -> Result<Self, RunError> {
        let stages = object.array("stages")?;
        let stages = object.required("stages", stages, "a list of stages")?;
        if stages.is_empty() {
            return Err(invalid(&object.at("stages"), "must not be empty"));
        }
        let locust_shape = stages
            .first()
            .and_then(Value::as_object)
            .is_some_and(|s| s.contains_key("users"));
        let mut out = Vec::with_capacity(stages.len());
        let mut start = Duration::ZERO;
        let mut previous = 0u64;
        for (i, stage) in stages.iter().enumerate() {
            let stage = Object::new(format!("{}[{i}]", object.at("stages")), stage)?;
            if locust_shape {
                // Locust's shape: `duration` is the stage's end time from the start of the run.
                stage.only(
                    &["duration", "users", "spawn_rate"],
                    "a Locust-shaped stage {\"duration\" (end time), \"users\", \"spawn_rate\"}",
                )?;
                let end = stage.positive_seconds("duration")?;
                let end = stage.required("duration", end, "the stage's end time in seconds")?;
                if end <= start {
                    return Err(invalid(
                        &stage.at("duration"),
                        format!(
                            "is the stage's end time from the start of the run, and must be later \
                             than the previous stage's ({} s)",
                            start.as_secs_f64()
                        ),
                    ));
                }
                let users = stage.count("users")?;
                let rate = stage.positive("spawn_rate")?;
                out.push(UserStage {
                    start,
                    target: stage.required("users", users, "a user count")?,
                    spawn_rate: stage.required("spawn_rate", rate, "users per second")?,
                });
                start = end;
            } else {
                stage.only(
                    &["duration", "target"],
                    "a stage {\"duration\", \"target\"}",
                )?;
                let duration = stage.positive_seconds("duration")?;
                let duration = stage.required("duration", duration, "seconds")?;
                let target = stage.count("target")?;
                let target = stage.required("target", target, "a user count")?;
                // Linear within the stage: the change spread over its duration.
                let change = target.abs_diff(previous) as f64;
                let spawn_rate = if change == 0.0 {
                    1.0
                } else {
                    change / duration.as_secs_f64()
                };
                out.push(UserStage {
                    start,
                    target,
                    spawn_rate,
                });
                previous = target;
                start += duration;
            }
        }
        Ok(Self {
            stages: out,
            end: Some(start),
        })
    }
}

/// What an arrival-rate model does when every user is busy and `max_users` are running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenBusy {
    /// Start the iteration as soon as a user is free, unless it is later than
    /// `max_start_delay` by then (dropped).
    Delay,
    /// Drop it at once.
    Drop,
}

/// An open model: iterations start on a schedule, whatever the target's speed.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrivalModel {
    curve: RateCurve,
    pre_allocated_users: u64,
    max_users: u64,
    poisson: bool,
    when_busy: WhenBusy,
    max_start_delay: Duration,
}

const ARRIVAL_COMMON_KEYS: &[&str] = &[
    "type",
    "time_unit",
    "pre_allocated_users",
    "max_users",
    "arrivals",
    "when_busy",
    "max_start_delay",
];

impl ArrivalModel {
    fn parse(object: &Object<'_>, kind: &str) -> Result<Self, RunError> {
        let ramping = kind == "ramping_arrival_rate";
        let own: &[&str] = if ramping {
            &["start_rate", "stages"]
        } else {
            &["rate", "duration"]
        };
        let keys: Vec<&str> = ARRIVAL_COMMON_KEYS.iter().chain(own).copied().collect();
        object.only(&keys, kind)?;
        let time_unit = object.positive_secs("time_unit")?.unwrap_or(1.0);
        let curve = if ramping {
            let start = object.non_negative("start_rate")?.unwrap_or(0.0) / time_unit;
            let stages = object.array("stages")?;
            let stages =
                object.required("stages", stages, "a list of {\"duration\", \"target\"}")?;
            if stages.is_empty() {
                return Err(invalid(&object.at("stages"), "must not be empty"));
            }
            let mut segments = Vec::with_capacity(stages.len());
            for (i, stage) in stages.iter().enumerate() {
                let stage = Object::new(format!("{}[{i}]", object.at("stages")), stage)?;
                stage.only(
                    &["duration", "target"],
                    "a stage {\"duration\", \"target\"}",
                )?;
                let duration = stage.positive_secs("duration")?;
                let duration = stage.required("duration", duration, "seconds")?;
                let target = stage.non_negative("target")?;
                let target = stage.required("target", target, "a rate")?;
                segments.push((duration, target / time_unit));
            }
            RateCurve::ramping(start, &segments)
        } else {
            let rate = object.positive("rate")?;
            let rate = object.required("rate", rate, "iterations per time_unit")?;
            let duration = object.positive_secs("duration")?;
            RateCurve::constant(rate / time_unit, duration)
        };
        if curve.total().is_some_and(|t| t < 1.0) {
            return Err(invalid(
                object.path(),
                "this schedule starts no iteration at all (the rate is zero throughout)",
            ));
        }
        let pre_allocated_users = object.count("pre_allocated_users")?.unwrap_or(1);
        let max_users = object.count("max_users")?.unwrap_or(pre_allocated_users);
        if max_users < pre_allocated_users {
            return Err(invalid(
                &object.at("max_users"),
                format!("must be >= pre_allocated_users ({pre_allocated_users}), got {max_users}"),
            ));
        }
        if max_users == 0 {
            return Err(invalid(&object.at("max_users"), "must be at least 1"));
        }
        let poisson = match object.string("arrivals")? {
            None | Some("even") => false,
            Some("poisson") => true,
            Some(other) => {
                return Err(invalid(
                    &object.at("arrivals"),
                    format!("must be \"even\" or \"poisson\", got {other:?}"),
                ))
            }
        };
        let when_busy = match object.string("when_busy")? {
            None | Some("delay") => WhenBusy::Delay,
            Some("drop") => WhenBusy::Drop,
            Some(other) => {
                return Err(invalid(
                    &object.at("when_busy"),
                    format!("must be \"delay\" or \"drop\", got {other:?}"),
                ))
            }
        };
        let max_start_delay = object
            .seconds("max_start_delay")?
            .unwrap_or(DEFAULT_MAX_START_DELAY);
        Ok(Self {
            curve,
            pre_allocated_users,
            max_users,
            poisson,
            when_busy,
            max_start_delay,
        })
    }

    /// The rate over time.
    pub fn curve(&self) -> &RateCurve {
        &self.curve
    }
    /// Users started before the first iteration.
    pub fn pre_allocated_users(&self) -> u64 {
        self.pre_allocated_users
    }
    /// The most users this model may run.
    pub fn max_users(&self) -> u64 {
        self.max_users
    }
    /// Whether starts are spaced at random (`arrivals: "poisson"`) rather than evenly.
    pub fn poisson(&self) -> bool {
        self.poisson
    }
    /// What happens when every user is busy.
    pub fn when_busy(&self) -> WhenBusy {
        self.when_busy
    }
    /// How late an iteration may start under `when_busy: "delay"` before it is dropped.
    pub fn max_start_delay(&self) -> Duration {
        self.max_start_delay
    }
}

/// A fixed number of iterations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationModel {
    shared: bool,
    users: u64,
    iterations: u64,
    max_duration: Option<Duration>,
}

impl IterationModel {
    /// `shared_iterations` (the users share `iterations`) rather than `per_user_iterations`
    /// (each user runs `iterations`).
    pub fn shared(&self) -> bool {
        self.shared
    }
    /// Users started at once.
    pub fn users(&self) -> u64 {
        self.users
    }
    /// Iterations (per user, or shared).
    pub fn iterations(&self) -> u64 {
        self.iterations
    }
    /// The longest the model may run.
    pub fn max_duration(&self) -> Option<Duration> {
        self.max_duration
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(value: Value) -> String {
        LoadModel::parse(&value, "user_groups[1].load_model", 10, 5.0)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn every_bad_input_names_its_path() {
        let cases = [
            (
                json!({"type": "constant_arrival_rate", "rate": 0}),
                "load_model.rate: must be > 0",
            ),
            (
                json!({"type": "constant_arrival_rate", "rate": -3}),
                "load_model.rate: must be > 0",
            ),
            (
                json!({"type": "ramping_arrival_rate", "stages": []}),
                "load_model.stages: must not be empty",
            ),
            (
                json!({"type": "ramping_users", "stages": []}),
                "load_model.stages: must not be empty",
            ),
            (
                json!({"type": "constant_arrival_rate", "rate": 5, "pre_allocated_users": 4, "max_users": 2}),
                "load_model.max_users: must be >= pre_allocated_users (4)",
            ),
            (
                json!({"type": "open_sesame"}),
                "load_model.type: unknown load model type \"open_sesame\"",
            ),
            (
                json!({"type": "constant_users", "rate": 5}),
                "load_model.rate: \"rate\" does not belong to constant_users",
            ),
            (
                json!({"type": "per_user_iterations", "iterations": 2.5}),
                "load_model.iterations: must be a positive whole number",
            ),
            (
                json!({"type": "shared_iterations", "iterations": 0}),
                "load_model.iterations: must be a positive whole number",
            ),
            (
                json!({"type": "constant_arrival_rate", "rate": 5, "time_unit": 0}),
                "load_model.time_unit: must be > 0",
            ),
            (
                json!({"type": "ramping_arrival_rate", "stages": [{"duration": 1, "target": -1}]}),
                "load_model.stages[0].target: must be >= 0",
            ),
            (
                json!({"type": "ramping_users", "stages": [{"duration": 1, "target": 2}, {"duration": 1}]}),
                "load_model.stages[1].target: is required",
            ),
            (
                json!({"type": "ramping_users", "stages": [
                    {"duration": 5, "users": 2, "spawn_rate": 1}, {"duration": 3, "users": 1, "spawn_rate": 1}]}),
                "load_model.stages[1].duration: is the stage's end time",
            ),
        ];
        for (value, expected) in cases {
            let text = error(value.clone());
            assert!(
                text.contains(&format!("user_groups[1].{expected}")),
                "{value}: {text}"
            );
        }
    }

    #[test]
    fn both_stage_shapes_compile_to_user_stages() {
        let linear = LoadModel::parse(
            &json!({"type": "ramping_users", "stages": [
                {"duration": 2, "target": 10}, {"duration": 3, "target": 10}, {"duration": 1, "target": 4}]}),
            "load_model",
            0,
            1.0,
        )
        .expect("linear");
        let LoadModel::Users(model) = &linear else {
            panic!("closed")
        };
        let starts: Vec<f64> = model
            .stages()
            .iter()
            .map(|s| s.start.as_secs_f64())
            .collect();
        assert_eq!(starts, [0.0, 2.0, 5.0]);
        assert_eq!(model.stages()[0].spawn_rate, 5.0);
        assert_eq!(model.stages()[2].spawn_rate, 6.0);
        assert_eq!(linear.end(), Some(Duration::from_secs(6)));
        let locust = LoadModel::parse(
            &json!({"type": "ramping_users", "stages": [
                {"duration": 10, "users": 5, "spawn_rate": 2}, {"duration": 25, "users": 1, "spawn_rate": 4}]}),
            "load_model",
            0,
            1.0,
        )
        .expect("locust");
        let LoadModel::Users(model) = &locust else {
            panic!("closed")
        };
        assert_eq!(model.stages()[1].start, Duration::from_secs(10));
        assert_eq!(model.stages()[1].target, 1);
        assert_eq!(locust.end(), Some(Duration::from_secs(25)));
    }
}
