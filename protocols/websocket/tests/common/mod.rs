//! Shared test helpers: preparing a `websocket_user` group; one user is driven through the
//! testkit harness.
#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::sync::Arc;

use load_density_core::{PlanError, UserFactory};
use load_density_testkit::harness::Group;
use serde_json::Value;

pub use load_density_testkit::harness::{
    assert_success, error_of, wait_for, UserHarness as Harness, STEP,
};

// Name the crate so its registration is linked into this test binary.
use load_density_websocket as _;

/// Prepares a `websocket_user` group.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    Group::new("websocket_user", tasks)
        .maybe_host(host)
        .options(options)
        .factory()
        .await
}

/// Prepares a group that must be valid.
pub async fn factory(tasks: Value, host: Option<String>) -> Arc<dyn UserFactory> {
    prepare(tasks, host, Value::Null)
        .await
        .expect("valid websocket tasks")
}

/// The error `prepare` gives for invalid tasks, as text.
pub async fn plan_error(tasks: Value) -> String {
    Group::new("websocket_user", tasks).prepare_error().await
}
