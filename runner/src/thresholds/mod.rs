//! Thresholds: pass/fail conditions on a run's metrics, in k6's syntax, and the run's verdict.
//!
//! `thresholds` (a `start_test` keyword) maps a metric, optionally filtered, to its
//! conditions:
//!
//! ```json
//! "thresholds": {
//!   "response_time": ["p(95)<200", "avg<100"],
//!   "response_time{name:/login}": ["p(99)<500"],
//!   "failure_rate": [{"threshold": "rate<0.01", "abort_on_fail": true, "delay_abort_eval": 10}],
//!   "requests{type:GET}": ["rate>100"],
//!   "checks": ["rate>0.99"]
//! }
//! ```
//!
//! | metric | aggregations | filters |
//! |---|---|---|
//! | `response_time` | `avg`, `min`, `max`, `med`, `p(N)` (ms, N in 0-100) | `name`, `type`, `group` |
//! | `corrected_response_time` | as `response_time` | as `response_time` |
//! | `failure_rate` | `rate` (failed / all requests) | `name`, `type`, `group` |
//! | `requests` | `count`, `rate` (per second) | `name`, `type`, `group` |
//! | `dropped_iterations` | `count`, `rate` | `group` |
//! | `checks` | `rate` (assertions that passed / assertions evaluated) | none |
//!
//! Operators: `<`, `<=`, `>`, `>=`, `==`, `!=`. Filters combine with commas
//! (`response_time{name:/x,type:POST}`). A condition is a string, or an object
//! `{"threshold": "...", "abort_on_fail": true, "delay_abort_eval": 10}` (seconds, or a
//! duration such as `"10s"`, `"1m"`).
//!
//! Everything is checked when the configuration is read, before the run starts; an error
//! names the key and the condition's index.
//!
//! ## Evaluation
//! The run monitor ([`crate::monitor`]) evaluates every condition once a second on the run's live statistics (a
//! distributed master: on its merged, exact histograms) and once more on the final statistics.
//! It reads statistics the run already keeps; nothing is added on the request path. When a
//! condition with `abort_on_fail` fails at a second past its `delay_abort_eval`, the run is
//! stopped (a master stops every worker) and the verdict is `aborted`.
//!
//! A condition whose metric has no data (no requests matched, no assertions ran) passes, with
//! `value: null`, as k6 does.
//!
//! ## Per user group
//! `{group:G}` reads the statistics of group `G`'s users only ([`Observation::groups`]): the
//! groups a threshold names keep statistics of their own (their users report to a bus of their
//! own, which feeds the group's statistics and every listener of the run). A group's own
//! `thresholds` (`user_groups[i].thresholds`) are folded into the run's by
//! [`Thresholds::group_keys`]: each key gets `group:<the group>`. In a distributed run, every
//! LoadDensity worker keeps these groups' statistics too and ships what each did since its
//! previous report (exact HDR histograms, an extra key of the `stats` report that a Locust
//! master ignores: [`crate::distributed::group_stats`]); the master merges them per group, so
//! its `{group:G}` conditions read the sum of the workers' counts and merged histograms.
//! Python Locust workers send no per-group statistics: under a LoadDensity master their
//! requests count in the run's statistics but in no group's.
//!
//! ## Results
//! The summary gets `thresholds: [{"metric", "condition", "value", "ok"}]` and
//! `verdict: "passed" | "failed" | "aborted"` (both only when thresholds were given), the
//! console gets a verdict block, and the JUnit and HTML reports list every condition. The
//! `load-density` CLI exits with 99 when the verdict is not `passed`. The web UI shows the
//! latest evaluation of the run being monitored ([`live_results`]).

mod eval;
pub(crate) mod live;
mod parse;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use eval::Observation;
pub use live::live_results;
pub use parse::{Aggregation, Condition, Filter, Metric, Operator, Threshold};

/// A `thresholds` entry that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("thresholds{}: {message}", if key.is_empty() { String::new() } else { format!(".{key:?}") })]
pub struct ThresholdError {
    /// The metric key (with the condition index, `"requests[1]"`), empty for the whole object.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ThresholdError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// The parsed `thresholds` of a run. Serializes back to the JSON it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    raw: Value,
    list: Vec<Threshold>,
}

impl Thresholds {
    /// Parses and checks a `thresholds` object.
    ///
    /// # Errors
    /// An unknown metric, aggregation or filter, a malformed condition, a percentile outside
    /// 0-100, a bad abort setting; the error names the key.
    pub fn parse(value: &Value) -> Result<Self, ThresholdError> {
        Ok(Self {
            raw: value.clone(),
            list: parse::parse_all(value)?,
        })
    }

    /// A user group's own thresholds (`user_groups[i].thresholds`, same syntax), as
    /// top-level keys that look at the group's statistics: each key gets `group:<group>` in
    /// its filter (`response_time` becomes `response_time{group:G}`,
    /// `requests{name:/x}` becomes `requests{name:/x,group:G}`).
    ///
    /// # Errors
    /// What [`parse`](Self::parse) refuses; a `group` filter naming another group; `checks`
    /// (counted for the whole run only); a group name holding a `,`, which a filter cannot.
    pub fn group_keys(value: &Value, group: &str) -> Result<Map<String, Value>, ThresholdError> {
        let parsed = parse::parse_all(value)?;
        let Value::Object(map) = value else {
            return Err(ThresholdError::new("", "must be an object"));
        };
        if group.contains(',') {
            return Err(ThresholdError::new(
                "",
                format!(
                    "the group's name {group:?} holds a ',', which a {{group:...}} filter \
                     cannot: rename the group"
                ),
            ));
        }
        let mut keys = Map::new();
        for (threshold, (key, conditions)) in parsed.iter().zip(map) {
            let scoped = match &threshold.filter.group {
                Some(other) if other != group => {
                    return Err(ThresholdError::new(
                        key,
                        format!(
                            "filters group {other:?}, but these thresholds belong to group \
                             {group:?}: give it at the top level (thresholds)"
                        ),
                    ))
                }
                Some(_) => key.clone(),
                None if threshold.metric == Metric::Checks => {
                    return Err(ThresholdError::new(
                        key,
                        "checks are counted for the whole run, not per group: give this \
                         threshold at the top level (thresholds)",
                    ))
                }
                None => match key.split_once('{') {
                    None => format!("{}{{group:{group}}}", key.trim()),
                    Some((metric, rest)) => {
                        let inner = rest.trim_end().trim_end_matches('}').trim();
                        if inner.is_empty() {
                            format!("{}{{group:{group}}}", metric.trim())
                        } else {
                            format!("{}{{{inner},group:{group}}}", metric.trim())
                        }
                    }
                },
            };
            add_conditions(&mut keys, scoped, conditions);
        }
        Ok(keys)
    }

    /// `top` (the run's `thresholds`, if any) with more keys (see
    /// [`group_keys`](Self::group_keys)); conditions under a key both give are kept, the
    /// top-level ones first.
    ///
    /// # Errors
    /// What [`parse`](Self::parse) refuses in the result.
    pub fn extended(
        top: Option<&Thresholds>,
        more: Map<String, Value>,
    ) -> Result<Thresholds, ThresholdError> {
        let mut raw = match top.map(|t| &t.raw) {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        for (key, conditions) in more {
            add_conditions(&mut raw, key, &conditions);
        }
        Thresholds::parse(&Value::Object(raw))
    }

    /// The thresholds, in the order written.
    pub fn thresholds(&self) -> &[Threshold] {
        &self.list
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Evaluates every condition.
    pub fn evaluate(&self, observation: &Observation<'_>) -> Vec<ThresholdResult> {
        self.list
            .iter()
            .flat_map(|threshold| {
                threshold.conditions.iter().map(move |condition| {
                    let value = eval::value_of(threshold, condition.aggregation, observation);
                    ThresholdResult {
                        metric: threshold.key.clone(),
                        condition: condition.text.clone(),
                        value,
                        ok: value.is_none_or(|v| condition.operator.holds(v, condition.bound)),
                    }
                })
            })
            .collect()
    }

    /// The conditions, flattened in [`evaluate`](Self::evaluate)'s order.
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> + '_ {
        self.list.iter().flat_map(|t| t.conditions.iter())
    }
}

/// Adds `conditions` (a list, or one condition) under `key`, after those already there.
fn add_conditions(map: &mut Map<String, Value>, key: String, conditions: &Value) {
    let as_list = |value: &Value| match value {
        Value::Array(items) => items.clone(),
        single => vec![single.clone()],
    };
    match map.get_mut(&key) {
        Some(existing) => {
            let mut list = as_list(existing);
            list.extend(as_list(conditions));
            *existing = Value::Array(list);
        }
        None => {
            map.insert(key, conditions.clone());
        }
    }
}

impl Serialize for Thresholds {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Thresholds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Thresholds::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// One condition's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// The metric key as written (`response_time{name:/login}`).
    pub metric: String,
    /// The condition as written (`p(95)<200`).
    pub condition: String,
    /// The measured value; `null` when the metric had no data.
    pub value: Option<f64>,
    /// Whether the condition held.
    pub ok: bool,
}

impl ThresholdResult {
    /// The value as text (`"no data"` without one).
    pub fn value_text(&self) -> String {
        match self.value {
            Some(v) => format!("{}", (v * 1000.0).round() / 1000.0),
            None => "no data".to_owned(),
        }
    }
}

/// A run's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every condition held.
    Passed,
    /// A condition failed at the end.
    Failed,
    /// A condition with `abort_on_fail` failed and stopped the run.
    Aborted,
}

impl Verdict {
    /// `passed`, `failed` or `aborted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
        }
    }
}

/// The console's verdict block: one line per condition and the verdict.
pub fn verdict_block(results: &[ThresholdResult], verdict: Verdict) -> String {
    let mut out = String::from("Thresholds\n");
    for result in results {
        let _ = writeln!(
            out,
            "  {} {} {}  (value: {})",
            if result.ok { "PASS" } else { "FAIL" },
            result.metric,
            result.condition,
            result.value_text()
        );
    }
    let _ = write!(out, "Verdict: {}", verdict.as_str().to_uppercase());
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use load_density_core::{RequestEvent, RequestStats};
    use serde_json::json;

    use super::*;

    fn event(name: &str, ms: u64, error: Option<&str>) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from("GET"),
            name: Arc::from(name),
            url: Arc::from(name),
            status: Some(200),
            response_time: Duration::from_millis(ms),
            response_length: 1,
            error: error.map(Arc::from),
            start_time: SystemTime::now(),
            start_delay: None,
        }
    }

    #[test]
    fn conditions_evaluate_on_stats() {
        let mut stats = RequestStats::new();
        for ms in 1..=100 {
            stats.add(&event("/a", ms, None));
        }
        stats.add(&event("/b", 1000, Some("boom")));
        let thresholds = Thresholds::parse(&json!({
            "response_time": ["p(50)<60", "max<500"],
            "response_time{name:/a}": ["max<=100", "avg>50"],
            "failure_rate": ["rate<0.05"],
            "requests": ["count==101", "rate>=50"],
            "requests{name:/none}": ["count==0"],
            "checks": ["rate>0.5"],
            "response_time{group:g}": ["avg<1"],
        }))
        .expect("valid");
        let results = thresholds.evaluate(&Observation {
            stats: Some(&stats),
            elapsed_s: 2.0,
            checks: None,
            dropped_iterations: None,
            groups: &[],
        });
        let ok: Vec<bool> = results.iter().map(|r| r.ok).collect();
        assert_eq!(
            ok,
            [true, false, true, true, true, true, true, true, true, true],
            "{results:?}"
        );
        assert_eq!(results[1].value, Some(1000.0));
        assert_eq!(results[6].value, Some(50.5));
        assert_eq!(results[8].value, None, "checks without data");
        assert_eq!(results[9].value, None, "group filter without data");
    }

    #[test]
    fn group_keys_scope_every_key_to_the_group() {
        let keys = Thresholds::group_keys(
            &json!({
                "response_time": ["p(95)<200"],
                "requests{name:/x}": "count>1",
                "failure_rate{group:g}": ["rate<0.1"],
                "dropped_iterations{}": ["count==0"],
            }),
            "g",
        )
        .expect("valid");
        let names: Vec<&str> = keys.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "response_time{group:g}",
                "requests{name:/x,group:g}",
                "failure_rate{group:g}",
                "dropped_iterations{group:g}"
            ]
        );
        let top = Thresholds::parse(&json!({"requests{name:/x,group:g}": ["rate>0"]})).unwrap();
        let merged = Thresholds::extended(Some(&top), keys).expect("valid");
        assert_eq!(merged.thresholds().len(), 4);
        let conditions: Vec<&str> = merged.thresholds()[0]
            .conditions
            .iter()
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(conditions, ["rate>0", "count>1"], "the top-level one first");
        assert_eq!(merged.thresholds()[0].filter.group.as_deref(), Some("g"));
        assert_eq!(merged.thresholds()[0].filter.name.as_deref(), Some("/x"));
        let wrong = Thresholds::group_keys(&json!({"requests": ["count>0"]}), "a,b").unwrap_err();
        assert!(wrong.message.contains("holds a ','"), "{wrong}");
    }
}
