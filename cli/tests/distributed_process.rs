//! Distributed runs with real processes: `load-density worker` and `load-density master` as
//! children of the test, killed with SIGKILL mid-run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use load_density::distributed::Master;
use load_density::{RunControl, RunState, StartTest};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_load-density");

/// A child `load-density` process, killed when dropped.
struct Proc {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Proc {
    fn start(dir: &Path, name: &str, args: &[String]) -> Self {
        Self::start_with_env(dir, name, args, &[])
    }

    fn start_with_env(dir: &Path, name: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        let out = dir.join(format!("{name}.out"));
        let err = dir.join(format!("{name}.err"));
        let child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("LOAD_DENSITY_CLUSTER_TOKEN")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("start load-density");
        Self { child, out, err }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "load-density did not end within {timeout:?}\nstderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The summary line a finished master or worker printed.
    fn summary(&self) -> Value {
        let text = self.stdout();
        let line = text
            .lines()
            .rev()
            .find(|l| l.starts_with("{\"summary\""))
            .unwrap_or_else(|| panic!("no summary in stdout {text:?}\nstderr:\n{}", self.stderr()));
        serde_json::from_str(line).expect("summary JSON")
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

fn worker_args(port: u16, master_timeout: f64) -> Vec<String> {
    [
        "worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        &port.to_string(),
        "--master-timeout",
        &master_timeout.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Writes `plan` to `dir/plan.json` and starts `load-density master` on `127.0.0.1:port` with
/// it, expecting two workers; `extra` options come before the plan.
fn cli_master(dir: &Path, port: u16, plan: Value, extra: &[&str]) -> Proc {
    let plan_path = dir.join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).expect("write the plan");
    let port = port.to_string();
    let plan_path = plan_path.display().to_string();
    let mut args = vec![
        "master",
        "--expect-workers",
        "2",
        "--bind-host",
        "127.0.0.1",
        "--bind-port",
        &port,
    ];
    args.extend_from_slice(extra);
    args.push(&plan_path);
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    Proc::start(dir, "master", &args)
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_run_goes_missing_and_its_users_move() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let config: StartTest = serde_json::from_value(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 3,
        "expected_workers_timeout": 30,
        "user_count": 6,
        "spawn_rate": 20,
        "test_time": 14,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("config");
    let master = Master::start(config).await.expect("start the master");
    let port = master.local_addr().port();
    let mut workers: Vec<Proc> = (0..3)
        .map(|i| Proc::start(dir.path(), &format!("worker{i}"), &worker_args(port, 30.0)))
        .collect();
    eventually("6 users on 3 workers", Duration::from_secs(30), || {
        master.state() == RunState::Running
            && master.user_count() == 6
            && master
                .workers()
                .iter()
                .filter(|w| w.user_count == 2)
                .count()
                == 3
    })
    .await;
    // Let it run past a report (every 3 s), then kill one worker without warning.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    workers[0].child.kill().expect("SIGKILL a worker");
    let killed_at = Instant::now();
    let _ = workers[0].child.wait();
    eventually(
        "the killed worker marked missing",
        Duration::from_secs(5),
        || master.workers().iter().any(|w| w.state == "missing"),
    )
    .await;
    let missing_after = killed_at.elapsed();
    assert!(missing_after <= Duration::from_secs(5), "{missing_after:?}");
    let missing_id = master
        .workers()
        .into_iter()
        .find(|w| w.state == "missing")
        .map(|w| w.id)
        .expect("a missing worker");
    // Its users go to the two others, 3 each; the run goes on.
    eventually("users re-dispatched", Duration::from_secs(5), || {
        let shares: Vec<u64> = master
            .assignments()
            .iter()
            .map(|(_, c)| c.iter().map(|(_, n)| n).sum())
            .collect();
        shares == vec![3, 3] && master.user_count() == 6
    })
    .await;
    assert_eq!(master.state(), RunState::Running);

    let summary = tokio::time::timeout(Duration::from_secs(40), master.wait())
        .await
        .expect("the master ends");
    let mut survivors = 0;
    for worker in &mut workers[1..] {
        let status = worker.wait(Duration::from_secs(15)).await;
        assert!(status.success(), "{status}\n{}", worker.stderr());
        survivors += worker.summary()["summary"]["totals"]["requests"]
            .as_u64()
            .expect("a request count");
    }
    let per_worker = master.worker_requests();
    let killed_reported = per_worker
        .iter()
        .find(|(id, _)| *id == missing_id)
        .map_or(0, |(_, n)| *n);
    let total = summary.totals.requests;
    let served = target.served();
    // Nothing counted twice: the master holds exactly what the workers reported.
    assert_eq!(total, survivors + killed_reported, "{per_worker:?}");
    assert!(
        killed_reported > 0,
        "the killed worker had reported before it died"
    );
    // Only the killed worker's last unreported seconds are missing (2 users at ~20/s for at
    // most one report interval and a bit).
    assert!(total <= served, "{total} > {served}");
    assert!(
        served - total <= 250,
        "lost too much: served {served}, counted {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_give_up_with_a_clear_message_when_the_master_is_killed() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let plan = json!({
        "user_count": 2,
        "spawn_rate": 10,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    });
    let mut master = cli_master(dir.path(), port, plan, &["--run-time", "120"]);
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| Proc::start(dir.path(), &format!("worker{i}"), &worker_args(port, 3.0)))
        .collect();
    eventually("traffic from both workers", Duration::from_secs(30), || {
        target.served() > 40
    })
    .await;
    master.child.kill().expect("SIGKILL the master");
    let killed_at = Instant::now();
    for worker in &mut workers {
        let status = worker.wait(Duration::from_secs(10)).await;
        let waited = killed_at.elapsed();
        let stderr = worker.stderr();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("has not answered for") && stderr.contains("master_timeout"),
            "{stderr}"
        );
        assert!(
            waited >= Duration::from_secs(2),
            "gave up too early: {waited:?}"
        );
        assert!(
            waited <= Duration::from_secs(3 + 4),
            "gave up too late: {waited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_master_and_workers_run_a_plan_and_agree_with_the_server() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let plan = json!({
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    });
    let mut master = cli_master(dir.path(), port, plan, &["-u", "4", "-r", "10", "-t", "4"]);
    let mut workers: Vec<Proc> = (0..2)
        .map(|i| Proc::start(dir.path(), &format!("worker{i}"), &worker_args(port, 30.0)))
        .collect();
    let status = master.wait(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}\n{}", master.stderr());
    let mut worker_total = 0;
    for worker in &mut workers {
        let status = worker.wait(Duration::from_secs(15)).await;
        assert!(status.success(), "{status}\n{}", worker.stderr());
        worker_total += worker.summary()["summary"]["totals"]["requests"]
            .as_u64()
            .expect("count");
    }
    let summary = master.summary();
    let served = target.served();
    assert!(served > 20, "{served}");
    assert_eq!(summary["summary"]["totals"]["requests"], json!(served));
    assert_eq!(summary["summary"]["runner_mode"], json!("master"));
    assert_eq!(worker_total, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_token_from_the_flag_or_the_environment_admits_and_a_wrong_one_is_refused() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let plan = json!({
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    });
    let mut master = cli_master(
        dir.path(),
        port,
        plan,
        &["-u", "2", "-r", "10", "-t", "3", "--cluster-token", "right"],
    );
    // A wrong token first: refused, status 1, a clear message.
    let mut wrong = Proc::start_with_env(
        dir.path(),
        "wrong",
        &worker_args(port, 30.0),
        &[("LOAD_DENSITY_CLUSTER_TOKEN", "wrong")],
    );
    let status = wrong.wait(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(1), "{}", wrong.stderr());
    assert!(
        wrong.stderr().contains("wrong cluster token"),
        "{}",
        wrong.stderr()
    );
    // The right token, once from the flag and once from the environment.
    let mut flag_args = worker_args(port, 30.0);
    flag_args.extend(["--cluster-token".to_owned(), "right".to_owned()]);
    let mut workers = vec![
        Proc::start(dir.path(), "flag", &flag_args),
        Proc::start_with_env(
            dir.path(),
            "env",
            &worker_args(port, 30.0),
            &[("LOAD_DENSITY_CLUSTER_TOKEN", "right")],
        ),
    ];
    let status = master.wait(Duration::from_secs(60)).await;
    assert!(status.success(), "{status}\n{}", master.stderr());
    let mut worker_total = 0;
    for worker in &mut workers {
        let status = worker.wait(Duration::from_secs(20)).await;
        assert!(status.success(), "{status}\n{}", worker.stderr());
        let requests = worker.summary()["summary"]["totals"]["requests"]
            .as_u64()
            .expect("count");
        assert!(requests > 0, "each admitted worker ran users");
        worker_total += requests;
    }
    let served = target.served();
    assert_eq!(
        master.summary()["summary"]["totals"]["requests"],
        json!(served)
    );
    assert_eq!(worker_total, served);
    assert!(
        !master.stderr().contains("beyond loopback"),
        "a loopback master does not warn\n{}",
        master.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_open_to_every_interface_without_a_token_warns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan_path = dir.path().join("plan.json");
    std::fs::write(
        &plan_path,
        json!({"tasks": [{"method": "get", "request_url": "http://127.0.0.1:9/"}],
               "print_stats": false})
        .to_string(),
    )
    .expect("write the plan");
    let port = unused_local_port().to_string();
    let plan_path = plan_path.display().to_string();
    let run = |name: &str, token: &[&str]| {
        let mut args = vec![
            "master",
            "--expect-workers",
            "1",
            "--expect-workers-timeout",
            "0.5",
            "--bind-host",
            "*",
            "--bind-port",
            &port,
            "-t",
            "0.5",
        ];
        args.extend_from_slice(token);
        args.push(&plan_path);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Proc::start(dir.path(), name, &args)
    };
    let mut open = run("open", &[]);
    // No worker joins: the run ends (with an error saying so); only its start matters here.
    open.wait(Duration::from_secs(30)).await;
    assert!(
        open.stderr()
            .contains("any host that can reach this port can join and read the test plan"),
        "{}",
        open.stderr()
    );
    let mut guarded = run("guarded", &["--cluster-token", "t"]);
    // No worker joins: the run ends (with an error saying so); only its start matters here.
    guarded.wait(Duration::from_secs(30)).await;
    assert!(
        !guarded.stderr().contains("beyond loopback"),
        "{}",
        guarded.stderr()
    );
}
