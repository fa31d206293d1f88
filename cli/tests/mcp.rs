//! `load-density mcp` driven by the official MCP Python SDK (PyPI `mcp`, installed by
//! .ci/install-deps into the venv at $LOAD_DENSITY_VENV or /var/tmp/ld-venv) over stdio: lists
//! the tools, runs a short test against an in-process HTTP target with progress
//! notifications, reads the summary, stops a long test, and gets tool errors for bad input.

use std::path::Path;
use std::process::Command;

use load_density_testkit::HttpTarget;
use serde_json::Value;

fn python() -> String {
    std::env::var("LOAD_DENSITY_PYTHON").unwrap_or_else(|_| {
        let venv = std::env::var("LOAD_DENSITY_VENV").unwrap_or_else(|_| "/var/tmp/ld-venv".into());
        format!("{venv}/bin/python3")
    })
}

#[test]
fn the_python_sdk_drives_the_mcp_server() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let target = runtime.block_on(HttpTarget::start()).expect("HTTP target");
    let work = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_client.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_load-density"))
        .arg(target.base_url())
        .arg(work.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run .ci/install-deps to install the MCP SDK): {e}",
                python()
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the MCP client failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("the client prints JSON");
    // Every tool's executor commands exist in this build (reports, HAR, SQLite): none is
    // pending, and the client ran each of them for real.
    assert_eq!(report["pending"], serde_json::json!([]), "{report}");
    assert!(
        report["persisted_records"]
            .as_u64()
            .expect("records persisted")
            > 0,
        "{report}"
    );
    assert!(report["progress_notifications"].as_u64().expect("count") >= 1);
    assert!(target.served() > 0);
    runtime.block_on(target.shutdown());
}

/// One JSON-RPC line to the server, and the next line it writes (within 60 s).
struct Raw {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Raw {
    fn start() -> Raw {
        use std::io::BufRead as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_load-density"))
            .arg("mcp")
            .env("RUST_LOG", "error")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mcp starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Raw {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, line: &str) {
        use std::io::Write as _;
        writeln!(self.stdin, "{line}").expect("write");
        self.stdin.flush().expect("flush");
    }

    fn reply(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the server answers");
        serde_json::from_str(&line).expect("a JSON-RPC line")
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn malformed_lines_and_unknown_tools_do_not_stop_the_server() {
    let mut raw = Raw::start();
    raw.send(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#,
    );
    assert_eq!(raw.reply()["result"]["serverInfo"]["name"], "loaddensity");
    raw.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    raw.send("this is not JSON");
    raw.send(
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope","arguments":{}}}"#,
    );
    let unknown = raw.reply();
    assert_eq!(unknown["id"], 2, "{unknown}");
    assert_eq!(unknown["result"]["isError"], true, "{unknown}");
    assert_eq!(
        unknown["result"]["content"][0]["text"],
        "unknown tool: nope"
    );
    raw.send(
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"load_density.create_project","arguments":{"path":7}}}"#,
    );
    let bad = raw.reply();
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    assert!(bad["result"]["content"][0]["text"]
        .as_str()
        .expect("text")
        .contains("\"path\" must be a string"));
    raw.send(r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#);
    let list = raw.reply();
    assert_eq!(list["result"]["tools"].as_array().expect("tools").len(), 12);
}
