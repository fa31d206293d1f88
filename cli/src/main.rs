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
//! load-density commands [--json]  list every action command with its parameters
//! load-density serve [--host H] [--port P] [--framed] [--token T] [--tls-cert F --tls-key F]
//!                                 serve the control socket (action documents over TCP/TLS)
//! load-density mcp                MCP server on stdio (for AI assistants)
//! load-density init [--force] PATH
//!                                 write a project template under PATH/LoadDensity
//! load-density compare DB BASELINE RUN [--max-regression-pct P]
//!                                 compare two runs stored by LD_persist_records (exit 99 on a
//!                                 regression)
//! load-density har FILE [--correlate] [--escape-placeholders] ... > plan.json
//!                                 turn a recorded HAR into an action document
//! load-density openapi SPEC [--base-url URL] ... > plan.json
//!                                 one task per operation of an OpenAPI 3 document
//! ```
//!
//! `--csv PREFIX` (with any command) writes Locust's CSV files for every run that sets no
//! `csv_prefix`; `--csv-full-history` adds per-name rows to the history file.
//!
//! Each action's result is printed to stdout as one line of JSON,
//! `{"index": 0, "command": "LD_summary", "ok": ...}` or `{..., "error": "..."}` (with a
//! `"file"` key for `run` and `run-dir`); errors are also printed to stderr. The exit status is
//! 0 when every action succeeded, 1 otherwise, 2 for a usage error (no subcommand included),
//! 99 when every action ran but a run's `thresholds` failed or aborted it (the actions after
//! that run still run, so reports are written), and 130 after Ctrl-C. The first Ctrl-C stops
//! the running test gracefully, skips the document's remaining `LD_start_test` actions and
//! still runs its report and summary actions; a second Ctrl-C exits at once.
//!
//! The Python CLI's hidden flags still work without a subcommand: `-e FILE`, `-d DIR`,
//! `--execute_str JSON` and `-c PATH` each run, in that order, when given. Logs go to stderr;
//! `RUST_LOG` sets their filter (default `info`).

mod colour;
mod compare;
mod demo;
mod demo_target;
mod distributed;
mod import;
mod legacy;
mod listing;
mod output;
mod serve;

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
    command: Option<Command>,
    /// The Python CLI's hidden flags (`-e`, `-d`, `--execute_str`, `-c`), used without a
    /// subcommand.
    #[command(flatten)]
    legacy: legacy::LegacyFlags,
    /// Write Locust's CSV files PREFIX_stats.csv, PREFIX_failures.csv, PREFIX_exceptions.csv
    /// and PREFIX_stats_history.csv for runs that set no csv_prefix.
    #[arg(long, global = true, value_name = "PREFIX")]
    csv: Option<String>,
    /// With --csv: per-name rows in PREFIX_stats_history.csv too.
    #[arg(long, global = true, requires = "csv")]
    csv_full_history: bool,
    /// Colour in logs: auto (on a terminal, unless NO_COLOR; CLICOLOR_FORCE forces it),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = colour::ColorChoice::Auto)]
    color: colour::ColorChoice,
    /// The directory every file a run writes goes to (reports), created when missing;
    /// an action's own `output_dir` keyword overrides it. Default: the current directory.
    #[arg(long, global = true, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Keep a run's web UI serving after the run for this long (seconds, or "5m"; -1 until
    /// Ctrl-C or POST /quit), for runs whose web_ui_dict gives no linger; meanwhile its "New
    /// run" button (POST /swarm) starts another run of the same plan. Default: it closes with
    /// the run.
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
    /// List every action command (built in, and added by linked crates) with its parameters.
    Commands(listing::CommandsArgs),
    /// Serve the control socket: clients send action documents over TCP (or TLS).
    Serve(serve::ServeArgs),
    /// Serve MCP on stdin/stdout (server "loaddensity"): tools to run tests, run action
    /// documents, read summaries and write reports, for an AI assistant.
    Mcp,
    /// Write a project template: PATH/LoadDensity/keyword/keyword{1,2}.json, README.md, run.sh.
    Init {
        /// Where to create the LoadDensity folder.
        path: PathBuf,
        /// Overwrite files that exist already.
        #[arg(long)]
        force: bool,
    },
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

/// The exit status when every action ran but a run's thresholds failed or aborted it.
const THRESHOLD_EXIT: u8 = 99;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.is_none() && cli.legacy.is_empty() {
        // What the Python CLI prints, and its status.
        eprintln!("argparse received invalid data (try --help)");
        return ExitCode::from(2);
    }
    init_tracing(colour::colour_for_stderr(cli.color));
    load_density::output_dir::set_output_dir(cli.output_dir.clone());
    if let Some(linger) = cli.web_ui_linger {
        load_density::web::set_default_linger(linger);
    }
    if let Some(Command::Compare(args)) = &cli.command {
        return compare::main(args);
    }
    load_density::interrupt::install();
    let code = match run(cli) {
        Ok(true) if output::threshold_failed() => ExitCode::from(THRESHOLD_EXIT),
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            load_density::console::eprint_line(format_args!("error: {error:#}"));
            ExitCode::FAILURE
        }
    };
    if load_density::interrupt::interrupted() {
        return ExitCode::from(load_density::interrupt::EXIT_CODE);
    }
    code
}

/// Runs the command; `Ok(false)` when something it ran failed (already reported).
fn run(cli: Cli) -> anyhow::Result<bool> {
    load_density::monitor::set_default_csv(cli.csv, cli.csv_full_history);
    let Some(command) = cli.command else {
        return cli.legacy.run();
    };
    match command {
        Command::Run { files } => output::print_files(&executor::execute_files(&files)),
        Command::RunDir { dir } => output::print_files(&executor::execute_dir(&dir)?),
        Command::RunStr { json } => output::print_results(None, &executor::execute_str(&json)?),
        Command::Demo(args) => demo::run(&args),
        Command::Master(args) => distributed::master(&args),
        Command::Worker(args) => distributed::worker(&args),
        Command::Commands(args) => listing::run(&args),
        Command::Serve(args) => serve::run(args),
        Command::Mcp => {
            load_density::mcp::serve_stdio()?;
            Ok(true)
        }
        Command::Init { path, force } => {
            for file in load_density::project::create_project(&path, force)? {
                println!("{}", file.display());
            }
            Ok(true)
        }
        Command::Compare(_) => unreachable!("handled in main"),
        Command::Har(args) => import::har(&args),
        Command::Openapi(args) => import::openapi(&args),
    }
}

/// Logs to stderr, and stops trying once stderr is gone (a closed pipe), so a logger that
/// lost its reader costs nothing and never fails the run.
struct QuietStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QuietStderr {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        if STDERR_LOGS_GONE.load(std::sync::atomic::Ordering::Relaxed) {
            Box::new(std::io::sink())
        } else {
            Box::new(QuietWriter(std::io::stderr()))
        }
    }
}

static STDERR_LOGS_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

struct QuietWriter(std::io::Stderr);

impl std::io::Write for QuietWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.write(buf) {
            Ok(n) => Ok(n),
            Err(_) => {
                STDERR_LOGS_GONE.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(buf.len())
            }
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

fn init_tracing(ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Only fails when a subscriber is already set, which nothing here does.
    let _ = tracing_subscriber::fmt()
        .with_ansi(ansi)
        .with_env_filter(filter)
        .with_writer(QuietStderr)
        .try_init();
}
