//! Ctrl-C (SIGINT) on the real binary running a document of two tests and a report: the
//! first stops the running test gracefully, skips the second test, still writes the report,
//! and exits with 130; a second Ctrl-C exits at once.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A document: two long tests against `target`, then a report and a summary.
fn document(target: &str) -> String {
    let test = format!(
        r#"["LD_start_test", {{"user_detail_dict": {{"user": "fast_http_user"}},
              "user_count": 2, "spawn_rate": 10, "test_time": 120, "stats_interval": 0.2,
              "wait_time": {{"constant": 0.05}},
              "tasks": [{{"method": "get", "request_url": "{target}/"}}]}}]"#
    );
    format!(
        r#"[{test}, {test}, ["LD_generate_summary_report", {{"report_name": "summary"}}],
            ["LD_summary"]]"#
    )
}

/// Starts the binary on `document` in `dir`; returns it and a channel that says when its
/// console shows a running test.
fn start(dir: &std::path::Path, document: &str) -> (Child, mpsc::Receiver<()>) {
    let file = dir.join("two_tests.json");
    std::fs::write(&file, document).expect("write the document");
    let mut child = Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(["run", file.to_str().expect("utf-8 path")])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("stderr");
    let (running_tx, running) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Aggregated") {
                let _ = running_tx.send(());
            }
        }
    });
    (child, running)
}

fn sigint(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[allow(clippy::disallowed_methods)] // a plain test thread, not async code
fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_stops_the_run_skips_the_next_test_writes_the_report_and_exits_130() {
    // Nothing listens: requests are refused at once, so the graceful stop is quick.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, running) = start(dir.path(), &document(&format!("http://127.0.0.1:{port}")));
    running
        .recv_timeout(Duration::from_secs(60))
        .expect("the first test runs");
    let interrupted = Instant::now();
    sigint(&child);
    let status = wait_at_most(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(130));
    assert!(
        interrupted.elapsed() < Duration::from_secs(30),
        "{:?}",
        interrupted.elapsed()
    );

    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0]["ok"]["totals"]["requests"].as_u64() > Some(0),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[1]["error"].as_str(),
        Some("action 1: not run: the document was interrupted by Ctrl-C"),
        "{}",
        lines[1]
    );
    let report = lines[2]["ok"].as_str().expect("the report's path");
    let report = dir.path().join(report);
    assert!(
        report.is_file(),
        "the report is written: {}",
        report.display()
    );
    assert!(lines[3].get("ok").is_some(), "{}", lines[3]);
}

#[test]
#[allow(clippy::disallowed_methods)] // a plain test thread, not async code
fn a_second_ctrl_c_exits_at_once() {
    // A target that accepts and never answers: the graceful stop waits for requests in flight
    // (60 s timeout), so only the second Ctrl-C can end the process quickly.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(64).flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, running) = start(dir.path(), &document(&format!("http://127.0.0.1:{port}")));
    running
        .recv_timeout(Duration::from_secs(60))
        .expect("the first test runs");
    sigint(&child);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still stopping gracefully"
    );
    let second = Instant::now();
    sigint(&child);
    let status = wait_at_most(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130));
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "{:?}",
        second.elapsed()
    );
}
