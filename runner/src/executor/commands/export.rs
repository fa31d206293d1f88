//! The exporter, persistence and import commands (`LD_persist_records`, `LD_compare_runs`, ...).

use std::path::PathBuf;

use serde_json::Value;

#[cfg(feature = "sqlite")]
use super::output;
use super::Args;
use crate::executor::ExecutorError;

/// Wraps a library error as the failure of `command`.
fn failed(
    command: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync + 'static>) -> ExecutorError {
    move |source| ExecutorError::Command { command, source }
}

/// The `database_path` argument: a relative path goes under the process-wide output directory
/// (`--output-dir`) when one is set, as every file a run writes does; the current directory
/// otherwise. `create` makes that directory when it is missing (for writing).
#[cfg(feature = "sqlite")]
fn database_path(args: &mut Args, create: bool) -> Result<PathBuf, ExecutorError> {
    let path: PathBuf = args.required("database_path")?;
    match crate::output_dir::output_dir() {
        Some(dir) if path.is_relative() => {
            if create {
                std::fs::create_dir_all(&dir).map_err(|e| failed(args.command)(e.into()))?;
            }
            Ok(dir.join(path))
        }
        _ => Ok(path),
    }
}

#[cfg(feature = "sqlite")]
pub(super) fn persist_records(mut args: Args) -> Result<Value, ExecutorError> {
    let path = database_path(&mut args, true)?;
    let label: Option<String> = args.optional("label")?;
    let metadata: Option<Value> = args.optional("metadata")?;
    let run_id = crate::store::persist_records(&path, label.as_deref(), metadata.as_ref())
        .map_err(|e| failed(args.command)(e.into()))?;
    Ok(Value::from(run_id))
}

#[cfg(feature = "sqlite")]
pub(super) fn list_runs(mut args: Args) -> Result<Value, ExecutorError> {
    let path = database_path(&mut args, false)?;
    let limit: i64 = args.optional("limit")?.unwrap_or(20);
    let runs = crate::store::list_runs(&path, limit).map_err(|e| failed(args.command)(e.into()))?;
    output(args.command, runs)
}

#[cfg(feature = "sqlite")]
pub(super) fn fetch_run_records(mut args: Args) -> Result<Value, ExecutorError> {
    let path = database_path(&mut args, false)?;
    let run_id: i64 = args.required("run_id")?;
    let records = crate::store::fetch_run_records(&path, run_id)
        .map_err(|e| failed(args.command)(e.into()))?;
    output(args.command, records)
}

#[cfg(feature = "sqlite")]
pub(super) fn compare_runs(mut args: Args) -> Result<Value, ExecutorError> {
    let path = database_path(&mut args, false)?;
    let baseline: i64 = args.required("baseline_run_id")?;
    let run_id: i64 = args.required("run_id")?;
    let max_pct: f64 = args.optional("max_regression_pct")?.unwrap_or(10.0);
    if !(max_pct.is_finite() && max_pct >= 0.0) {
        return Err(args.error(format!(
            "argument \"max_regression_pct\": must be a number >= 0, got {max_pct}"
        )));
    }
    let comparison = crate::store::compare_runs(&path, baseline, run_id, max_pct)
        .map_err(|e| failed(args.command)(e.into()))?;
    output(args.command, comparison)
}

#[cfg(feature = "prometheus")]
pub(super) fn start_prometheus_exporter(mut args: Args) -> Result<Value, ExecutorError> {
    use crate::sinks::prometheus;
    let port: u16 = args.optional("port")?.unwrap_or(prometheus::DEFAULT_PORT);
    let addr: String = args
        .optional("addr")?
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let port = prometheus::start_prometheus_exporter(port, &addr)
        .map_err(|e| failed(args.command)(e.into()))?;
    Ok(Value::from(port))
}

#[cfg(feature = "prometheus")]
pub(super) fn stop_prometheus_exporter(_args: Args) -> Result<Value, ExecutorError> {
    crate::sinks::prometheus::stop_prometheus_exporter();
    Ok(Value::Null)
}

#[cfg(feature = "influxdb")]
pub(super) fn start_influxdb_sink(mut args: Args) -> Result<Value, ExecutorError> {
    use crate::sinks::influxdb;
    let defaults = influxdb::InfluxSettings::default();
    let settings = influxdb::InfluxSettings {
        transport: args.optional("transport")?.unwrap_or(defaults.transport),
        host: args.optional("host")?.unwrap_or(defaults.host),
        port: args.optional("port")?.unwrap_or(defaults.port),
        url: args.optional("url")?,
        token: args.optional("token")?,
        measurement: args
            .optional("measurement")?
            .unwrap_or(defaults.measurement),
        timeout: args.optional("timeout")?.unwrap_or(defaults.timeout),
    };
    influxdb::start_influxdb_sink(settings).map_err(|e| failed(args.command)(e.into()))?;
    Ok(Value::Null)
}

#[cfg(feature = "influxdb")]
pub(super) fn stop_influxdb_sink(_args: Args) -> Result<Value, ExecutorError> {
    crate::sinks::influxdb::stop_influxdb_sink();
    Ok(Value::Null)
}

/// `LD_har_to_tasks`'s parameters: Python's, then the options it lacks.
pub(super) const HAR_TO_TASKS_PARAMS: &[&str] = &[
    "har",
    "include",
    "exclude",
    "escape_placeholders",
    "correlate",
    "exclude_headers",
    "keep_cookies",
];

/// `LD_har_to_action_json`'s parameters: Python's, then the options it lacks.
pub(super) const HAR_TO_ACTION_PARAMS: &[&str] = &[
    "har",
    "user",
    "user_count",
    "spawn_rate",
    "test_time",
    "include",
    "exclude",
    "escape_placeholders",
    "correlate",
    "exclude_headers",
    "keep_cookies",
];

/// A list of strings, a single string, or null.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Strings {
    One(String),
    Many(Vec<String>),
}

fn strings(args: &mut Args, name: &str) -> Result<Vec<String>, ExecutorError> {
    Ok(match args.optional::<Strings>(name)? {
        None => Vec::new(),
        Some(Strings::One(one)) => vec![one],
        Some(Strings::Many(many)) => many,
    })
}

fn har_options(args: &mut Args) -> Result<crate::import::har::HarOptions, ExecutorError> {
    Ok(crate::import::har::HarOptions {
        escape_placeholders: args.optional("escape_placeholders")?.unwrap_or(false),
        correlate: args.optional("correlate")?.unwrap_or(false),
        exclude_headers: strings(args, "exclude_headers")?,
        keep_cookies: args.optional("keep_cookies")?.unwrap_or(false),
    })
}

pub(super) fn load_har(mut args: Args) -> Result<Value, ExecutorError> {
    let path: PathBuf = args.required("file_path")?;
    crate::import::har::load_har(&path).map_err(|e| failed(args.command)(e.into()))
}

pub(super) fn har_to_tasks(mut args: Args) -> Result<Value, ExecutorError> {
    let har: Value = args.required("har")?;
    let include = strings(&mut args, "include")?;
    let exclude = strings(&mut args, "exclude")?;
    let options = har_options(&mut args)?;
    let tasks = crate::import::har::har_to_tasks(&har, &include, &exclude, &options)
        .map_err(|e| failed(args.command)(e.into()))?;
    Ok(Value::Array(tasks))
}

pub(super) fn har_to_action_json(mut args: Args) -> Result<Value, ExecutorError> {
    let har: Value = args.required("har")?;
    let user: String = args
        .optional("user")?
        .unwrap_or_else(|| "fast_http_user".to_owned());
    let user_count: u64 = args.optional("user_count")?.unwrap_or(10);
    let spawn_rate: f64 = args.optional("spawn_rate")?.unwrap_or(5.0);
    let test_time: f64 = args.optional("test_time")?.unwrap_or(60.0);
    let include = strings(&mut args, "include")?;
    let exclude = strings(&mut args, "exclude")?;
    let options = har_options(&mut args)?;
    crate::import::har::har_to_action_json(
        &har, &user, user_count, spawn_rate, test_time, &include, &exclude, &options,
    )
    .map_err(|e| failed(args.command)(e.into()))
}

/// `spec` is a file path (JSON or YAML) or the document itself.
pub(super) fn openapi_to_tasks(mut args: Args) -> Result<Value, ExecutorError> {
    use crate::import::openapi;
    let spec: Value = args.required("spec")?;
    let base_url: Option<String> = args.optional("base_url")?;
    let command = args.command;
    let document = match spec {
        Value::String(path) => openapi::load_openapi(path.as_ref()),
        other => Ok(other),
    };
    document
        .and_then(|document| openapi::openapi_to_tasks(&document, base_url.as_deref()))
        .map(Value::Array)
        .map_err(|e| failed(command)(e.into()))
}

#[cfg(feature = "opentelemetry")]
pub(super) fn start_opentelemetry_exporter(mut args: Args) -> Result<Value, ExecutorError> {
    use crate::sinks::otel;
    let defaults = otel::OtelSettings::default();
    let settings = otel::OtelSettings {
        endpoint: args.optional("endpoint")?,
        service_name: args
            .optional("service_name")?
            .unwrap_or(defaults.service_name),
        export_interval_ms: args
            .optional("export_interval_ms")?
            .unwrap_or(defaults.export_interval_ms),
    };
    otel::start_opentelemetry_exporter(settings).map_err(|e| failed(args.command)(e.into()))?;
    Ok(Value::Bool(true))
}

#[cfg(feature = "opentelemetry")]
pub(super) fn stop_opentelemetry_exporter(_args: Args) -> Result<Value, ExecutorError> {
    crate::sinks::otel::stop_opentelemetry_exporter();
    Ok(Value::Null)
}
