//! Is the generator the bottleneck? The process's own CPU use and its start lag (how late
//! schedules' timers fire against the iterations' due times), sampled about once a second,
//! with one warning when the generator rather than the target limits the run.

use std::time::Instant;

use crate::config::Generator;
use crate::distributed::sysinfo::{cpu_seconds, CpuMonitor};
use crate::env::worker_threads;

/// CPU use (percent of the CPUs the process may use) above which the generator is saturated.
pub const CPU_SATURATED_PERCENT: f64 = 90.0;
/// Start lag p99 (ms) above which the generator is saturated.
pub const START_LAG_SATURATED_MS: f64 = 5.0;

/// Samples the generator's CPU use and judges its start lag.
#[derive(Debug)]
pub(crate) struct GeneratorMonitor {
    cpu: CpuMonitor,
    cpus: f64,
    started: Instant,
    cpu_at_start: Option<f64>,
    saturated: bool,
}

impl GeneratorMonitor {
    pub(crate) fn new() -> Self {
        Self {
            cpu: CpuMonitor::new(),
            cpus: worker_threads().max(1) as f64,
            started: Instant::now(),
            cpu_at_start: cpu_seconds(),
            saturated: false,
        }
    }

    /// CPU use since the previous sample, in percent of the CPUs the process may use.
    pub(crate) fn sample_cpu(&mut self) -> f64 {
        self.cpu.sample() / self.cpus
    }

    /// One sample (about every second) with the start lag p99 so far; warns the first time
    /// the generator looks saturated, and says whether it is.
    pub(crate) fn sample(&mut self, start_lag_p99_ms: Option<f64>) -> bool {
        let cpu = self.sample_cpu();
        self.judge(cpu, start_lag_p99_ms)
    }

    /// Judges a CPU figure (percent of the process's CPUs) and a start lag p99; warns once.
    pub(crate) fn judge(&mut self, cpu_percent: f64, start_lag_p99_ms: Option<f64>) -> bool {
        let lag = start_lag_p99_ms.unwrap_or(0.0);
        if !self.saturated && (cpu_percent > CPU_SATURATED_PERCENT || lag > START_LAG_SATURATED_MS)
        {
            self.saturated = true;
            tracing::warn!(
                cpu_percent = format!("{cpu_percent:.0}"),
                start_lag_p99_ms = format!("{lag:.1}"),
                "the load generator, not the target, may be limiting this run (CPU above \
                 {CPU_SATURATED_PERCENT}% of its cores, or iterations starting more than \
                 {START_LAG_SATURATED_MS} ms late at p99): use more workers or fewer users"
            );
        }
        self.saturated
    }

    /// Mean CPU use since the monitor started, in percent of the process's CPUs.
    pub(crate) fn mean_cpu(&self) -> f64 {
        let wall = self.started.elapsed().as_secs_f64();
        match (self.cpu_at_start, cpu_seconds()) {
            (Some(before), Some(now)) if wall > 0.0 => {
                ((now - before) / wall / self.cpus * 100.0).max(0.0)
            }
            _ => 0.0,
        }
    }

    /// The figures the summary reports, with the start lag (median, p99) so far.
    pub(crate) fn status(&self, start_lag_ms: (Option<f64>, Option<f64>)) -> Generator {
        Generator {
            cpu_percent: round1(self.mean_cpu()),
            start_lag_p50_ms: start_lag_ms.0.unwrap_or(0.0),
            start_lag_p99_ms: start_lag_ms.1.unwrap_or(0.0),
            saturated: self.saturated,
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_judged_on_cpu_or_start_lag_and_sticks() {
        let mut monitor = GeneratorMonitor::new();
        assert!(!monitor.judge(50.0, Some(1.0)));
        assert!(!monitor.judge(50.0, None));
        assert!(monitor.judge(95.0, Some(1.0)));
        // Once saturated, the run stays marked (and the warning is not repeated).
        assert!(monitor.judge(10.0, Some(0.1)));
        let mut lagging = GeneratorMonitor::new();
        assert!(lagging.judge(10.0, Some(12.0)));
        let status = lagging.status((Some(2.0), Some(12.0)));
        assert!(status.saturated);
        assert_eq!(status.start_lag_p99_ms, 12.0);
    }
}
