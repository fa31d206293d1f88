//! The Locust-style statistics tables printed while a run goes and when it ends.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use load_density_core::{RequestStats, StatsEntry};

const NAME_WIDTH: usize = 50;

fn truncate(name: &str) -> String {
    if name.chars().count() <= NAME_WIDTH {
        name.to_owned()
    } else {
        let kept: String = name.chars().take(NAME_WIDTH - 3).collect();
        format!("{kept}...")
    }
}

fn ms(us: u64) -> String {
    format!("{:.0}", us as f64 / 1000.0)
}

fn row(out: &mut String, entry: &StatsEntry, kind: &str, now: SystemTime) {
    let (rps, fps) = entry.current_rates(now, 10);
    let _ = writeln!(
        out,
        "{:<8} {:<width$} {:>8} {:>8}({:.2}%) | {:>7.0} {:>7} {:>7} {:>7.0} | {:>8.2} {:>10.2}",
        kind,
        truncate(entry.name()),
        entry.num_requests(),
        entry.num_failures(),
        entry.failure_ratio() * 100.0,
        entry.mean_response_time_ms(),
        ms(entry.min_response_time_us()),
        ms(entry.max_response_time_us()),
        entry.percentile_ms(50.0),
        rps,
        fps,
        width = NAME_WIDTH
    );
}

/// Renders the live table: one row per (type, name), then the aggregated row.
pub fn stats_table(stats: &RequestStats, users: u64) -> String {
    let now = SystemTime::now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:<width$} {:>8} {:>17} | {:>7} {:>7} {:>7} {:>7} | {:>8} {:>10}",
        "Type",
        "Name",
        "# reqs",
        "# fails",
        "Avg",
        "Min",
        "Max",
        "Med",
        "req/s",
        "failures/s",
        width = NAME_WIDTH
    );
    let rule = "-".repeat(NAME_WIDTH + 95);
    let _ = writeln!(out, "{rule}");
    for entry in stats.entries() {
        row(&mut out, entry, entry.request_type(), now);
    }
    let _ = writeln!(out, "{rule}");
    row(&mut out, stats.total(), "", now);
    let _ = writeln!(
        out,
        "users: {users}  iterations: {}  dropped iterations: {}",
        stats.iterations(),
        stats.dropped_iterations()
    );
    out
}

/// Renders the response-time percentiles table. When the run had a schedule, each row is
/// followed by a `corrected` row: the latency measured from the iteration's due time.
pub fn percentile_table(stats: &RequestStats) -> String {
    const PERCENTILES: [f64; 10] = [50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 100.0];
    let mut out = String::from("Response time percentiles (ms, from HDR histograms)\n");
    let _ = write!(out, "{:<8} {:<width$}", "Type", "Name", width = NAME_WIDTH);
    for p in PERCENTILES {
        let _ = write!(out, " {:>7}", format!("{p}%"));
    }
    let _ = writeln!(out, " {:>8}", "# reqs");
    let mut line = |entry: &StatsEntry, kind: &str| {
        let _ = write!(
            out,
            "{:<8} {:<width$}",
            kind,
            truncate(entry.name()),
            width = NAME_WIDTH
        );
        for p in PERCENTILES {
            let _ = write!(out, " {:>7.1}", entry.percentile_ms(p));
        }
        let _ = writeln!(out, " {:>8}", entry.num_requests());
        if let Some(histogram) = entry.corrected_histogram() {
            let _ = write!(
                out,
                "{:<8} {:<width$}",
                "",
                "  corrected",
                width = NAME_WIDTH
            );
            for p in PERCENTILES {
                let value = entry.corrected_percentile_ms(p).unwrap_or(0.0);
                let _ = write!(out, " {value:>7.1}");
            }
            let _ = writeln!(out, " {:>8}", histogram.len());
        }
    };
    for entry in stats.entries() {
        line(entry, entry.request_type());
    }
    line(stats.total(), "");
    out
}

/// Renders the failures grouped by message.
pub fn errors_table(stats: &RequestStats) -> String {
    let errors = stats.errors();
    if errors.is_empty() {
        return String::new();
    }
    let mut out = String::from("Error report\n");
    let _ = writeln!(out, "{:>8}  {:<8} {:<30} Message", "# occ.", "Type", "Name");
    for group in errors {
        let _ = writeln!(
            out,
            "{:>8}  {:<8} {:<30} {}",
            group.occurrences,
            group.request_type,
            truncate(&group.name),
            group.message
        );
    }
    out
}

/// Set once a write to stderr failed (whatever read it went away): the console stays silent.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` and a newline to stderr. Never panics: once a write fails (a closed pipe,
/// `2>&1 >/dev/null | head -1`), the console is silent for the rest of the process.
pub fn eprint_line(text: impl std::fmt::Display) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    if writeln!(stderr, "{text}")
        .and_then(|()| stderr.flush())
        .is_err()
    {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// Writes `text` and a newline to stdout and flushes it. Never panics.
///
/// # Errors
/// The write error, when whatever read stdout went away: machine-readable output is lost, so
/// the caller ends with a non-zero status.
pub fn print_line(text: impl std::fmt::Display) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()
}

/// Prints the live table to stderr (stdout stays for machine-readable output).
pub fn print_stats(stats: &RequestStats, users: u64) {
    eprint_line(stats_table(stats, users));
}

/// Prints the final tables to stderr.
pub fn print_final(stats: &RequestStats) {
    eprint_line(format_args!(
        "Final statistics\n{}\n{}\n{}",
        stats_table(stats, 0),
        percentile_table(stats),
        errors_table(stats)
    ));
}
