//! Per-group statistics from LoadDensity workers to their master, for the user groups a
//! threshold names (`{group:G}` filters, `user_groups[i].thresholds`).
//!
//! Such groups keep statistics of their own in every process that runs them (see
//! [`RunPlan::watched_groups`](crate::RunPlan::watched_groups)). A worker adds one delta
//! listener per watched group to that group's own event bus and ships, with every `stats`
//! report, what each group did since the previous report under the extra key
//! [`LD_GROUP_STATS_KEY`]: a map from group name to core's exact [`RequestStats`] (msgpack,
//! as bin), like [`LD_STATS_KEY`](super::locust_stats::LD_STATS_KEY) for the whole run. A
//! Locust master ignores the key. A LoadDensity master merges each group's deltas into that
//! group's statistics, so its per-group counts are the sum of the workers' and its
//! percentiles come from merged HDR histograms.
//!
//! The master reads the key as hostile input ([`read_group_stats`]): at most one entry per
//! group it watches, the histograms' counters charged to a budget sized from the payload (as
//! for the run's exact statistics), names it does not watch skipped and counted. A payload
//! that breaks these rules is dropped whole; the rest of the report still counts.

use std::sync::Arc;

use load_density_core::stats::{histogram_limits, SharedStats};
use load_density_core::{RequestListener, RequestStats};
use rmpv::Value;

use super::locust_stats::{HISTOGRAM_BYTES_PER_REPORT, HISTOGRAM_BYTES_PER_REPORT_BYTE};
use super::wire::kind_of;
use crate::env::Environment;

/// The extra `stats` key holding the per-group statistics: a map from group name to
/// msgpack of [`RequestStats`] (bin).
pub const LD_GROUP_STATS_KEY: &str = "ld_group_stats";

/// A worker's per-group deltas: one exact [`RequestStats`] per watched group, fed by that
/// group's own event bus.
#[derive(Debug, Default)]
pub(crate) struct GroupDeltas {
    groups: Vec<(String, SharedStats)>,
}

impl GroupDeltas {
    /// Listens to the own bus of each of `watched` in `env` (a group that keeps no
    /// statistics of its own is skipped).
    pub(crate) fn attach(env: &Environment, watched: &[String]) -> Self {
        let mut groups = Vec::with_capacity(watched.len());
        for name in watched {
            let delta = SharedStats::new();
            if env.add_group_listener(name, Arc::new(delta.clone()) as Arc<dyn RequestListener>) {
                groups.push((name.clone(), delta));
            }
        }
        Self { groups }
    }

    /// What each group did since the previous call, as the [`LD_GROUP_STATS_KEY`] value;
    /// `None` when no group is watched.
    pub(crate) fn take(&self) -> Option<Value> {
        if self.groups.is_empty() {
            return None;
        }
        let mut entries = Vec::with_capacity(self.groups.len());
        for (name, delta) in &self.groups {
            let stats = delta.with(|s| std::mem::replace(s, RequestStats::new()));
            match rmp_serde::to_vec_named(&stats) {
                Ok(bytes) => entries.push((Value::from(name.as_str()), Value::Binary(bytes))),
                Err(error) => {
                    tracing::error!(%error, group = %name, "cannot serialize a group's statistics")
                }
            }
        }
        Some(Value::Map(entries))
    }
}

/// What a master takes from one report's [`LD_GROUP_STATS_KEY`].
#[derive(Debug, Default)]
pub struct GroupReport {
    /// (index into the master's watched groups, that group's delta).
    pub groups: Vec<(usize, RequestStats)>,
    /// Entries naming a group the master does not watch (skipped).
    pub unknown: u64,
}

/// Reads a [`LD_GROUP_STATS_KEY`] value against the groups the master watches.
///
/// # Errors
/// The value is not a map of string to bin; it holds more entries than `watched` has
/// groups, or two for one group; an entry is not valid statistics, or its histograms claim
/// more counters than the payload's budget (the same budget as the run's exact statistics:
/// [`HISTOGRAM_BYTES_PER_REPORT`] plus [`HISTOGRAM_BYTES_PER_REPORT_BYTE`] per byte).
pub fn read_group_stats(value: &Value, watched: &[String]) -> Result<GroupReport, String> {
    let Value::Map(entries) = value else {
        return Err(format!("{}, not a map", kind_of(value)));
    };
    if entries.len() > watched.len() {
        return Err(format!(
            "{} entries, more than the {} group(s) thresholds name",
            entries.len(),
            watched.len()
        ));
    }
    let mut bytes_total = 0u64;
    let mut known = Vec::with_capacity(entries.len());
    let mut unknown = 0;
    for (key, payload) in entries {
        let name = key
            .as_str()
            .ok_or_else(|| format!("a key is {}, not a string", kind_of(key)))?;
        let Value::Binary(bytes) = payload else {
            return Err(format!("{name:?} is {}, not binary", kind_of(payload)));
        };
        match watched.iter().position(|w| w == name) {
            Some(index) => {
                if known.iter().any(|(i, _)| *i == index) {
                    return Err(format!("{name:?} appears twice"));
                }
                bytes_total = bytes_total.saturating_add(bytes.len() as u64);
                known.push((index, bytes.as_slice()));
            }
            None => unknown += 1,
        }
    }
    let budget = HISTOGRAM_BYTES_PER_REPORT
        .saturating_add(HISTOGRAM_BYTES_PER_REPORT_BYTE.saturating_mul(bytes_total));
    // One budget for every group of the report: many entries cannot each claim it.
    let groups = histogram_limits::with_budget(budget, || {
        known
            .into_iter()
            .map(|(index, bytes)| {
                rmp_serde::from_slice::<RequestStats>(bytes)
                    .map(|stats| (index, stats))
                    .map_err(|e| format!("{:?}: {e}", watched[index]))
            })
            .collect::<Result<Vec<_>, String>>()
    })?;
    Ok(GroupReport { groups, unknown })
}

#[cfg(test)]
mod tests {
    use super::*;
    use load_density_core::RequestEvent;
    use std::time::{Duration, SystemTime};

    fn stats(requests: u64) -> RequestStats {
        let mut stats = RequestStats::new();
        for _ in 0..requests {
            stats.add(&RequestEvent {
                request_type: Arc::from("GET"),
                name: Arc::from("/x"),
                url: Arc::from("http://h/x"),
                status: Some(200),
                response_time: Duration::from_millis(3),
                response_length: 1,
                error: None,
                start_time: SystemTime::now(),
                start_delay: None,
            });
        }
        stats
    }

    fn bin(stats: &RequestStats) -> Value {
        Value::Binary(rmp_serde::to_vec_named(stats).expect("serialize"))
    }

    #[test]
    fn known_groups_are_read_and_unknown_ones_counted() {
        let watched = vec!["a".to_owned(), "b".to_owned()];
        let value = Value::Map(vec![
            (Value::from("b"), bin(&stats(3))),
            (Value::from("zzz"), bin(&stats(1))),
        ]);
        let report = read_group_stats(&value, &watched).expect("read");
        assert_eq!(report.unknown, 1);
        assert_eq!(report.groups.len(), 1);
        assert_eq!(report.groups[0].0, 1);
        assert_eq!(report.groups[0].1.total().num_requests(), 3);
    }

    #[test]
    fn hostile_payloads_are_errors() {
        let watched = vec!["a".to_owned()];
        for value in [
            Value::from(3),
            Value::Map(vec![(Value::from("a"), Value::from("text"))]),
            Value::Map(vec![(Value::from("a"), Value::Binary(vec![0xc1, 0, 1]))]),
            Value::Map(vec![
                (Value::from("a"), bin(&stats(1))),
                (Value::from("b"), bin(&stats(1))),
            ]),
            Value::Map(vec![(Value::from(1), bin(&stats(1)))]),
        ] {
            assert!(read_group_stats(&value, &watched).is_err(), "{value:?}");
        }
    }
}
