//! The runner's errors.

use load_density_core::data::DataError;
use load_density_core::{PlanError, RegistryError};

/// Why a test could not be configured or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `user_detail_dict.user` names no registered user type.
    #[error(transparent)]
    UnsupportedUser(#[from] RegistryError),
    /// A task or protocol option is invalid.
    #[error("user group {group:?}: {source}")]
    Plan {
        /// The group (the user type for single-group runs).
        group: String,
        /// What is wrong, with the task index and key.
        #[source]
        source: PlanError,
    },
    /// A `start_test` parameter is invalid.
    #[error("invalid start_test configuration: {0}")]
    Config(String),
    /// The runner mode is not one of `local`, `master`, `worker`.
    #[error("runner_mode {0:?} is not supported (use \"local\", \"master\" or \"worker\")")]
    UnsupportedMode(String),
    /// A distributed run failed: the master could not bind, a worker lost its master.
    #[error(transparent)]
    Distributed(#[from] crate::distributed::DistributedError),
    /// A CSV data source is invalid or cannot be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The async runtime could not start.
    #[error("could not start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
