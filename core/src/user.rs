//! The traits a protocol crate implements.
//!
//! - [`Protocol`]: once per run and user group, validates and compiles the group's tasks and
//!   builds whatever all users share (a TLS configuration, compiled descriptors). Registered by
//!   [`register_user!`](crate::register_user).
//! - [`UserFactory`]: makes one [`UserTemplate`] per simulated user.
//! - [`UserTemplate`]: one simulated user. It owns its state (connection, cookies) and runs one
//!   task at a time; the scenario in core decides which.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;

use crate::context::UserContext;
use crate::pacing::Pacing;
use crate::scenario::{drive_user, Scenario};
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
/// `on_start`, `on_idle` and `on_stop` have default no-op bodies; implement only what you need.
#[async_trait]
pub trait UserTemplate: Send {
    /// Called once before the user's first task.
    async fn on_start(&mut self, _ctx: &mut UserContext) {}

    /// Runs the task at `index` of the group's task list and reports every request it makes
    /// through `ctx` ([`UserContext::record_response`] / [`UserContext::record_failure`]).
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext);

    /// Called when the user is about to wait between iterations (its pacing): give back here
    /// what the user needs only while it works (read and write buffers, say), so that an
    /// idle user holds little memory. Not called between iterations that do not wait.
    fn on_idle(&mut self) {}

    /// Called once when the user stops: close connections here.
    async fn on_stop(&mut self, _ctx: &mut UserContext) {}

    /// The user's whole run as one future, for a user type whose tasks run without a box each
    /// ([`Unboxed`] answers this); `None` (the default) runs the user through this trait, one
    /// boxed future per task. Core's user loop calls this; a protocol does not.
    fn drive<'a>(
        &'a mut self,
        _ctx: &'a mut UserContext,
        _scenario: &'a Scenario,
        _pacing: Pacing,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        None
    }
}

/// One simulated user whose task futures are its own types, not boxes: `async fn` in a trait
/// without `#[async_trait]`. Such a trait cannot be used as `dyn`, so a factory hands out
/// [`Unboxed::new(user)`](Unboxed) as its [`UserTemplate`]; core's user loop then runs the
/// user through a copy made for its type, with one box for the user's whole run rather than
/// one per task (a malloc and a free per request saved).
///
/// The methods mean what [`UserTemplate`]'s mean.
pub trait StaticUser: Send + 'static {
    /// Called once before the user's first task.
    fn on_start(&mut self, _ctx: &mut UserContext) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs the task at `index` and records its requests through `ctx`.
    fn run_task(&mut self, index: usize, ctx: &mut UserContext) -> impl Future<Output = ()> + Send;

    /// Called when the user is about to wait between iterations: give back buffers here.
    fn on_idle(&mut self) {}

    /// Called once when the user stops: close connections here.
    fn on_stop(&mut self, _ctx: &mut UserContext) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// A [`StaticUser`] as a [`UserTemplate`] (see [`StaticUser`]).
#[derive(Debug)]
pub struct Unboxed<T>(T);

impl<T: StaticUser> Unboxed<T> {
    /// Wraps a user.
    pub fn new(user: T) -> Self {
        Self(user)
    }
}

#[async_trait]
impl<T: StaticUser> UserTemplate for Unboxed<T> {
    async fn on_start(&mut self, ctx: &mut UserContext) {
        self.0.on_start(ctx).await;
    }

    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        self.0.run_task(index, ctx).await;
    }

    fn on_idle(&mut self) {
        self.0.on_idle();
    }

    async fn on_stop(&mut self, ctx: &mut UserContext) {
        self.0.on_stop(ctx).await;
    }

    fn drive<'a>(
        &'a mut self,
        ctx: &'a mut UserContext,
        scenario: &'a Scenario,
        pacing: Pacing,
    ) -> Option<Pin<Box<dyn Future<Output = ()> + Send + 'a>>> {
        Some(Box::pin(drive_user(&mut self.0, ctx, scenario, pacing)))
    }
}
