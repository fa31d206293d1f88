//! Runs the real `ld-bench-targets` binary: it prints its addresses, counts what it receives,
//! reports the counts on `stats` and exits on `quit`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A short wait between polls. This test is synchronous (no async runtime to block).
#[allow(clippy::disallowed_methods)]
fn pause() {
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn prints_addresses_counts_tcp_lines_and_quits() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ld-bench-targets"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start ld-bench-targets");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the addresses line");
    let addresses: Value = serde_json::from_str(&line).expect("the addresses line is JSON");
    for key in ["http", "ws", "tcp", "udp", "grpc"] {
        let address = addresses[key].as_str().expect("every address is a string");
        assert!(address.contains("127.0.0.1:"), "{key} = {address}");
    }

    // The gRPC service's .proto is where the addresses line says, beside its import path.
    let proto = addresses["grpc_proto"]
        .as_str()
        .expect("grpc_proto is a string");
    let proto_dir = addresses["grpc_proto_dir"]
        .as_str()
        .expect("grpc_proto_dir is a string");
    assert!(proto.ends_with("loadtest.proto"), "{proto}");
    assert!(
        std::path::Path::new(proto).starts_with(proto_dir),
        "{proto} in {proto_dir}"
    );
    let text = std::fs::read_to_string(proto).expect("read loadtest.proto");
    assert!(text.contains("service Echo"), "{text}");

    // A TCP connection to the gRPC port is counted as a gRPC connection (no call made).
    let grpc = addresses["grpc"].as_str().expect("grpc address");
    let grpc_stream = TcpStream::connect(grpc).expect("connect to the gRPC target");

    // One request/reply on the TCP echo server.
    let tcp = addresses["tcp"].as_str().expect("tcp address");
    let mut stream = TcpStream::connect(tcp).expect("connect to the TCP echo server");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set a read timeout");
    stream.write_all(b"ping\n").expect("send a line");
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).expect("read the echo");
    assert_eq!(&reply, b"ping\n");

    // The counter is bumped by the server task; poll `stats` until it shows (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        stdin.write_all(b"stats\n").expect("ask for stats");
        stdin.flush().expect("flush stdin");
        line.clear();
        stdout.read_line(&mut line).expect("read the stats line");
        let stats: Value = serde_json::from_str(&line).expect("the stats line is JSON");
        if (stats["tcp_messages"] == 1 && stats["grpc_connections"] == 1)
            || Instant::now() > deadline
        {
            break stats;
        }
        pause();
    };
    assert_eq!(stats["tcp_messages"], 1, "{stats}");
    assert_eq!(stats["tcp_connections"], 1, "{stats}");
    assert_eq!(stats["ws_messages"], 0, "{stats}");
    assert_eq!(stats["http_served"], 0, "{stats}");
    assert_eq!(stats["grpc_connections"], 1, "{stats}");
    assert_eq!(stats["grpc_calls"], 0, "{stats}");
    assert_eq!(stats["grpc_unary_calls"], 0, "{stats}");
    drop(grpc_stream);

    stdin.write_all(b"quit\n").expect("send quit");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("kill the child we started");
            panic!("ld-bench-targets did not exit within 10 s of `quit`");
        }
        pause();
    };
    assert!(status.success(), "exit status {status}");
}
