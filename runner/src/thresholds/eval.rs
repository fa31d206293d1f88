//! Evaluating thresholds on a statistics snapshot.

use hdrhistogram::Histogram;
use load_density_core::{RequestStats, StatsEntry};

use super::parse::{Aggregation, Filter, Metric, Threshold};

/// What the evaluation reads besides the request statistics.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation<'a> {
    /// The run's request statistics.
    pub stats: Option<&'a RequestStats>,
    /// Seconds since the run started (for rates).
    pub elapsed_s: f64,
    /// Assertions (passed, failed) during the run, when known.
    pub checks: Option<(u64, u64)>,
    /// Iterations the schedule dropped, when the run knows them.
    pub dropped_iterations: Option<u64>,
    /// The statistics of the user groups that keep their own, by group name (what
    /// `{group:G}` reads; a group not listed has no data).
    pub groups: &'a [(String, RequestStats)],
}

impl<'a> Observation<'a> {
    /// The statistics a filter's group names, or the run's without a group filter; `None`
    /// when there are none.
    fn stats_for(&self, filter: &Filter) -> Option<&'a RequestStats> {
        match &filter.group {
            None => self.stats,
            Some(group) => self
                .groups
                .iter()
                .find(|(name, _)| name == group)
                .map(|(_, stats)| stats),
        }
    }
}

/// The value of `aggregation` over `threshold`'s metric; `None` when there is no data.
pub(super) fn value_of(
    threshold: &Threshold,
    aggregation: Aggregation,
    observation: &Observation<'_>,
) -> Option<f64> {
    let rate = |count: f64| (observation.elapsed_s > 0.0).then(|| count / observation.elapsed_s);
    match threshold.metric {
        Metric::ResponseTime => latency(selected(observation, &threshold.filter)?, aggregation),
        Metric::CorrectedResponseTime => {
            corrected_latency(selected(observation, &threshold.filter)?, aggregation)
        }
        Metric::FailureRate => {
            let entries = selected(observation, &threshold.filter)?;
            let requests: u64 = entries.iter().map(|e| e.num_requests()).sum();
            let failures: u64 = entries.iter().map(|e| e.num_failures()).sum();
            (requests > 0).then(|| failures as f64 / requests as f64)
        }
        Metric::Requests => {
            let entries = selected(observation, &threshold.filter)?;
            let count = entries.iter().map(|e| e.num_requests()).sum::<u64>() as f64;
            match aggregation {
                Aggregation::Count => Some(count),
                _ => rate(count),
            }
        }
        Metric::DroppedIterations => {
            let count = match &threshold.filter.group {
                Some(_) => observation
                    .stats_for(&threshold.filter)?
                    .dropped_iterations(),
                None => observation.dropped_iterations?,
            } as f64;
            match aggregation {
                Aggregation::Count => Some(count),
                _ => rate(count),
            }
        }
        Metric::Checks => {
            let (passed, failed) = observation.checks?;
            (passed + failed > 0).then(|| passed as f64 / (passed + failed) as f64)
        }
    }
}

/// The entries a filter selects: the total without a name or type filter; those of the
/// group's own statistics with a group filter (none, no data, when the group keeps none).
fn selected<'a>(observation: &Observation<'a>, filter: &Filter) -> Option<Vec<&'a StatsEntry>> {
    let stats = observation.stats_for(filter)?;
    if filter.name.is_none() && filter.request_type.is_none() {
        return Some(vec![stats.total()]);
    }
    Some(
        stats
            .entries()
            .into_iter()
            .filter(|e| filter.name.as_deref().is_none_or(|n| e.name() == n))
            .filter(|e| {
                filter
                    .request_type
                    .as_deref()
                    .is_none_or(|t| e.request_type().eq_ignore_ascii_case(t))
            })
            .collect(),
    )
}

fn latency(entries: Vec<&StatsEntry>, aggregation: Aggregation) -> Option<f64> {
    let entries: Vec<&StatsEntry> = entries
        .into_iter()
        .filter(|e| e.num_requests() > 0)
        .collect();
    let count: u64 = entries.iter().map(|e| e.num_requests()).sum();
    if count == 0 {
        return None;
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let min = entries.iter().map(|e| e.min_response_time_us()).min()?;
    let max = entries.iter().map(|e| e.max_response_time_us()).max()?;
    let percentile = |p: f64| -> Option<f64> {
        if let [entry] = entries.as_slice() {
            return Some(entry.percentile_ms(p));
        }
        let mut merged: Histogram<u64> = entries.first()?.histogram().clone();
        for entry in &entries[1..] {
            // Histograms auto-resize, so adding cannot run out of range.
            let _ = merged.add(entry.histogram());
        }
        let us = merged
            .value_at_quantile((p / 100.0).clamp(0.0, 1.0))
            .min(max)
            .max(min);
        Some(ms(us))
    };
    match aggregation {
        Aggregation::Avg => {
            let total: u64 = entries.iter().map(|e| e.total_response_time_us()).sum();
            Some(total as f64 / count as f64 / 1000.0)
        }
        Aggregation::Min => Some(ms(min)),
        Aggregation::Max => Some(ms(max)),
        Aggregation::Med => percentile(50.0),
        Aggregation::Percentile(p) => percentile(p),
        Aggregation::Rate | Aggregation::Count => None,
    }
}

/// The corrected latency (response time plus the iteration's start delay) over `entries`,
/// from their corrected histograms; `None` when no request had a due time.
fn corrected_latency(entries: Vec<&StatsEntry>, aggregation: Aggregation) -> Option<f64> {
    let mut histograms = entries.iter().filter_map(|e| e.corrected_histogram());
    let mut merged: Histogram<u64> = histograms.next()?.clone();
    for histogram in histograms {
        // Histograms auto-resize, so adding cannot run out of range.
        let _ = merged.add(histogram);
    }
    if merged.is_empty() {
        return None;
    }
    let max = entries.iter().map(|e| e.max_corrected_us()).max()?;
    let ms = |us: u64| us as f64 / 1000.0;
    let percentile = |p: f64| {
        ms(merged
            .value_at_quantile((p / 100.0).clamp(0.0, 1.0))
            .min(max))
    };
    match aggregation {
        Aggregation::Avg => Some(merged.mean() / 1000.0),
        Aggregation::Min => Some(ms(merged.min())),
        Aggregation::Max => Some(ms(max)),
        Aggregation::Med => Some(percentile(50.0)),
        Aggregation::Percentile(p) => Some(percentile(p)),
        Aggregation::Rate | Aggregation::Count => None,
    }
}
