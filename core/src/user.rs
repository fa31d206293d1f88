//! The traits a protocol crate implements.
//!
//! - [`Protocol`]: once per run and user group, validates and compiles the group's tasks and
//!   builds whatever all users share (a TLS configuration, compiled descriptors). Registered by
//!   [`register_user!`](crate::register_user).
//! - [`UserFactory`]: makes one [`UserTemplate`] per simulated user.
//! - [`UserTemplate`]: one simulated user. It owns its state (connection, cookies) and runs one
//!   task at a time; the scenario in core decides which.

use std::sync::Arc;

use async_trait::async_trait;

use crate::context::UserContext;
use crate::task::{GroupPlan, PlanError};

/// A protocol: turns a group's plan into a user factory.
#[async_trait]
pub trait Protocol: Send + Sync + 'static {
    /// Validates every task of the plan and prepares what all users of the group share.
    ///
    /// Every error is returned here, before the run starts, naming the task index and key.
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError>;

    /// Group-level option keys this protocol reads from [`GroupPlan::options`] (e.g.
    /// `timeout`, `verify`). The runner rejects any other unknown key, so a typo in a
    /// `start_test` keyword is an error rather than silently ignored.
    fn option_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether this protocol's users open their sockets from
    /// [`UserContext::source_address`](crate::UserContext::source_address). The runner
    /// refuses a group's `source_addresses` for a protocol that does not (default: it does
    /// not).
    fn binds_source_address(&self) -> bool {
        false
    }
}

/// Makes simulated users of one group.
pub trait UserFactory: Send + Sync + 'static {
    /// A new user; `user_id` is unique within the run.
    fn new_user(&self, user_id: u64) -> Box<dyn UserTemplate>;
}

/// One simulated user.
///
/// `on_start` and `on_stop` have default no-op bodies; implement only what you need.
#[async_trait]
pub trait UserTemplate: Send {
    /// Called once before the user's first task.
    async fn on_start(&mut self, _ctx: &mut UserContext) {}

    /// Runs the task at `index` of the group's task list and reports every request it makes
    /// through `ctx` ([`UserContext::record_response`] / [`UserContext::record_failure`]).
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext);

    /// Called once when the user stops: close connections here.
    async fn on_stop(&mut self, _ctx: &mut UserContext) {}
}
