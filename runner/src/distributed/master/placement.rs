//! Dispatch: placing the users over the live workers, and splitting arrival-rate schedules.

use std::time::{SystemTime, UNIX_EPOCH};

use rmpv::Value;

use super::Inner;
use crate::distributed::wire::{self, Message};
use crate::distributed::SHARE_MESSAGE;
use crate::groups::{self};

pub(super) fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Inner {
    /// Places the current ramp total over the live workers and sends every one its `spawn`.
    pub(super) fn dispatch(&self, total: u64) {
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
    pub(super) fn send_shares(&self, force: bool) {
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
                        ("stop_timeout", Value::from(self.options.stop_timeout)),
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
}
