//! `load-density`: runs LoadDensity action documents from the command line.
//!
//! ```text
//! load-density run FILE...        execute action files, in order
//! load-density run-dir DIR        execute every *.json under DIR (recursively, in path order)
//! load-density run-str JSON       execute an action document given as a string
//! load-density demo               load-test in-process HTTP, WebSocket, TCP and UDP servers
//! load-density master [--expect-workers N] PLAN
//!                                 run PLAN over workers (LD_start_test, runner_mode "master")
//! load-density worker --master-host H [--master-port P] [PLAN]
//!                                 join a LoadDensity or Locust master (runner_mode "worker")
//! ```
//!
//! Each action's result is printed to stdout as one line of JSON,
//! `{"index": 0, "command": "LD_summary", "ok": ...}` or `{..., "error": "..."}` (with a
//! `"file"` key for `run` and `run-dir`); errors are also printed to stderr. The exit status is
//! 0 when every action succeeded, 1 otherwise, and 2 for a usage error. Logs go to stderr;
//! `RUST_LOG` sets their filter (default `info`).

mod colour;
mod demo;
mod distributed;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use load_density::executor;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "load-density",
    version,
    about = "LoadDensity: load tests described as JSON"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Colour in logs: auto (on a terminal, unless NO_COLOR; CLICOLOR_FORCE forces it),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = colour::ColorChoice::Auto)]
    color: colour::ColorChoice,
    /// The directory every file a run writes goes to (reports), created when missing;
    /// an action's own `output_dir` keyword overrides it. Default: the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Keep a run's web UI serving after the run for this long (seconds, or "5m"; -1 until
    /// Ctrl-C or POST /quit), for runs whose web_ui_dict gives no linger. Default: it closes
    /// with the run.
    #[arg(long, global = true, value_name = "SECONDS", allow_hyphen_values = true,
          value_parser = linger_arg)]
    web_ui_linger: Option<f64>,
}

fn linger_arg(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(x) if x < 0.0 => Ok(-1.0),
        _ => load_density::core::task::values::parse_duration(text),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Execute action files, in order.
    Run {
        /// Action files: a list of actions, or {"load_density": [...]}.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Execute every *.json action file under a directory (recursively, in path order).
    RunDir {
        /// The directory.
        dir: PathBuf,
    },
    /// Execute an action document given as a JSON string.
    RunStr {
        /// The document, e.g. '[["LD_summary"]]'.
        json: String,
    },
    /// Load-test in-process HTTP, WebSocket, TCP and UDP servers (127.0.0.1) for a few seconds,
    /// one user group per protocol, and check that the requests they counted equal the
    /// requests LoadDensity recorded.
    Demo(demo::DemoArgs),
    /// Run a plan over workers: bind, wait for --expect-workers, dispatch, merge, report.
    Master(distributed::MasterArgs),
    /// Join a master (LoadDensity or Locust) and run the users it gives this process.
    Worker(distributed::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(colour::colour_for_stderr(cli.color));
    load_density::output_dir::set_output_dir(cli.output_dir.clone());
    if let Some(linger) = cli.web_ui_linger {
        load_density::web::set_default_linger(linger);
    }
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; `Ok(false)` when something it ran failed (already reported).
fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::Run { files } => output::print_files(&executor::execute_files(&files)),
        Command::RunDir { dir } => output::print_files(&executor::execute_dir(&dir)?),
        Command::RunStr { json } => output::print_results(None, &executor::execute_str(&json)?),
        Command::Demo(args) => demo::run(&args),
        Command::Master(args) => distributed::master(&args),
        Command::Worker(args) => distributed::worker(&args),
    }
}

fn init_tracing(ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Only fails when a subscriber is already set, which nothing here does.
    let _ = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
