//! In-process raw TCP and UDP echo servers, for `socket_user` tests and demos.
//!
//! Both bind a loopback address on an ephemeral port (`127.0.0.1:0`, or `[::1]:0` with
//! `start_v6`) inside the current Tokio runtime and count what they receive, so a test can
//! compare the server's view of the traffic with the events a load generator recorded.
//!
//! # [`TcpEchoServer`]
//!
//! Each connection's byte stream is split into lines at `\n`. Bytes are echoed back as they
//! arrive, except for the lines that are commands:
//!
//! | line | reply |
//! |---|---|
//! | `close` (or `close\r`) | none: the server closes the connection (bytes after it are ignored) |
//! | anything starting with `silent` | none: the line is swallowed |
//! | anything else | echoed byte for byte, newline included |
//!
//! The first bytes of a line are held back only while they could still be a command (`c`,
//! `cl`, ..., `s`, `si`, ...); as soon as a line cannot be a command anymore, what arrived of it
//! is echoed and the rest of the line streams through. So a payload without any newline (a
//! binary payload) is echoed as it arrives, as long as it does not start like a command.
//!
//! [`messages`](TcpEchoServer::messages) counts newline-terminated lines received (commands
//! included), so tests that compare it with recorded events send newline-terminated payloads
//! (one line per request). [`connections`](TcpEchoServer::connections) counts accepted
//! connections, [`open_connections`](TcpEchoServer::open_connections) those still open.
//!
//! # [`UdpEchoServer`]
//!
//! Echoes every datagram back to its sender, except a datagram that starts with `silent`,
//! which is swallowed. [`datagrams`](UdpEchoServer::datagrams) counts datagrams received
//! (silent ones included).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use load_density_testkit::TcpEchoServer;
//!
//! let server = TcpEchoServer::start().await?;
//! let target = server.target(); // "127.0.0.1:PORT", the socket_user `target`
//! // ... drive traffic, sending newline-terminated payloads ...
//! assert_eq!(server.messages(), 0);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Read buffer per TCP connection.
const TCP_READ_BUFFER: usize = 16 * 1024;
/// Large enough for any UDP datagram.
const UDP_BUFFER: usize = 64 * 1024;

/// Binds `ip:0`, with a message that says what is missing when the address is not available.
fn loopback(v6: bool) -> SocketAddr {
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    };
    SocketAddr::new(ip, 0)
}

fn bind_error(addr: SocketAddr, error: io::Error) -> io::Error {
    let hint = if addr.is_ipv6() {
        " (this machine has no IPv6 loopback; the IPv6 tests need one)"
    } else {
        ""
    };
    io::Error::new(error.kind(), format!("cannot bind {addr}{hint}: {error}"))
}

#[derive(Debug, Default)]
struct TcpCounters {
    peers: crate::stats::Peers,
    connections: AtomicU64,
    open: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
}

/// A TCP echo server on a loopback address; see the [module docs](self) for its line commands.
///
/// Dropping the handle stops the server and closes every connection.
pub struct TcpEchoServer {
    addr: SocketAddr,
    counters: Arc<TcpCounters>,
    close: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl fmt::Debug for TcpEchoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpEchoServer")
            .field("addr", &self.addr)
            .field("connections", &self.connections())
            .field("messages", &self.messages())
            .finish_non_exhaustive()
    }
}

impl TcpEchoServer {
    /// Starts a server on `127.0.0.1:0`. Must be called inside a Tokio runtime.
    pub async fn start() -> io::Result<Self> {
        Self::start_on(loopback(false)).await
    }

    /// Starts a server on `[::1]:0`. The error says so plainly when the machine has no IPv6
    /// loopback.
    pub async fn start_v6() -> io::Result<Self> {
        Self::start_on(loopback(true)).await
    }

    async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| bind_error(addr, e))?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(TcpCounters::default());
        let (close, close_rx) = watch::channel(0u64);
        let task = tokio::spawn(accept_loop(listener, counters.clone(), close_rx));
        Ok(Self {
            addr,
            counters,
            close,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as a `socket_user` target: `127.0.0.1:PORT` or `[::1]:PORT`.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Connections currently open (accepted and not yet closed by either side).
    pub fn open_connections(&self) -> u64 {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far per source (peer) address, in address order.
    pub fn connection_sources(&self) -> Vec<(std::net::IpAddr, u64)> {
        self.counters.peers.snapshot()
    }

    /// Newline-terminated lines received so far, on all connections, commands included.
    pub fn messages(&self) -> u64 {
        self.counters.messages.load(Ordering::SeqCst)
    }

    /// Bytes received so far, on all connections.
    pub fn bytes_received(&self) -> u64 {
        self.counters.bytes.load(Ordering::SeqCst)
    }

    /// Closes every connection open now (the server keeps accepting new ones).
    pub fn close_connections(&self) {
        self.close.send_modify(|generation| *generation += 1);
    }
}

impl Drop for TcpEchoServer {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    counters: Arc<TcpCounters>,
    close: watch::Receiver<u64>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    counters.peers.record(peer.ip());
                    counters.connections.fetch_add(1, Ordering::SeqCst);
                    counters.open.fetch_add(1, Ordering::SeqCst);
                    let counters = counters.clone();
                    let mut close = close.clone();
                    close.mark_unchanged();
                    connections.spawn(async move {
                        serve_tcp(stream, &counters, close).await;
                        counters.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Err(error) => {
                    tracing::debug!(%error, "testkit tcp echo: accept failed");
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What the server does with the line being received.
enum Line {
    /// Could still be a command: the bytes received so far (at most a few).
    Undecided(Vec<u8>),
    /// Not a command: echo the rest of the line as it arrives.
    Echo,
    /// A `silent` line: swallow the rest of it.
    Silent,
}

/// Whether a line that starts with `start` may still turn out to be a command.
fn may_be_command(start: &[u8]) -> bool {
    b"close\r".starts_with(start) || b"silent".starts_with(start)
}

fn is_close(line: &[u8]) -> bool {
    line == b"close" || line == b"close\r"
}

async fn serve_tcp(mut stream: TcpStream, counters: &TcpCounters, mut close: watch::Receiver<u64>) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; TCP_READ_BUFFER];
    let mut out = Vec::with_capacity(TCP_READ_BUFFER);
    let mut line = Line::Undecided(Vec::new());
    loop {
        let n = tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = close.changed() => return,
        };
        counters.bytes.fetch_add(n as u64, Ordering::SeqCst);
        out.clear();
        let mut closing = false;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let (segment, complete) = match rest.iter().position(|&b| b == b'\n') {
                Some(pos) => (&rest[..=pos], true),
                None => (rest, false),
            };
            rest = &rest[segment.len()..];
            let content = if complete {
                &segment[..segment.len() - 1]
            } else {
                segment
            };
            match &mut line {
                Line::Echo => out.extend_from_slice(segment),
                Line::Silent => {}
                Line::Undecided(start) => {
                    start.extend_from_slice(content);
                    if complete {
                        if is_close(start) {
                            closing = true;
                        } else if !start.starts_with(b"silent") {
                            out.extend_from_slice(start);
                            out.push(b'\n');
                        }
                    } else if start.starts_with(b"silent") {
                        line = Line::Silent;
                    } else if !may_be_command(start) {
                        out.extend_from_slice(start);
                        line = Line::Echo;
                    }
                }
            }
            if complete {
                counters.messages.fetch_add(1, Ordering::SeqCst);
                line = Line::Undecided(Vec::new());
                if closing {
                    break;
                }
            }
        }
        if !out.is_empty() && stream.write_all(&out).await.is_err() {
            return;
        }
        if closing {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

#[derive(Debug, Default)]
struct UdpCounters {
    datagrams: AtomicU64,
    bytes: AtomicU64,
}

/// A UDP echo server on a loopback address: every datagram is sent back to its sender, except
/// one that starts with `silent`.
///
/// Dropping the handle stops the server.
pub struct UdpEchoServer {
    addr: SocketAddr,
    counters: Arc<UdpCounters>,
    task: JoinHandle<()>,
}

impl fmt::Debug for UdpEchoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpEchoServer")
            .field("addr", &self.addr)
            .field("datagrams", &self.datagrams())
            .finish_non_exhaustive()
    }
}

impl UdpEchoServer {
    /// Starts a server on `127.0.0.1:0`. Must be called inside a Tokio runtime.
    pub async fn start() -> io::Result<Self> {
        Self::start_on(loopback(false)).await
    }

    /// Starts a server on `[::1]:0`. The error says so plainly when the machine has no IPv6
    /// loopback.
    pub async fn start_v6() -> io::Result<Self> {
        Self::start_on(loopback(true)).await
    }

    async fn start_on(addr: SocketAddr) -> io::Result<Self> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_error(addr, e))?;
        let addr = socket.local_addr()?;
        let counters = Arc::new(UdpCounters::default());
        let task = tokio::spawn(serve_udp(socket, counters.clone()));
        Ok(Self {
            addr,
            counters,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as a `socket_user` target: `127.0.0.1:PORT` or `[::1]:PORT`.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// Datagrams received so far (silent ones included).
    pub fn datagrams(&self) -> u64 {
        self.counters.datagrams.load(Ordering::SeqCst)
    }

    /// Bytes received so far, over all datagrams.
    pub fn bytes_received(&self) -> u64 {
        self.counters.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for UdpEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_udp(socket: UdpSocket, counters: Arc<UdpCounters>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            // ICMP errors from earlier replies (a client that went away) surface here.
            Err(_) => continue,
        };
        counters.datagrams.fetch_add(1, Ordering::SeqCst);
        counters.bytes.fetch_add(n as u64, Ordering::SeqCst);
        let datagram = &buf[..n];
        if !datagram.starts_with(b"silent") {
            let _ = socket.send_to(datagram, from).await;
        }
    }
}
