//! `start_test`'s configuration and its summary.

use std::time::Duration;

use std::collections::BTreeMap;

use load_density_core::stats::{RequestStats, StatsEntry};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The configuration of one test: the Python `start_test` parameters with their defaults,
/// plus the keyword arguments (`tasks`, `variables`, `csv_sources`, `host`, protocol options).
///
/// Deserializes from the same JSON keys the Python API takes:
///
/// ```
/// let config: load_density::StartTest = serde_json::from_value(serde_json::json!({
///     "user_detail_dict": {"user": "fast_http_user"},
///     "user_count": 5,
///     "test_time": null,
///     "tasks": [{"method": "get", "request_url": "http://127.0.0.1:8080/"}]
/// })).unwrap();
/// assert_eq!(config.spawn_rate, 10.0);
/// assert_eq!(config.test_time, None);
///
/// // Durations as Locust writes them; type errors in words.
/// let config: load_density::StartTest =
///     serde_json::from_value(serde_json::json!({"test_time": "1m30s"})).unwrap();
/// assert_eq!(config.test_time, Some(90.0));
/// let wrong = serde_json::from_value::<load_density::StartTest>(serde_json::json!({"user_count": "ten"}));
/// assert!(wrong.unwrap_err().to_string().contains("a whole number"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartTest {
    /// Selects the user type: `{"user": "fast_http_user"}` (the default when `user` is
    /// absent). Other keys are protocol options, like keyword arguments.
    pub user_detail_dict: Map<String, Value>,
    /// Total simulated users (default 50).
    #[serde(deserialize_with = "load_density_core::task::values::whole")]
    pub user_count: u64,
    /// Users started per second (default 10).
    #[serde(deserialize_with = "load_density_core::task::values::number")]
    pub spawn_rate: f64,
    /// Run length in seconds (default 60), or a duration such as `"30s"` or `"1h30m"`; `None`
    /// (JSON null) runs until stopped.
    #[serde(deserialize_with = "load_density_core::task::values::opt_seconds")]
    pub test_time: Option<f64>,
    /// Web UI address, e.g. `{"host": "127.0.0.1", "port": 8089}` (not served yet).
    pub web_ui_dict: Option<Value>,
    /// `"local"` (default), `"master"` or `"worker"`.
    pub runner_mode: String,
    /// Where a master binds (default `"*"`).
    pub master_bind_host: String,
    /// The master's port (default 5557).
    #[serde(deserialize_with = "load_density_core::task::values::whole")]
    pub master_bind_port: u16,
    /// Where a worker connects (default `"127.0.0.1"`).
    pub master_host: String,
    /// The master port a worker connects to (default 5557).
    #[serde(deserialize_with = "load_density_core::task::values::whole")]
    pub master_port: u16,
    /// Workers a master waits for before starting (default 0).
    #[serde(deserialize_with = "load_density_core::task::values::whole")]
    pub expected_workers: u32,
    /// The task list (any accepted shape); when absent, the task proxy's tasks for the user
    /// type are used.
    pub tasks: Option<Value>,
    /// Run-level variables.
    pub variables: Option<Map<String, Value>>,
    /// CSV data sources for this run: `[{"name", "file_path", "cycle", "on_end", "per_user"}]`
    /// (on top of the ones registered with `register_csv_source`).
    pub csv_sources: Option<Value>,
    /// Base URL or `host:port` that relative task URLs resolve against.
    pub host: Option<String>,
    /// Pacing between a user's iterations, e.g. `{"between": [0.5, 2]}` (default: none). See
    /// [`load_density_core::Pacing`].
    pub wait_time: Option<Value>,
    /// Several groups of users in one run, like Locust's user classes:
    /// `[{"name", "user", "weight" | "fixed_count", "tasks", "wait_time", "host", ...options}]`.
    /// `user_detail_dict` + `tasks` is the one-group shorthand.
    pub user_groups: Option<Vec<Value>>,
    /// The load model: `{"type": "constant_users" | "ramping_users" | "constant_arrival_rate"
    /// | "ramping_arrival_rate" | "per_user_iterations" | "shared_iterations", ...}` (default:
    /// `constant_users` of `user_count` at `spawn_rate`). See [`crate::plan::LoadModel`].
    pub load_model: Option<Value>,
    /// Pass/fail conditions on the run's metrics, in k6's syntax, checked before the run
    /// starts (see [`crate::thresholds`]).
    pub thresholds: Option<crate::thresholds::Thresholds>,
    /// Write Locust's CSV files `<csv_prefix>_stats.csv`, `_failures.csv`, `_exceptions.csv`
    /// and `_stats_history.csv` (Locust 2.47 columns).
    pub csv_prefix: Option<String>,
    /// With `csv_prefix`: per-name rows in the history file too, not only the total.
    pub csv_full_history: bool,
    /// Protocol options and other keyword arguments, checked against what the user type
    /// accepts before the run starts.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for StartTest {
    fn default() -> Self {
        let mut user_detail_dict = Map::new();
        user_detail_dict.insert(
            "user".to_owned(),
            Value::String("fast_http_user".to_owned()),
        );
        Self {
            user_detail_dict,
            user_count: 50,
            spawn_rate: 10.0,
            test_time: Some(60.0),
            web_ui_dict: None,
            runner_mode: "local".to_owned(),
            master_bind_host: "*".to_owned(),
            master_bind_port: 5557,
            master_host: "127.0.0.1".to_owned(),
            master_port: 5557,
            expected_workers: 0,
            tasks: None,
            variables: None,
            csv_sources: None,
            host: None,
            wait_time: None,
            user_groups: None,
            load_model: None,
            thresholds: None,
            csv_prefix: None,
            csv_full_history: false,
            extra: Map::new(),
        }
    }
}

impl StartTest {
    /// The selected user type name (`user_detail_dict.user`, default `fast_http_user`).
    pub fn user_type(&self) -> Result<&str, String> {
        match self.user_detail_dict.get("user") {
            None | Some(Value::Null) => Ok("fast_http_user"),
            Some(Value::String(name)) => Ok(name),
            Some(other) => Err(format!(
                "user_detail_dict.user must be a string naming a user type, got {other}"
            )),
        }
    }
}

/// Totals of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests recorded.
    pub requests: u64,
    /// Successful requests.
    pub successes: u64,
    /// Failed requests.
    pub failures: u64,
    /// failures / requests.
    pub failure_rate: f64,
    /// Mean requests per second over the run.
    pub requests_per_second: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 95th percentile latency (ms).
    pub p95_ms: f64,
    /// 99th percentile latency (ms).
    pub p99_ms: f64,
    /// Largest latency (ms).
    pub max_ms: f64,
    /// Iterations (passes over a group's scenario) that ran.
    #[serde(default)]
    pub iterations: u64,
    /// Iterations a schedule wanted that never started (an arrival-rate model with every
    /// user busy, or slots a paced user missed).
    #[serde(default)]
    pub dropped_iterations: u64,
}

/// Latency percentiles in milliseconds (the corrected latency: measured from each
/// iteration's due time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    /// The corrected latency percentiles of an entry, when it has any.
    pub fn corrected(entry: &StatsEntry) -> Option<Self> {
        Some(Self {
            p50_ms: entry.corrected_percentile_ms(50.0)?,
            p90_ms: entry.corrected_percentile_ms(90.0)?,
            p95_ms: entry.corrected_percentile_ms(95.0)?,
            p99_ms: entry.corrected_percentile_ms(99.0)?,
            max_ms: entry.max_corrected_us() as f64 / 1000.0,
        })
    }
}

/// Is the generator the bottleneck? Its own CPU use and start lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// Mean CPU use of the generating process over the run, in percent of the CPUs it may use
    /// (a master: the busiest worker's busiest report interval).
    pub cpu_percent: f64,
    /// How late schedules' timers fired against the iterations' due times, median (ms); 0
    /// when nothing ran on a schedule.
    #[serde(default)]
    pub start_lag_p50_ms: f64,
    /// How late schedules' timers fired against the iterations' due times, p99 (ms); 0 when
    /// nothing ran on a schedule.
    pub start_lag_p99_ms: f64,
    /// Whether the generator rather than the target limited the run (CPU above 90 %, or a
    /// start lag p99 above 5 ms); a warning was logged when it happened.
    pub saturated: bool,
}

/// Corrected latency over every request of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverallLatency {
    /// Response time plus the iteration's start delay.
    pub corrected: Percentiles,
}

/// Corrected latency of one request name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameLatency {
    /// Response time plus the iteration's start delay.
    pub corrected: Percentiles,
}

impl Totals {
    /// The totals of one statistics entry, over a run that lasted `duration`.
    pub(crate) fn of(total: &StatsEntry, duration: Duration) -> Totals {
        let secs = duration.as_secs_f64();
        Totals {
            requests: total.num_requests(),
            successes: total.num_successes(),
            failures: total.num_failures(),
            failure_rate: total.failure_ratio(),
            requests_per_second: if secs > 0.0 {
                total.num_requests() as f64 / secs
            } else {
                0.0
            },
            p50_ms: total.percentile_ms(50.0),
            p95_ms: total.percentile_ms(95.0),
            p99_ms: total.percentile_ms(99.0),
            max_ms: total.max_response_time_us() as f64 / 1000.0,
            iterations: 0,
            dropped_iterations: 0,
        }
    }
}

/// What `start_test` returns: the configuration (as the Python version returns it) plus the
/// run's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The `user_detail_dict` given.
    pub user_detail: Map<String, Value>,
    /// Target user count.
    pub user_count: u64,
    /// Spawn rate.
    pub spawn_rate: f64,
    /// Configured run length.
    pub test_time: Option<f64>,
    /// Web UI settings.
    pub web_ui: Option<Value>,
    /// Runner mode.
    pub runner_mode: String,
    /// Users actually started.
    pub users_spawned: u64,
    /// Users started per second over the last ramp, as achieved (compare with `spawn_rate`):
    /// below it when this machine could not start users as fast as asked. Absent when fewer
    /// than two users were started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved_spawn_rate: Option<f64>,
    /// Wall-clock run length in seconds.
    pub duration_s: f64,
    /// Totals.
    pub totals: Totals,
    /// The corrected latency over the run (`latency_overall.corrected`); present when the
    /// run had a schedule (an arrival-rate model, or paced users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_overall: Option<OverallLatency>,
    /// The corrected latency per request name (`per_name[NAME].corrected`, keyed as in the
    /// summary report); empty when the run had no schedule.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_name: BTreeMap<String, NameLatency>,
    /// The generator's own CPU use and start lag, and whether it limited the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Generator>,
    /// Each threshold condition's result (only when thresholds were given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<crate::thresholds::ThresholdResult>>,
    /// `passed`, `failed` or `aborted` (only when thresholds were given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::thresholds::Verdict>,
}

impl Summary {
    /// The same summary with its totals' rates over the time `stats` counted: the run's
    /// `duration`, or less when the statistics were reset during the run (`POST
    /// /stats/reset`), so that `requests_per_second` divides the requests counted since the
    /// reset by the time since the reset. `duration_s` stays the run's wall-clock length.
    pub(crate) fn counted_from_reset(
        mut self,
        stats: &load_density_core::RequestStats,
        duration: Duration,
    ) -> Summary {
        if let Some(secs) = stats.elapsed(std::time::SystemTime::now()) {
            if secs.is_finite() && secs >= 0.0 && secs < duration.as_secs_f64() {
                let (iterations, dropped) =
                    (self.totals.iterations, self.totals.dropped_iterations);
                self.totals = Totals::of(stats.total(), Duration::from_secs_f64(secs));
                self.totals.iterations = iterations;
                self.totals.dropped_iterations = dropped;
            }
        }
        self
    }

    /// The summary of a finished run: `config` as given, the mode it ran in, how many users it
    /// started, how long it lasted and its statistics.
    pub(crate) fn of_run(
        config: &StartTest,
        runner_mode: &str,
        users_spawned: u64,
        stats: &RequestStats,
        duration: Duration,
    ) -> Summary {
        let mut totals = Totals::of(stats.total(), duration);
        totals.iterations = stats.iterations();
        totals.dropped_iterations = stats.dropped_iterations();
        let per_name = crate::report::keyed_entries(stats)
            .into_iter()
            .filter_map(|(key, entry)| {
                Percentiles::corrected(entry).map(|corrected| (key, NameLatency { corrected }))
            })
            .collect();
        Summary {
            user_detail: user_detail_of(config),
            user_count: config.user_count,
            spawn_rate: config.spawn_rate,
            test_time: config.test_time,
            web_ui: config.web_ui_dict.clone(),
            runner_mode: runner_mode.to_owned(),
            users_spawned,
            achieved_spawn_rate: None,
            duration_s: duration.as_secs_f64(),
            totals,
            latency_overall: Percentiles::corrected(stats.total())
                .map(|corrected| OverallLatency { corrected }),
            per_name,
            generator: None,
            thresholds: None,
            verdict: None,
        }
    }

    /// The same summary with the generator's figures.
    pub(crate) fn with_generator(mut self, generator: Generator) -> Summary {
        self.generator = Some(generator);
        self
    }
}

/// The summary's `user_detail`: the `user_detail_dict` given, or for a `user_groups` run,
/// the groups (`{"user_groups": [{"name", "user", "weight" | "fixed_count"}]}`).
fn user_detail_of(config: &StartTest) -> Map<String, Value> {
    if config.user_groups.is_none() {
        return config.user_detail_dict.clone();
    }
    let Ok(groups) = crate::groups::groups_of(config) else {
        return config.user_detail_dict.clone();
    };
    let groups = groups
        .iter()
        .map(|group| {
            let mut entry = Map::new();
            entry.insert("name".to_owned(), Value::from(group.name.clone()));
            entry.insert("user".to_owned(), Value::from(group.user_type.clone()));
            match group.fixed_count {
                Some(count) => entry.insert("fixed_count".to_owned(), Value::from(count)),
                None => entry.insert("weight".to_owned(), Value::from(group.weight)),
            };
            Value::Object(entry)
        })
        .collect();
    let mut detail = Map::new();
    detail.insert("user_groups".to_owned(), Value::Array(groups));
    detail
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use load_density_core::stats::RequestStats;
    use load_density_core::RequestEvent;

    use super::*;

    fn event(response_ms: u64, error: Option<&str>) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from("GET"),
            name: Arc::from("/"),
            url: Arc::from("http://127.0.0.1/"),
            status: Some(200),
            response_time: Duration::from_millis(response_ms),
            response_length: 1,
            error: error.map(Arc::from),
            start_time: SystemTime::now(),
            start_delay: None,
        }
    }

    #[test]
    fn a_summary_carries_the_config_the_mode_and_the_totals() {
        let mut stats = RequestStats::new();
        stats.add(&event(10, None));
        stats.add(&event(20, None));
        stats.add(&event(30, None));
        stats.add(&event(400, Some("HTTP 500")));
        let config: StartTest = serde_json::from_value(serde_json::json!({
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 7,
            "spawn_rate": 2.5,
            "test_time": 9,
        }))
        .expect("config");

        stats.add_iterations(4, 1);
        let summary = Summary::of_run(&config, "worker", 6, &stats, Duration::from_secs(2));
        assert_eq!(
            (summary.totals.iterations, summary.totals.dropped_iterations),
            (4, 1)
        );
        // No schedule, no corrected latency.
        assert_eq!(summary.latency_overall, None);
        assert!(summary.per_name.is_empty());

        assert_eq!(summary.user_detail, config.user_detail_dict);
        assert_eq!(summary.user_count, 7);
        assert_eq!(summary.spawn_rate, 2.5);
        assert_eq!(summary.test_time, Some(9.0));
        assert_eq!(summary.runner_mode, "worker");
        assert_eq!(summary.users_spawned, 6);
        assert_eq!(summary.duration_s, 2.0);
        let totals = &summary.totals;
        assert_eq!(
            (totals.requests, totals.successes, totals.failures),
            (4, 3, 1)
        );
        assert_eq!(totals.failure_rate, 0.25);
        assert_eq!(totals.requests_per_second, 2.0);
        assert!((399.0..=401.0).contains(&totals.max_ms), "{totals:?}");
        assert!(totals.p50_ms < totals.p99_ms, "{totals:?}");
    }

    #[test]
    fn a_run_of_no_time_has_no_rate_rather_than_an_infinite_one() {
        let mut stats = RequestStats::new();
        stats.add(&event(1, None));
        assert_eq!(
            Totals::of(stats.total(), Duration::ZERO).requests_per_second,
            0.0
        );
    }

    #[test]
    fn a_user_groups_run_shows_its_groups() {
        let config: StartTest = serde_json::from_value(serde_json::json!({
            "user_groups": [
                {"name": "sensors", "user": "mqtt_user", "weight": 3, "tasks": []},
                {"user": "mqtt_user", "fixed_count": 2, "tasks": []}
            ]
        }))
        .expect("config");
        let stats = RequestStats::new();
        let summary = Summary::of_run(&config, "local", 0, &stats, Duration::ZERO);
        assert_eq!(
            Value::Object(summary.user_detail),
            serde_json::json!({"user_groups": [
                {"name": "sensors", "user": "mqtt_user", "weight": 3},
                {"name": "mqtt_user#1", "user": "mqtt_user", "fixed_count": 2}
            ]})
        );
    }
}
