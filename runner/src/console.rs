//! The Locust-style statistics tables printed while a run goes and when it ends.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

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

/// Which requests-per-second figures a table shows.
#[derive(Debug, Clone, Copy)]
enum Rates {
    /// The live table: over the last seconds elapsed (at most ten).
    Current(SystemTime),
    /// The final table: the average over this many seconds (the whole run, as Locust's).
    Average(f64),
}

impl Rates {
    fn of(self, stats: &RequestStats, entry: &StatsEntry) -> (f64, f64) {
        match self {
            Rates::Current(now) => stats.current_rates_of(entry, now),
            Rates::Average(secs) => entry.average_rates(secs),
        }
    }
}

/// The width of a column: its widest cell (header included), in characters.
fn width_of<'a>(cells: impl Iterator<Item = &'a str>) -> usize {
    cells.map(|c| c.chars().count()).max().unwrap_or(0)
}

fn render_stats(stats: &RequestStats, rates: Rates) -> String {
    const HEADER: [&str; 10] = [
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
    ];
    let cells = |entry: &StatsEntry, kind: &str| -> [String; 10] {
        let (rps, fps) = rates.of(stats, entry);
        [
            kind.to_owned(),
            truncate(entry.name()),
            entry.num_requests().to_string(),
            format!(
                "{}({:.2}%)",
                entry.num_failures(),
                entry.failure_ratio() * 100.0
            ),
            format!("{:.0}", entry.mean_response_time_ms()),
            ms(entry.min_response_time_us()),
            ms(entry.max_response_time_us()),
            format!("{:.0}", entry.percentile_ms(50.0)),
            format!("{rps:.2}"),
            format!("{fps:.2}"),
        ]
    };
    let body: Vec<[String; 10]> = stats
        .entries()
        .into_iter()
        .map(|entry| cells(entry, entry.request_type()))
        .collect();
    let total = cells(stats.total(), "");
    let mut widths = [0usize; 10];
    for (column, width) in widths.iter_mut().enumerate() {
        *width = width_of(
            std::iter::once(HEADER[column])
                .chain(body.iter().map(|r| r[column].as_str()))
                .chain(std::iter::once(total[column].as_str())),
        );
    }
    let line = |out: &mut String, row: &[&str; 10]| {
        let mut text = String::new();
        for (column, cell) in row.iter().enumerate() {
            let width = widths[column];
            let _ = match column {
                0 | 1 => write!(text, "{cell:<width$} "),
                4 | 8 => write!(text, "| {cell:>width$} "),
                _ => write!(text, "{cell:>width$} "),
            };
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    let mut out = String::new();
    line(&mut out, &HEADER);
    let rule_width = widths.iter().sum::<usize>() + widths.len() - 1 + 4;
    let rule = "-".repeat(rule_width);
    let _ = writeln!(out, "{rule}");
    for row in &body {
        line(&mut out, &row.each_ref().map(String::as_str));
    }
    let _ = writeln!(out, "{rule}");
    line(&mut out, &total.each_ref().map(String::as_str));
    out
}

/// Renders the live table: one row per (type, name), then the aggregated row, and the user
/// count. Requests per second are over the last seconds elapsed since the statistics started
/// (at most ten). Columns are as wide as their widest cell.
pub fn stats_table(stats: &RequestStats, users: u64) -> String {
    let mut out = render_stats(stats, Rates::Current(SystemTime::now()));
    let _ = writeln!(
        out,
        "users: {users}  iterations: {}  dropped iterations: {}",
        stats.iterations(),
        stats.dropped_iterations()
    );
    out
}

/// Renders the final table: requests per second are the average over the whole run (from
/// the run's start, or the last statistics reset, to `now`), as Locust's final table shows.
pub fn final_stats_table(stats: &RequestStats, now: SystemTime) -> String {
    let secs = stats.elapsed(now).unwrap_or_else(|| {
        let total = stats.total();
        if total.total_rps() > 0.0 {
            total.num_requests() as f64 / total.total_rps()
        } else {
            0.0
        }
    });
    render_stats(stats, Rates::Average(secs))
}

/// `1h02m03s`, `4m05s` or `6s`: a duration the way the live header shows it.
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// The live table's header line: elapsed time, and the time left when the run has a length.
pub fn clock_line(elapsed: Duration, remaining: Option<Duration>) -> String {
    match remaining {
        Some(left) => format!(
            "elapsed {}, remaining {}",
            format_duration(elapsed),
            format_duration(left)
        ),
        None => format!("elapsed {} (runs until stopped)", format_duration(elapsed)),
    }
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

/// Prints the live table to stderr under a header with the elapsed and remaining time
/// (`test_time` minus elapsed; none for a run without one).
pub fn print_live(stats: &RequestStats, users: u64, elapsed: Duration, test_time: Option<f64>) {
    let remaining = test_time
        .filter(|t| t.is_finite() && *t >= 0.0)
        .map(|t| load_density_core::task::options::saturating_seconds(t).saturating_sub(elapsed));
    eprint_line(format_args!(
        "{}\n{}",
        clock_line(elapsed, remaining),
        stats_table(stats, users)
    ));
}

/// Prints the final tables to stderr; requests per second are whole-run averages.
pub fn print_final(stats: &RequestStats) {
    eprint_line(format_args!(
        "Final statistics\n{}\n{}\n{}",
        final_stats_table(stats, SystemTime::now()),
        percentile_table(stats),
        errors_table(stats)
    ));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    use load_density_core::RequestEvent;

    use super::*;

    fn event(kind: &str, name: &str, second: u64, error: Option<&str>) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from(kind),
            name: Arc::from(name),
            url: Arc::from("http://127.0.0.1/"),
            status: Some(200),
            response_time: Duration::from_millis(2),
            response_length: 1,
            error: error.map(Arc::from),
            start_time: UNIX_EPOCH + Duration::from_secs(second),
            start_delay: None,
        }
    }

    /// The byte offset of every `|` in each line: equal when the columns line up.
    fn bars(table: &str) -> Vec<Vec<usize>> {
        table
            .lines()
            .filter(|l| l.contains('|'))
            .map(|l| l.match_indices('|').map(|(i, _)| i).collect())
            .collect()
    }

    #[test]
    fn columns_are_sized_from_their_contents() {
        let mut stats = RequestStats::new();
        stats.add(&event("MQTT_RECV", "sensors/temperature", 100, None));
        for _ in 0..3 {
            stats.add(&event("GET", "/always-fails", 100, Some("HTTP 500")));
        }
        let table = final_stats_table(&stats, UNIX_EPOCH + Duration::from_secs(101));
        let lines = bars(&table);
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines.iter().all(|l| l == &lines[0]), "{table}");
        assert!(table.contains("3(100.00%)"), "{table}");
        assert!(table.contains("MQTT_RECV sensors/temperature"), "{table}");
    }

    #[test]
    fn the_final_table_shows_the_whole_run_average() {
        // 4 s at 20 requests a second: 80 requests, 20.00 req/s (a fixed ten-second window
        // would say 8.00).
        let mut stats = RequestStats::new();
        stats.mark_start(UNIX_EPOCH + Duration::from_secs(1000));
        for second in 1000..1004 {
            for _ in 0..20 {
                stats.add(&event("GET", "/get", second, None));
            }
        }
        let table = final_stats_table(&stats, UNIX_EPOCH + Duration::from_secs(1004));
        let total = table.lines().last().expect("a total row");
        assert!(total.contains(" 20.00 "), "{table}");
    }

    #[test]
    fn the_clock_line_shows_elapsed_and_remaining_time() {
        assert_eq!(
            clock_line(
                Duration::from_secs(65),
                Some(Duration::from_secs(3600 + 125))
            ),
            "elapsed 1m05s, remaining 1h02m05s"
        );
        assert_eq!(
            clock_line(Duration::from_secs(7), None),
            "elapsed 7s (runs until stopped)"
        );
    }
}
