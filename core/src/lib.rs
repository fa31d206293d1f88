//! # load-density-core
//!
//! The protocol-independent heart of LoadDensity, a multi-protocol load-testing framework.
//!
//! This crate defines what every protocol crate and the runner share:
//!
//! | module | what it holds |
//! |---|---|
//! | [`registry`] | [`UserRegistration`] and the [`register_user!`] macro: how a protocol crate makes a user type (`"fast_http_user"`, ...) selectable by name |
//! | [`user`] | [`UserTemplate`] (one value per simulated user), [`Protocol`] and [`UserFactory`] |
//! | [`context`] | [`UserContext`]: what a user sees while it runs (its variables, the event bus, the stop signal) |
//! | [`task`] | the task language shared by every protocol: task lists, scenario modes, the HTTP task shape, the group options every protocol shares ([`GroupOptions`]), host and URL resolution |
//! | [`checks`] | assertions and extractors, compiled once per task and applied by core to every protocol's responses |
//! | [`predicate`] | `run_if` / `skip_if` conditions |
//! | [`json_path`] | the dot paths of `json_path` assertions and extractors |
//! | [`template`] | `${...}` placeholders, parsed once and rendered per request |
//! | [`variables`] | run variables and each user's own scope over them ([`UserVariables`]) |
//! | [`data`] | CSV data sources for `${csv.SOURCE.COLUMN}`, streamed and shared by a run's users |
//! | [`functions`], [`faker`] | `${uuid()}`, `${now()}`, `${randint(a,b)}` and `${faker.METHOD}` |
//! | [`event`] | [`RequestEvent`], [`RequestListener`] and the sharded [`EventBus`] |
//! | [`record`] | [`TestRecord`], the record store, and the global [`test_record_instance`] |
//! | [`stats`] | [`RequestStats`]: exact, mergeable, serializable per-name statistics with HDR histograms |
//! | [`proxy`] | [`TaskProxy`], the task-proxy registry (Python's `locust_wrapper_proxy`) |
//! | [`scenario`] | the user loop: one iteration over the task list, repeated until stopped |
//! | [`pacing`] | [`Pacing`]: the wait between iterations (Locust's `wait_time`) |
//!
//! A protocol crate depends on this crate only. It implements [`Protocol`] (validate and compile
//! the tasks of a run), [`UserFactory`] (make users) and [`UserTemplate`] (run one task), then
//! registers itself:
//!
//! ```
//! use std::sync::Arc;
//! use load_density_core::{
//!     async_trait, register_user, GroupPlan, PlanError, Protocol, UserContext, UserFactory,
//!     UserTemplate,
//! };
//!
//! struct NoopProtocol;
//!
//! #[async_trait]
//! impl Protocol for NoopProtocol {
//!     async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
//!         Ok(Arc::new(NoopFactory))
//!     }
//! }
//!
//! struct NoopFactory;
//! impl UserFactory for NoopFactory {
//!     fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
//!         Box::new(NoopUser)
//!     }
//! }
//!
//! struct NoopUser;
//! #[async_trait]
//! impl UserTemplate for NoopUser {
//!     async fn run_task(&mut self, _index: usize, _ctx: &mut UserContext) {}
//! }
//!
//! register_user! {
//!     name: "noop_doc_user",
//!     description: "does nothing",
//!     protocol: NoopProtocol,
//! }
//!
//! assert!(load_density_core::registry::lookup("noop_doc_user").is_ok());
//! ```

pub mod cardinality;
pub mod checks;
pub mod context;
pub mod data;
pub mod deadline;
pub mod event;
pub mod faker;
pub mod functions;
pub mod json_path;
pub mod pacing;
pub mod predicate;
pub mod proxy;
pub mod record;
pub mod registry;
pub mod response;
pub mod scenario;
pub mod series;
mod shard;
pub mod source_address;
pub mod start_clock;
pub mod stats;
pub mod stream;
pub mod task;
pub mod template;
pub mod tls;
mod unwind;
pub mod user;
pub mod variables;
mod wall;
mod warn_once;

pub use async_trait::async_trait;
pub use checks::TaskChecks;
pub use context::{RequestMeta, RequestTimer, UserContext};
pub use data::{DataError, DataSourceSpec, DataSources, OnEnd};
pub use event::{EventBus, RequestEvent, RequestListener};
pub use pacing::Pacing;
pub use proxy::{locust_wrapper_proxy, TaskProxy};
pub use record::{test_record_instance, Record, TestRecord};
pub use registry::{RegistryError, UserRegistration};
pub use response::Response;
pub use stats::{RequestStats, StatsEntry};
pub use task::options::{GroupOptions, GroupTls, COMMON_OPTION_NAMES};
pub use task::{GroupPlan, PlanError, ScenarioMode, TaskList};
pub use template::{JsonTemplate, Template};
pub use user::{Protocol, StaticUser, Unboxed, UserFactory, UserTemplate};
pub use variables::{UserVariables, Variables};

#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
