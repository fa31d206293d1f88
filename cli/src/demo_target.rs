//! `LD_start_demo_target`: a command this binary adds to the executor (through
//! `register_command!`, like any crate): starts the testkit's HTTP target on 127.0.0.1 once per
//! process and registers its address as the variable `demo_http`. The documents `init` writes
//! start with it, so they run offline.

use std::sync::OnceLock;

use load_density::register_command;
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

/// The variable that holds the target's base URL.
const VARIABLE: &str = "demo_http";

/// No arguments.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

/// Why the target could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the demo HTTP target on 127.0.0.1: {0}")]
struct StartError(String);

/// The target and the runtime serving it, alive until the process ends.
struct Running {
    _runtime: tokio::runtime::Runtime,
    target: HttpTarget,
}

fn start(_: NoArgs) -> Result<Value, StartError> {
    static TARGET: OnceLock<Result<Running, String>> = OnceLock::new();
    let running = TARGET.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("demo-target")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let target = runtime
            .block_on(HttpTarget::start())
            .map_err(|e| e.to_string())?;
        Ok(Running {
            _runtime: runtime,
            target,
        })
    });
    let running = running.as_ref().map_err(|e| StartError(e.clone()))?;
    let url = running.target.base_url();
    load_density::register_variable(VARIABLE, Value::String(url.clone()));
    Ok(json!({ VARIABLE: url }))
}

register_command! {
    name: "LD_start_demo_target",
    description: "Starts the built-in HTTP target on 127.0.0.1 (once per process) and sets the \
                  variable demo_http to its base URL",
    params: [],
    args: NoArgs,
    run: start,
}
