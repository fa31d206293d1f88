//! `LD_generate_html_report`: one self-contained HTML file describing the run.
//!
//! The Python version wrote one table per record, which no one can read past a few thousand
//! records. This report holds, with nothing loaded from the network (inline CSS, inline SVG,
//! no script; its Content-Security-Policy forbids loading anything else):
//! - the run: runner mode, user type, users, spawn rate, configured and actual length, start
//!   and end, workers (from the last run that finished in this process, when there is one);
//! - the totals, and the threshold verdicts when the run had thresholds;
//! - one row per request name: count, failures, RPS, min, mean, p50 to p99.9 (HDR) and max,
//!   and the corrected latency's p50, p90, p99 and max when the run had a schedule;
//! - inline SVG charts over time, from the run monitor's per-second samples
//!   ([`crate::monitor`]): requests/s and failures/s; p50, p95 and p99 of the requests ending
//!   each second; users; dropped iterations/s (zero for runs without a schedule).
//!   Without a run in this process, only requests/s and failures/s, from the statistics'
//!   own per-second series;
//! - errors grouped by message, and the first failure records;
//! - how many records the record cap did not keep.
//!
//! It reads the record store's exact statistics, so it covers every request since the last
//! `LD_clear_records`, and writes the file through a buffered writer.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use load_density_core::{RequestStats, StatsEntry, TestRecord};

use super::svg::svg_chart;
use super::text::{civil_utc, escape_html, report_path, write_file};
use super::{last_run, LastRun};
use crate::monitor::ReportPoint;
use crate::report::ReportError;

/// The name used when none is given.
pub const DEFAULT_NAME: &str = "default_name";
/// Failure records listed at most.
pub const FIRST_FAILURES: usize = 50;
/// Error groups listed at most.
pub const MAX_ERROR_GROUPS: usize = 200;
/// Percentiles of the per-name table.
pub const PERCENTILES: [(f64, &str); 6] = [
    (50.0, "p50"),
    (90.0, "p90"),
    (95.0, "p95"),
    (99.0, "p99"),
    (99.9, "p99.9"),
    (100.0, "max"),
];
/// Corrected-latency percentiles of the per-name table (runs with a schedule only).
pub const CORRECTED_PERCENTILES: [(f64, &str); 4] =
    [(50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (100.0, "max")];

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h1{margin-bottom:0}.muted{color:#666}table{border-collapse:collapse;margin:1em 0}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#eee}\
td.l,th.l{text-align:left}.ok{color:#17803d;font-weight:bold}.bad{color:#c0272d;font-weight:bold}\
.notice{background:#fff4ce;border:1px solid #e0c060;padding:.5em}svg{background:#fafafa;\
border:1px solid #ddd;margin:.5em 0}svg text{font-size:11px;fill:#444}";

/// Writes `<html_name>.html` about the records and statistics in `store` and the last run,
/// and returns the path.
///
/// # Errors
/// An empty name, or the file cannot be written.
pub fn generate_html_report(store: &TestRecord, html_name: &str) -> Result<PathBuf, ReportError> {
    let path = report_path(html_name, ".html")?;
    let stats = store.stats();
    let run = last_run();
    let path = write_file(path, |out| write_report(out, store, &stats, run.as_ref()))?;
    tracing::info!(path = %path.display(), "HTML report written");
    Ok(path)
}

fn write_report(
    out: &mut impl Write,
    store: &TestRecord,
    stats: &RequestStats,
    run: Option<&LastRun>,
) -> io::Result<()> {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\"/>\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\"/>\n\
         <title>Load Density Report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Load Density Report</h1>\n<p class=\"muted\">Generated {}</p>\n",
        utc(SystemTime::now())
    )?;
    let total = stats.total();
    let duration_s = run
        .map(|r| r.summary.duration_s)
        .filter(|d| *d > 0.0)
        .unwrap_or_else(|| span_s(total));
    write_run(out, run, duration_s)?;
    write_totals(out, total, duration_s)?;
    if let Some(run) = run {
        write_thresholds(out, run)?;
    }
    let dropped = store.dropped();
    if dropped > 0 {
        writeln!(
            out,
            "<p class=\"notice\" id=\"dropped\">{dropped} records were counted in the statistics \
             but not kept as records: the record store was full (capacity {}). Every figure \
             here covers them; the failure list does not.</p>",
            store.capacity()
        )?;
    }
    if total.num_requests() == 0 {
        out.write_all(b"<p class=\"notice\" id=\"empty\">No request was recorded.</p>\n")?;
    }
    write_names(out, stats, duration_s)?;
    write_charts(out, total, run)?;
    write_errors(out, stats)?;
    write_first_failures(out, store)?;
    out.write_all(b"</body>\n</html>\n")
}

fn write_run(out: &mut impl Write, run: Option<&LastRun>, duration_s: f64) -> io::Result<()> {
    out.write_all(b"<h2>Run</h2>\n<table id=\"run\">\n")?;
    let row = |out: &mut dyn Write, key: &str, value: &str| {
        writeln!(
            out,
            "<tr><th class=\"l\">{key}</th><td class=\"l\">{}</td></tr>",
            escape_html(value)
        )
    };
    match run {
        Some(run) => {
            let s = &run.summary;
            let user = s
                .user_detail
                .get("user")
                .and_then(|v| v.as_str())
                .unwrap_or("fast_http_user");
            row(out, "Runner mode", &s.runner_mode)?;
            row(out, "User type", user)?;
            // The plan: its groups (or user type and options), host and load model.
            row(
                out,
                "Plan",
                &serde_json::Value::Object(s.user_detail.clone()).to_string(),
            )?;
            if let Some(host) = &run.recording.host {
                row(out, "Host", host)?;
            }
            row(
                out,
                "Load model",
                &run.recording.load_model.as_ref().map_or_else(
                    || "constant_users (user_count at spawn_rate)".to_owned(),
                    serde_json::Value::to_string,
                ),
            )?;
            row(
                out,
                "Users",
                &format!("{} (spawned {})", s.user_count, s.users_spawned),
            )?;
            row(out, "Spawn rate", &format!("{}/s", s.spawn_rate))?;
            row(
                out,
                "Configured length",
                &s.test_time
                    .map_or_else(|| "until stopped".to_owned(), |t| format!("{t} s")),
            )?;
            let start = run
                .ended
                .checked_sub(Duration::from_secs_f64(s.duration_s.max(0.0)))
                .unwrap_or(run.ended);
            row(out, "Start", &utc(start))?;
            row(out, "End", &utc(run.ended))?;
            row(out, "Workers", &run.workers.to_string())?;
        }
        None => row(
            out,
            "Run",
            "no run finished in this process; figures from the record store",
        )?,
    }
    row(out, "Duration", &format!("{duration_s:.1} s"))?;
    out.write_all(b"</table>\n")
}

fn write_totals(out: &mut impl Write, total: &StatsEntry, duration_s: f64) -> io::Result<()> {
    write!(
        out,
        "<h2>Totals</h2>\n<table id=\"totals\"><tr><th>Requests</th><th>Successes</th>\
         <th>Failures</th><th>Failure rate</th><th>RPS</th><th>p50 ms</th><th>p95 ms</th>\
         <th>p99 ms</th><th>max ms</th></tr>\n<tr><td>{}</td><td>{}</td><td>{}</td>\
         <td>{:.2} %</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td>\
         </tr></table>\n",
        total.num_requests(),
        total.num_successes(),
        total.num_failures(),
        total.failure_ratio() * 100.0,
        rate(total.num_requests(), duration_s),
        total.percentile_ms(50.0),
        total.percentile_ms(95.0),
        total.percentile_ms(99.0),
        total.max_response_time_us() as f64 / 1000.0,
    )
}

fn write_thresholds(out: &mut impl Write, run: &LastRun) -> io::Result<()> {
    let (Some(results), Some(verdict)) = (&run.summary.thresholds, run.summary.verdict) else {
        return Ok(());
    };
    let class = if verdict == crate::thresholds::Verdict::Passed {
        "ok"
    } else {
        "bad"
    };
    write!(
        out,
        "<h2>Thresholds</h2>\n<p>Verdict: <span id=\"verdict\" class=\"{class}\">{}</span></p>\n\
         <table id=\"thresholds\"><tr><th class=\"l\">Metric</th><th class=\"l\">Condition</th>\
         <th>Value</th><th>Result</th></tr>\n",
        verdict.as_str()
    )?;
    for result in results {
        writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            escape_html(&result.metric),
            escape_html(&result.condition),
            result.value_text(),
            if result.ok { "ok" } else { "bad" },
            if result.ok { "pass" } else { "fail" },
        )?;
    }
    out.write_all(b"</table>\n")
}

fn write_names(out: &mut impl Write, stats: &RequestStats, duration_s: f64) -> io::Result<()> {
    out.write_all(
        b"<h2>Requests by name</h2>\n<table id=\"names\"><tr><th class=\"l\">Type</th>\
          <th class=\"l\">Name</th><th>Count</th><th>Failures</th><th>RPS</th><th>min ms</th>\
          <th>mean ms</th>",
    )?;
    for (_, label) in PERCENTILES {
        write!(out, "<th>{label} ms</th>")?;
    }
    // The corrected latency (from the iterations' due times), for runs with a schedule.
    let corrected = stats.total().corrected_histogram().is_some();
    if corrected {
        for (_, label) in CORRECTED_PERCENTILES {
            write!(out, "<th>corrected {label} ms</th>")?;
        }
    }
    out.write_all(b"</tr>\n")?;
    for (entry, class) in stats
        .entries()
        .into_iter()
        .map(|e| (e, ""))
        .chain([(stats.total(), " class=\"total\"")])
    {
        let name = if std::ptr::eq(entry, stats.total()) {
            "Aggregated"
        } else {
            entry.name()
        };
        write!(
            out,
            "<tr{class}><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td>{:.1}</td><td>{:.2}</td><td>{:.2}</td>",
            escape_html(entry.request_type()),
            escape_html(name),
            entry.num_requests(),
            entry.num_failures(),
            rate(entry.num_requests(), duration_s),
            entry.min_response_time_us() as f64 / 1000.0,
            entry.mean_response_time_ms(),
        )?;
        for (p, _) in PERCENTILES {
            write!(out, "<td>{:.2}</td>", entry.percentile_ms(p))?;
        }
        if corrected {
            for (p, _) in CORRECTED_PERCENTILES {
                match entry.corrected_percentile_ms(p) {
                    Some(ms) => write!(out, "<td>{ms:.2}</td>")?,
                    None => out.write_all(b"<td></td>")?,
                }
            }
        }
        out.write_all(b"</tr>\n")?;
    }
    out.write_all(b"</table>\n")
}

fn write_charts(out: &mut impl Write, total: &StatsEntry, run: Option<&LastRun>) -> io::Result<()> {
    out.write_all(b"<h2>Over time</h2>\n")?;
    let points: Vec<ReportPoint> = run
        .map(|r| r.recording.history.points().copied().collect())
        .unwrap_or_default();
    if points.is_empty() {
        // No run monitor sampled this data: the statistics' own per-second series.
        let seconds: Vec<(u64, u64, u64)> = total.per_second().collect();
        let series = [
            (
                "requests/s",
                "#1f77b4",
                seconds.iter().map(|(t, r, _)| (*t, *r as f64)).collect(),
            ),
            (
                "failures/s",
                "#d62728",
                seconds.iter().map(|(t, _, f)| (*t, *f as f64)).collect(),
            ),
        ];
        return svg_chart(
            out,
            "chart-rps",
            "Requests and failures per second",
            &series,
        );
    }
    let series_of = |f: fn(&ReportPoint) -> f64| -> Vec<(u64, f64)> {
        points.iter().map(|p| (p.time_s, f(p))).collect()
    };
    svg_chart(
        out,
        "chart-rps",
        "Requests and failures per second",
        &[
            ("requests/s", "#1f77b4", series_of(|p| p.rps)),
            ("failures/s", "#d62728", series_of(|p| p.fps)),
        ],
    )?;
    svg_chart(
        out,
        "chart-latency",
        "Response time (ms) of the requests ending each second",
        &[
            ("p50", "#2ca02c", series_of(|p| p.p50_ms)),
            ("p95", "#ff7f0e", series_of(|p| p.p95_ms)),
            ("p99", "#9467bd", series_of(|p| p.p99_ms)),
        ],
    )?;
    svg_chart(
        out,
        "chart-users",
        "Users",
        &[("users", "#17becf", series_of(|p| p.users))],
    )?;
    svg_chart(
        out,
        "chart-dropped",
        "Dropped iterations per second",
        &[("dropped/s", "#8c564b", series_of(|p| p.dropped_per_s))],
    )
}

fn write_errors(out: &mut impl Write, stats: &RequestStats) -> io::Result<()> {
    let groups = stats.errors();
    if groups.is_empty() {
        return Ok(());
    }
    out.write_all(
        b"<h2>Errors</h2>\n<table id=\"errors\"><tr><th>Occurrences</th><th class=\"l\">Type</th>\
          <th class=\"l\">Name</th><th class=\"l\">Message</th></tr>\n",
    )?;
    for group in groups.iter().take(MAX_ERROR_GROUPS) {
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
            group.occurrences,
            escape_html(&group.request_type),
            escape_html(&group.name),
            escape_html(&group.message)
        )?;
    }
    out.write_all(b"</table>\n")?;
    if groups.len() > MAX_ERROR_GROUPS {
        writeln!(
            out,
            "<p class=\"muted\">{} more groups not shown.</p>",
            groups.len() - MAX_ERROR_GROUPS
        )?;
    }
    Ok(())
}

fn write_first_failures(out: &mut impl Write, store: &TestRecord) -> io::Result<()> {
    store.with_records(|_, failures| {
        if failures.is_empty() {
            return Ok(());
        }
        writeln!(
            out,
            "<h2>First failures</h2>\n<p class=\"muted\">The first {} of {} failure records kept.</p>\n\
             <table id=\"failures\"><tr><th class=\"l\">Start</th><th class=\"l\">Type</th>\
             <th class=\"l\">Name</th><th class=\"l\">URL</th><th>Status</th><th>ms</th>\
             <th class=\"l\">Error</th></tr>",
            failures.len().min(FIRST_FAILURES),
            failures.len()
        )?;
        for record in failures.iter().take(FIRST_FAILURES) {
            writeln!(
                out,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
                 <td class=\"l\">{}</td><td>{}</td><td>{:.2}</td><td class=\"l\">{}</td></tr>",
                utc(record.start_time()),
                escape_html(&record.method),
                escape_html(&record.name),
                escape_html(&record.test_url),
                record.status_code.map(|s| s.to_string()).unwrap_or_default(),
                record.response_time_ms(),
                escape_html(record.error.as_deref().unwrap_or(""))
            )?;
        }
        out.write_all(b"</table>\n")
    })
}

fn rate(count: u64, duration_s: f64) -> f64 {
    if duration_s > 0.0 {
        count as f64 / duration_s
    } else {
        0.0
    }
}

/// Seconds between the first and the last second with requests (at least 1 when any).
fn span_s(total: &StatsEntry) -> f64 {
    let mut seconds = total.per_second().map(|(t, _, _)| t);
    match seconds.next() {
        None => 0.0,
        Some(first) => (seconds.last().unwrap_or(first) - first + 1) as f64,
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (year, month, day, s) = civil_utc(secs);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}
