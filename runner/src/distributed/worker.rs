//! The worker: a ZeroMQ DEALER that runs the users its master gives it.

use load_density_core::task::options::saturating_seconds;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use load_density_core::stats::SharedStats;
use load_density_core::{test_record_instance, RequestListener, RequestStats};
use rmpv::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::group_stats::{GroupDeltas, LD_GROUP_STATS_KEY};
use super::locust_stats::{RecordShipping, ReportBuilder, LD_CPU_KEY};
use super::sysinfo::{rss_bytes, CpuMonitor};
use super::token::{AUTH_MESSAGE, CHALLENGE_MESSAGE, REFUSED_MESSAGE};
use super::wire::{self, Message};
use super::zmtp;
use super::{
    address, new_node_id, plan, DistributedError, DistributedOptions, CLUSTER_TOKEN_ENV,
    CONNECT_RETRY, HEARTBEAT_INTERVAL, LOCUST_VERSION, PLAN_MESSAGE, REPORT_INTERVAL,
    SHARE_MESSAGE,
};
use crate::config::{StartTest, Summary};
use crate::env::{Environment, RunState};
use crate::error::RunError;
use crate::plan::{LoadModel, RunPlan};
use crate::run::generator::GeneratorMonitor;
use crate::run::Share;

/// How long one TCP connection attempt may take before it starts again.
const CONNECT_ATTEMPT: Duration = Duration::from_secs(2);
/// Users a worker starts per second to reach a `spawn` target (the master paces the ramp).
const WORKER_SPAWN_RATE: f64 = 100_000.0;
/// How long a worker waits for its users to reach a `spawn` target before reporting anyway.
const SPAWN_COMPLETE_WAIT: Duration = Duration::from_secs(10);
/// The stop grace when a master sends no `stop_timeout` (a Locust master's default): the
/// default `stop_timeout` of a LoadDensity master.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// The longest stop grace a worker gives, whatever its master says.
const MAX_STOP_GRACE: Duration = Duration::from_secs(3600);
/// Time for the last messages to leave before the process may exit.
const LINGER: Duration = Duration::from_millis(300);

/// The version string a LoadDensity worker announces in `client_ready`: Locust's version
/// (a Locust 2.47 master logs the difference at debug level only) plus a marker a
/// LoadDensity master recognises.
fn announced_version() -> String {
    format!("{LOCUST_VERSION}+loaddensity.{}", env!("CARGO_PKG_VERSION"))
}

struct Shared {
    node_id: String,
    quit: watch::Sender<bool>,
    stats: SharedStats,
    users: AtomicU64,
}

/// A LoadDensity worker (`runner_mode: "worker"`).
pub struct Worker {
    shared: Arc<Shared>,
    task: JoinHandle<Result<Summary, RunError>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("node_id", &self.shared.node_id)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts a worker on the current tokio runtime: it connects to
    /// `master_host:master_port` (retrying until the master appears) and follows it.
    ///
    /// The configuration's plan (tasks or user groups), if it has one, is what the worker runs
    /// for a Locust master; a LoadDensity master sends its own.
    ///
    /// # Errors
    /// An invalid local plan or option.
    pub async fn start(mut config: StartTest) -> Result<Self, RunError> {
        config.runner_mode = "worker".to_owned();
        Self::from_plan(RunPlan::compile(config)?).await
    }

    /// [`Worker::start`] for a compiled plan.
    pub async fn from_plan(plan: RunPlan) -> Result<Self, RunError> {
        let options = plan.distributed().clone();
        let local_plan = if plan.groups().is_empty() {
            None
        } else {
            drop(Environment::from_plan(plan.for_worker(None)).await?);
            Some(plan.clone())
        };
        let config = plan.source().clone();
        let node_id = new_node_id();
        let shared = Arc::new(Shared {
            node_id: node_id.clone(),
            quit: watch::channel(false).0,
            stats: SharedStats::new(),
            users: AtomicU64::new(0),
        });
        let master = address(&config.master_host, config.master_port);
        let (out, out_rx) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(link_task(
            master.clone(),
            node_id.clone(),
            out_rx,
            events_tx,
            options.max_message_size,
        ));
        tracing::info!(node_id = %node_id, master = %master, "worker connecting to its master");
        let (env_done_tx, env_done) = mpsc::unbounded_channel();
        let run = Run {
            shared: shared.clone(),
            started: Instant::now(),
            summary_config: config,
            master,
            options,
            out,
            env_done_tx,
            local_plan,
            plan: None,
            plan_text: None,
            plan_dir: std::env::temp_dir().join(format!("loaddensity-worker-{node_id}")),
            env: None,
            builder: Arc::new(ReportBuilder::new()),
            group_deltas: GroupDeltas::default(),
            users_spawned: 0,
            state: WorkerState::Ready,
            acked: false,
            challenged: false,
            acked_at: None,
            master_loaddensity: false,
            last_spawn_timestamp: 0.0,
            stop_timeout: DEFAULT_STOP_GRACE.as_secs_f64(),
            last_heartbeat_reply: None,
            pending_complete: None,
            ready_again_at: None,
            next_client_ready: Instant::now(),
            next_heartbeat: Instant::now(),
            next_report: Instant::now(),
            cpu: CpuMonitor::new(),
            generator: GeneratorMonitor::new(),
        };
        let task = tokio::spawn(run.main(events, env_done));
        Ok(Self { shared, task })
    }

    /// This worker's node id (`<host>_<hex>`), its ZeroMQ identity.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Every request this worker made, over its whole life.
    pub fn stats(&self) -> RequestStats {
        self.shared.stats.snapshot()
    }

    /// Users running now.
    pub fn user_count(&self) -> u64 {
        self.shared.users.load(Ordering::Relaxed)
    }

    /// Stops the users, sends the last report and `quit` to the master, and ends.
    pub fn stop(&self) {
        self.shared.quit.send_replace(true);
    }

    /// A handle that can stop the worker from elsewhere (e.g. on Ctrl-C).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || {
            shared.quit.send_replace(true);
        }
    }

    /// Waits until the worker ends: `Ok` when its master told it to quit (or
    /// [`Worker::stop`]), an error when the master went silent for `master_timeout`.
    pub async fn wait(self) -> Result<Summary, RunError> {
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(RunError::Distributed(DistributedError::Plan(format!(
                "the worker task ended abnormally: {error}"
            )))),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkerState {
    Ready,
    Spawning,
    Running,
}

impl WorkerState {
    fn name(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Spawning => "spawning",
            Self::Running => "running",
        }
    }
}

enum Outgoing {
    Payload(Vec<u8>),
    Flush(oneshot::Sender<()>),
    Reset,
}

enum LinkEvent {
    Connected,
    Message(Message),
}

/// Owns the DEALER: connects (forever), sends what the worker queues, forwards what arrives,
/// and connects again when the master goes away or asks for it.
async fn link_task(
    endpoint: String,
    node_id: String,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
    events: mpsc::UnboundedSender<LinkEvent>,
    max_message_size: usize,
) {
    let mut unsent: Option<Vec<u8>> = None;
    let mut attempts: u64 = 0;
    loop {
        let (mut recv, mut send) = loop {
            let attempt = tokio::select! {
                result = zmtp::dealer::connect(&endpoint, node_id.as_bytes(), max_message_size, CONNECT_ATTEMPT) => result,
                _ = events.closed() => return,
            };
            match attempt {
                Ok(halves) => break halves,
                Err(error) => {
                    attempts += 1;
                    if attempts == 1 || attempts.is_multiple_of(15) {
                        tracing::info!(%endpoint, %error, "cannot reach the master yet; still trying");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        attempts = 0;
        let connected_at = Instant::now();
        if events.send(LinkEvent::Connected).is_err() {
            return;
        }
        let forward = events.clone();
        let mut reader = tokio::spawn(async move {
            loop {
                match recv.recv().await {
                    Ok(frames) => {
                        // DEALER: one frame, the payload.
                        let Some(payload) = frames.into_iter().last() else {
                            continue;
                        };
                        match Message::decode_limited(&payload, max_message_size) {
                            Ok(msg) => {
                                if forward.send(LinkEvent::Message(msg)).is_err() {
                                    return;
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "skipped an unreadable message from the master")
                            }
                        }
                    }
                    Err(error @ zmtp::ZmtpError::Oversize { .. }) => {
                        tracing::warn!(%error, "the master sent more than max_message_size; reconnecting");
                        return;
                    }
                    Err(error) => {
                        tracing::debug!(%error, "receive error from the master");
                        return;
                    }
                }
            }
        });
        if let Some(payload) = unsent.take() {
            if send.send(&payload).await.is_err() {
                unsent = Some(payload);
            }
        }
        while unsent.is_none() {
            tokio::select! {
                item = out.recv() => match item {
                    None => {
                        reader.abort();
                        return;
                    }
                    Some(Outgoing::Payload(payload)) => {
                        if let Err(error) = send.send(&payload).await {
                            tracing::info!(%error, "lost the connection to the master; reconnecting");
                            unsent = Some(payload);
                        }
                    }
                    Some(Outgoing::Flush(done)) => {
                        let _ = done.send(());
                    }
                    Some(Outgoing::Reset) => {
                        tracing::warn!("the master asked for a new connection");
                        break;
                    }
                },
                _ = &mut reader => break,
            }
        }
        reader.abort();
        // A master that closes new connections at once (one refusing a second connection
        // for this identity, say) is not asked again in a tight loop.
        if connected_at.elapsed() < Duration::from_secs(1) {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

struct Run {
    shared: Arc<Shared>,
    started: Instant,
    summary_config: StartTest,
    master: String,
    options: DistributedOptions,
    out: mpsc::UnboundedSender<Outgoing>,
    env_done_tx: mpsc::UnboundedSender<()>,
    /// The plan the worker was started with.
    local_plan: Option<RunPlan>,
    /// The plan a LoadDensity master sent.
    plan: Option<RunPlan>,
    plan_text: Option<String>,
    plan_dir: PathBuf,
    env: Option<Environment>,
    builder: Arc<ReportBuilder>,
    /// The deltas of the groups a threshold names (their own statistics), for the master.
    group_deltas: GroupDeltas,
    users_spawned: u64,
    state: WorkerState,
    acked: bool,
    /// The master asked for the cluster token.
    challenged: bool,
    acked_at: Option<Instant>,
    master_loaddensity: bool,
    last_spawn_timestamp: f64,
    stop_timeout: f64,
    last_heartbeat_reply: Option<Instant>,
    pending_complete: Option<(Vec<(String, u64)>, Instant)>,
    ready_again_at: Option<Instant>,
    next_client_ready: Instant,
    next_heartbeat: Instant,
    next_report: Instant,
    cpu: CpuMonitor,
    generator: GeneratorMonitor,
}

/// What ends the main loop.
enum End {
    Quit,
    Lost(f64),
    Failed(String),
}

impl Run {
    fn send(&self, kind: &str, data: Value) {
        let message = Message::new(kind, data, self.shared.node_id.clone());
        let _ = self.out.send(Outgoing::Payload(message.encode()));
    }

    async fn main(
        mut self,
        mut events: mpsc::UnboundedReceiver<LinkEvent>,
        mut env_done: mpsc::UnboundedReceiver<()>,
    ) -> Result<Summary, RunError> {
        let mut quit = self.shared.quit.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(LinkEvent::Connected) => {
                        tracing::info!(master = %self.master, "connected to the master");
                        self.acked = false;
                        self.next_client_ready = Instant::now();
                    }
                    Some(LinkEvent::Message(msg)) => {
                        if let Some(end) = self.on_message(msg).await {
                            break end;
                        }
                    }
                    None => break End::Failed("the connection task ended".to_owned()),
                },
                Some(()) = env_done.recv() => self.on_env_stopped(),
                changed = quit.changed() => {
                    if changed.is_err() || *quit.borrow() {
                        break End::Quit;
                    }
                }
                _ = tick.tick() => {
                    if let Some(end) = self.on_tick() {
                        break end;
                    }
                }
            }
        };
        self.finish(end).await
    }

    fn plan(&self) -> Option<&RunPlan> {
        if self.master_loaddensity {
            self.plan.as_ref().or(self.local_plan.as_ref())
        } else {
            self.local_plan.as_ref()
        }
    }

    fn class_counts(&self) -> Vec<(String, u64)> {
        match &self.env {
            Some(env) => env.group_user_counts(),
            None => Vec::new(),
        }
    }

    fn on_tick(&mut self) -> Option<End> {
        if *self.shared.quit.borrow() {
            return Some(End::Quit);
        }
        let now = Instant::now();
        if !self.acked {
            if now >= self.next_client_ready {
                self.send("client_ready", Value::from(announced_version()));
                self.next_client_ready = now + CONNECT_RETRY;
            }
            return None;
        }
        if let Some(at) = self.ready_again_at {
            if now >= at {
                self.ready_again_at = None;
                self.send("client_ready", Value::from(announced_version()));
            }
        }
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + HEARTBEAT_INTERVAL;
            let data = wire::map([
                ("state", Value::from(self.state.name())),
                ("current_cpu_usage", Value::from(self.cpu.sample())),
                ("current_memory_usage", Value::from(rss_bytes())),
            ]);
            self.send("heartbeat", data);
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.report();
        }
        if let Some((targets, since)) = &self.pending_complete {
            let counts = self.class_counts();
            let reached = targets
                .iter()
                .all(|(name, want)| counts.iter().any(|(n, c)| n == name && c == want));
            if reached || since.elapsed() >= SPAWN_COMPLETE_WAIT {
                if !reached {
                    tracing::warn!(
                        ?targets,
                        ?counts,
                        "users did not reach the spawn target in time"
                    );
                }
                let user_count: u64 = counts.iter().map(|(_, c)| c).sum();
                self.send(
                    "spawning_complete",
                    wire::map([
                        ("user_classes_count", wire::counts_value(&counts)),
                        ("user_count", Value::from(user_count)),
                    ]),
                );
                self.pending_complete = None;
                self.state = WorkerState::Running;
            }
        }
        self.shared.users.store(
            self.class_counts().iter().map(|(_, c)| c).sum(),
            Ordering::Relaxed,
        );
        let since = self.last_heartbeat_reply.or(self.acked_at)?;
        let silent = since.elapsed();
        (silent > self.options.master_timeout).then_some(End::Lost(silent.as_secs_f64()))
    }

    /// Sends the statistics since the previous report.
    fn report(&mut self) {
        let counts = match (&self.env, self.plan()) {
            (Some(_), _) => self.class_counts(),
            (None, Some(plan)) => plan
                .groups()
                .iter()
                .map(|g| (g.name().to_owned(), 0))
                .collect(),
            (None, None) => Vec::new(),
        };
        if let Some(env) = &self.env {
            // Delivers the events still buffered in the run's bus.
            drop(env.stats());
        }
        let (mut data, _) = self.builder.take_report(&counts, true);
        // This worker's CPU use (percent of its CPUs) since the previous report, for the
        // master's generator figures (a key Locust masters ignore).
        let cpu = self.generator.sample_cpu();
        let lag = self.shared.stats.with(|s| s.start_lag_percentile_ms(99.0));
        self.generator.judge(cpu, lag);
        if let Value::Map(entries) = &mut data {
            entries.push((Value::from(LD_CPU_KEY), Value::from(cpu)));
            // Only when the plan has group thresholds (a key Locust masters ignore).
            if let Some(groups) = self.group_deltas.take() {
                entries.push((Value::from(LD_GROUP_STATS_KEY), groups));
            }
        }
        self.send("stats", data);
    }

    async fn on_message(&mut self, msg: Message) -> Option<End> {
        match msg.kind.as_str() {
            "ack" => {
                self.acked = true;
                self.acked_at = Some(Instant::now());
                self.next_heartbeat = Instant::now();
                self.next_report = Instant::now();
                self.master_loaddensity = wire::get(&msg.data, "loaddensity").is_some();
                if self.options.cluster_token.is_some() && !self.challenged {
                    tracing::warn!(
                        master = %self.master,
                        "this worker has a cluster token, but its master admitted it without \
                         asking for it"
                    );
                }
                let index = wire::get(&msg.data, "index").and_then(wire::as_u64);
                tracing::info!(
                    index,
                    loaddensity_master = self.master_loaddensity,
                    "the master accepted this worker"
                );
                if self.master_loaddensity {
                    let records = wire::get(&msg.data, "records")
                        .and_then(Value::as_str)
                        .and_then(RecordShipping::parse)
                        .unwrap_or_default();
                    self.builder.ship_records(Some(records));
                } else {
                    self.builder.ship_records(None);
                    if let Some(plan) = self.local_plan.as_ref().filter(|p| p.has_open_model()) {
                        let groups: Vec<&str> = (0..plan.groups().len())
                            .filter(|&i| matches!(plan.model_of(i), Some(LoadModel::Arrivals(_))))
                            .map(|i| plan.groups()[i].name())
                            .collect();
                        let text = format!(
                            "the master at {} is a Locust master, which sends only user counts;                              this plan asks for an arrival-rate load model (group(s) {}), which                              needs a LoadDensity master: run `load-density master`, or give these                              groups a closed model (constant_users)",
                            self.master,
                            groups.join(", ")
                        );
                        return Some(End::Failed(text));
                    }
                    if self.local_plan.is_none() {
                        let text = format!(
                            "the master at {} is a Locust master, which sends no test plan: start \
                             this worker with one (a start_test configuration whose user groups \
                             are named like the master's user classes)",
                            self.master
                        );
                        return Some(End::Failed(text));
                    }
                }
            }
            PLAN_MESSAGE => {
                let text = wire::req_str(&msg, "config").ok().map(str::to_owned);
                if text.is_some() && text == self.plan_text {
                    return None;
                }
                let allow_env = self.options.allow_env.clone();
                let compiled = plan::read(&msg, &self.plan_dir)
                    .map_err(|e| e.to_string())
                    .map(|config| RunPlan::compile(config).map(|p| p.restrict_env(allow_env)));
                match compiled {
                    Ok(Ok(compiled)) => {
                        match Environment::from_plan(compiled.for_worker(None)).await {
                            Ok(check) => {
                                drop(check);
                                tracing::info!("received the test plan from the master");
                                self.plan = Some(compiled);
                                self.plan_text = text;
                            }
                            Err(error) => {
                                return Some(End::Failed(format!(
                                    "the master's test plan cannot run here: {error}"
                                )))
                            }
                        }
                    }
                    Ok(Err(error)) => {
                        return Some(End::Failed(format!(
                            "the master's test plan cannot run here: {error}"
                        )))
                    }
                    Err(error) => {
                        return Some(End::Failed(format!("unreadable test plan: {error}")))
                    }
                }
            }
            SHARE_MESSAGE => {
                if let Err(error) = self.on_share(&msg).await {
                    tracing::error!(%error, "cannot follow an arrival share message");
                }
            }
            "spawn" => {
                if let Err(error) = self.on_spawn(&msg).await {
                    tracing::error!(%error, "cannot follow a spawn message");
                    self.send(
                        "exception",
                        wire::map([
                            ("msg", Value::from(error.clone())),
                            ("traceback", Value::from(format!("{error}\n"))),
                        ]),
                    );
                }
            }
            CHALLENGE_MESSAGE => {
                self.challenged = true;
                return self.on_challenge(&msg);
            }
            REFUSED_MESSAGE => {
                let reason = wire::get(&msg.data, "reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                return Some(End::Failed(format!(
                    "the master at {} refused this worker: {reason}",
                    self.master
                )));
            }
            "stop" => self.on_stop(),
            "quit" => return Some(End::Quit),
            "heartbeat" => self.last_heartbeat_reply = Some(Instant::now()),
            "reconnect" => {
                let _ = self.out.send(Outgoing::Reset);
            }
            "spawning_complete" => {
                tracing::debug!("the master says every user is spawned");
            }
            other => tracing::warn!(
                kind = other,
                "unknown message type from the master (ignored)"
            ),
        }
        None
    }

    /// Answers the master's cluster token challenge (or ends: this worker has no token).
    fn on_challenge(&mut self, msg: &Message) -> Option<End> {
        let Some(token) = &self.options.cluster_token else {
            return Some(End::Failed(format!(
                "the master at {} requires a cluster token, and this worker has none \
                 (cluster_token, --cluster-token or {CLUSTER_TOKEN_ENV})",
                self.master
            )));
        };
        let Ok(challenge) = wire::req_str(msg, "challenge") else {
            tracing::warn!("a cluster token challenge without a challenge (ignored)");
            return None;
        };
        let proof = token.prove(challenge, &self.shared.node_id);
        self.send(AUTH_MESSAGE, wire::map([("proof", Value::from(proof))]));
        None
    }

    async fn on_spawn(&mut self, msg: &Message) -> Result<(), String> {
        self.send("spawning", Value::Nil);
        let timestamp = wire::req_f64(msg, "timestamp").map_err(|e| e.to_string())?;
        if timestamp <= self.last_spawn_timestamp {
            tracing::info!("Discard spawn message with older or equal timestamp than timestamp of previous spawn message");
            return Ok(());
        }
        let counts = wire::req_counts(msg, "user_classes_count").map_err(|e| e.to_string())?;
        self.last_spawn_timestamp = timestamp;
        self.stop_timeout = wire::get(&msg.data, "stop_timeout")
            .and_then(wire::as_f64)
            .map_or(DEFAULT_STOP_GRACE.as_secs_f64(), |secs| {
                load_density_core::task::options::saturating_seconds(secs).as_secs_f64()
            });
        let host = wire::get(&msg.data, "host")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.ready_again_at = None;
        if self.state == WorkerState::Ready || self.env.is_none() {
            self.start_env(host.as_deref()).await?;
        }
        self.state = WorkerState::Spawning;
        let Some(env) = &self.env else {
            return Err("no environment to spawn users in".to_owned());
        };
        let names = env.group_names();
        let (known, unknown): (Vec<_>, Vec<_>) = counts
            .into_iter()
            .partition(|(name, _)| names.contains(name));
        if !unknown.is_empty() {
            tracing::error!(
                classes = ?unknown.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                groups = ?names,
                "the master dispatched user classes this worker's plan has no group for"
            );
        }
        env.set_group_user_counts(&known, WORKER_SPAWN_RATE)
            .map_err(|e| e.to_string())?;
        self.pending_complete = Some((known, Instant::now()));
        Ok(())
    }

    /// Takes this worker's share of the arrival-rate schedules (starting the environment
    /// first if no `spawn` did).
    async fn on_share(&mut self, msg: &Message) -> Result<(), String> {
        let index = wire::get(&msg.data, "index").and_then(wire::as_u64);
        let count = wire::get(&msg.data, "count").and_then(wire::as_u64);
        let elapsed = wire::get(&msg.data, "elapsed").and_then(wire::as_f64);
        let from = wire::get(&msg.data, "from")
            .and_then(wire::as_f64)
            .or(elapsed);
        let (Some(index), Some(count), Some(elapsed), Some(from)) = (index, count, elapsed, from)
        else {
            return Err(format!("{SHARE_MESSAGE} needs index, count and elapsed"));
        };
        let seconds = |s: f64| s.is_finite() && s >= 0.0;
        if count == 0 || index >= count || !seconds(elapsed) || !seconds(from) {
            return Err(format!(
                "{SHARE_MESSAGE}: share {index} of {count} at {elapsed} s from {from} s is not a share"
            ));
        }
        if let Some(timeout) = wire::get(&msg.data, "stop_timeout").and_then(wire::as_f64) {
            self.stop_timeout = timeout;
        }
        if self.env.is_none() {
            self.start_env(None).await?;
            self.state = WorkerState::Running;
        }
        if let Some(env) = &self.env {
            env.set_arrival_share(Share {
                index,
                count,
                elapsed: saturating_seconds(elapsed),
                from: saturating_seconds(from),
            });
        }
        Ok(())
    }

    /// A fresh environment for a new test (clears what was not reported: Locust's
    /// `stats.clear_all()` at test start).
    async fn start_env(&mut self, host: Option<&str>) -> Result<(), String> {
        let Some(plan) = self.plan().cloned() else {
            return Err("this worker has no test plan yet".to_owned());
        };
        if let Some(old) = self.env.take() {
            old.stop();
            self.users_spawned += old.users_spawned();
        }
        let env = Environment::from_plan(plan.for_worker(host))
            .await
            .map_err(|e| e.to_string())?;
        self.builder.clear();
        env.add_listener(self.builder.clone() as Arc<dyn RequestListener>);
        self.group_deltas = GroupDeltas::attach(&env, &plan.watched_groups());
        env.attach_stats(self.shared.stats.clone());
        if !self.master_loaddensity {
            env.attach_record_store(test_record_instance().clone());
        }
        crate::sinks::register_run(&env);
        env.start();
        self.env = Some(env);
        Ok(())
    }

    fn on_stop(&mut self) {
        self.pending_complete = None;
        match &self.env {
            Some(env) if env.state() != RunState::Stopped => {
                let env = env.clone();
                let grace = self.stop_grace();
                let done = self.env_done_tx.clone();
                tokio::spawn(async move {
                    env.stop_within(grace).await;
                    let _ = done.send(());
                });
            }
            _ => self.after_stop(),
        }
    }

    /// How long tasks in flight get at a stop before they are cut off and recorded as
    /// failures: the master's `stop_timeout`, or [`DEFAULT_STOP_GRACE`] when a Locust master
    /// sends none. (Locust's own workers then kill their users at once and lose the requests in
    /// flight; here those requests finish and are recorded as what they were, unless they
    /// take longer than the grace.)
    fn stop_grace(&self) -> Duration {
        Duration::try_from_secs_f64(self.stop_timeout.max(0.0)).unwrap_or(MAX_STOP_GRACE)
    }

    fn on_env_stopped(&mut self) {
        self.after_stop();
    }

    fn after_stop(&mut self) {
        self.report();
        self.send("client_stopped", Value::Nil);
        if let Some(env) = self.env.take() {
            self.users_spawned += env.users_spawned();
        }
        self.state = WorkerState::Ready;
        self.ready_again_at = Some(
            Instant::now()
                + load_density_core::task::options::saturating_seconds(self.stop_timeout),
        );
    }

    async fn finish(mut self, end: End) -> Result<Summary, RunError> {
        if let Some(env) = self.env.take() {
            env.stop_within(self.stop_grace()).await;
            self.users_spawned += env.users_spawned();
        }
        let result = match end {
            End::Quit => {
                tracing::info!("quitting: sending the last report to the master");
                self.report();
                self.send("quit", Value::Nil);
                Ok(())
            }
            End::Lost(silent_s) => Err(DistributedError::MasterLost {
                address: self.master.clone(),
                silent_s,
            }),
            End::Failed(text) => {
                self.send("quit", Value::Nil);
                Err(DistributedError::Plan(text))
            }
        };
        let (done, flushed) = oneshot::channel();
        if self.out.send(Outgoing::Flush(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
        }
        tokio::time::sleep(LINGER).await;
        let _ = std::fs::remove_dir_all(&self.plan_dir);
        self.shared.users.store(0, Ordering::Relaxed);
        result?;
        Ok(self.summary())
    }

    fn summary(&self) -> Summary {
        let stats = self.shared.stats.snapshot();
        // The plan the master gave (or the worker's own, under a Locust master), not the
        // defaults of the worker's start_test.
        Summary::of_run(
            self.plan()
                .map(RunPlan::source)
                .unwrap_or(&self.summary_config),
            "worker",
            self.users_spawned,
            &stats,
            self.started.elapsed(),
        )
        .with_generator(self.generator.status((
            stats.start_lag_percentile_ms(50.0),
            stats.start_lag_percentile_ms(99.0),
        )))
    }
}
