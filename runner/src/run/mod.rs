//! What the local runner drives: users of each group, started by their load model.
//!
//! - [`closed`]: closed models (`constant_users`, `ramping_users`): pools of looping users
//!   heading for a user count at a spawn rate, stage by stage.
//! - [`arrival`]: arrival-rate models: iterations due on a schedule, handed to free users.
//! - [`iterations`]: a fixed number of iterations, per user or shared.
//! - [`generator`]: whether the generator itself (its CPU, its timers) limits the run.
//!
//! [`RunShared`] is what they share: the groups' user factories and scenarios, the event bus,
//! and the counters of users started and running.

pub(crate) mod arrival;
pub(crate) mod closed;
pub(crate) mod generator;
pub(crate) mod iterations;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load_density_core::context::{StopHandle, StopSignal};
use load_density_core::data::DataSources;
use load_density_core::event::{EventBus, RequestListener};
use load_density_core::record::TestRecord;
use load_density_core::scenario::Scenario;
use load_density_core::source_address::SourceAddresses;
use load_density_core::stats::SharedStats;
use load_density_core::variables::UserVariables;
use load_density_core::{Pacing, UserContext, UserFactory, UserTemplate, Variables};

/// One group, ready to make users.
pub(crate) struct GroupRuntime {
    pub(crate) name: String,
    pub(crate) data: Arc<DataSources>,
    pub(crate) active: AtomicU64,
    pub(crate) factory: Arc<dyn UserFactory>,
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) pacing: Pacing,
    /// The bus its users report to: the run's, or the group's own when the group keeps
    /// statistics of its own (`stats`).
    pub(crate) bus: Arc<EventBus>,
    /// The group's own statistics, kept when a threshold looks at the group
    /// (`{group:G}`, `user_groups[i].thresholds`): the group's bus feeds them and every
    /// listener of the run but the run's statistics, which merge them in when read.
    pub(crate) stats: Option<SharedStats>,
    /// The local addresses its users bind to, round-robin (`source_addresses`).
    pub(crate) sources: Option<Arc<SourceAddresses>>,
    /// The group's users made so far (the next one binds source address `next_source mod n`).
    pub(crate) next_source: AtomicU64,
}

/// What every driver of a run shares.
pub(crate) struct RunShared {
    pub(crate) groups: Vec<GroupRuntime>,
    pub(crate) variables: Arc<Variables>,
    pub(crate) bus: Arc<EventBus>,
    /// The whole run's stop.
    pub(crate) stop: StopHandle,
    /// Cuts off the tasks still in flight after the stop (each is recorded as a failure).
    pub(crate) cancel: StopHandle,
    pub(crate) spawned: AtomicU64,
    pub(crate) active: AtomicU64,
    next_user_id: AtomicU64,
    /// Users per second the last finished ramp of a closed model achieved.
    achieved_spawn_rate: parking_lot::Mutex<Option<f64>>,
    /// Whether the log already said the spawn rate asked could not be kept.
    spawn_warned: AtomicBool,
}

/// Counts a user as running until dropped.
pub(crate) struct ActiveUser {
    shared: Arc<RunShared>,
    group: usize,
}

impl Drop for ActiveUser {
    fn drop(&mut self) {
        self.shared.active.fetch_sub(1, Ordering::Relaxed);
        self.shared.groups[self.group]
            .active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A new user of a group: its template, its context and its place in the counts.
pub(crate) struct NewUser {
    pub(crate) user: Box<dyn UserTemplate>,
    pub(crate) ctx: UserContext,
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) pacing: Pacing,
    pub(crate) active: ActiveUser,
}

impl RunShared {
    pub(crate) fn new(
        groups: Vec<GroupRuntime>,
        variables: Arc<Variables>,
        bus: Arc<EventBus>,
    ) -> Self {
        Self {
            groups,
            variables,
            bus,
            stop: StopHandle::new(),
            cancel: StopHandle::new(),
            spawned: AtomicU64::new(0),
            active: AtomicU64::new(0),
            next_user_id: AtomicU64::new(0),
            achieved_spawn_rate: parking_lot::Mutex::new(None),
            spawn_warned: AtomicBool::new(false),
        }
    }

    /// The groups' own buses (those of groups that keep their own statistics).
    fn group_buses(&self) -> impl Iterator<Item = &Arc<EventBus>> + '_ {
        self.groups
            .iter()
            .filter(|g| g.stats.is_some())
            .map(|g| &g.bus)
    }

    /// Adds a listener of the whole run: it sees the batches of the run's bus and of every
    /// group's own bus (each event once).
    pub(crate) fn add_listener(&self, listener: Arc<dyn RequestListener>) {
        self.bus.add_listener(listener.clone());
        for bus in self.group_buses() {
            bus.add_listener(listener.clone());
        }
    }

    /// Aggregates the requests of the run's bus and of every group's own bus into `stats`
    /// (each request once).
    pub(crate) fn attach_stats(&self, stats: SharedStats) {
        self.bus.attach_stats(stats.clone());
        for bus in self.group_buses() {
            bus.attach_stats(stats.clone());
        }
    }

    /// Keeps the requests of the run's bus and of every group's own bus in `store`.
    pub(crate) fn attach_record_store(&self, store: Arc<TestRecord>) {
        self.bus.attach_record_store(store.clone());
        for bus in self.group_buses() {
            bus.attach_record_store(store.clone());
        }
    }

    /// Delivers every buffered event (the run's bus and the groups' own).
    pub(crate) fn flush(&self) {
        for bus in self.group_buses() {
            bus.flush();
        }
        self.bus.flush();
    }

    /// Keeps the rate a finished (or stopped) ramp of `done` steps achieved, for the summary;
    /// says once in the log when it fell short of `rate`.
    pub(crate) fn ramp_done(&self, elapsed: Duration, done: u64, rate: f64) {
        if let Some(achieved) = crate::spawn::achieved_rate(elapsed, done, rate, &self.spawn_warned)
        {
            *self.achieved_spawn_rate.lock() = Some(achieved);
        }
    }

    /// Users per second the last ramp achieved (`None`: no ramp of two users or more).
    pub(crate) fn achieved_spawn_rate(&self) -> Option<f64> {
        *self.achieved_spawn_rate.lock()
    }

    /// Makes a user of group `group` that stops on `stop` (or when the run stops).
    pub(crate) fn new_user(self: &Arc<Self>, group: usize, stop: StopSignal) -> NewUser {
        let runtime = &self.groups[group];
        let user_id = self.next_user_id.fetch_add(1, Ordering::Relaxed);
        let user = runtime.factory.new_user(user_id);
        let ctx = UserContext::new(
            user_id,
            runtime.bus.clone(),
            UserVariables::with_data(self.variables.clone(), runtime.data.clone(), user_id),
            stop,
        )
        .with_run_stop(self.stop.clone())
        .with_cancel(self.cancel.signal())
        .with_source_address(
            runtime
                .sources
                .as_ref()
                .map(|sources| sources.get(runtime.next_source.fetch_add(1, Ordering::Relaxed))),
        );
        self.active.fetch_add(1, Ordering::Relaxed);
        runtime.active.fetch_add(1, Ordering::Relaxed);
        self.spawned.fetch_add(1, Ordering::Relaxed);
        NewUser {
            user,
            ctx,
            scenario: runtime.scenario.clone(),
            pacing: runtime.pacing,
            active: ActiveUser {
                shared: self.clone(),
                group,
            },
        }
    }
}

/// The part of an arrival schedule one process runs: every `count`-th iteration from
/// `index`, those due from `from` on (a master gives each worker its share).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// This share's index, `0..count`.
    pub index: u64,
    /// How many shares the schedule is split into.
    pub count: u64,
    /// How far into the run it is now (the schedule's clock starts this long ago).
    pub elapsed: Duration,
    /// The iterations due before this point of the schedule are not this share's (they
    /// belonged to the split in force then).
    pub from: Duration,
}

impl Share {
    /// The whole schedule, from the start.
    pub const WHOLE: Share = Share {
        index: 0,
        count: 1,
        elapsed: Duration::ZERO,
        from: Duration::ZERO,
    };
}

/// Logs a user task that ended abnormally (a panic in a protocol).
pub(crate) fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "a user task ended abnormally");
    }
}
