//! Admission of peers: `client_ready`, heartbeats, quits, and the liveness watch that marks
//! silent workers missing and forgets them.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rmpv::Value;

use super::{Inner, Node, NodeState};
use crate::distributed::locust_stats::RecordShipping;
use crate::distributed::wire::{self, Message, WireError};
use crate::distributed::{
    HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS, MISSING_FORGET_AFTER, PLAN_MESSAGE,
};
use crate::env::RunState;

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
            tracing::warn!(worker = %msg.node_id, kind = %msg.kind, "message from an unknown worker: telling it to quit");
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
