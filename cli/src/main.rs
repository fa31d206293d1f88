//! `load-density`: runs LoadDensity action documents from the command line.
//!
//! ```text
//! load-density run FILE...        execute action files, in order
//! load-density run-dir DIR        execute every *.json under DIR (recursively, in path order)
//! load-density run-str JSON       execute an action document given as a string
//! load-density demo               load-test an in-process HTTP server and check the counts
//! load-density master [--expect-workers N] PLAN
//!                                 run PLAN over workers (LD_start_test, runner_mode "master")
//! load-density worker --master-host H [--master-port P] [PLAN]
//!                                 join a LoadDensity or Locust master (runner_mode "worker")
//! load-density compare DB BASELINE RUN [--max-regression-pct P]
//!                                 compare two runs stored by LD_persist_records (exit 99 on a
//!                                 regression)
//! load-density har FILE [--correlate] [--escape-placeholders] ... > plan.json
//!                                 turn a recorded HAR into an action document
//! load-density openapi SPEC [--base-url URL] ... > plan.json
//!                                 one task per operation of an OpenAPI 3 document
//! ```
//!
//! Each action's result is printed to stdout as one line of JSON,
//! `{"index": 0, "command": "LD_summary", "ok": ...}` or `{..., "error": "..."}` (with a
//! `"file"` key for `run` and `run-dir`); errors are also printed to stderr. The exit status is
//! 0 when every action succeeded, 1 otherwise, and 2 for a usage error. Logs go to stderr;
//! `RUST_LOG` sets their filter (default `info`).

mod compare;
mod demo;
mod distributed;
mod import;
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
    /// Load-test an in-process HTTP server for a few seconds and check that the requests it
    /// counted equal the requests LoadDensity recorded.
    Demo(demo::DemoArgs),
    /// Run a plan over workers: bind, wait for --expect-workers, dispatch, merge, report.
    Master(distributed::MasterArgs),
    /// Join a master (LoadDensity or Locust) and run the users it gives this process.
    Worker(distributed::WorkerArgs),
    /// Compare two runs stored in a SQLite database by LD_persist_records: per name, the
    /// deltas of p50, p95, p99, RPS and failure rate. Exit status 99 on a regression.
    Compare(compare::CompareArgs),
    /// Turn a HAR recording into an action document (printed to stdout): one task per
    /// entry, run in sequence by each user.
    Har(import::HarArgs),
    /// Turn an OpenAPI 3 document (JSON or YAML) into an action document (printed to
    /// stdout): one task per operation, path parameters as ${var.NAME} placeholders.
    Openapi(import::OpenApiArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    if let Command::Compare(args) = &cli.command {
        return compare::main(args);
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
        Command::Compare(_) => unreachable!("handled in main"),
        Command::Har(args) => import::har(&args),
        Command::Openapi(args) => import::openapi(&args),
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Only fails when a subscriber is already set, which nothing here does.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
