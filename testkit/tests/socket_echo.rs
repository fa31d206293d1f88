//! Integration tests for [`TcpEchoServer`] and [`UdpEchoServer`]: echo, line commands,
//! counters, IPv6 loopback.

use std::time::Duration;

use load_density_testkit::{TcpEchoServer, UdpEchoServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Upper bound for any single wait in these tests.
const STEP: Duration = Duration::from_secs(10);

async fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(STEP, stream.read_exact(&mut buf))
        .await
        .expect("reply in time")
        .expect("read reply");
    buf
}

/// Polls `f` until it holds, for at most [`STEP`].
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn tcp_echoes_lines_and_counts_them() {
    let server = TcpEchoServer::start().await.expect("start");
    assert!(server.addr().ip().is_loopback() && server.addr().is_ipv4());
    assert_eq!(
        server.target(),
        format!("127.0.0.1:{}", server.addr().port())
    );
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream.write_all(b"hello\nworld\n").await.expect("write");
    assert_eq!(read_exact(&mut stream, 12).await, b"hello\nworld\n");
    assert_eq!(server.messages(), 2);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.bytes_received(), 12);
    // A line split across writes is echoed as a whole, and counted once.
    stream.write_all(b"spl").await.expect("write");
    tokio::time::sleep(Duration::from_millis(20)).await;
    stream.write_all(b"it\n").await.expect("write");
    assert_eq!(read_exact(&mut stream, 6).await, b"split\n");
    assert_eq!(server.messages(), 3);
}

#[tokio::test]
async fn tcp_echoes_binary_without_newline_as_it_arrives() {
    let server = TcpEchoServer::start().await.expect("start");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let payload = [0u8, 0xff, 0x10, 0x80, b'\r'];
    stream.write_all(&payload).await.expect("write");
    assert_eq!(read_exact(&mut stream, payload.len()).await, payload);
    // Not newline-terminated: not a message.
    assert_eq!(server.messages(), 0);
}

#[tokio::test]
async fn tcp_silent_lines_get_no_reply_and_close_closes() {
    let server = TcpEchoServer::start().await.expect("start");
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    stream
        .write_all(b"silent please\nafter\n")
        .await
        .expect("write");
    // Only the second line comes back.
    assert_eq!(read_exact(&mut stream, 6).await, b"after\n");
    assert_eq!(server.messages(), 2);
    // "cl" is held back until the line is known not to be "close".
    stream.write_all(b"clo").await.expect("write");
    stream.write_all(b"set\n").await.expect("write");
    assert_eq!(read_exact(&mut stream, 7).await, b"closet\n");
    stream.write_all(b"close\nignored\n").await.expect("write");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(STEP, stream.read_to_end(&mut rest))
        .await
        .expect("closed in time")
        .expect("clean close");
    assert_eq!(n, 0, "nothing after close: {rest:?}");
    assert_eq!(
        server.messages(),
        4,
        "the close line counts, what follows does not"
    );
    eventually("connection closed", || server.open_connections() == 0).await;
}

#[tokio::test]
async fn tcp_close_connections_drops_open_connections() {
    let server = TcpEchoServer::start().await.expect("start");
    let mut a = TcpStream::connect(server.addr()).await.expect("connect a");
    let mut b = TcpStream::connect(server.addr()).await.expect("connect b");
    eventually("two open", || server.open_connections() == 2).await;
    server.close_connections();
    for stream in [&mut a, &mut b] {
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(STEP, stream.read(&mut buf))
            .await
            .expect("eof in time")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    eventually("none open", || server.open_connections() == 0).await;
    // New connections are still served.
    let mut c = TcpStream::connect(server.addr()).await.expect("connect c");
    c.write_all(b"x\n").await.expect("write");
    assert_eq!(read_exact(&mut c, 2).await, b"x\n");
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn udp_echoes_datagrams_and_swallows_silent_ones() {
    let server = UdpEchoServer::start().await.expect("start");
    assert!(server.addr().is_ipv4());
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.connect(server.addr()).await.expect("connect");
    socket.send(b"silent").await.expect("send");
    let big = vec![7u8; 60_000];
    socket.send(&big).await.expect("send big");
    let mut buf = vec![0u8; 65_536];
    let n = tokio::time::timeout(STEP, socket.recv(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    assert_eq!(
        &buf[..n],
        &big[..],
        "the first reply is the big datagram, whole"
    );
    assert_eq!(server.datagrams(), 2);
    assert_eq!(server.bytes_received(), 60_006);
}

#[tokio::test]
async fn both_servers_run_on_the_ipv6_loopback() {
    let tcp = TcpEchoServer::start_v6()
        .await
        .expect("IPv6 loopback [::1] must be available for these tests");
    assert_eq!(tcp.target(), format!("[::1]:{}", tcp.addr().port()));
    let mut stream = TcpStream::connect(tcp.addr()).await.expect("connect");
    stream.write_all(b"v6\n").await.expect("write");
    assert_eq!(read_exact(&mut stream, 3).await, b"v6\n");

    let udp = UdpEchoServer::start_v6()
        .await
        .expect("IPv6 loopback [::1] must be available for these tests");
    let socket = UdpSocket::bind("[::1]:0").await.expect("bind");
    socket.connect(udp.addr()).await.expect("connect");
    socket.send(b"ping").await.expect("send");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(STEP, socket.recv(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(udp.datagrams(), 1);
}
