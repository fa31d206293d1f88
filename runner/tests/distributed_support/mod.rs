//! Shared helpers of the distributed tests: configurations, a hostile master, real Locust
//! processes, fixtures, CSV reading.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The venv's `locust` executable (next to `$LOAD_DENSITY_PYTHON`, or in /var/tmp/ld-venv).
pub fn locust_bin() -> PathBuf {
    let python = std::env::var_os("LOAD_DENSITY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ld-venv/bin/python3"));
    let locust = python
        .parent()
        .map(|dir| dir.join("locust"))
        .unwrap_or_else(|| PathBuf::from("locust"));
    assert!(
        locust.exists(),
        "{} is missing: run .ci/install-deps (it installs Locust into the test venv)",
        locust.display()
    );
    locust
}

/// A fixture file under tests/fixtures/locust.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/locust")
        .join(name)
}

/// A child process killed when dropped (unless it already ended), with its output in a file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Starts `program args...`, stdout and stderr going to `dir/<name>.log`.
    pub fn start(name: &str, dir: &Path, program: &Path, args: &[String]) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("create the log file");
        let err = out.try_clone().expect("clone the log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Self {
            child,
            log,
            name: name.to_owned(),
        }
    }

    /// The output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to end, at most `timeout`; panics (showing its output) if it
    /// does not.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "{} did not end within {timeout:?}; its output:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Rows of a Locust `--csv` stats file, as column -> value maps.
pub fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header line").split(',').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| ((*k).to_owned(), v.trim_matches('"').to_owned()))
                .collect()
        })
        .collect()
}

/// The `Request Count` of the row named `name` (e.g. "Aggregated").
pub fn csv_count(rows: &[HashMap<String, String>], name: &str) -> u64 {
    rows.iter()
        .find(|r| r.get("Name").map(String::as_str) == Some(name))
        .and_then(|r| r.get("Request Count"))
        .unwrap_or_else(|| panic!("no {name} row in {rows:?}"))
        .parse()
        .expect("a request count")
}

/// A `start_test` configuration from JSON.
pub fn config(value: serde_json::Value) -> load_density::StartTest {
    serde_json::from_value(value).expect("a valid start_test configuration")
}

/// A worker of the master on 127.0.0.1:`port`.
pub fn worker_config(port: u16) -> load_density::StartTest {
    config(serde_json::json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": port,
        "master_timeout": 20,
    }))
}

/// A hostile master: acks a worker as a LoadDensity master and sends `plan` (with no shipped
/// files); returns the worker's error.
pub async fn refused_by_the_worker(plan: serde_json::Value) -> String {
    use load_density::distributed::wire::Message;
    use load_density::distributed::Worker;
    use rmpv::Value;
    use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

    let mut router = RouterSocket::new();
    let endpoint = router
        .bind("tcp://127.0.0.1:0")
        .await
        .expect("bind the fake master");
    let port = endpoint
        .to_string()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .expect("the bound port");
    let worker = Worker::start(worker_config(port))
        .await
        .expect("start the worker");
    let hello = tokio::time::timeout(Duration::from_secs(10), router.recv())
        .await
        .expect("client_ready in time")
        .expect("receive");
    let frames = hello.into_vec();
    let identity = frames[0].clone();
    let ready = Message::decode(&frames[1]).expect("decode client_ready");
    assert_eq!(ready.kind, "client_ready");
    let node = ready.node_id;
    let send = |message: Message| {
        let mut zmq = ZmqMessage::from(message.encode());
        zmq.push_front(identity.clone());
        zmq
    };
    let ack = Value::Map(vec![
        ("index".into(), Value::from(0)),
        ("loaddensity".into(), Value::from("0.1.0")),
        ("records".into(), Value::from("all")),
    ]);
    router
        .send(send(Message::new("ack", ack, node.clone())))
        .await
        .expect("send the ack");
    let data = Value::Map(vec![
        ("config".into(), Value::from(plan.to_string())),
        ("files".into(), Value::Array(Vec::new())),
    ]);
    router
        .send(send(Message::new("ld_plan", data, node)))
        .await
        .expect("send the plan");
    tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker ends")
        .expect_err("the plan is refused")
        .to_string()
}

/// Starts a worker from `worker`, waits (at most 60 s) for `master`'s run to end, then for
/// the worker to quit cleanly; returns the master's summary.
pub async fn run_one_worker(
    master: &load_density::distributed::Master,
    worker: load_density::StartTest,
) -> load_density::Summary {
    let worker = load_density::distributed::Worker::start(worker)
        .await
        .expect("start the worker");
    let summary = tokio::time::timeout(std::time::Duration::from_secs(60), master.wait())
        .await
        .expect("the master ends");
    tokio::time::timeout(std::time::Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker ends")
        .expect("the worker quits cleanly");
    summary
}

/// A hostile master's `plan` names a file on the worker's machine: the worker refuses it with
/// an error naming `json_path` and saying such files must be shipped with the plan.
pub async fn refused_as_unshipped(plan: serde_json::Value, json_path: &str) {
    let text = refused_by_the_worker(plan).await;
    assert!(
        text.contains(json_path) && text.contains("shipped with the plan"),
        "{json_path}: {text}"
    );
}
