//! Admission of peers: `client_ready`, heartbeats, quits, and the liveness watch that marks
//! silent workers missing and forgets them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rmpv::Value;

use super::{Core, Inner, Node, NodeState, PeerLogs};
use crate::distributed::locust_stats::RecordShipping;
use crate::distributed::token::{self, CHALLENGE_MESSAGE, REFUSED_MESSAGE};
use crate::distributed::wire::{self, Message, WireError};
use crate::distributed::{
    HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS, MISSING_FORGET_AFTER, PLAN_MESSAGE,
};
use crate::env::RunState;

/// How long a challenge stays good.
const CHALLENGE_EXPIRY: Duration = Duration::from_secs(30);
/// Challenges outstanding at once (more peers are ignored until some expire).
const MAX_PENDING: usize = 1024;
/// Refusals logged as warnings; later ones are logged at debug level.
const MAX_REFUSAL_WARNINGS: u64 = 20;

/// A challenge sent to a peer, awaiting its proof.
#[derive(Debug)]
pub(super) struct Pending {
    challenge: String,
    /// The version the peer announced.
    version: String,
    sent: Instant,
}

/// Warns at start when any host that reaches the port can join and read the plan.
pub(super) fn warn_if_open(inner: &Inner) {
    if inner.options.cluster_token.is_none() && !inner.local_addr.ip().is_loopback() {
        tracing::warn!(
            addr = %inner.local_addr,
            "the master listens beyond loopback without a cluster token: any host that can \
             reach this port can join and read the test plan (set cluster_token, \
             --cluster-token or LOAD_DENSITY_CLUSTER_TOKEN, for LoadDensity workers)"
        );
    }
}

pub(super) async fn liveness_loop(inner: Arc<Inner>) {
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
            core.forget_gone(now);
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

impl Core {
    /// Whether a peer not yet known as `identity` finds no room: the workers kept (admitted,
    /// missing or gone but not yet forgotten) and the pending challenges fill `max_peers`.
    fn is_full(&self, identity: &str, max_peers: usize) -> bool {
        !self.nodes.contains_key(identity)
            && !self.pending.contains_key(identity)
            && self.nodes.len() + self.pending.len() >= max_peers
    }

    /// Forgets the workers missing or gone (quit) for longer than [`MISSING_FORGET_AFTER`],
    /// their indices with them, and expired challenges.
    fn forget_gone(&mut self, now: Instant) {
        let forgotten: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| {
                n.missing_since
                    .or(n.gone_since)
                    .is_some_and(|t| now.saturating_duration_since(t) > MISSING_FORGET_AFTER)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in forgotten {
            tracing::info!(worker = %id, "forgetting a worker missing or gone for 60 s");
            self.nodes.remove(&id);
            self.indices.remove(&id);
        }
        self.pending
            .retain(|_, p| now.saturating_duration_since(p.sent) < CHALLENGE_EXPIRY);
    }
}

impl Inner {
    /// Runs `f` on a known worker; an unknown one is told to quit (Locust does the same).
    pub(super) fn with_node(&self, msg: &Message, f: impl FnOnce(&mut Node)) {
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
            let count = &self.peer_logs.unknown_worker;
            if PeerLogs::allow(count) {
                tracing::warn!(
                    worker = %msg.node_id,
                    kind = %msg.kind,
                    "message from an unknown worker: telling it to quit{}",
                    PeerLogs::note(count)
                );
            }
            self.send(
                &msg.node_id,
                Message::new("quit", Value::Nil, msg.node_id.clone()),
            );
        }
    }

    pub(super) fn on_client_ready(&self, identity: &str, msg: &Message) -> Result<(), WireError> {
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
        match &self.options.cluster_token {
            None => self.admit(identity, &version, loaddensity),
            Some(_) if loaddensity => self.challenge(identity, version),
            Some(_) => {
                self.refuse(
                    identity,
                    "this master requires a cluster token, which Locust workers cannot present",
                );
            }
        }
        Ok(())
    }

    /// Sends `identity` a challenge (the same one again while it is pending).
    fn challenge(&self, identity: &str, version: String) {
        let challenge = {
            let mut core = self.core.lock();
            let now = Instant::now();
            core.pending
                .retain(|_, p| now.duration_since(p.sent) < CHALLENGE_EXPIRY);
            if let Some(pending) = core.pending.get(identity) {
                pending.challenge.clone()
            } else if core.is_full(identity, self.options.max_peers) {
                drop(core);
                self.note_over_capacity(identity);
                return;
            } else {
                if core.pending.len() >= MAX_PENDING {
                    drop(core);
                    tracing::warn!(
                        worker = identity,
                        "too many peers awaiting a cluster token challenge; ignoring one more"
                    );
                    return;
                }
                let challenge = token::new_challenge();
                core.pending.insert(
                    identity.to_owned(),
                    Pending {
                        challenge: challenge.clone(),
                        version,
                        sent: now,
                    },
                );
                challenge
            }
        };
        tracing::debug!(
            worker = identity,
            "asking a worker to prove the cluster token"
        );
        let data = wire::map([("challenge", Value::from(challenge))]);
        self.send(identity, Message::new(CHALLENGE_MESSAGE, data, identity));
    }

    /// A worker's answer to its challenge: admitted when the proof holds, refused otherwise.
    pub(super) fn on_auth(&self, identity: &str, msg: &Message) -> Result<(), WireError> {
        let Some(token) = &self.options.cluster_token else {
            tracing::debug!(
                worker = identity,
                "a cluster token proof, but this master has no token"
            );
            return Ok(());
        };
        let pending = self.core.lock().pending.remove(identity);
        let proof = wire::get(&msg.data, "proof").and_then(Value::as_str);
        match (pending, proof) {
            (Some(pending), Some(proof))
                if pending.sent.elapsed() < CHALLENGE_EXPIRY
                    && token.verify(&pending.challenge, identity, proof) =>
            {
                self.admit(identity, &pending.version, true);
            }
            (None, _) => self.refuse(
                identity,
                "no cluster token challenge is pending for this worker",
            ),
            _ => self.refuse(identity, "wrong cluster token"),
        }
        Ok(())
    }

    /// Counts a peer ignored for lack of room, and warns the first time.
    fn note_over_capacity(&self, identity: &str) {
        let before = self.over_capacity.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            tracing::warn!(
                worker = identity,
                max_peers = self.options.max_peers,
                "the master keeps state for max_peers workers and pending challenges already: \
                 ignoring new peers until some are forgotten (logged once; see \
                 Master::over_capacity_peers)"
            );
        } else {
            tracing::debug!(worker = identity, "ignored a peer: max_peers reached");
        }
    }

    /// Tells `identity` it is not admitted, and counts it.
    fn refuse(&self, identity: &str, reason: &str) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed);
        if refused < MAX_REFUSAL_WARNINGS {
            tracing::warn!(worker = identity, reason, "refused a peer");
        } else {
            tracing::debug!(worker = identity, reason, "refused a peer");
        }
        let data = wire::map([("reason", Value::from(reason))]);
        self.send(identity, Message::new(REFUSED_MESSAGE, data, identity));
    }

    /// Puts `identity` in the dispatch and acknowledges it; a LoadDensity worker gets the plan.
    fn admit(&self, identity: &str, version: &str, loaddensity: bool) {
        let (index, joined_running, stopping) = {
            let mut core = self.core.lock();
            // (A peer that just proved the token left `pending` for this: it finds room.)
            if core.is_full(identity, self.options.max_peers) {
                drop(core);
                self.note_over_capacity(identity);
                return;
            }
            let next = core.next_index;
            let index = *core.indices.entry(identity.to_owned()).or_insert(next);
            if index == next {
                core.next_index += 1;
            }
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
                        gone_since: None,
                        loaddensity,
                    },
                )
                .is_some();
            core.placement_stale = true;
            let live = core.live_ids().len();
            tracing::info!(
                worker = identity,
                index,
                version,
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
    }

    pub(super) fn on_heartbeat(&self, msg: &Message) -> Result<(), WireError> {
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

    pub(super) fn on_quit(&self, msg: &Message) {
        let lost_last = {
            let mut core = self.core.lock();
            let Some(node) = core.nodes.get_mut(&msg.node_id) else {
                return;
            };
            node.quit = true;
            node.gone_since = Some(Instant::now());
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
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;
    use crate::distributed::dispatch::Dispatcher;

    fn node(now: Instant) -> Node {
        Node {
            state: NodeState::Running,
            last_heartbeat: now,
            last_heartbeat_wall: SystemTime::now(),
            missing_since: None,
            cpu_percent: 0.0,
            memory_bytes: 0,
            user_classes_count: Vec::new(),
            quit: false,
            gone_since: None,
            loaddensity: true,
        }
    }

    #[test]
    fn workers_gone_or_missing_for_long_are_forgotten_with_their_indices() {
        let now = Instant::now();
        let mut core = Core {
            nodes: BTreeMap::new(),
            indices: HashMap::new(),
            next_index: 3,
            pending: HashMap::new(),
            target: 0,
            spawn_rate: 1.0,
            placement_stale: false,
            dispatched_total: 0,
            dispatcher: Dispatcher::new(vec!["a".to_owned()]),
            last_spawn_timestamp: 0.0,
            requests: BTreeMap::new(),
            stopping: false,
            run_started: None,
            share_members: Vec::new(),
        };
        let mut quit = node(now);
        quit.quit = true;
        quit.gone_since = Some(now);
        let mut missing = node(now);
        missing.state = NodeState::Missing;
        missing.missing_since = Some(now);
        for (index, (id, n)) in [("quit", quit), ("missing", missing), ("live", node(now))]
            .into_iter()
            .enumerate()
        {
            core.nodes.insert(id.to_owned(), n);
            core.indices.insert(id.to_owned(), index as u64);
        }
        core.pending.insert(
            "peer".to_owned(),
            Pending {
                challenge: token::new_challenge(),
                version: String::new(),
                sent: now,
            },
        );
        core.forget_gone(now + Duration::from_secs(1));
        assert_eq!(core.nodes.len(), 3, "nothing is forgotten early");
        assert_eq!(core.pending.len(), 1);
        core.forget_gone(now + MISSING_FORGET_AFTER + Duration::from_secs(1));
        assert_eq!(core.nodes.keys().collect::<Vec<_>>(), ["live"]);
        assert_eq!(core.indices.keys().collect::<Vec<_>>(), ["live"]);
        assert!(core.pending.is_empty(), "the challenge expired");
    }
}
