//! The command table: each `LD_*` command, its parameter names and the function that runs it.
//!
//! Adding a command is one entry in [`COMMANDS`] plus its function.

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

mod export;

use super::{kind, ExecutorError};
use crate::config::StartTest;
use crate::report;

/// One command.
struct Command {
    /// `LD_...`.
    name: &'static str,
    /// Parameter names, in positional order.
    params: &'static [&'static str],
    /// Whether keyword arguments beyond `params` are accepted (and checked by the command).
    open: bool,
    /// Runs the command.
    run: Run,
}

/// `start_test`'s parameters in the Python signature's order; further keyword arguments
/// (`tasks`, `variables`, `csv_sources`, `host`, protocol options) are accepted by name.
const START_TEST_PARAMS: &[&str] = &[
    "user_detail_dict",
    "user_count",
    "spawn_rate",
    "test_time",
    "web_ui_dict",
    "runner_mode",
    "master_bind_host",
    "master_bind_port",
    "master_host",
    "master_port",
    "expected_workers",
];

/// Every command: `command(name, parameter names, function)`; `open_command` also accepts
/// keyword arguments beyond the named parameters.
#[rustfmt::skip]
const COMMANDS: &[Command] = &[
    open_command("LD_start_test", START_TEST_PARAMS, start_test),
    command("LD_register_variable", &["name", "value"], register_variable),
    command("LD_register_variables", &["variables"], register_variables),
    command("LD_register_csv_source", &["name", "file_path", "cycle"], register_csv_source),
    command("LD_register_csv_sources", &["sources"], register_csv_sources),
    command("LD_clear_resolver", &[], clear_resolver),
    command("LD_clear_records", &[], clear_records),
    command("LD_summary", &[], summary),
    command("LD_generate_summary_report", &["report_name"], generate_summary_report),
    #[cfg(feature = "sqlite")]
    command("LD_persist_records", &["database_path", "label", "metadata"], export::persist_records),
    #[cfg(feature = "sqlite")]
    command("LD_list_runs", &["database_path", "limit"], export::list_runs),
    #[cfg(feature = "sqlite")]
    command("LD_fetch_run_records", &["database_path", "run_id"], export::fetch_run_records),
    #[cfg(feature = "sqlite")]
    command("LD_compare_runs", &["database_path", "baseline_run_id", "run_id", "max_regression_pct"], export::compare_runs),
    #[cfg(feature = "prometheus")]
    command("LD_start_prometheus_exporter", &["port", "addr"], export::start_prometheus_exporter),
    #[cfg(feature = "prometheus")]
    command("LD_stop_prometheus_exporter", &[], export::stop_prometheus_exporter),
    #[cfg(feature = "influxdb")]
    command("LD_start_influxdb_sink", &["transport", "host", "port", "url", "token", "measurement", "timeout"], export::start_influxdb_sink),
    #[cfg(feature = "influxdb")]
    command("LD_stop_influxdb_sink", &[], export::stop_influxdb_sink),
    #[cfg(feature = "opentelemetry")]
    command("LD_start_opentelemetry_exporter", &["endpoint", "service_name", "export_interval_ms"], export::start_opentelemetry_exporter),
    #[cfg(feature = "opentelemetry")]
    command("LD_stop_opentelemetry_exporter", &[], export::stop_opentelemetry_exporter),
    command("LD_load_har", &["file_path"], export::load_har),
    command("LD_har_to_tasks", export::HAR_TO_TASKS_PARAMS, export::har_to_tasks),
    command("LD_har_to_action_json", export::HAR_TO_ACTION_PARAMS, export::har_to_action_json),
    command("LD_openapi_to_tasks", &["spec", "base_url"], export::openapi_to_tasks),
];

type Run = fn(Args) -> Result<Value, ExecutorError>;

const fn command(name: &'static str, params: &'static [&'static str], run: Run) -> Command {
    Command {
        name,
        params,
        open: false,
        run,
    }
}

const fn open_command(name: &'static str, params: &'static [&'static str], run: Run) -> Command {
    Command {
        name,
        params,
        open: true,
        run,
    }
}

/// Every command name, sorted.
pub(super) fn known_commands() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = COMMANDS.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names
}

/// Runs command `name` with the action's second element, if any.
pub(super) fn dispatch(name: &str, arguments: Option<&Value>) -> Result<Value, ExecutorError> {
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        return Err(ExecutorError::UnknownCommand {
            name: name.to_owned(),
            known: known_commands(),
        });
    };
    let values = keyword_arguments(command, arguments)?;
    if !command.open {
        if let Some(unknown) = values
            .keys()
            .find(|k| !command.params.contains(&k.as_str()))
        {
            return Err(arguments_error(
                command,
                format!("unknown argument {unknown:?} ({})", accepted(command)),
            ));
        }
    }
    (command.run)(Args {
        command: command.name,
        params: command.params,
        values,
    })
}

/// The arguments as a name → value map, positional ones matched to the parameter names.
fn keyword_arguments(
    command: &Command,
    arguments: Option<&Value>,
) -> Result<Map<String, Value>, ExecutorError> {
    match arguments {
        None => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(Value::Array(list)) => {
            if list.len() > command.params.len() {
                return Err(arguments_error(
                    command,
                    format!(
                        "takes at most {} positional arguments ({}), got {}",
                        command.params.len(),
                        accepted(command),
                        list.len()
                    ),
                ));
            }
            Ok(command
                .params
                .iter()
                .zip(list)
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect())
        }
        Some(other) => Err(arguments_error(
            command,
            format!(
                "arguments must be an object (keyword arguments) or a list (positional \
                 arguments), got {}",
                kind(other)
            ),
        )),
    }
}

fn accepted(command: &Command) -> String {
    if command.params.is_empty() {
        "it takes no arguments".to_owned()
    } else {
        format!("accepted: {}", command.params.join(", "))
    }
}

fn arguments_error(command: &Command, message: String) -> ExecutorError {
    ExecutorError::Arguments {
        command: command.name,
        message,
    }
}

/// A command's arguments by name.
struct Args {
    command: &'static str,
    params: &'static [&'static str],
    values: Map<String, Value>,
}

impl Args {
    fn error(&self, message: String) -> ExecutorError {
        ExecutorError::Arguments {
            command: self.command,
            message,
        }
    }

    /// Takes argument `name`, which must be present.
    fn required<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, ExecutorError> {
        match self.optional(name)? {
            Some(value) => Ok(value),
            None => Err(self.error(format!(
                "missing argument {name:?} (accepted: {})",
                self.params.join(", ")
            ))),
        }
    }

    /// Takes argument `name`, if present.
    fn optional<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, ExecutorError> {
        match self.values.remove(name) {
            None => Ok(None),
            Some(value) => serde_json::from_value(value)
                .map(Some)
                .map_err(|e| self.error(format!("argument {name:?}: {e}"))),
        }
    }

    fn into_map(self) -> Map<String, Value> {
        self.values
    }
}

fn output(command: &'static str, value: impl serde::Serialize) -> Result<Value, ExecutorError> {
    serde_json::to_value(value).map_err(|source| ExecutorError::Output { command, source })
}

fn start_test(args: Args) -> Result<Value, ExecutorError> {
    let command = args.command;
    let values = args.into_map();
    let config: StartTest = match serde_json::from_value(Value::Object(values.clone())) {
        Ok(config) => config,
        Err(error) => {
            // serde does not say which key was wrong: find the first one that fails alone.
            let culprit = values.iter().find_map(|(key, value)| {
                let single = Map::from_iter([(key.clone(), value.clone())]);
                serde_json::from_value::<StartTest>(Value::Object(single))
                    .err()
                    .map(|e| format!("argument {key:?}: {e}"))
            });
            return Err(ExecutorError::Arguments {
                command,
                message: culprit.unwrap_or_else(|| error.to_string()),
            });
        }
    };
    let summary = crate::start_test(config)?;
    output(command, summary)
}

fn register_variable(mut args: Args) -> Result<Value, ExecutorError> {
    let name: String = args.required("name")?;
    let value: Value = args.required("value")?;
    crate::register_variable(&name, value);
    Ok(Value::Null)
}

fn register_variables(mut args: Args) -> Result<Value, ExecutorError> {
    let variables: Map<String, Value> = args.required("variables")?;
    crate::register_variables(variables);
    Ok(Value::Null)
}

fn register_csv_source(mut args: Args) -> Result<Value, ExecutorError> {
    let name: String = args.required("name")?;
    let file_path: String = args.required("file_path")?;
    let cycle: bool = args.optional("cycle")?.unwrap_or(true);
    crate::register_csv_source(&name, &file_path, cycle)?;
    Ok(Value::Null)
}

fn register_csv_sources(mut args: Args) -> Result<Value, ExecutorError> {
    let sources: Value = args.required("sources")?;
    crate::register_csv_sources(&sources)?;
    Ok(Value::Null)
}

fn clear_resolver(_args: Args) -> Result<Value, ExecutorError> {
    crate::clear_variables();
    Ok(json!({"status": "cleared"}))
}

fn clear_records(_args: Args) -> Result<Value, ExecutorError> {
    crate::core::test_record_instance().clear_records();
    Ok(json!({"status": "cleared"}))
}

fn summary(_args: Args) -> Result<Value, ExecutorError> {
    Ok(report::build_summary())
}

fn generate_summary_report(mut args: Args) -> Result<Value, ExecutorError> {
    let name: String = args
        .optional("report_name")?
        .unwrap_or_else(|| report::DEFAULT_SUMMARY_REPORT_NAME.to_owned());
    let path = report::generate_summary_report(&name)?;
    Ok(Value::String(path.display().to_string()))
}
