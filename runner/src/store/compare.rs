//! Comparing two stored runs name by name (`LD_compare_runs`, `load-density compare`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::query::{run_stats, RunStatsRow};
use super::StoreError;

/// The figures of one name in one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    /// Requests.
    pub requests: i64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Requests per second.
    pub rps: f64,
    /// Failures / requests.
    pub failure_rate: f64,
}

impl From<&RunStatsRow> for Figures {
    fn from(row: &RunStatsRow) -> Self {
        Self {
            requests: row.num_requests,
            p50_ms: row.p50_ms,
            p95_ms: row.p95_ms,
            p99_ms: row.p99_ms,
            rps: row.requests_per_second,
            failure_rate: row.failure_rate,
        }
    }
}

/// One name in both runs: run minus baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NameComparison {
    /// Request type (`""` for the total).
    pub request_type: String,
    /// Name (`Aggregated` for the total).
    pub name: String,
    /// The baseline's figures, when the baseline has the name.
    pub baseline: Option<Figures>,
    /// The run's figures, when the run has the name.
    pub run: Option<Figures>,
    /// `run - baseline` of each figure, when both runs have the name.
    pub delta: Option<Figures>,
    /// Percentiles that grew by more than the allowed share, e.g. `"p95_ms +23.4%"`.
    pub regressions: Vec<String>,
}

/// Two runs compared (what `LD_compare_runs` returns).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The baseline run id.
    pub baseline_run_id: i64,
    /// The compared run id.
    pub run_id: i64,
    /// The allowed growth of a percentile, in percent.
    pub max_regression_pct: f64,
    /// Whether any name regressed.
    pub regression: bool,
    /// Every name of either run, sorted by (name, request type), the total last.
    pub names: Vec<NameComparison>,
}

impl Comparison {
    /// The names that regressed.
    pub fn regressions(&self) -> Vec<&NameComparison> {
        self.names
            .iter()
            .filter(|n| !n.regressions.is_empty())
            .collect()
    }

    /// A plain-text table: one line per name with the deltas, then the verdict.
    pub fn render(&self) -> String {
        let mut text = format!(
            "run {} against baseline {} (a percentile may grow by {}%)\n",
            self.run_id, self.baseline_run_id, self.max_regression_pct
        );
        let _ = writeln!(
            text,
            "{:<8} {:<40} {:>12} {:>12} {:>12} {:>10} {:>10}  regressions",
            "Type", "Name", "p50 ms", "p95 ms", "p99 ms", "RPS", "fail %"
        );
        for name in &self.names {
            let figures = match (&name.delta, &name.baseline, &name.run) {
                (Some(d), _, _) => format!(
                    "{:>+12.2} {:>+12.2} {:>+12.2} {:>+10.2} {:>+10.2}",
                    d.p50_ms,
                    d.p95_ms,
                    d.p99_ms,
                    d.rps,
                    d.failure_rate * 100.0
                ),
                (None, None, _) => "only in the run".to_owned(),
                (None, _, _) => "only in the baseline".to_owned(),
            };
            let _ = writeln!(
                text,
                "{:<8} {:<40} {figures}  {}",
                name.request_type,
                name.name,
                name.regressions.join(", ")
            );
        }
        let verdict = if self.regression {
            format!("REGRESSION: {} name(s)", self.regressions().len())
        } else {
            "no regression".to_owned()
        };
        text.push_str(&verdict);
        text.push('\n');
        text
    }
}

/// Compares run `run_id` with `baseline_run_id` from their stored statistics. A name
/// regressed when its p50, p95 or p99 grew by more than `max_regression_pct` percent of the
/// baseline's (a name only one run has never regresses).
///
/// # Errors
/// [`StoreError::UnknownRun`] when either run is missing; otherwise as
/// [`super::list_runs`].
pub fn compare_runs(
    database_path: &Path,
    baseline_run_id: i64,
    run_id: i64,
    max_regression_pct: f64,
) -> Result<Comparison, StoreError> {
    let baseline = run_stats(database_path, baseline_run_id)?;
    let run = run_stats(database_path, run_id)?;
    // (is the total, name, request type) -> (baseline, run): the total sorts last.
    type Both = (Option<Figures>, Option<Figures>);
    let mut by_name: BTreeMap<(bool, String, String), Both> = BTreeMap::new();
    let key = |row: &RunStatsRow| {
        (
            row.request_type.is_empty(),
            row.name.clone(),
            row.request_type.clone(),
        )
    };
    for row in &baseline {
        by_name.entry(key(row)).or_default().0 = Some(row.into());
    }
    for row in &run {
        by_name.entry(key(row)).or_default().1 = Some(row.into());
    }
    let names: Vec<NameComparison> = by_name
        .into_iter()
        .map(|((_, name, request_type), (baseline, run))| {
            let (delta, regressions) = match (&baseline, &run) {
                (Some(b), Some(r)) => (
                    Some(difference(b, r)),
                    regressions(b, r, max_regression_pct),
                ),
                _ => (None, Vec::new()),
            };
            NameComparison {
                request_type,
                name,
                baseline,
                run,
                delta,
                regressions,
            }
        })
        .collect();
    Ok(Comparison {
        baseline_run_id,
        run_id,
        max_regression_pct,
        regression: names.iter().any(|n| !n.regressions.is_empty()),
        names,
    })
}

fn difference(baseline: &Figures, run: &Figures) -> Figures {
    Figures {
        requests: run.requests - baseline.requests,
        p50_ms: run.p50_ms - baseline.p50_ms,
        p95_ms: run.p95_ms - baseline.p95_ms,
        p99_ms: run.p99_ms - baseline.p99_ms,
        rps: run.rps - baseline.rps,
        failure_rate: run.failure_rate - baseline.failure_rate,
    }
}

fn regressions(baseline: &Figures, run: &Figures, max_pct: f64) -> Vec<String> {
    [
        ("p50_ms", baseline.p50_ms, run.p50_ms),
        ("p95_ms", baseline.p95_ms, run.p95_ms),
        ("p99_ms", baseline.p99_ms, run.p99_ms),
    ]
    .into_iter()
    .filter_map(|(label, before, after)| {
        if after <= before {
            return None;
        }
        if before <= 0.0 {
            return Some(format!("{label} {before} -> {after}"));
        }
        let growth = (after - before) / before * 100.0;
        (growth > max_pct).then(|| format!("{label} +{growth:.1}%"))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(p50: f64, p95: f64, p99: f64) -> Figures {
        Figures {
            requests: 10,
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            rps: 1.0,
            failure_rate: 0.0,
        }
    }

    #[test]
    fn a_percentile_growing_past_the_share_regresses() {
        let base = figures(10.0, 20.0, 30.0);
        assert!(regressions(&base, &figures(10.9, 21.0, 33.0), 10.0).is_empty());
        let flagged = regressions(&base, &figures(11.5, 20.0, 29.0), 10.0);
        assert_eq!(flagged, vec!["p50_ms +15.0%".to_owned()]);
        assert_eq!(regressions(&base, &figures(5.0, 5.0, 5.0), 0.0).len(), 0);
    }
}
