//! Locust's HTTP API: the same paths, form fields and JSON shapes (keys sorted, as Flask's
//! `jsonify` writes them), so that scripts driving a Locust master drive a LoadDensity run.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use load_density_core::{RequestStats, StatsEntry};
use serde_json::{json, Map, Value};

use super::live::{current_rates, state_name, total_rates, unix_secs_f64, MAX_ERRORS, MAX_ROWS};
use super::Shared;
use crate::env::RunState;
use crate::limits;
use crate::reports::locust_csv;

/// How fresh `/stats/requests` and the CSV files are: requests closer together share one copy
/// of the statistics.
const API_MAX_AGE: Duration = Duration::from_millis(500);
/// How long `/stop` waits for the run to stop (requests in flight finish first).
const STOP_WAIT: Duration = Duration::from_secs(60);
const MISSING_COUNT_OR_RATE: &str =
    "Missing or invalid user_count or spawn_rate from /swarm request";
const RUN_TIME_FORMATS: &str =
    "Valid run_time formats are : 20, 20s, 3m, 2h, 1h20m, 3h30m10s, etc.";

type AppState = State<Arc<Shared>>;

fn json_object(pairs: Vec<(&str, Value)>) -> Value {
    // serde_json keeps insertion order here (`preserve_order`): sort like Flask's jsonify.
    let mut pairs = pairs;
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<Map<String, Value>>(),
    )
}

/// `POST /swarm`: changes the user count (and spawn rate) of the running test; `run_time`
/// schedules a stop. Once the run has ended and while the UI lingers, starts a new run of the
/// same plan with these numbers (Locust's "new test"). Every field is checked before anything
/// changes.
pub(crate) async fn swarm(
    State(shared): AppState,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let host_now = shared.control().host();
    let fail = |message: String| {
        Json(json_object(vec![
            ("host", json!(host_now)),
            ("message", json!(message)),
            ("success", json!(false)),
        ]))
        .into_response()
    };
    let Ok(Form(fields)) = form else {
        return fail(MISSING_COUNT_OR_RATE.to_owned());
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
    };
    let user_count = match field("user_count") {
        None | Some("") => return fail(MISSING_COUNT_OR_RATE.to_owned()),
        Some(value) => match value.parse::<u64>() {
            Ok(n) => n,
            Err(_) => {
                return fail(format!(
                    "Invalid user_count value: '{value}' (must be an integer)"
                ))
            }
        },
    };
    let spawn_rate = match field("spawn_rate") {
        None | Some("") => return fail(MISSING_COUNT_OR_RATE.to_owned()),
        Some(value) => match value.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => rate,
            _ => {
                return fail(format!(
                    "Invalid spawn_rate value: '{value}' (must be a positive number)"
                ))
            }
        },
    };
    // Numbers that parse but no run can follow: 400, with Locust's answer shape.
    if let Err(message) =
        limits::check_user_count(user_count).and_then(|_| limits::check_spawn_rate(spawn_rate))
    {
        tracing::warn!(%message, "/swarm refused");
        return (StatusCode::BAD_REQUEST, fail(message)).into_response();
    }
    if let Some(host) = field("host").map(|h| h.replace(['<', '>'], "")) {
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        let unchanged = host.is_empty() || host_now.as_deref().is_some_and(|now| same(now, &host));
        if !unchanged {
            return fail(format!(
                "The host cannot change during a run (this run targets {})",
                host_now.as_deref().unwrap_or("the URLs of its tasks")
            ));
        }
    }
    let run_time = match field("run_time") {
        None | Some("") => None,
        Some(value) => match parse_timespan(value) {
            Some(seconds) => Some(seconds),
            None => return fail(RUN_TIME_FORMATS.to_owned()),
        },
    };
    match shared.control().state() {
        RunState::Stopping => {
            return fail("The run is stopping: swarm again once it has stopped".to_owned())
        }
        RunState::Stopped => {
            if let Err(message) = new_run(&shared, user_count, spawn_rate, run_time).await {
                return fail(message);
            }
            tracing::info!(user_count, spawn_rate, ?run_time, "new run from the web UI");
        }
        _ => {
            if let Err(error) = shared.control().set_user_count(user_count, spawn_rate) {
                return fail(error.to_string());
            }
            tracing::info!(user_count, spawn_rate, ?run_time, "swarm from the web UI");
        }
    }
    let mut response = vec![
        ("host", json!(host_now)),
        ("message", json!("Swarming started")),
        ("success", json!(true)),
    ];
    if let Some(seconds) = run_time.filter(|s| *s > 0) {
        let control = shared.control().clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            tracing::info!(seconds, "run_time from /swarm is over: stopping");
            control.stop();
        });
        if let Some(old) = shared.run_timer.lock().replace(timer) {
            old.abort();
        }
        response.push(("run_time", json!(seconds)));
    }
    Json(json_object(response)).into_response()
}

/// Starts a new run of the same plan from the lingering UI (see [`super::NewRun`]) and shows
/// it from now on.
async fn new_run(
    shared: &Shared,
    user_count: u64,
    spawn_rate: f64,
    run_time: Option<u64>,
) -> Result<(), String> {
    const ENDED: &str = "The run has ended and this UI cannot start a new one";
    let Some(relaunch) = &shared.relaunch else {
        return Err(ENDED.to_owned());
    };
    // Take the linger, so that it cannot end while the new run starts.
    if !shared
        .live
        .lingering
        .swap(false, std::sync::atomic::Ordering::SeqCst)
    {
        return Err(format!(
            "{ENDED} (it is not lingering: web_ui_dict.linger, --web-ui-linger)"
        ));
    }
    let (reply, answer) = tokio::sync::oneshot::channel();
    let asked = super::NewRun {
        user_count,
        spawn_rate,
        run_time,
        reply,
    };
    let outcome = match relaunch.send(asked).await {
        Ok(()) => answer
            .await
            .unwrap_or_else(|_| Err("the runner is gone".to_owned())),
        Err(_) => Err("the runner is gone".to_owned()),
    };
    match outcome {
        Ok(control) => {
            shared.quit.send_replace(false);
            shared.live.switch(control);
            Ok(())
        }
        Err(message) => {
            shared.live.relaunch_failed();
            Err(format!("The new run could not start: {message}"))
        }
    }
}

/// Locust's timespans: `20` (seconds), `20s`, `3m`, `2h`, `1h20m`, `3h30m10s`.
pub(crate) fn parse_timespan(text: &str) -> Option<u64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let mut seconds = 0u64;
    let mut number = String::new();
    let mut units_seen = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let scale = match c {
            'h' if units_seen.is_empty() => 3600,
            'm' if !units_seen.contains(['m', 's']) => 60,
            's' if !units_seen.contains('s') => 1,
            _ => return None,
        };
        let value: u64 = number.parse().ok()?;
        seconds = seconds.checked_add(value.checked_mul(scale)?)?;
        number.clear();
        units_seen.push(c);
    }
    (number.is_empty() && !units_seen.is_empty()).then_some(seconds)
}

/// `POST /stop`: stops the run and answers once it has stopped (requests in flight finish and
/// are recorded first), like Locust's synchronous stop.
pub(crate) async fn stop(State(shared): AppState) -> Json<Value> {
    if let Some(timer) = shared.run_timer.lock().take() {
        timer.abort();
    }
    tracing::info!("stop from the web UI");
    shared.control().stop();
    let started = Instant::now();
    while shared.control().state() != RunState::Stopped && started.elapsed() < STOP_WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Json(json_object(vec![
        ("message", json!("Test stopped")),
        ("success", json!(true)),
    ]))
}

/// `POST /quit`: ends the UI's linger after the run (`web_ui_dict.linger`), so the process
/// goes on; answers `ok`. While the run goes, it changes nothing (stop it with `POST /stop`).
pub(crate) async fn quit(State(shared): AppState) -> &'static str {
    tracing::info!("quit from the web UI");
    shared.quit.send_replace(true);
    "ok"
}

/// `POST /stats/reset`: clears the run's statistics; answers `ok`.
pub(crate) async fn reset(State(shared): AppState) -> &'static str {
    shared.control().reset_stats();
    shared.live.on_reset();
    "ok"
}

/// Milliseconds to two decimals: a sub-millisecond maximum is not shown as 0 next to a
/// larger average (Locust rounds to whole milliseconds, which its coarser clock can afford).
fn round_ms(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

fn stats_row(stats: &RequestStats, entry: &StatsEntry, now: SystemTime) -> Value {
    let (current_rps, current_fps) = current_rates(stats, entry, now);
    let (total_rps, total_fps) = total_rates(stats, entry, now);
    let min = if entry.num_requests() == 0 {
        json!(0)
    } else {
        json!(round_ms(entry.min_response_time_us() as f64 / 1000.0))
    };
    json_object(vec![
        ("avg_content_length", json!(entry.avg_content_length())),
        ("avg_response_time", json!(entry.mean_response_time_ms())),
        ("current_fail_per_sec", json!(current_fps)),
        ("current_rps", json!(current_rps)),
        (
            "max_response_time",
            json!(round_ms(entry.max_response_time_us() as f64 / 1000.0)),
        ),
        (
            "median_response_time",
            json!(entry.percentile_ms(50.0).round() as u64),
        ),
        ("method", json!(entry.request_type())),
        ("min_response_time", min),
        ("name", json!(entry.name())),
        ("num_failures", json!(entry.num_failures())),
        ("num_requests", json!(entry.num_requests())),
        (
            "response_time_percentile_0.95",
            json!(entry.percentile_ms(95.0).round() as u64),
        ),
        (
            "response_time_percentile_0.99",
            json!(entry.percentile_ms(99.0).round() as u64),
        ),
        ("total_fail_per_sec", json!(total_fps)),
        ("total_rps", json!(total_rps)),
    ])
}

/// Workers that count for `worker_count`: ready, spawning or running.
fn active_workers(shared: &Shared) -> usize {
    shared
        .control()
        .workers()
        .iter()
        .filter(|w| matches!(w.state.as_str(), "ready" | "spawning" | "running"))
        .count()
}

/// `GET /stats/requests`: Locust's live statistics JSON.
pub(crate) async fn requests(State(shared): AppState) -> Json<Value> {
    let stats = shared.live.stats(API_MAX_AGE);
    let now = SystemTime::now();
    let now_f = unix_secs_f64(now);
    let total = stats.total();
    let mut rows: Vec<Value> = stats
        .entries()
        .into_iter()
        .take(MAX_ROWS)
        .map(|e| stats_row(&stats, e, now))
        .collect();
    rows.push(stats_row(&stats, total, now));
    let errors: Vec<Value> = stats
        .errors()
        .into_iter()
        .take(MAX_ERRORS)
        .map(|group| {
            let key = (
                group.request_type.clone(),
                group.name.clone(),
                group.message.clone(),
            );
            let (first_seen, last_seen) = shared.live.error_seen(&key, now_f);
            json_object(vec![
                ("error", json!(&*group.message)),
                ("first_seen", json!(first_seen)),
                ("last_seen", json!(last_seen)),
                ("method", json!(&*group.request_type)),
                ("name", json!(&*group.name)),
                ("occurrences", json!(group.occurrences)),
            ])
        })
        .collect();
    let (current_rps, current_fps) = current_rates(&stats, total, now);
    let (total_rps, total_fps) = total_rates(&stats, total, now);
    let current = shared.live.current_percentiles();
    let fail_ratio = if total.num_requests() == 0 && total.num_failures() > 0 {
        1.0
    } else {
        total.failure_ratio()
    };
    let mut report = vec![
        ("current_fail_per_sec", json!(current_fps)),
        (
            "current_response_time_percentiles",
            json_object(vec![
                (
                    "response_time_percentile_0.5",
                    json!(current.map(|c| c.0.round() as u64)),
                ),
                (
                    "response_time_percentile_0.95",
                    json!(current.map(|c| c.1.round() as u64)),
                ),
            ]),
        ),
        ("current_rps", json!(current_rps)),
        ("errors", Value::Array(errors)),
        ("fail_ratio", json!(fail_ratio)),
        ("state", json!(state_name(shared.control().state()))),
        ("stats", Value::Array(rows)),
        ("total_fail_per_sec", json!(total_fps)),
        ("total_rps", json!(total_rps)),
        ("user_count", json!(shared.control().user_count())),
    ];
    if shared.settings.distributed {
        let workers: Vec<Value> = shared
            .control()
            .workers()
            .iter()
            .map(|w| {
                json_object(vec![
                    ("cpu_usage", json!(w.cpu_percent)),
                    ("id", json!(w.id)),
                    ("memory_usage", json!(w.memory_bytes)),
                    ("state", json!(w.state)),
                    ("user_count", json!(w.user_count)),
                ])
            })
            .collect();
        report.push(("worker_count", json!(active_workers(&shared))));
        report.push(("workers", Value::Array(workers)));
    }
    Json(json_object(report))
}

/// `GET /worker-count`: `{"worker_count": n}` (0 for a local run).
pub(crate) async fn worker_count(State(shared): AppState) -> Json<Value> {
    Json(json!({"worker_count": active_workers(&shared)}))
}

/// `GET /exceptions`: always empty here (a failed request is a failure, listed in `errors`).
pub(crate) async fn exceptions() -> Json<Value> {
    Json(json!({"exceptions": []}))
}

/// `(YYYY-MM-DD, seconds into the day)` of a unix time, UTC.
fn civil(unix: f64) -> (String, u64) {
    let total = unix.max(0.0) as u64;
    let days = (total / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), total % 86_400)
}

fn attachment(kind: &str, extension: &str, content_type: &'static str, body: String) -> Response {
    let (date, secs) = civil(unix_secs_f64(SystemTime::now()));
    let filename = format!(
        "LoadDensity_{date}-{:02}h{:02}_{kind}.{extension}",
        secs / 3600,
        secs / 60 % 60
    );
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment;filename={filename}"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /stats/requests/csv`: Locust's requests CSV ([`locust_csv::write_stats`]).
pub(crate) async fn requests_csv(State(shared): AppState) -> Response {
    let stats = shared.live.stats(API_MAX_AGE);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = locust_csv::write_stats(&mut out, &stats);
    attachment("requests", "csv", "text/csv", csv_text(out))
}

/// `GET /stats/failures/csv`: Locust's failures CSV ([`locust_csv::write_failures`]).
pub(crate) async fn failures_csv(State(shared): AppState) -> Response {
    let stats = shared.live.stats(API_MAX_AGE);
    let now = unix_secs_f64(SystemTime::now());
    let mut out = Vec::new();
    let _ = locust_csv::write_failures(&mut out, &stats, |group| {
        let key = (
            group.request_type.clone(),
            group.name.clone(),
            group.message.clone(),
        );
        shared.live.error_seen(&key, now)
    });
    attachment("failures", "csv", "text/csv", csv_text(out))
}

/// `GET /exceptions/csv`: the header only (see [`exceptions`]).
pub(crate) async fn exceptions_csv() -> Response {
    let mut out = Vec::new();
    let _ = locust_csv::write_exceptions(&mut out);
    attachment("exceptions", "csv", "text/csv", csv_text(out))
}

fn csv_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The summary report of this run (the shape of `LD_generate_summary_report`).
pub(crate) fn summary_json(shared: &Shared) -> Response {
    let stats = shared.live.stats(API_MAX_AGE);
    let summary = crate::report::summary_of(&stats);
    let mut text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    let _ = writeln!(text);
    attachment("summary", "json", "application/json", text)
}
