//! In a distributed run, exporters started in the master's process see the merged run: a
//! `load-density run-str` master with an InfluxDB UDP sink and one `load-density worker`
//! process; the points received equal the master's request count.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_load-density");

#[test]
fn the_master_exports_the_workers_requests() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let udp_port = socket.local_addr()?.port();
    let points = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (points, done) = (points.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 1 << 16];
            while !done.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buffer) {
                    let lines = buffer[..n].iter().filter(|b| **b == b'\n').count();
                    points.fetch_add(lines as u64, Ordering::Relaxed);
                }
            }
        })
    };

    let master_port = unused_local_port();
    let document = json!([
        ["LD_start_influxdb_sink", {"transport": "udp", "host": "127.0.0.1", "port": udp_port}],
        ["LD_start_test", {
            "runner_mode": "master", "master_bind_host": "127.0.0.1",
            "master_bind_port": master_port, "expected_workers": 1,
            "expected_workers_timeout": 30,
            "user_count": 2, "spawn_rate": 10, "test_time": 2, "print_stats": false,
            "host": target.base_url(),
            "tasks": [{"method": "get", "request_url": "/delay/5", "name": "merged"}]
        }],
        ["LD_stop_influxdb_sink"]
    ]);
    let master = Command::new(BIN)
        .args(["run-str", &document.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut worker = Command::new(BIN)
        .args(["worker", "--master-host", "127.0.0.1", "--master-port"])
        .arg(master_port.to_string())
        .args(["--master-timeout", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let output = master.wait_with_output()?;
    let _ = worker.kill();
    let _ = worker.wait();
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    done.store(true, Ordering::Relaxed);
    let _ = reader.join();

    let stdout = String::from_utf8(output.stdout)?;
    let run = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["command"] == "LD_start_test")
        .unwrap_or_else(|| {
            panic!(
                "no LD_start_test result:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let requests = run["ok"]["totals"]["requests"]
        .as_u64()
        .unwrap_or_else(|| panic!("no totals: {run}"));
    assert!(requests > 0, "{run}");
    assert_eq!(target.served(), requests);
    assert_eq!(
        points.load(Ordering::Relaxed),
        requests,
        "InfluxDB points vs the master's count"
    );
    runtime.block_on(target.shutdown());
    Ok(())
}
