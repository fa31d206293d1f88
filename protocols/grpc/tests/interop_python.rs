//! Interop with a gRPC server nobody here wrote: Python grpcio serving the greeter of
//! `tests/fixtures/greeter.proto` (`greeter_server.py`), called through the `.proto` and
//! through server reflection (grpcio-reflection).
//!
//! The interpreter is `$LOAD_DENSITY_PYTHON`, else `/var/tmp/ld-venv/bin/python3`, installed
//! with grpcio, grpcio-tools and grpcio-reflection by `.ci/install-deps`. When it is missing
//! the test fails; it never skips.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_success, error_of, harness_with};
use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::unused_local_port;
use serde_json::{json, Value};
use tokio::net::TcpStream;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn python() -> PathBuf {
    let python = std::env::var_os("LOAD_DENSITY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ld-venv/bin/python3"));
    assert!(
        python.exists(),
        "no Python interpreter at {} (set LOAD_DENSITY_PYTHON): run .ci/install-deps",
        python.display()
    );
    python
}

/// The Python greeter, killed by PID when dropped.
struct Greeter {
    child: Child,
    port: u16,
    calls: Arc<AtomicU64>,
    _stubs: tempfile::TempDir,
}

impl Greeter {
    async fn start() -> Self {
        let python = python();
        let stubs = tempfile::tempdir().expect("temp dir");
        let generated = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I"])
            .arg(fixtures())
            .arg(format!("--python_out={}", stubs.path().display()))
            .arg(format!("--grpc_python_out={}", stubs.path().display()))
            .arg(fixtures().join("greeter.proto"))
            .output()
            .expect("run grpc_tools.protoc");
        assert!(
            generated.status.success(),
            "generating the Python stubs failed (run .ci/install-deps): {}",
            String::from_utf8_lossy(&generated.stderr)
        );
        let port = unused_local_port();
        let mut child = Command::new(&python)
            .arg(fixtures().join("greeter_server.py"))
            .arg(port.to_string())
            .env("PYTHONPATH", stubs.path())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python greeter");
        let calls = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("piped stdout");
        let counter = calls.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("CALL ") {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let mut greeter = Self {
            child,
            port,
            calls,
            _stubs: stubs,
        };
        greeter.wait_until_listening().await;
        greeter
    }

    async fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("the Python greeter exited ({status}) (run .ci/install-deps?): {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "the Python greeter did not listen on port {} within 30 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        // Child::kill signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proto_options() -> Value {
    json!({"proto_files": [fixtures().join("greeter.proto").display().to_string()]})
}

fn greeter_tasks(target: &str) -> Value {
    json!([
        {"call": "greeter.Greeter/SayHello", "target": target, "payload": {"name": "Rust"},
         "assertions": [{"type": "json_path", "path": "message", "value": "Hello, Rust!"},
                        {"type": "json_path", "path": "count", "value": 1}]},
        {"service": "greeter.Greeter", "method": "SayHelloStream", "target": target,
         "payload": {"name": "Ada", "times": 3}, "each_message_event": true,
         "assertions": [{"type": "json_path", "path": "2.message", "value": "Hello #2, Ada!"}]},
        {"call": "greeter.Greeter/CollectNames", "target": target,
         "messages": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
         "assertions": [{"type": "json_path", "path": "message", "value": "Hello, A and B and C!"}]},
        {"call": "Greeter/Chat", "target": target, "payload": {"name": "${var.who}"}, "count": 2,
         "assertions": [{"type": "json_path", "path": "1.message", "value": "Hi bob"},
                        {"type": "json_path", "path": "1.count", "value": 2}]},
        {"call": "greeter.Greeter/SayHello", "target": target, "payload": {"name": ""}},
        {"call": "greeter.Greeter/SayHello", "target": target, "payload": {"name": ""},
         "assertions": [{"type": "status_code", "value": "INVALID_ARGUMENT"}]},
    ])
}

async fn exercise(greeter: &Greeter, options: Value, how: &str) {
    let before = greeter.calls();
    let mut variables = load_density_core::Variables::new();
    variables.insert("who", json!("bob"));
    let mut user = harness_with(greeter_tasks(&greeter.target()), options, variables).await;
    assert_success(&user.once(0).await);
    user.run(1, 1).await;
    let events = user.take();
    assert_eq!(
        events.len(),
        4,
        "{how}: 3 messages and the call: {events:?}"
    );
    assert!(events.iter().all(|e| e.is_success()), "{how}: {events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| &*e.request_type == "GRPC_MSG")
            .count(),
        3,
        "{how}"
    );
    assert_success(&user.once(2).await);
    assert_success(&user.once(3).await);
    let invalid = user.once(4).await;
    assert_eq!(invalid.status, Some(3), "{how}: {invalid:?}");
    assert_eq!(
        error_of(&invalid),
        "INVALID_ARGUMENT: name is required",
        "{how}"
    );
    assert_success(&user.once(5).await);
    user.stop().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while greeter.calls() - before < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        greeter.calls() - before,
        6,
        "{how}: the Python server counted every call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_user_calls_a_python_grpcio_server() {
    let greeter = Arc::new(Greeter::start().await);
    exercise(&greeter, proto_options(), "via the .proto").await;
    exercise(&greeter, json!({"reflection": true}), "via reflection").await;

    // Under load, every call the Python server counted is recorded exactly once.
    let counted = greeter.clone();
    let report = assert_protocol_conformance(
        ConformanceCase::new(
            "grpc_user",
            json!([{"call": "greeter.Greeter/SayHello", "payload": {"name": "load"},
                    "assertions": [{"type": "json_path", "path": "message", "value": "Hello, load!"}]}]),
            move || counted.calls(),
            json!([{"call": "greeter.Greeter/SayHello",
                    "target": format!("127.0.0.1:{}", unused_local_port())}]),
        )
        .host(greeter.target())
        .options(proto_options()),
    )
    .await;
    assert!(report.requests() >= 10);
}
