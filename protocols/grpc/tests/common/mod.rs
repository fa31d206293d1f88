//! Shared test helpers: preparing a `grpc_user` group and driving one user directly (through
//! the testkit harness), with the task's checks applied as the scenario would.
#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::sync::Arc;
use std::time::Duration;

use load_density_core::variables::Variables;
use load_density_core::{PlanError, UserFactory};
use load_density_testkit::harness::{Group, UserHarness};
use serde_json::{json, Map, Value};

pub use load_density_testkit::harness::{assert_success, error_of};

// Name the crate so its registration is linked into this test binary.
use load_density_grpc as _;

/// Upper bound for any single test step.
pub const STEP: Duration = Duration::from_secs(30);

/// Group options that compile the testkit's `loadtest.proto`.
pub fn proto_options() -> Value {
    json!({
        "proto_files": [load_density_testkit::grpc::loadtest_proto().display().to_string()],
        "import_paths": [load_density_testkit::grpc::loadtest_proto_dir().display().to_string()],
    })
}

/// Merges two JSON objects (`extra` wins).
pub fn merge(base: Value, extra: Value) -> Value {
    let mut map = match base {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Value::Object(extra) = extra {
        map.extend(extra);
    }
    Value::Object(map)
}

/// A `grpc_user` group of `tasks` with `options`.
fn group(tasks: Value, options: Value) -> Group {
    Group::new("grpc_user", tasks).options(options).step(STEP)
}

/// Prepares a `grpc_user` group.
pub async fn prepare(
    tasks: &Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    group(tasks.clone(), options)
        .maybe_host(host)
        .factory()
        .await
}

/// The error `prepare` gives, as text.
pub async fn plan_error(tasks: Value, options: Value) -> String {
    group(tasks, options).prepare_error().await
}

/// Prepares `tasks` with `options` and makes one user.
pub async fn harness(tasks: Value, options: Value) -> UserHarness {
    harness_with(tasks, options, Variables::new()).await
}

/// Same, with run variables.
pub async fn harness_with(tasks: Value, options: Value, variables: Variables) -> UserHarness {
    group(tasks, options).harness(variables).await
}
