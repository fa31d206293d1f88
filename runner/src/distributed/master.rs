//! The master: a ZeroMQ ROUTER that dispatches users to workers and merges their reports.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use load_density_core::{test_record_instance, RequestStats};
use parking_lot::Mutex;
use rmpv::Value;
use tokio::sync::{mpsc, watch, Notify};
use zeromq::{
    RouterRecvHalf, RouterSendHalf, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage,
};

use super::dispatch::{self, Dispatcher};
use super::locust_stats::{self, RecordShipping};
use super::wire::{self, Message, WireError};
use super::{
    address, plan, DistributedError, DistributedOptions, HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS,
    MISSING_FORGET_AFTER, PLAN_MESSAGE, SHARE_MESSAGE,
};
use crate::config::{Generator, StartTest, Summary};
use crate::console;
use crate::control::{RunControl, WorkerInfo};
use crate::env::{Environment, RunState};
use crate::error::RunError;
use crate::groups::{self, GroupSpec};
use crate::plan::{LoadModel, RunPlan};
use crate::run::generator::GeneratorMonitor;

/// How long after the last ramp step the master waits for the workers to report the target.
const RAMP_REPORT_WAIT: Duration = Duration::from_secs(1);
/// How long past the end of its arrival-rate schedules a master lets its workers run, so the
/// iterations due last start and finish before the workers are told to quit.
const MODEL_END_GRACE: Duration = Duration::from_secs(1);
/// Extra time, beyond `stop_timeout`, the master waits for workers to quit at the end.
const QUIT_GRACE: Duration = Duration::from_secs(5);

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
    outbox: mpsc::UnboundedSender<(Bytes, Vec<u8>)>,
    core: Mutex<Core>,
    stats: Mutex<RequestStats>,
    state: watch::Sender<RunState>,
    stop: watch::Sender<bool>,
    wake: Notify,
    malformed: AtomicU64,
    peak_users: AtomicU64,
    summary: Mutex<Option<Summary>>,
    /// The busiest worker's CPU use (percent of its CPUs) over a report interval, and the
    /// saturation judge (warns once).
    generator: Mutex<(f64, GeneratorMonitor)>,
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

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
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
        // Check the plan exactly as a LoadDensity worker will, before anyone connects.
        drop(Environment::from_plan(plan.for_worker(None)).await?);
        let plan_message = plan::build(plan.source())?;
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
        let mut socket = RouterSocket::new();
        socket
            .bind_listener(listener)
            .await
            .map_err(|e| DistributedError::Zmq(e.to_string()))?;
        let (send_half, recv_half) = socket.split();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();

        let classes: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let inner = Arc::new(Inner {
            options,
            plan_message,
            local_addr,
            outbox,
            core: Mutex::new(Core {
                nodes: BTreeMap::new(),
                indices: HashMap::new(),
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
            state: watch::channel(RunState::Ready).0,
            stop: watch::channel(false).0,
            wake: Notify::new(),
            malformed: AtomicU64::new(0),
            peak_users: AtomicU64::new(0),
            generator: Mutex::new((0.0, GeneratorMonitor::new())),
            summary: Mutex::new(None),
        });
        tracing::info!(addr = %local_addr, "master listening");
        tokio::spawn(send_loop(send_half, outbox_rx));
        tokio::spawn(recv_loop(recv_half, inner.clone()));
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
        // A reset starts the measurement over: the records too (see Environment::reset_stats).
        test_record_instance().clear_records();
    }
    fn host(&self) -> Option<String> {
        self.inner.plan.source().host.clone()
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

async fn send_loop(
    mut socket: RouterSendHalf,
    mut outbox: mpsc::UnboundedReceiver<(Bytes, Vec<u8>)>,
) {
    while let Some((identity, payload)) = outbox.recv().await {
        let mut message = ZmqMessage::from(payload);
        message.push_front(identity);
        if let Err(error) = socket.send(message).await {
            // A worker that went away; the ROUTER drops what is addressed to it, as libzmq does.
            tracing::debug!(%error, "could not send to a worker");
        }
    }
}

async fn recv_loop(mut socket: RouterRecvHalf, inner: Arc<Inner>) {
    loop {
        match socket.recv().await {
            Ok(message) => {
                let frames = message.into_vec();
                // Nothing a peer sends may end this loop, not even a bug in a handler.
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    inner.handle_frames(frames)
                }));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        inner.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "skipped a message from a worker");
                    }
                    Err(_) => {
                        inner.malformed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!("handling a worker's message panicked; the master goes on");
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%error, "receive error on the master socket");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn liveness_loop(inner: Arc<Inner>) {
    let deadline = HEARTBEAT_INTERVAL * HEARTBEAT_LIVENESS + HEARTBEAT_INTERVAL / 2;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let mut lost_last = false;
        {
            let mut core = inner.core.lock();
            let now = Instant::now();
            let mut changed = false;
            for (id, node) in core.nodes.iter_mut() {
                if node.state != NodeState::Missing
                    && !node.quit
                    && now.duration_since(node.last_heartbeat) > deadline
                {
                    tracing::warn!(
                        worker = %id,
                        silent_s = now.duration_since(node.last_heartbeat).as_secs_f64(),
                        "worker missed {HEARTBEAT_LIVENESS} heartbeats: marked missing, its users go to the others"
                    );
                    node.state = NodeState::Missing;
                    node.missing_since = Some(now);
                    node.user_classes_count.clear();
                    changed = true;
                }
            }
            let forgotten: Vec<String> = core
                .nodes
                .iter()
                .filter(|(_, n)| {
                    n.missing_since
                        .is_some_and(|t| now.duration_since(t) > MISSING_FORGET_AFTER)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in forgotten {
                tracing::info!(worker = %id, "forgetting a worker missing for 60 s");
                core.nodes.remove(&id);
            }
            if changed {
                core.placement_stale = true;
                let running = matches!(
                    *inner.state.borrow(),
                    RunState::Spawning | RunState::Running
                );
                if running && !core.stopping && core.live_ids().is_empty() {
                    lost_last = true;
                }
            }
        }
        if lost_last {
            tracing::warn!("The last worker went missing, stopping test.");
            inner.stop.send_replace(true);
        }
        inner.wake.notify_one();
    }
}

impl Inner {
    fn send(&self, to: &str, message: Message) {
        let _ = self
            .outbox
            .send((Bytes::copy_from_slice(to.as_bytes()), message.encode()));
    }

    fn handle_frames(&self, frames: Vec<Bytes>) -> Result<(), WireError> {
        if frames.len() < 2 {
            return Err(WireError::Frames(format!(
                "a message of {} frame(s); expected [identity, payload]",
                frames.len()
            )));
        }
        let identity = std::str::from_utf8(&frames[0])
            .map_err(|_| {
                WireError::Frames("Unrecognized message detected: the identity is not UTF-8".into())
            })?
            .to_owned();
        // Frame 0 is the address, frame 1 the payload (a stray empty delimiter is skipped).
        let payload = if frames[1].is_empty() && frames.len() > 2 {
            &frames[2]
        } else {
            &frames[1]
        };
        let message = Message::decode_limited(payload, self.options.max_message_size)
            .map_err(|e| WireError::Frames(format!("from {identity}: {e}")))?;
        self.handle(&identity, message)
            .map_err(|e| WireError::Frames(format!("from {identity}: {e}")))
    }

    fn handle(&self, identity: &str, msg: Message) -> Result<(), WireError> {
        match msg.kind.as_str() {
            "client_ready" => self.on_client_ready(identity, &msg),
            "heartbeat" => self.on_heartbeat(&msg),
            "stats" => self.on_stats(&msg),
            "spawning" => {
                self.with_node(&msg, |node| node.state = NodeState::Spawning);
                Ok(())
            }
            "spawning_complete" => {
                let counts = wire::req_counts(&msg, "user_classes_count")?;
                self.with_node(&msg, |node| {
                    node.state = NodeState::Running;
                    node.user_classes_count = counts;
                });
                Ok(())
            }
            "client_stopped" => {
                self.with_node(&msg, |node| {
                    node.state = NodeState::Stopped;
                    node.user_classes_count.clear();
                });
                self.core.lock().placement_stale = true;
                self.wake.notify_one();
                Ok(())
            }
            "quit" => {
                self.on_quit(&msg);
                Ok(())
            }
            "exception" => {
                let text = wire::req_str(&msg, "msg").unwrap_or("(no message)");
                tracing::warn!(worker = %msg.node_id, exception = text, "a worker reported an exception");
                Ok(())
            }
            "logs" => Ok(()),
            other => {
                tracing::warn!(worker = %msg.node_id, kind = other, "unknown message type from a worker (ignored)");
                Ok(())
            }
        }
    }

    /// Runs `f` on a known worker; an unknown one is told to quit (Locust does the same).
    fn with_node(&self, msg: &Message, f: impl FnOnce(&mut Node)) {
        let known = {
            let mut core = self.core.lock();
            match core.nodes.get_mut(&msg.node_id) {
                Some(node) => {
                    f(node);
                    true
                }
                None => false,
            }
        };
        if !known {
            tracing::warn!(worker = %msg.node_id, kind = %msg.kind, "message from an unknown worker: telling it to quit");
            self.send(
                &msg.node_id,
                Message::new("quit", Value::Nil, msg.node_id.clone()),
            );
        }
    }

    fn on_client_ready(&self, identity: &str, msg: &Message) -> Result<(), WireError> {
        let version = match &msg.data {
            Value::String(s) => s
                .as_str()
                .ok_or_else(|| msg.field_error("the version is not valid UTF-8"))?
                .to_owned(),
            Value::Integer(i) if i.as_i64() == Some(-1) => String::new(),
            Value::Nil => {
                tracing::warn!(
                    worker = identity,
                    "An old (pre 2.0) worker tried to connect: no ack"
                );
                return Ok(());
            }
            other => {
                return Err(msg.field_error(format!(
                    "the version is {}, not a string",
                    wire::kind_of(other)
                )))
            }
        };
        if version.is_empty() && !matches!(msg.data, Value::Integer(_)) {
            tracing::warn!(
                worker = identity,
                "An old (pre 2.0) worker tried to connect: no ack"
            );
            return Ok(());
        }
        let loaddensity = version.contains("loaddensity");
        let (index, joined_running, stopping) = {
            let mut core = self.core.lock();
            let next = core.indices.len() as u64;
            let index = *core.indices.entry(identity.to_owned()).or_insert(next);
            let now = Instant::now();
            let replaced = core
                .nodes
                .insert(
                    identity.to_owned(),
                    Node {
                        state: NodeState::Ready,
                        last_heartbeat: now,
                        last_heartbeat_wall: SystemTime::now(),
                        missing_since: None,
                        cpu_percent: 0.0,
                        memory_bytes: 0,
                        user_classes_count: Vec::new(),
                        quit: false,
                        loaddensity,
                    },
                )
                .is_some();
            core.placement_stale = true;
            let live = core.live_ids().len();
            tracing::info!(
                worker = identity,
                index,
                version = %version,
                duplicate = replaced,
                workers = live,
                "worker reported as ready"
            );
            let running = matches!(*self.state.borrow(), RunState::Spawning | RunState::Running);
            (index, running, core.stopping)
        };
        let mut ack = vec![(Value::from("index"), Value::from(index))];
        if loaddensity {
            let records = match self.options.records {
                RecordShipping::All => "all",
                RecordShipping::Errors => "errors",
                RecordShipping::None => "none",
            };
            ack.push((
                Value::from("loaddensity"),
                Value::from(env!("CARGO_PKG_VERSION")),
            ));
            ack.push((Value::from("records"), Value::from(records)));
        }
        self.send(identity, Message::new("ack", Value::Map(ack), identity));
        if loaddensity {
            self.send(
                identity,
                Message::new(PLAN_MESSAGE, self.plan_message.clone(), identity),
            );
        }
        if stopping {
            self.send(identity, Message::new("quit", Value::Nil, identity));
        } else if joined_running {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn on_heartbeat(&self, msg: &Message) -> Result<(), WireError> {
        let state = wire::req_str(msg, "state")?;
        let cpu = wire::req_f64(msg, "current_cpu_usage")?;
        let memory = wire::get(&msg.data, "current_memory_usage")
            .and_then(wire::as_u64)
            .unwrap_or(0);
        let reported = NodeState::from_heartbeat(state)
            .ok_or_else(|| msg.field_error(format!("unknown state {state:?}")))?;
        let known = {
            let mut core = self.core.lock();
            let mut healed = false;
            let known = match core.nodes.get_mut(&msg.node_id) {
                Some(node) => {
                    node.last_heartbeat = Instant::now();
                    node.last_heartbeat_wall = SystemTime::now();
                    node.missing_since = None;
                    if node.state == NodeState::Missing {
                        tracing::info!(worker = %msg.node_id, "a missing worker is back");
                        healed = true;
                    }
                    if node.state != NodeState::Stopped || reported == NodeState::Ready {
                        node.state = reported;
                    }
                    node.cpu_percent = cpu;
                    node.memory_bytes = memory;
                    true
                }
                None => false,
            };
            if healed {
                core.placement_stale = true;
            }
            known
        };
        if known {
            self.send(
                &msg.node_id,
                Message::new("heartbeat", Value::Nil, msg.node_id.clone()),
            );
            self.wake.notify_one();
        } else {
            tracing::debug!(worker = %msg.node_id, "heartbeat from an unknown worker (ignored)");
        }
        Ok(())
    }

    fn on_stats(&self, msg: &Message) -> Result<(), WireError> {
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

    fn on_quit(&self, msg: &Message) {
        let lost_last = {
            let mut core = self.core.lock();
            let Some(node) = core.nodes.get_mut(&msg.node_id) else {
                return;
            };
            node.quit = true;
            node.state = NodeState::Stopped;
            node.user_classes_count.clear();
            tracing::info!(worker = %msg.node_id, "worker quit");
            core.placement_stale = true;
            let running = matches!(*self.state.borrow(), RunState::Spawning | RunState::Running);
            running && !core.stopping && core.live_ids().is_empty()
        };
        if lost_last {
            tracing::warn!("The last worker quit, stopping test.");
            self.stop.send_replace(true);
        }
        self.wake.notify_one();
    }

    /// Places the current ramp total over the live workers and sends every one its `spawn`.
    fn dispatch(&self, total: u64) {
        let (messages, live) = {
            let mut core = self.core.lock();
            let live = core.live_ids();
            let class_totals = groups::distribute(total, &self.specs);
            core.dispatcher
                .assign(live.iter().map(String::as_str), &class_totals);
            core.dispatched_total = total;
            core.placement_stale = false;
            let timestamp = now_unix().max(core.last_spawn_timestamp + 1e-3);
            core.last_spawn_timestamp = timestamp;
            let host = self
                .plan
                .source()
                .host
                .as_deref()
                .map_or(Value::Nil, Value::from);
            let messages: Vec<(String, Message)> = live
                .iter()
                .map(|id| {
                    let data = wire::map([
                        ("timestamp", Value::from(timestamp)),
                        (
                            "user_classes_count",
                            wire::counts_value(&core.dispatcher.counts_of(id)),
                        ),
                        ("host", host.clone()),
                        ("stop_timeout", Value::from(self.options.stop_timeout)),
                        ("parsed_options", Value::Map(Vec::new())),
                    ]);
                    (id.clone(), Message::new("spawn", data, id.clone()))
                })
                .collect();
            (messages, live.len())
        };
        tracing::debug!(users = total, workers = live, "dispatching");
        for (id, message) in messages {
            self.send(&id, message);
        }
        self.send_shares(false);
    }

    /// Splits every arrival-rate schedule over the live LoadDensity workers (worker `i` of
    /// `n` runs every `n`-th iteration from `i`, so the shares add up to the whole schedule
    /// exactly). Sends only when the set of workers changed, unless `force`.
    fn send_shares(&self, force: bool) {
        if !self.plan.has_open_model() {
            return;
        }
        let messages = {
            let mut core = self.core.lock();
            let Some(started) = core.run_started else {
                return;
            };
            let members: Vec<String> = core
                .live_ids()
                .into_iter()
                .filter(|id| core.nodes.get(id).is_some_and(|n| n.loaddensity))
                .collect();
            if members == core.share_members && !force {
                return;
            }
            // The first split covers the schedule from its start; a later one (a worker
            // joined or left) from now on.
            let from = if core.share_members.is_empty() && force {
                0.0
            } else {
                started.elapsed().as_secs_f64()
            };
            core.share_members = members.clone();
            let elapsed = started.elapsed().as_secs_f64();
            let count = members.len() as u64;
            members
                .into_iter()
                .enumerate()
                .map(|(index, id)| {
                    let data = wire::map([
                        ("index", Value::from(index as u64)),
                        ("count", Value::from(count)),
                        ("elapsed", Value::from(elapsed)),
                        ("from", Value::from(from)),
                    ]);
                    (id.clone(), Message::new(SHARE_MESSAGE, data, id))
                })
                .collect::<Vec<_>>()
        };
        tracing::info!(
            workers = messages.len(),
            "splitting the arrival rate over the workers"
        );
        for (id, message) in messages {
            self.send(&id, message);
        }
    }

    fn reported_users(&self) -> u64 {
        let core = self.core.lock();
        core.nodes
            .values()
            .filter(|n| n.state.live())
            .map(Node::user_count)
            .sum()
    }

    fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// Waits for `wake` or `timeout`, whichever first; false when the run must stop.
async fn pause(inner: &Inner, timeout: Duration) -> bool {
    let mut stop = inner.stop.subscribe();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = inner.wake.notified() => {}
        _ = tokio::time::sleep(timeout) => {}
        _ = stop.wait_for(|s| *s) => return false,
    }
    !inner.is_stopped()
}

async fn drive(inner: Arc<Inner>) {
    // 1. Wait for the expected workers.
    let expected = u64::from(inner.plan.source().expected_workers);
    let waited = Instant::now();
    loop {
        let live = inner.core.lock().live_ids().len() as u64;
        if live >= expected {
            break;
        }
        if waited.elapsed() >= inner.options.expected_workers_timeout {
            tracing::warn!(
                expected,
                connected = live,
                "not every expected worker joined in time; starting with those that did"
            );
            break;
        }
        if !pause(&inner, Duration::from_millis(200)).await {
            break;
        }
    }
    let started = Instant::now();
    inner.stats.lock().mark_start(std::time::SystemTime::now());
    let mut stopping = inner.stop.subscribe();
    if !*stopping.borrow() {
        inner.state.send_replace(RunState::Spawning);
        let (users, spawn_rate, workers) = {
            let core = inner.core.lock();
            (core.target, core.spawn_rate, core.live_ids().len())
        };
        tracing::info!(users, spawn_rate, workers, "starting the run");
    }
    inner.core.lock().run_started = Some(started);
    inner.send_shares(true);
    // test_time, or the end of the load models, whichever comes first. When the models end
    // first and some are arrival-rate schedules, the workers get MODEL_END_GRACE to start and
    // finish the last iterations due (their clocks started a message later than ours).
    let end = match (inner.plan.test_time(), inner.plan.models_end()) {
        (test_time, Some(models)) if test_time.is_none_or(|t| models < t) => {
            let grace = if inner.plan.has_open_model() {
                MODEL_END_GRACE
            } else {
                Duration::ZERO
            };
            let end = models + grace;
            Some(test_time.map_or(end, |t| t.min(end)))
        }
        _ => inner.plan.end(),
    };
    let timer = end.map(|end| {
        let stop = inner.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(end).await;
            stop.send_replace(true);
        })
    });
    let stages = ramp_stages(&inner, started);
    let print_stats = inner.plan.runner_options().print_stats();
    let printer = print_stats.then(|| {
        let inner = inner.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(inner.plan.runner_options().stats_interval());
            tick.tick().await;
            loop {
                tick.tick().await;
                let stats = inner.stats.lock().clone();
                console::print_live(
                    &stats,
                    inner.reported_users(),
                    started.elapsed(),
                    inner.plan.end().map(|end| end.as_secs_f64()),
                );
            }
        })
    });

    // 2. Ramp, re-dispatch on changes, until stopped.
    let mut ramp_done_at: Option<Instant> = None;
    let mut announced_complete = false;
    while !*stopping.borrow_and_update() {
        let (target, rate, stale, current) = {
            let core = inner.core.lock();
            (
                core.target,
                core.spawn_rate,
                core.placement_stale,
                core.dispatched_total,
            )
        };
        if current != target {
            let step = dispatch::step_size(rate);
            let next = dispatch::ramp_totals(current, target, step)
                .next()
                .unwrap_or(target);
            inner.state.send_replace(RunState::Spawning);
            inner.dispatch(next);
            announced_complete = false;
            ramp_done_at = None;
            let delay = load_density_core::task::options::saturating_seconds(
                current.abs_diff(next) as f64 / rate,
            );
            let until = Instant::now() + delay;
            // Sleep the step out; a worker change meanwhile is placed at once.
            while Instant::now() < until {
                if !pause(&inner, until.saturating_duration_since(Instant::now())).await {
                    break;
                }
                if inner.core.lock().placement_stale {
                    let total = inner.core.lock().dispatched_total;
                    inner.dispatch(total);
                }
                if inner.core.lock().target != target {
                    break;
                }
            }
            continue;
        }
        if stale {
            inner.dispatch(current);
        }
        if !announced_complete {
            let done_at = *ramp_done_at.get_or_insert_with(Instant::now);
            let reported = inner.reported_users();
            if reported == target || done_at.elapsed() >= RAMP_REPORT_WAIT {
                if reported != target {
                    tracing::info!(
                        target,
                        reported,
                        "ramp done; not every worker has reported its users yet"
                    );
                } else {
                    tracing::info!(users = target, "All users spawned");
                }
                let live = inner.core.lock().live_ids();
                for id in &live {
                    let data = wire::map([("user_count", Value::from(target))]);
                    inner.send(id, Message::new("spawning_complete", data, id.clone()));
                }
                announced_complete = true;
                inner.state.send_replace(RunState::Running);
                inner.peak_users.fetch_max(reported, Ordering::Relaxed);
                continue;
            }
            pause(&inner, Duration::from_millis(100)).await;
            continue;
        }
        pause(&inner, Duration::from_secs(1)).await;
    }

    // 3. Quit every worker and wait for their final reports.
    inner.state.send_replace(RunState::Stopping);
    let quit_ids: Vec<String> = {
        let mut core = inner.core.lock();
        core.stopping = true;
        core.nodes.keys().cloned().collect()
    };
    tracing::info!(
        workers = quit_ids.len(),
        "stopping: telling every worker to quit"
    );
    for id in &quit_ids {
        inner.send(id, Message::new("quit", Value::Nil, id.clone()));
    }
    let deadline = Instant::now()
        + load_density_core::task::options::saturating_seconds(inner.options.stop_timeout)
        + QUIT_GRACE;
    loop {
        let waiting = {
            let core = inner.core.lock();
            core.nodes
                .values()
                .filter(|n| !n.quit && n.state != NodeState::Missing)
                .count()
        };
        if waiting == 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(waiting, "some workers did not quit in time");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if let Some(timer) = timer {
        timer.abort();
    }
    if let Some(printer) = printer {
        printer.abort();
    }
    if let Some(stages) = stages {
        stages.abort();
    }
    let duration = started.elapsed();
    if print_stats {
        console::print_final(&inner.stats.lock().clone());
    }
    *inner.summary.lock() = Some(summarize(&inner, duration));
    inner.state.send_replace(RunState::Stopped);
}

fn summarize(inner: &Inner, duration: Duration) -> Summary {
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
    fn generator_status(&self, stats: &RequestStats) -> Generator {
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

/// Drives the stages of a ramping closed model: at each stage start, the new target and
/// spawn rate, dispatched over every worker as a user count change is.
fn ramp_stages(inner: &Arc<Inner>, started: Instant) -> Option<tokio::task::JoinHandle<()>> {
    let LoadModel::Users(model) = inner.plan.shared_model() else {
        return None;
    };
    if model.stages().len() < 2 {
        return None;
    }
    let stages = model.stages().to_vec();
    let inner = inner.clone();
    Some(tokio::spawn(async move {
        for stage in stages.iter().skip(1) {
            tokio::time::sleep_until((started + stage.start).into()).await;
            tracing::info!(
                users = stage.target,
                spawn_rate = stage.spawn_rate,
                "load model: next stage"
            );
            {
                let mut core = inner.core.lock();
                core.target = stage.target;
                core.spawn_rate = stage.spawn_rate;
            }
            inner.wake.notify_one();
        }
    }))
}

/// Idle time before the kernel probes a silent connection to a worker (Locust sets the same).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// The master's listening socket on `host:port`.
///
/// `*` (or an empty host) means every interface, as in Locust: a dual-stack `[::]` socket, so
/// workers reach it over IPv4 and IPv6 alike, or `0.0.0.0` on a host without IPv6. Other hosts
/// are resolved and the first address that binds is used. Connections accepted on it inherit
/// TCP keepalive, so a worker whose machine vanished is noticed by the kernel as well as by the
/// missing heartbeats.
fn listen(host: &str, port: u16) -> io::Result<std::net::TcpListener> {
    if matches!(host, "*" | "") {
        let any_v6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
        let any_v4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port));
        return listen_on(any_v6, true).or_else(|_| listen_on(any_v4, false));
    }
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        match listen_on(addr, false) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address")
    }))
}

fn listen_on(addr: SocketAddr, dual_stack: bool) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(KEEPALIVE_IDLE))?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_interface_takes_ipv4_and_ipv6_and_accepted_connections_keep_alive() {
        let listener = listen("*", 0).expect("listen on every interface");
        let port = listener.local_addr().expect("address").port();
        let mut targets = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        if listener.local_addr().expect("address").is_ipv6() {
            targets.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        }
        for target in targets {
            let _client = std::net::TcpStream::connect(target).expect("connect");
            let (accepted, _) = listener.accept().expect("accept");
            let accepted = socket2::SockRef::from(&accepted);
            assert!(accepted.keepalive().expect("SO_KEEPALIVE"), "{target}");
            assert_eq!(
                accepted.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
                KEEPALIVE_IDLE,
                "{target}"
            );
        }
    }

    #[test]
    fn a_named_host_binds_that_address_and_a_taken_port_is_an_error() {
        let listener = listen("127.0.0.1", 0).expect("listen");
        let addr = listener.local_addr().expect("address");
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(
            listen("127.0.0.1", addr.port())
                .expect_err("the port is taken")
                .kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
