//! The master: a ZeroMQ ROUTER ([`zmtp::router`](super::zmtp::router)) that dispatches users to workers and merges their reports.
//!
//! This file holds the run's shared state ([`Master`], `Inner`, `Core`, `Node`) and the
//! [`RunControl`] face; each concern has its own file:
//!
//! - `transport`: the socket, decoding frames, routing each message to its handler (a peer may
//!   speak only under its own identity), and the listening socket;
//! - `admission`: `client_ready`, the cluster token challenge, heartbeats, quits, and the
//!   liveness watch that marks silent workers missing and forgets gone ones;
//! - `placement`: placing users over the live workers (`spawn`) and arrival-rate shares;
//! - `merge`: merging reports (only from admitted workers) and the summary;
//! - `lifecycle`: waiting for workers, ramping, stopping, and waiting for the last reports.

mod admission;
mod lifecycle;
mod merge;
mod placement;
mod transport;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use load_density_core::{test_record_instance, RequestStats};
use parking_lot::Mutex;
use rmpv::Value;
use tokio::sync::{watch, Notify};

use super::dispatch::Dispatcher;
use super::zmtp::router::{Router, RouterOptions};
use super::{address, plan, wire, DistributedError, DistributedOptions};
use crate::config::{Generator, StartTest, Summary};
use crate::control::{RunControl, WorkerInfo};
use crate::env::{Environment, RunState};
use crate::error::RunError;
use crate::groups::GroupSpec;
use crate::plan::{LoadModel, RunPlan};
use crate::run::generator::GeneratorMonitor;

use admission::liveness_loop;
use lifecycle::drive;
use merge::summarize;
use transport::{listen, recv_loop};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodeState {
    Ready,
    Spawning,
    Running,
    Stopped,
    Missing,
}

impl NodeState {
    fn name(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Spawning => "spawning",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Missing => "missing",
        }
    }

    fn from_heartbeat(state: &str) -> Option<Self> {
        match state {
            "ready" => Some(Self::Ready),
            "spawning" => Some(Self::Spawning),
            "running" => Some(Self::Running),
            "stopped" => Some(Self::Stopped),
            _ => None,
        }
    }

    /// Takes part in dispatch.
    fn live(self) -> bool {
        matches!(self, Self::Ready | Self::Spawning | Self::Running)
    }
}

#[derive(Debug)]
struct Node {
    state: NodeState,
    last_heartbeat: Instant,
    last_heartbeat_wall: SystemTime,
    missing_since: Option<Instant>,
    cpu_percent: f64,
    memory_bytes: u64,
    user_classes_count: Vec<(String, u64)>,
    quit: bool,
    /// When it quit (its state is forgotten a while later).
    gone_since: Option<Instant>,
    /// A LoadDensity worker (it takes arrival-rate shares).
    loaddensity: bool,
}

impl Node {
    fn user_count(&self) -> u64 {
        self.user_classes_count.iter().map(|(_, c)| c).sum()
    }
}

#[derive(Debug)]
struct Core {
    nodes: BTreeMap<String, Node>,
    indices: HashMap<String, u64>,
    /// The index the next new worker gets (indices of forgotten workers are not reused).
    next_index: u64,
    /// Challenges sent to peers that announced themselves as LoadDensity workers, by
    /// identity, awaiting their proof (only with a cluster token).
    pending: HashMap<String, admission::Pending>,
    target: u64,
    spawn_rate: f64,
    /// Workers joined, left or came back: place the users again.
    placement_stale: bool,
    /// Users the ramp has reached (placed over the live workers).
    dispatched_total: u64,
    dispatcher: Dispatcher,
    last_spawn_timestamp: f64,
    /// Requests received per worker id (workers that left included).
    requests: BTreeMap<String, u64>,
    stopping: bool,
    /// When the run started (arrival shares count from it).
    run_started: Option<Instant>,
    /// The LoadDensity workers the arrival schedules were last split over.
    share_members: Vec<String>,
}

impl Core {
    fn live_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state.live() && !n.quit)
            .map(|(id, _)| id.clone())
            .collect()
    }
}

struct Inner {
    plan: RunPlan,
    options: DistributedOptions,
    /// The groups as the closed-model dispatch sees them: groups with their own (arrival-rate)
    /// model get no users.
    specs: Vec<GroupSpec>,
    /// The plan message sent to LoadDensity workers.
    plan_message: Value,
    local_addr: SocketAddr,
    router: Router,
    core: Mutex<Core>,
    stats: Mutex<RequestStats>,
    /// The groups a threshold names (`{group:G}`, `user_groups[i].thresholds`), and their
    /// statistics merged from the workers' per-group reports, in the same order.
    watched: Vec<String>,
    group_stats: Mutex<Vec<RequestStats>>,
    /// Per-group payloads dropped whole (malformed, too many entries, over budget).
    dropped_group_stats: AtomicU64,
    /// Per-group entries skipped because they named a group no threshold names.
    unknown_group_stats: AtomicU64,
    state: watch::Sender<RunState>,
    stop: watch::Sender<bool>,
    wake: Notify,
    malformed: AtomicU64,
    /// What peers send that the master logs (malformed or unexpected messages, messages from
    /// unknown workers, exceptions): a few lines each, then counted only, so that no peer can
    /// flood the log.
    peer_logs: PeerLogs,
    /// Reports from peers never admitted (dropped).
    dropped_reports: AtomicU64,
    /// Peers refused for a missing or wrong cluster token proof.
    refused: AtomicU64,
    /// Peers ignored because the master already kept `max_peers` peers.
    over_capacity: AtomicU64,
    peak_users: AtomicU64,
    summary: Mutex<Option<Summary>>,
    /// The busiest worker's CPU use (percent of its CPUs) over a report interval, and the
    /// saturation judge (warns once).
    generator: Mutex<(f64, GeneratorMonitor)>,
}

/// How many lines of one kind of peer-caused warning the master writes before it only counts.
const PEER_LOG_LINES: u64 = 5;

/// Counts of peer-caused warnings, by kind; see [`PeerLogs::allow`].
#[derive(Default)]
struct PeerLogs {
    malformed: AtomicU64,
    unknown_worker: AtomicU64,
    unknown_kind: AtomicU64,
    exception: AtomicU64,
}

impl PeerLogs {
    /// Counts one warning of a kind; true while it may still be logged (the first
    /// [`PEER_LOG_LINES`]); the last logged line says that later ones are counted only.
    fn allow(counter: &AtomicU64) -> bool {
        counter.fetch_add(1, Ordering::Relaxed) < PEER_LOG_LINES
    }

    /// The suffix of a logged line: empty, or a note on the last one logged.
    fn note(counter: &AtomicU64) -> &'static str {
        if counter.load(Ordering::Relaxed) == PEER_LOG_LINES {
            " (later ones are counted, not logged)"
        } else {
            ""
        }
    }
}

/// A LoadDensity master (`runner_mode: "master"`). Cheap to clone; clones share the run.
///
/// It implements [`RunControl`]: its state, merged statistics, user counts and
/// [`RunControl::workers`] are live; [`RunControl::set_user_count`] re-dispatches at the new
/// spawn rate; [`RunControl::stop`] ends the run as `test_time` does (every worker stops its
/// users, sends its last report and quits); [`RunControl::reset_stats`] clears the master's
/// merged statistics (the workers are not told, as with Locust).
#[derive(Clone)]
pub struct Master {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Master {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Master")
            .field("addr", &self.inner.local_addr)
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Master {
    /// Validates the plan, binds the ROUTER and starts the run in the background on the
    /// current tokio runtime: wait for `expected_workers`, ramp, run for `test_time`, quit
    /// the workers. [`Master::wait`] returns the summary.
    ///
    /// # Errors
    /// An invalid plan (checked as a worker would check it), or the address cannot be bound.
    pub async fn start(config: StartTest) -> Result<Self, RunError> {
        Self::from_plan(RunPlan::compile(config)?).await
    }

    /// [`Master::start`] for a compiled plan.
    pub async fn from_plan(plan: RunPlan) -> Result<Self, RunError> {
        let options = plan.distributed().clone();
        let plan_message = plan::build(plan.source())?;
        // Workers drop a message above their max_message_size (the same by default).
        let plan_size = wire::Message::new(super::PLAN_MESSAGE, plan_message.clone(), "")
            .encode()
            .len();
        if plan_size > options.max_message_size {
            return Err(RunError::Config(format!(
                "the test plan with its files (CSV data, ca_file, descriptor_set) is {plan_size} \
                 bytes, more than max_message_size ({} bytes): workers could not receive it",
                options.max_message_size
            )));
        }
        // Check the plan exactly as a LoadDensity worker will, before anyone connects.
        drop(Environment::from_plan(plan.for_worker(None)).await?);
        let config = plan.source();
        let sharing = |i: usize| plan.groups()[i].own_model().is_none();
        let closed = plan.shared_model().is_closed();
        let specs: Vec<GroupSpec> = plan
            .groups()
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let mut spec = g.spec().clone();
                if !(closed && sharing(i)) {
                    spec.weight = 0;
                    spec.fixed_count = None;
                }
                spec
            })
            .collect();
        let (target, spawn_rate) = match plan.shared_model() {
            LoadModel::Users(model) if (0..plan.groups().len()).any(sharing) => model
                .stages()
                .first()
                .map_or((0, config.spawn_rate), |s| (s.target, s.spawn_rate)),
            _ => (0, config.spawn_rate),
        };

        let bind_address = address(&config.master_bind_host, config.master_bind_port);
        let listener =
            listen(&config.master_bind_host, config.master_bind_port).map_err(|source| {
                DistributedError::Bind {
                    address: bind_address.clone(),
                    source,
                }
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| DistributedError::Bind {
                address: bind_address.clone(),
                source,
            })?;
        let (router, inbound) = Router::serve(
            listener,
            RouterOptions {
                max_message_size: options.max_message_size,
                max_connections: options.max_peers,
            },
        )
        .map_err(|source| DistributedError::Bind {
            address: bind_address.clone(),
            source,
        })?;

        let classes: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let watched = plan.watched_groups();
        let inner = Arc::new(Inner {
            options,
            plan_message,
            local_addr,
            router,
            core: Mutex::new(Core {
                nodes: BTreeMap::new(),
                indices: HashMap::new(),
                next_index: 0,
                pending: HashMap::new(),
                target,
                spawn_rate,
                placement_stale: false,
                dispatched_total: 0,
                dispatcher: Dispatcher::new(classes),
                last_spawn_timestamp: 0.0,
                requests: BTreeMap::new(),
                stopping: false,
                run_started: None,
                share_members: Vec::new(),
            }),
            specs,
            plan,
            stats: Mutex::new(RequestStats::new()),
            group_stats: Mutex::new(watched.iter().map(|_| RequestStats::new()).collect()),
            watched,
            dropped_group_stats: AtomicU64::new(0),
            unknown_group_stats: AtomicU64::new(0),
            state: watch::channel(RunState::Ready).0,
            stop: watch::channel(false).0,
            wake: Notify::new(),
            malformed: AtomicU64::new(0),
            peer_logs: PeerLogs::default(),
            dropped_reports: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            over_capacity: AtomicU64::new(0),
            peak_users: AtomicU64::new(0),
            generator: Mutex::new((0.0, GeneratorMonitor::new())),
            summary: Mutex::new(None),
        });
        tracing::info!(addr = %local_addr, "master listening");
        admission::warn_if_open(&inner);
        tokio::spawn(recv_loop(inbound, inner.clone()));
        tokio::spawn(liveness_loop(inner.clone()));
        tokio::spawn(drive(inner.clone()));
        Ok(Self { inner })
    }

    /// The address the master listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Waits until the run is over (every worker told to quit) and returns its summary.
    pub async fn wait(&self) -> Summary {
        let mut state = self.inner.state.subscribe();
        let _ = state.wait_for(|s| *s == RunState::Stopped).await;
        self.inner
            .summary
            .lock()
            .clone()
            .unwrap_or_else(|| summarize(&self.inner, Duration::ZERO))
    }

    /// Messages from workers that could not be read or lacked required fields (each was
    /// logged and skipped).
    pub fn malformed_messages(&self) -> u64 {
        self.inner.malformed.load(Ordering::Relaxed)
    }

    /// Statistics reports dropped because their sender was never admitted (or its state was
    /// already forgotten).
    pub fn dropped_reports(&self) -> u64 {
        self.inner.dropped_reports.load(Ordering::Relaxed)
    }

    /// Per-group statistics payloads (`ld_group_stats`) dropped whole: not a map of group
    /// name to statistics, more entries than groups the thresholds name, or histograms over
    /// the payload's budget. The rest of each such report still counted.
    pub fn dropped_group_stats(&self) -> u64 {
        self.inner.dropped_group_stats.load(Ordering::Relaxed)
    }

    /// Per-group statistics entries skipped because they named a group no threshold names.
    pub fn unknown_group_stats(&self) -> u64 {
        self.inner.unknown_group_stats.load(Ordering::Relaxed)
    }

    /// Peers refused for lack of a valid cluster token proof.
    pub fn refused_peers(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Peers whose `client_ready` was ignored because the master already kept state for
    /// `max_peers` workers and pending challenges.
    pub fn over_capacity_peers(&self) -> u64 {
        self.inner.over_capacity.load(Ordering::Relaxed)
    }

    /// Connections the master closed: a broken ZMTP handshake, a frame longer than
    /// `max_message_size` claimed, a peer that does not read what it is sent, a second
    /// connection for a live identity, or a connection beyond `max_peers`. Each is logged.
    pub fn dropped_connections(&self) -> u64 {
        self.inner.router.dropped()
    }

    /// Connections open to the master now.
    pub fn open_connections(&self) -> usize {
        self.inner.router.connections()
    }

    /// Requests received from each worker so far (workers that left included), by node id.
    pub fn worker_requests(&self) -> Vec<(String, u64)> {
        self.inner
            .core
            .lock()
            .requests
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The users each live worker is assigned, per class (what the last `spawn` said).
    pub fn assignments(&self) -> Vec<(String, Vec<(String, u64)>)> {
        let core = self.inner.core.lock();
        core.dispatcher
            .workers()
            .map(|w| (w.to_owned(), core.dispatcher.counts_of(w)))
            .collect()
    }
}

impl RunControl for Master {
    fn state(&self) -> RunState {
        *self.inner.state.borrow()
    }
    fn stats(&self) -> RequestStats {
        self.inner.stats.lock().clone()
    }
    fn user_count(&self) -> u64 {
        let core = self.inner.core.lock();
        core.nodes
            .values()
            .filter(|n| n.state.live())
            .map(Node::user_count)
            .sum()
    }
    fn target_user_count(&self) -> u64 {
        self.inner.core.lock().target
    }
    fn set_user_count(&self, user_count: u64, spawn_rate: f64) -> Result<(), RunError> {
        if self.inner.plan.has_open_model() || !self.inner.plan.shared_model().is_closed() {
            return Err(RunError::Config(
                crate::env::OPEN_MODEL_REFUSES_USER_COUNT.to_owned(),
            ));
        }
        crate::limits::check_user_count(user_count).map_err(RunError::Config)?;
        crate::limits::check_spawn_rate(spawn_rate).map_err(RunError::Config)?;
        {
            let mut core = self.inner.core.lock();
            core.target = user_count;
            core.spawn_rate = spawn_rate;
        }
        self.inner.wake.notify_one();
        Ok(())
    }
    fn stop(&self) {
        self.inner.stop.send_replace(true);
        self.inner.wake.notify_one();
    }
    fn reset_stats(&self) {
        self.inner.stats.lock().reset();
        for stats in self.inner.group_stats.lock().iter_mut() {
            stats.reset();
        }
        // A reset starts the measurement over: the records too (see Environment::reset_stats).
        test_record_instance().clear_records();
    }
    fn host(&self) -> Option<String> {
        self.inner.plan.source().host.clone()
    }
    fn group_stats(&self) -> Vec<(String, RequestStats)> {
        let stats = self.inner.group_stats.lock();
        self.inner
            .watched
            .iter()
            .cloned()
            .zip(stats.iter().cloned())
            .collect()
    }
    fn generator(&self) -> Option<Generator> {
        let stats = self.inner.stats.lock().clone();
        Some(self.inner.generator_status(&stats))
    }
    fn target_rate(&self) -> f64 {
        let Some(started) = self.inner.core.lock().run_started else {
            return 0.0;
        };
        if matches!(self.state(), RunState::Stopping | RunState::Stopped) {
            return 0.0;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let plan = &self.inner.plan;
        (0..plan.groups().len())
            .filter_map(|i| match plan.model_of(i) {
                Some(LoadModel::Arrivals(model)) => Some(model.curve().rate_at(elapsed)),
                _ => None,
            })
            .sum()
    }
    fn workers(&self) -> Vec<WorkerInfo> {
        let core = self.inner.core.lock();
        core.nodes
            .iter()
            .map(|(id, n)| WorkerInfo {
                id: id.clone(),
                state: n.state.name().to_owned(),
                user_count: n.user_count(),
                cpu_percent: n.cpu_percent,
                memory_bytes: n.memory_bytes,
                last_heartbeat: n.last_heartbeat_wall,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_caused_warning_is_logged_a_few_times_then_only_counted() {
        let logs = PeerLogs::default();
        let allowed = (0..1_000)
            .filter(|_| PeerLogs::allow(&logs.malformed))
            .count();
        assert_eq!(allowed as u64, PEER_LOG_LINES);
        assert_eq!(logs.malformed.load(Ordering::Relaxed), 1_000);
        // Each kind has its own budget.
        assert!(PeerLogs::allow(&logs.unknown_kind));
    }

    #[test]
    fn the_last_logged_line_says_later_ones_are_counted() {
        let counter = AtomicU64::new(0);
        let notes: Vec<&str> = (0..PEER_LOG_LINES)
            .map(|_| {
                assert!(PeerLogs::allow(&counter));
                PeerLogs::note(&counter)
            })
            .collect();
        assert!(notes[..notes.len() - 1].iter().all(|n| n.is_empty()));
        assert!(notes[notes.len() - 1].contains("counted"));
    }
}
