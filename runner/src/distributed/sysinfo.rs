//! This process's CPU use and resident memory, read from `/proc/self` (0 where there is none).

use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// Samples CPU use between calls.
#[derive(Debug)]
pub(crate) struct CpuMonitor {
    last: Option<(Instant, f64)>,
}

/// CPU seconds this process has used (user + system).
pub(crate) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

impl CpuMonitor {
    pub(crate) fn new() -> Self {
        Self {
            last: cpu_seconds().map(|s| (Instant::now(), s)),
        }
    }

    /// CPU use since the previous sample, in percent of one core.
    pub(crate) fn sample(&mut self) -> f64 {
        let now = Instant::now();
        let Some(cpu) = cpu_seconds() else {
            return 0.0;
        };
        let percent = match self.last {
            Some((then, before)) => {
                let wall = now.duration_since(then).as_secs_f64();
                if wall > 0.0 {
                    ((cpu - before) / wall * 100.0).max(0.0)
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, cpu));
        percent
    }
}

/// Resident memory in bytes (`VmRSS` of `/proc/self/status`).
pub(crate) fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
