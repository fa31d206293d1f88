//! The real binary with its output piped to a reader that goes away early: nothing panics or
//! hangs. A closed stderr silences the console and the document runs to its end; a closed
//! stdout (where the results go) ends with a non-zero status.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on: every request is refused at once.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A document whose run prints the live table every 0.2 s for 3 s, then a summary.
fn document() -> String {
    let port = closed_port();
    format!(
        r#"[["LD_start_test", {{"user_detail_dict": {{"user": "fast_http_user"}},
              "user_count": 2, "spawn_rate": 10, "test_time": 3, "stats_interval": 0.2,
              "wait_time": {{"constant": 0.05}},
              "tasks": [{{"method": "get", "request_url": "http://127.0.0.1:{port}/"}}]}}],
            ["LD_summary"]]"#
    )
}

fn spawn(stdout: Stdio, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(["run-str", &document()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("the binary starts")
}

/// Waits for the process to end, at most `limit`; kills it (and fails) past that.
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
fn a_closed_stderr_silences_the_console_and_the_document_ends() {
    let mut child = spawn(Stdio::piped(), Stdio::piped());
    // Read the first line of stderr, then go away (`2>&1 >/dev/null | head -1`).
    let stderr = child.stderr.take().expect("stderr");
    let mut first = String::new();
    BufReader::new(stderr)
        .read_line(&mut first)
        .expect("a first line");
    assert!(!first.is_empty());
    // The reader is dropped here: stderr is a closed pipe from now on.
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let status = wait_at_most(&mut child, Duration::from_secs(60));
    let stdout = reader.join().expect("stdout reader");
    assert_eq!(status.code(), Some(0), "stdout: {stdout}");
    assert_eq!(
        stdout.lines().count(),
        2,
        "both actions ran and printed: {stdout}"
    );
}

#[test]
fn a_closed_stdout_ends_with_a_non_zero_status() {
    let mut child = spawn(Stdio::piped(), Stdio::piped());
    drop(child.stdout.take());
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = wait_at_most(&mut child, Duration::from_secs(60));
    let stderr = reader.join().expect("stderr reader");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn both_closed_end_without_a_hang() {
    let mut child = spawn(Stdio::piped(), Stdio::piped());
    drop(child.stdout.take());
    drop(child.stderr.take());
    let status = wait_at_most(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1));
}
