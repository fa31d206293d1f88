//! [`RunControl`]: what a front end (the web UI, a control API) needs from a run, whatever
//! runs it — the local runner or a distributed master.

use std::time::SystemTime;

use load_density_core::RequestStats;

use crate::env::{Environment, RunState};
use crate::error::RunError;

/// A worker as a master sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerInfo {
    /// The worker's node id (`<host>_<hex>`).
    pub id: String,
    /// `ready`, `spawning`, `running`, `stopped` or `missing`.
    pub state: String,
    /// Users it runs.
    pub user_count: u64,
    /// Its process CPU use, percent of one core.
    pub cpu_percent: f64,
    /// Its resident memory, bytes.
    pub memory_bytes: u64,
    /// When its last heartbeat arrived.
    pub last_heartbeat: SystemTime,
}

/// Control and observation of a running test.
pub trait RunControl: Send + Sync + 'static {
    /// Where the run is.
    fn state(&self) -> RunState;
    /// Live statistics.
    fn stats(&self) -> RequestStats;
    /// Users running now.
    fn user_count(&self) -> u64;
    /// Users the run is heading for.
    fn target_user_count(&self) -> u64;
    /// Changes the user count during the run, ramping at `spawn_rate` users per second.
    fn set_user_count(&self, user_count: u64, spawn_rate: f64) -> Result<(), RunError>;
    /// Stops the run; requests in flight finish and are recorded.
    fn stop(&self);
    /// Clears the run's statistics.
    fn reset_stats(&self);
    /// The target host, when one was configured.
    fn host(&self) -> Option<String>;
    /// Statistics of the user groups that keep their own (those a threshold looks at), as
    /// (group name, statistics); empty when none does. A distributed master merges them from
    /// its LoadDensity workers' per-group reports
    /// ([`group_stats`](crate::distributed::group_stats)).
    fn group_stats(&self) -> Vec<(String, RequestStats)> {
        Vec::new()
    }
    /// Connected workers (a master); empty for a local run.
    fn workers(&self) -> Vec<WorkerInfo> {
        Vec::new()
    }
    /// Iterations per second the run's arrival-rate schedules ask for now (0 without one).
    fn target_rate(&self) -> f64 {
        0.0
    }
    /// The generator's CPU use and start lag, and whether it limits the run (`None` when
    /// unknown).
    fn generator(&self) -> Option<crate::config::Generator> {
        None
    }
}

impl RunControl for Environment {
    fn state(&self) -> RunState {
        Environment::state(self)
    }
    fn stats(&self) -> RequestStats {
        Environment::stats(self)
    }
    fn user_count(&self) -> u64 {
        Environment::user_count(self)
    }
    fn target_user_count(&self) -> u64 {
        Environment::target_user_count(self)
    }
    fn set_user_count(&self, user_count: u64, spawn_rate: f64) -> Result<(), RunError> {
        Environment::set_user_count(self, user_count, spawn_rate)
    }
    fn stop(&self) {
        Environment::stop(self)
    }
    fn reset_stats(&self) {
        Environment::reset_stats(self)
    }
    fn group_stats(&self) -> Vec<(String, RequestStats)> {
        Environment::group_stats(self)
    }
    fn host(&self) -> Option<String> {
        self.config().host.clone()
    }
    fn target_rate(&self) -> f64 {
        Environment::target_rate(self)
    }
    fn generator(&self) -> Option<crate::config::Generator> {
        Environment::generator(self)
    }
}
