//! The command table: each `LD_*` command, its parameter names and the function that runs it.
//!
//! Adding a command is one entry in [`COMMANDS`] plus its function.

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use std::sync::OnceLock;

use super::{descriptions, kind, nested, plugin, CommandInfo, ExecutorError};
use crate::config::StartTest;
use crate::core::test_record_instance;
use crate::report;
use crate::reports;

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
    command("LD_generate_summary_report", &["report_name", "output_dir"], generate_summary_report),
    command("LD_execute_action", &["action_list"], execute_action),
    command("LD_execute_files", &["execute_files_list"], execute_files),
    command("LD_add_package_to_executor", &["package"], add_package_to_executor),
    command("LD_start_socket_server", crate::socket_server::PARAMS, start_socket_server),
    command("LD_generate_html", &[], generate_html),
    command("LD_generate_html_report", &["html_name"], generate_html_report),
    command("LD_generate_json", &[], generate_json),
    command("LD_generate_json_report", &["json_file_name"], generate_json_report),
    command("LD_generate_xml", &[], generate_xml),
    command("LD_generate_xml_report", &["xml_file_name"], generate_xml_report),
    command("LD_generate_csv_report", &["csv_name"], generate_csv_report),
    command("LD_generate_junit_report", &["report_name"], generate_junit_report),
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

/// Every command name, sorted: the built-in ones and those registered by linked crates.
pub(super) fn known_commands() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = COMMANDS.iter().map(|c| c.name).collect();
    names.extend(plugins().all().map(|r| r.name()));
    names.sort_unstable();
    names.dedup();
    names
}

/// The index of commands registered by crates (checked against the built-in names).
fn plugins() -> &'static plugin::Index {
    static BUILTIN: OnceLock<Vec<&'static str>> = OnceLock::new();
    let builtin = BUILTIN.get_or_init(|| COMMANDS.iter().map(|c| c.name).collect());
    plugin::index(builtin)
}

/// The duplicate-name error, if any.
pub(super) fn check_plugins() -> Result<(), ExecutorError> {
    plugins().check()
}

/// Every command with its parameters, sorted by name.
pub(super) fn command_infos() -> Vec<CommandInfo> {
    let mut infos: Vec<CommandInfo> = COMMANDS
        .iter()
        .map(|c| CommandInfo {
            name: c.name,
            params: c.params.to_vec(),
            more_keywords: c.open,
            description: descriptions::builtin(c.name),
            provider: plugin::BUILT_IN.to_owned(),
        })
        .collect();
    infos.extend(plugins().all().map(|r| CommandInfo {
        name: r.name(),
        params: r.params().to_vec(),
        more_keywords: false,
        description: r.description(),
        provider: r.provider(),
    }));
    infos.sort_by_key(|info| info.name);
    infos
}

/// Runs command `name` with the action's second element, if any.
pub(super) fn dispatch(name: &str, arguments: Option<&Value>) -> Result<Value, ExecutorError> {
    plugins().check()?;
    let Some(command) = COMMANDS.iter().find(|c| c.name == name) else {
        if let Some(registration) = plugins().get(name) {
            return plugin::dispatch(registration, arguments);
        }
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
    let output_dir: Option<String> = args.optional("output_dir")?;
    let path =
        report::generate_summary_report_in(&name, output_dir.as_deref().map(std::path::Path::new))?;
    Ok(Value::String(path.display().to_string()))
}

fn execute_action(mut args: Args) -> Result<Value, ExecutorError> {
    let document: Value = args.required("action_list")?;
    nested::execute_action(args.command, &document)
}

fn execute_files(mut args: Args) -> Result<Value, ExecutorError> {
    let files: Vec<std::path::PathBuf> = args.required("execute_files_list")?;
    nested::execute_files(args.command, &files)
}

fn add_package_to_executor(mut args: Args) -> Result<Value, ExecutorError> {
    let package: Value = args.required("package")?;
    Err(ExecutorError::Unsupported {
        command: args.command,
        explanation: format!(
            "LoadDensity cannot import the package {package} at run time: it runs no Python. \
             Commands are Rust functions that a crate registers at build time with \
             `load_density::register_command!`; link that crate into your binary (see \
             examples/custom_command) and its commands are available to every action document. \
             `load-density commands` lists the commands this binary has"
        ),
    })
}

fn start_socket_server(args: Args) -> Result<Value, ExecutorError> {
    let command = args.command;
    let options: crate::socket_server::SocketServerOptions =
        serde_json::from_value(Value::Object(args.into_map())).map_err(|e| {
            ExecutorError::Arguments {
                command,
                message: format!(
                    "{e} (accepted: {})",
                    crate::socket_server::PARAMS.join(", ")
                ),
            }
        })?;
    let address = crate::socket_server::run_blocking(options)?;
    Ok(json!({"address": address.to_string(), "status": "stopped"}))
}

fn path_text(path: &std::path::Path) -> Value {
    Value::String(path.display().to_string())
}

fn name_or(args: &mut Args, key: &str, default: &str) -> Result<String, ExecutorError> {
    Ok(args.optional(key)?.unwrap_or_else(|| default.to_owned()))
}

fn generate_html(_args: Args) -> Result<Value, ExecutorError> {
    let (success, failure) = reports::html_fragments::generate_html(test_record_instance());
    Ok(json!([success, failure]))
}

fn generate_html_report(mut args: Args) -> Result<Value, ExecutorError> {
    let name = name_or(&mut args, "html_name", reports::html::DEFAULT_NAME)?;
    let path = reports::html::generate_html_report(test_record_instance(), &name)?;
    Ok(path_text(&path))
}

fn generate_json(_args: Args) -> Result<Value, ExecutorError> {
    let (success, failure) = reports::json::generate_json(test_record_instance());
    Ok(json!([success, failure]))
}

fn generate_json_report(mut args: Args) -> Result<Value, ExecutorError> {
    let name = name_or(&mut args, "json_file_name", reports::json::DEFAULT_NAME)?;
    let (success, failure) = reports::json::generate_json_report(test_record_instance(), &name)?;
    Ok(json!([path_text(&success), path_text(&failure)]))
}

fn generate_xml(_args: Args) -> Result<Value, ExecutorError> {
    let (success, failure) = reports::xml::generate_xml(test_record_instance());
    Ok(json!([success, failure]))
}

fn generate_xml_report(mut args: Args) -> Result<Value, ExecutorError> {
    let name = name_or(&mut args, "xml_file_name", reports::json::DEFAULT_NAME)?;
    let (success, failure) = reports::xml::generate_xml_report(test_record_instance(), &name)?;
    Ok(json!([path_text(&success), path_text(&failure)]))
}

fn generate_csv_report(mut args: Args) -> Result<Value, ExecutorError> {
    let name = name_or(&mut args, "csv_name", reports::csv::DEFAULT_NAME)?;
    let path = reports::csv::generate_csv_report(test_record_instance(), &name)?;
    Ok(path_text(&path))
}

/// With the last run's threshold results, when it had thresholds, as a second suite.
fn generate_junit_report(mut args: Args) -> Result<Value, ExecutorError> {
    let name = name_or(&mut args, "report_name", reports::junit::DEFAULT_NAME)?;
    let thresholds = reports::last_run()
        .and_then(|run| run.summary.thresholds)
        .unwrap_or_default();
    let path =
        reports::junit::generate_junit_report_with(test_record_instance(), &name, &thresholds)?;
    Ok(path_text(&path))
}
