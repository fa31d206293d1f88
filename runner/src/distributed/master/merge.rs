//! Merging the workers' statistics and records, and the run's summary.

use std::sync::atomic::Ordering;
use std::time::Duration;

use load_density_core::{test_record_instance, RequestStats};

use super::{Inner, Node, NodeState};
use crate::config::{Generator, Summary};
use crate::distributed::group_stats;
use crate::distributed::locust_stats::{self};
use crate::distributed::wire::{self, Message, WireError};

impl Inner {
    pub(super) fn on_stats(&self, msg: &Message) -> Result<(), WireError> {
        // Only admitted workers count (and only while the master remembers them).
        if !self.core.lock().nodes.contains_key(&msg.node_id) {
            let dropped = self.dropped_reports.fetch_add(1, Ordering::Relaxed);
            if dropped == 0 {
                tracing::warn!(
                    worker = %msg.node_id,
                    "dropped a statistics report from a peer that was never admitted \
                     (logged once; Master::dropped_reports counts them)"
                );
            } else {
                tracing::debug!(worker = %msg.node_id, "dropped a report from a peer never admitted");
            }
            return Ok(());
        }
        let report = locust_stats::read_report(msg)?;
        let worker_cpu = wire::get(&msg.data, locust_stats::LD_CPU_KEY).and_then(wire::as_f64);
        {
            let mut stats = self.stats.lock();
            if let Some(cpu) = worker_cpu.filter(|c| c.is_finite()) {
                let lag = stats.start_lag_percentile_ms(99.0);
                let mut generator = self.generator.lock();
                generator.0 = generator.0.max(cpu);
                generator.1.judge(cpu, lag);
            }
            if let Some(exact) = &report.exact {
                stats.merge(exact);
                test_record_instance()
                    .record_iterations(exact.iterations(), exact.dropped_iterations());
            } else {
                stats.add_all(&report.rebuilt);
            }
        }
        self.merge_group_stats(msg);
        // The record store gets the shipped records, or Locust's numbers rebuilt as events.
        if report.exact.is_none() && !report.rebuilt.is_empty() {
            test_record_instance().record_events(&report.rebuilt);
        }
        if !report.records.is_empty() {
            test_record_instance().record_events(&report.records);
        }
        // Exporters started in the master's process see the merged run.
        crate::sinks::publish(if report.exact.is_none() {
            &report.rebuilt
        } else {
            &report.records
        });
        let mut core = self.core.lock();
        *core.requests.entry(msg.node_id.clone()).or_insert(0) += report.requests;
        if let Some(node) = core.nodes.get_mut(&msg.node_id) {
            if node.state != NodeState::Missing
                && wire::get(&msg.data, "user_classes_count").is_some()
            {
                node.user_classes_count = report.user_classes_count;
            }
        }
        let users: u64 = core
            .nodes
            .values()
            .filter(|n| n.state.live())
            .map(Node::user_count)
            .sum();
        self.peak_users.fetch_max(users, Ordering::Relaxed);
        Ok(())
    }
}

impl Inner {
    /// Merges a report's per-group statistics into the groups' (see
    /// [`group_stats`](crate::distributed::group_stats)). A payload that breaks the decode
    /// rules is dropped and counted; the rest of the report counts.
    fn merge_group_stats(&self, msg: &Message) {
        let Some(value) = wire::get(&msg.data, group_stats::LD_GROUP_STATS_KEY) else {
            return;
        };
        match group_stats::read_group_stats(value, &self.watched) {
            Ok(report) => {
                if report.unknown > 0 {
                    let before = self
                        .unknown_group_stats
                        .fetch_add(report.unknown, Ordering::Relaxed);
                    if before == 0 {
                        tracing::warn!(
                            worker = %msg.node_id,
                            "skipped per-group statistics of groups no threshold names \
                             (logged once; Master::unknown_group_stats counts them)"
                        );
                    }
                }
                let mut groups = self.group_stats.lock();
                for (index, delta) in &report.groups {
                    if let Some(stats) = groups.get_mut(*index) {
                        stats.merge(delta);
                    }
                }
            }
            Err(error) => {
                let before = self.dropped_group_stats.fetch_add(1, Ordering::Relaxed);
                if before == 0 {
                    tracing::warn!(
                        worker = %msg.node_id,
                        %error,
                        "dropped a report's per-group statistics (logged once; \
                         Master::dropped_group_stats counts them)"
                    );
                } else {
                    tracing::debug!(worker = %msg.node_id, %error, "dropped per-group statistics");
                }
            }
        }
    }
}

pub(super) fn summarize(inner: &Inner, duration: Duration) -> Summary {
    let stats = inner.stats.lock().clone();
    Summary::of_run(
        inner.plan.source(),
        "master",
        inner.peak_users.load(Ordering::Relaxed),
        &stats,
        duration,
    )
    // After a statistics reset, the rates are over the time since the reset.
    .counted_from_reset(&stats, duration)
    .with_generator(inner.generator_status(&stats))
}

impl Inner {
    /// The generator figures over the workers: the busiest one's CPU, the merged start lag.
    pub(super) fn generator_status(&self, stats: &RequestStats) -> Generator {
        let lag = stats.start_lag_percentile_ms(99.0);
        let mut generator = self.generator.lock();
        let cpu = generator.0;
        let saturated = generator.1.judge(cpu, lag);
        Generator {
            cpu_percent: (cpu * 10.0).round() / 10.0,
            start_lag_p50_ms: stats.start_lag_percentile_ms(50.0).unwrap_or(0.0),
            start_lag_p99_ms: lag.unwrap_or(0.0),
            saturated,
        }
    }
}
