//! Locust's CSV files, with Locust 2.47's columns and value formats, so that tools reading
//! `locust --csv` output read ours.
//!
//! `csv_prefix` (a `start_test` keyword) or `load-density ... --csv PREFIX` writes
//! `PREFIX_stats.csv`, `PREFIX_failures.csv`, `PREFIX_exceptions.csv` and
//! `PREFIX_stats_history.csv`. The first three are rewritten every second and hold the
//! statistics at that moment (the last write holds the final ones); the history gets a row
//! every second, for the total only, or, with `csv_full_history: true`, for every name too.
//! The web UI's `/stats/requests/csv` and `/stats/failures/csv` downloads are written by
//! the same functions.
//!
//! Formats, as Locust writes them: counts and percentiles are integers (milliseconds,
//! rounded; `N/A` for a name without requests), the median too; averages, minimum, maximum,
//! content size and rates are Python floats (`12.5`, `20.0`); the history's rates are
//! `%2f` (`3.500000`); times in the failures file are `YYYY-MM-DDTHH:MM:SSZ`; the total row is
//! typed `""` and named `Aggregated`; rows are in (name, type) order.
//!
//! Differences: percentiles come from the exact HDR histograms rather than Locust's rounded
//! buckets; with `csv_full_history`, per-name history percentiles are over the whole run so
//! far (Locust uses its last ten seconds); the exceptions file has only its header, since a
//! failed request here is a failure (listed in the failures file), never an exception.

use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use load_density_core::stats::ErrorGroup;
use load_density_core::{RequestStats, StatsEntry};

use super::csv::write_row;
use super::text::{civil_utc, py_float};

/// Percentiles of the stats and history files (Locust's `PERCENTILES_TO_REPORT`).
pub const PERCENTILES: [(f64, &str); 11] = [
    (50.0, "50%"),
    (66.0, "66%"),
    (75.0, "75%"),
    (80.0, "80%"),
    (90.0, "90%"),
    (95.0, "95%"),
    (98.0, "98%"),
    (99.0, "99%"),
    (99.9, "99.9%"),
    (99.99, "99.99%"),
    (100.0, "100%"),
];

/// The stats file's columns before the percentiles.
pub const STATS_COLUMNS: [&str; 11] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
];

/// The failures file's columns.
pub const FAILURES_COLUMNS: [&str; 6] = [
    "Method",
    "Name",
    "Error",
    "Occurrences",
    "First Seen",
    "Last Seen",
];

/// The exceptions file's columns.
pub const EXCEPTIONS_COLUMNS: [&str; 4] = ["Count", "Message", "Traceback", "Nodes"];

/// The history file's columns before the percentiles.
pub const HISTORY_COLUMNS: [&str; 6] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
];

/// The history file's columns after the percentiles.
pub const HISTORY_TOTAL_COLUMNS: [&str; 7] = [
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Locust's median: an integer number of milliseconds (0 without requests).
fn median(entry: &StatsEntry) -> String {
    (entry.percentile_ms(50.0).round() as u64).to_string()
}

fn min_or_zero(entry: &StatsEntry) -> String {
    if entry.num_requests() == 0 {
        "0".to_owned()
    } else {
        py_float(ms(entry.min_response_time_us()))
    }
}

fn avg_content(entry: &StatsEntry) -> String {
    if entry.num_requests() == 0 {
        // Locust's ZeroDivisionError branch returns the integer 0.
        "0".to_owned()
    } else {
        py_float(entry.avg_content_length())
    }
}

fn percentiles(entry: &StatsEntry) -> impl Iterator<Item = String> + '_ {
    PERCENTILES.iter().map(move |(p, _)| {
        if entry.num_requests() == 0 {
            "N/A".to_owned()
        } else {
            (entry.percentile_ms(*p).round() as u64).to_string()
        }
    })
}

/// Rows in Locust's order: by (name, type), then the total.
fn rows(stats: &RequestStats) -> impl Iterator<Item = &StatsEntry> + '_ {
    stats.entries().into_iter().chain([stats.total()])
}

/// Requests and failures per second over the entry's whole life (Locust's `total_rps`).
pub fn total_rates(entry: &StatsEntry) -> (f64, f64) {
    let rps = entry.total_rps();
    (rps, rps * entry.failure_ratio())
}

/// Locust's `current_rps`: the mean over the ten seconds that end two seconds before `now`.
pub fn current_rates(entry: &StatsEntry, now: SystemTime) -> (f64, f64) {
    let Some((first, _, _)) = entry.per_second().next() else {
        return (0.0, 0.0);
    };
    let now_s = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let end = now_s.saturating_sub(2);
    let start = now_s.saturating_sub(12).max(first);
    if end <= start {
        return (0.0, 0.0);
    }
    entry.current_rates(
        UNIX_EPOCH + std::time::Duration::from_secs(end),
        end - start,
    )
}

/// `PREFIX_stats.csv` (and `/stats/requests/csv`): the header and one row per name, then the
/// total.
pub fn write_stats(out: &mut impl Write, stats: &RequestStats) -> io::Result<()> {
    let header: Vec<&str> = STATS_COLUMNS
        .iter()
        .copied()
        .chain(PERCENTILES.iter().map(|(_, label)| *label))
        .collect();
    write_row(out, &header)?;
    for entry in rows(stats) {
        let (rps, fps) = total_rates(entry);
        let mut fields = vec![
            entry.request_type().to_owned(),
            entry.name().to_owned(),
            entry.num_requests().to_string(),
            entry.num_failures().to_string(),
            median(entry),
            py_float(entry.mean_response_time_ms()),
            min_or_zero(entry),
            py_float(ms(entry.max_response_time_us())),
            avg_content(entry),
            py_float(rps),
            py_float(fps),
        ];
        fields.extend(percentiles(entry));
        write_row(out, &fields)?;
    }
    Ok(())
}

/// `PREFIX_failures.csv` (and `/stats/failures/csv`); `seen` gives a group's first and last
/// sighting, unix seconds.
pub fn write_failures(
    out: &mut impl Write,
    stats: &RequestStats,
    seen: impl Fn(&ErrorGroup) -> (f64, f64),
) -> io::Result<()> {
    write_row(out, &FAILURES_COLUMNS)?;
    let mut groups = stats.errors();
    // Locust lists them in key order: (method, name, error).
    groups.sort_by(|a, b| {
        (&a.request_type, &a.name, &a.message).cmp(&(&b.request_type, &b.name, &b.message))
    });
    for group in &groups {
        let (first, last) = seen(group);
        write_row(
            out,
            &[
                group.request_type.to_string(),
                group.name.to_string(),
                group.message.to_string(),
                group.occurrences.to_string(),
                utc_timestamp(first),
                utc_timestamp(last),
            ],
        )?;
    }
    Ok(())
}

/// `PREFIX_exceptions.csv` (and `/exceptions/csv`): the header only.
pub fn write_exceptions(out: &mut impl Write) -> io::Result<()> {
    write_row(out, &EXCEPTIONS_COLUMNS)
}

/// The history file's header.
pub fn write_history_header(out: &mut impl Write) -> io::Result<()> {
    let header: Vec<&str> = HISTORY_COLUMNS
        .iter()
        .copied()
        .chain(PERCENTILES.iter().map(|(_, label)| *label))
        .chain(HISTORY_TOTAL_COLUMNS.iter().copied())
        .collect();
    write_row(out, &header)
}

/// The history rows at `now`: the total, preceded by every name with `full_history`.
pub fn write_history_rows(
    out: &mut impl Write,
    stats: &RequestStats,
    users: u64,
    now: SystemTime,
    full_history: bool,
) -> io::Result<()> {
    let timestamp = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let entries: Vec<&StatsEntry> = if full_history {
        rows(stats).collect()
    } else {
        vec![stats.total()]
    };
    for entry in entries {
        let (rps, fps) = current_rates(entry, now);
        let mut fields = vec![
            timestamp.to_string(),
            users.to_string(),
            entry.request_type().to_owned(),
            entry.name().to_owned(),
            format!("{rps:.6}"),
            format!("{fps:.6}"),
        ];
        fields.extend(percentiles(entry));
        fields.extend([
            entry.num_requests().to_string(),
            entry.num_failures().to_string(),
            median(entry),
            py_float(entry.mean_response_time_ms()),
            min_or_zero(entry),
            py_float(ms(entry.max_response_time_us())),
            avg_content(entry),
        ]);
        write_row(out, &fields)?;
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` from unix seconds (UTC), as Locust's `format_utc_timestamp`.
pub fn utc_timestamp(unix: f64) -> String {
    let (year, month, day, secs) = civil_utc(unix.max(0.0) as u64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
