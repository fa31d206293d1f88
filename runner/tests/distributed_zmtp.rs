//! The master's ZMTP transport against hostile raw TCP peers: frame headers claiming 2^62
//! bytes, `max_message_size + 1` or 1 GiB are refused before anything is read (the master's
//! RSS and address space stay flat); wrong greetings, a peer that disconnects
//! mid-frame and a peer that never reads are dropped; `max_peers` caps connections and the
//! workers kept. After each, a real worker still runs and the counts agree with the target.

mod distributed_support;

use distributed_support::{run_one_worker, worker_config};

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use load_density::distributed::wire::Message;
use load_density::distributed::Master;
use load_density::{RunControl, StartTest};
use load_density_testkit::HttpTarget;
use rmpv::Value;
use serde_json::json;

/// Tests here measure the whole process: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MAX_MESSAGE: usize = 1 << 20;

/// A `/proc/self/status` figure (`VmRSS`, `VmSize`), in KiB.
fn status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/self/status"))
}

fn master_config(target: &HttpTarget, extra: serde_json::Value) -> StartTest {
    let mut value = json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 1,
        "expected_workers_timeout": 60,
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 3,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "max_message_size": MAX_MESSAGE,
        "tasks": [{"method": "get", "request_url": "/get"}]
    });
    if let (Some(value), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        value.extend(extra.clone());
    }
    serde_json::from_value(value).expect("a valid start_test configuration")
}

/// Runs a real worker under `master` and checks the run completes with exact counts.
async fn a_real_worker_completes_the_run(master: &Master, target: &HttpTarget) {
    let summary = run_one_worker(master, worker_config(master.local_addr().port())).await;
    let served = target.served();
    assert!(served > 5, "too little traffic: {served}");
    assert_eq!(summary.totals.requests, served);
    assert_eq!(summary.totals.failures, 0);
}

fn greeting(major: u8) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = major;
    g[12..16].copy_from_slice(b"NULL");
    g
}

fn frame(flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(short) = u8::try_from(body.len()) {
        out.extend_from_slice(&[flags, short]);
    } else {
        out.push(flags | 0x02);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn ready_command(identity: &[u8]) -> Vec<u8> {
    let mut body = b"\x05READY".to_vec();
    for (name, value) in [
        (&b"Socket-Type"[..], &b"DEALER"[..]),
        (b"Identity", identity),
    ] {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    frame(0x04, &body)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the master");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(15)))
        .expect("write timeout");
    stream
}

/// A raw DEALER that completed the handshake as `identity`.
fn handshaken(port: u16, identity: &str) -> TcpStream {
    let mut stream = connect(port);
    stream.write_all(&greeting(3)).expect("send the greeting");
    let mut theirs = [0u8; 64];
    stream
        .read_exact(&mut theirs)
        .expect("the master's greeting");
    assert_eq!((theirs[0], theirs[10]), (0xff, 3), "a ZMTP 3 greeting");
    stream
        .write_all(&ready_command(identity.as_bytes()))
        .expect("send READY");
    let mut header = [0u8; 2];
    stream.read_exact(&mut header).expect("the master's READY");
    assert_eq!(header[0], 0x04, "a short command");
    let mut body = vec![0u8; usize::from(header[1])];
    stream
        .read_exact(&mut body)
        .expect("the master's READY body");
    assert!(body.starts_with(b"\x05READY"), "{body:?}");
    stream
}

/// Whether the master closed `stream` (EOF or a reset) within the read timeout.
fn closed_by_master(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn message(kind: &str, data: Value, node_id: &str) -> Vec<u8> {
    frame(0x00, &Message::new(kind, data, node_id).encode())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn huge_claimed_frame_lengths_are_refused_before_reading_and_memory_stays_flat() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(master_config(&target, json!({})))
        .await
        .expect("start the master");
    let port = master.local_addr().port();
    // Let the master and the target settle before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss_before, size_before) = (status_kib("VmRSS"), status_kib("VmSize"));

    let claims = [1u64 << 62, MAX_MESSAGE as u64 + 1, 1 << 30];
    let rogues = tokio::task::spawn_blocking(move || {
        let mut closed = Vec::new();
        for round in 0..10 {
            for claim in claims {
                let mut stream = handshaken(port, &format!("rogue-{round}-{claim}"));
                let mut header = vec![0x02u8];
                header.extend_from_slice(&claim.to_be_bytes());
                stream.write_all(&header).expect("send the frame header");
                // Then as much of the body as the master takes (the old codec buffered it all).
                let chunk = vec![0x5au8; 64 * 1024];
                for _ in 0..64 {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                closed.push((claim, closed_by_master(&mut stream)));
            }
        }
        closed
    })
    .await
    .expect("the rogue peers");
    for (claim, closed) in &rogues {
        assert!(closed, "a peer claiming {claim} bytes was not disconnected");
    }
    let (rss_after, size_after) = (status_kib("VmRSS"), status_kib("VmSize"));
    // Reserving the claims, even untouched, would add 10 GiB of address space (or abort).
    assert!(
        size_after < size_before + 2 * 1024 * 1024,
        "the address space grew from {size_before} KiB to {size_after} KiB"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(master.dropped_connections(), rogues.len() as u64);
    assert!(master.workers().is_empty(), "{:?}", master.workers());

    a_real_worker_completes_the_run(&master, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_greetings_half_frames_and_a_peer_that_never_reads_are_dropped() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(master_config(&target, json!({})))
        .await
        .expect("start the master");
    let port = master.local_addr().port();

    let peers = tokio::task::spawn_blocking(move || {
        // Not ZMTP at all.
        let mut http = connect(port);
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut theirs = [0u8; 64];
        http.read_exact(&mut theirs)
            .expect("the master greets first");
        let http_closed = closed_by_master(&mut http);
        // ZMTP 2.
        let mut old = connect(port);
        old.write_all(&greeting(2)).expect("send");
        let old_closed = closed_by_master(&mut old);
        // A frame cut off: the peer goes away in the middle of the body.
        let mut half = handshaken(port, "half-frame");
        half.write_all(&[0x00, 200]).expect("send");
        half.write_all(&[1u8; 50]).expect("send");
        drop(half);
        (http_closed, old_closed)
    })
    .await
    .expect("the broken peers");
    assert_eq!(peers, (true, true), "wrong greetings end the connection");
    assert_eq!(master.dropped_connections(), 2);

    // A peer that never reads: every message it sends makes the master answer (a `quit` for
    // an unknown worker), until the master gives up on it. The run goes on meanwhile.
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = handshaken(port, "never-reads");
        let batch: Vec<u8> = (0..1000)
            .flat_map(|_| message("spawning", Value::Nil, "never-reads"))
            .collect();
        let started = Instant::now();
        let mut sent = 0u64;
        while started.elapsed() < Duration::from_secs(60) {
            if stream.write_all(&batch).is_err() {
                return (true, sent);
            }
            sent += 1000;
        }
        (false, sent)
    });
    a_real_worker_completes_the_run(&master, &target).await;
    let (dropped, sent) = slow.await.expect("the slow peer");
    assert!(
        dropped,
        "a peer that never read was kept after {sent} messages"
    );
    assert_eq!(master.dropped_connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_peers_caps_the_connections_and_the_workers_kept() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(master_config(
        &target,
        json!({"max_peers": 4, "expected_workers": 100, "expected_workers_timeout": 120}),
    ))
    .await
    .expect("start the master");
    let port = master.local_addr().port();

    // Four connections fill it; a fifth is closed at once, without a greeting.
    let fifth_closed = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..4)
            .map(|i| handshaken(port, &format!("held-{i}")))
            .collect();
        let mut fifth = connect(port);
        let closed = closed_by_master(&mut fifth);
        drop(held);
        closed
    })
    .await
    .expect("the held connections");
    let deadline = Instant::now() + Duration::from_secs(10);
    while master.open_connections() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        master.open_connections(),
        0,
        "closed connections are released"
    );
    // Distinct node ids, one after the other: four are kept, the next ones are ignored.
    let acked = tokio::task::spawn_blocking(move || {
        let mut acked = Vec::new();
        for i in 0..7 {
            let id = format!("node-{i}");
            let mut stream = handshaken(port, &id);
            stream
                .write_all(&message("client_ready", Value::from("2.47.0"), &id))
                .expect("send client_ready");
            stream
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("read timeout");
            let mut header = [0u8; 2];
            acked.push(stream.read_exact(&mut header).is_ok());
        }
        acked
    })
    .await
    .expect("the peers");
    assert!(fifth_closed, "a fifth connection was kept");
    assert_eq!(acked, [true, true, true, true, false, false, false]);
    assert_eq!(master.workers().len(), 4, "{:?}", master.workers());
    assert_eq!(master.over_capacity_peers(), 3);
    assert_eq!(master.dropped_connections(), 1);
    master.stop();
}
