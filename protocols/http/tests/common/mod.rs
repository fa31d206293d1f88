//! Shared helpers: prepare an `http_user` group and drive its users without the runner
//! (through the testkit harness).

#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::sync::Arc;

use load_density_core::{PlanError, UserFactory};
use load_density_testkit::harness::Group;
use serde_json::{Map, Value};

pub use load_density_testkit::harness::{run_one, run_task as run, EventRecorder as Recorder};

// Name the crate so its registration is linked in.
use load_density_http as _;

/// Prepares `tasks` for `http_user` through the registry, as the runner does.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Map<String, Value>,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    Group::new("http_user", tasks)
        .maybe_host(host)
        .options(Value::Object(options))
        .factory()
        .await
}

/// A group options map.
pub fn options(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
