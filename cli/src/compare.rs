//! `load-density compare DB BASELINE RUN`: two stored runs, name by name.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use load_density::store;

/// The exit status of a comparison that found a regression (the thresholds' status).
pub const REGRESSION_EXIT: u8 = 99;

/// Arguments of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The SQLite database written by LD_persist_records.
    database: PathBuf,
    /// The baseline run id.
    baseline: i64,
    /// The run id to compare with the baseline.
    run: i64,
    /// How much (in percent) p50, p95 or p99 may grow before it is a regression.
    #[arg(long, default_value_t = 10.0)]
    max_regression_pct: f64,
    /// Print the comparison as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the comparison: 0 without a regression, 99 with one, 1 on an error.
pub fn main(args: &CompareArgs) -> ExitCode {
    if !(args.max_regression_pct.is_finite() && args.max_regression_pct >= 0.0) {
        eprintln!(
            "error: --max-regression-pct must be a number >= 0, got {}",
            args.max_regression_pct
        );
        return ExitCode::from(2);
    }
    let comparison = match store::compare_runs(
        &args.database,
        args.baseline,
        args.run,
        args.max_regression_pct,
    ) {
        Ok(comparison) => comparison,
        Err(error) => {
            eprintln!("error: {:#}", anyhow::Error::from(error));
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&comparison) {
            Ok(text) => println!("{text}"),
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", comparison.render());
    }
    if comparison.regression {
        ExitCode::from(REGRESSION_EXIT)
    } else {
        ExitCode::SUCCESS
    }
}
