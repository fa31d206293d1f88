//! One simulated `socket_user`: its kept-alive TCP connections and UDP sockets (one per
//! target), and one reusable reply buffer.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use load_density_core::deadline::RequestDeadline;
use load_density_core::source_address::{bind_udp, connect_tcp};
use load_density_core::{RequestTimer, StaticUser, UserContext};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, timeout_at, Instant};

use crate::error::{escaped, SocketError, Waiting};
use crate::protocol::{find, CompiledTask, Expect, Rule};
use crate::response::SocketReply;
use crate::target::{Target, Transport};
use crate::{MAX_DATAGRAM_BYTES, MAX_REPLY_BYTES};

/// Bytes reserved for each TCP read.
const READ_CHUNK: usize = 16 * 1024;
/// A reply buffer that grew past this (a large reply) is given back after the request.
const KEEP_BUFFER: usize = 1024 * 1024;
/// How long `on_stop` waits for each TCP close to go out.
const CLOSE_GRACE: Duration = Duration::from_millis(100);
/// Reads at most this many times when discarding stale bytes before a request.
const DRAIN_READS: usize = 64;
/// Sends of one fire-and-forget datagram that may meet an earlier datagram's ICMP error.
const STALE_ICMP_RETRIES: usize = 8;

/// A failed exchange: why, and how many bytes moved before it.
struct Failed {
    error: SocketError,
    transferred: u64,
}

impl Failed {
    fn new(error: SocketError, transferred: usize) -> Self {
        Self {
            error,
            transferred: transferred as u64,
        }
    }
}

/// One simulated user.
pub(crate) struct SocketUser {
    tasks: Arc<[CompiledTask]>,
    /// Kept-alive TCP connections, by target text (`host:port`).
    tcp: Vec<(Arc<str>, TcpStream)>,
    /// UDP sockets, connected to their target, by target text.
    udp: Vec<(Arc<str>, UdpSocket)>,
    /// The reply being read (made on demand, given back when the user is idle).
    buf: Vec<u8>,
    /// The send and reply timeout, one timer reused from request to request.
    deadline: RequestDeadline,
    /// The local address sockets bind to (the group's `source_addresses`).
    source: Option<IpAddr>,
}

impl SocketUser {
    pub(crate) fn new(tasks: Arc<[CompiledTask]>) -> Self {
        Self {
            tasks,
            tcp: Vec::new(),
            udp: Vec::new(),
            buf: Vec::new(),
            deadline: RequestDeadline::new(),
            source: None,
        }
    }

    /// The kept-alive connection to `key`, if it is still open; bytes the peer sent since the
    /// last reply are discarded so they are not taken for this request's reply.
    fn take_tcp(&mut self, key: &str) -> Option<TcpStream> {
        let position = self.tcp.iter().position(|(k, _)| &**k == key)?;
        let (_, stream) = self.tcp.swap_remove(position);
        let mut scratch = [0u8; 4096];
        for _ in 0..DRAIN_READS {
            match stream.try_read(&mut scratch) {
                // The peer closed the connection while it was idle: open a new one.
                Ok(0) => return None,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(stream),
                Err(_) => return None,
            }
        }
        Some(stream)
    }

    /// The UDP socket for `key`, with stale datagrams (late replies) discarded.
    fn take_udp(&mut self, key: &str) -> Option<UdpSocket> {
        let position = self.udp.iter().position(|(k, _)| &**k == key)?;
        let (_, socket) = self.udp.swap_remove(position);
        let mut scratch = [0u8; 512];
        for _ in 0..DRAIN_READS {
            // An error here is a pending ICMP error from an earlier fire-and-forget datagram:
            // reading it clears it.
            if let Err(e) = socket.try_recv(&mut scratch) {
                if e.kind() == io::ErrorKind::WouldBlock {
                    break;
                }
            }
        }
        Some(socket)
    }

    /// Sends the payload and reads the reply; both within the task's timeout, counted from
    /// `timer`'s start, or from the end of the connect when one was needed.
    async fn tcp_exchange(
        &mut self,
        task: &CompiledTask,
        target: &Target,
        payload: &[u8],
        expect: &Expect<'_>,
        timer: &RequestTimer,
    ) -> Result<usize, Failed> {
        let reused = if task.keep_alive {
            self.take_tcp(target.text())
        } else {
            None
        };
        let (mut stream, from) = match reused {
            Some(stream) => (stream, *timer),
            None => {
                let stream = connect(target, task.connect_timeout, self.source)
                    .await
                    .map_err(|e| Failed::new(e, 0))?;
                (stream, RequestTimer::start())
            }
        };
        self.buf.clear();
        let buf = &mut self.buf;
        let mut sent = false;
        let exchange = async {
            stream
                .write_all(payload)
                .await
                .map_err(|e| Failed::new(SocketError::Send(e), 0))?;
            sent = true;
            match expect.rule() {
                None => Ok(0),
                Some(rule) => read_reply(&mut stream, buf, rule)
                    .await
                    .map_err(|e| Failed::new(e, payload.len() + buf.len())),
            }
        };
        let len = match self.deadline.within(&from, task.timeout, exchange).await {
            Some(result) => result?,
            None if !sent => {
                return Err(Failed::new(SocketError::SendTimeout(task.timeout), 0));
            }
            None => {
                let error = SocketError::ReadTimeout {
                    after: task.timeout,
                    waiting: expect.rule().map_or(Waiting::Bytes(0), waiting),
                    received: self.buf.len(),
                };
                return Err(Failed::new(error, payload.len() + self.buf.len()));
            }
        };
        if task.keep_alive {
            self.tcp.push((target.text().clone(), stream));
        } else {
            let _ = stream.shutdown().await;
        }
        Ok(len)
    }

    async fn udp_exchange(
        &mut self,
        task: &CompiledTask,
        target: &Target,
        payload: &[u8],
        expect: &Expect<'_>,
    ) -> Result<usize, Failed> {
        let socket = match self.take_udp(target.text()) {
            Some(socket) => socket,
            None => open_udp(target, task.timeout, self.source)
                .await
                .map_err(|e| Failed::new(e, 0))?,
        };
        let unreachable = || SocketError::PortUnreachable {
            addr: target.text().to_string(),
        };
        let wants_reply = expect.wants_reply();
        let mut stale_errors = 0;
        loop {
            match timeout(task.timeout, socket.send(payload)).await {
                Err(_) => return Err(Failed::new(SocketError::SendTimeout(task.timeout), 0)),
                // A refusal on send is the ICMP error of an earlier datagram: the kernel
                // reports it on the next call (and clears it) without sending this one. It says
                // nothing about this datagram, so a fire-and-forget task sends it again.
                Ok(Err(e))
                    if e.kind() == io::ErrorKind::ConnectionRefused
                        && !wants_reply
                        && stale_errors < STALE_ICMP_RETRIES =>
                {
                    stale_errors += 1;
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Failed::new(unreachable(), 0))
                }
                Ok(Err(e)) => return Err(Failed::new(SocketError::Send(e), 0)),
                Ok(Ok(n)) if n < payload.len() => {
                    let e = io::Error::other(format!("only {n} of {} bytes sent", payload.len()));
                    return Err(Failed::new(SocketError::Send(e), n));
                }
                Ok(Ok(_)) => break,
            }
        }
        self.buf.clear();
        let len = if wants_reply {
            self.buf.reserve(MAX_DATAGRAM_BYTES);
            match timeout(task.timeout, socket.recv_buf(&mut self.buf)).await {
                Err(_) => {
                    let error = SocketError::ReadTimeout {
                        after: task.timeout,
                        waiting: Waiting::Datagram,
                        received: 0,
                    };
                    return Err(Failed::new(error, payload.len()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Failed::new(unreachable(), payload.len()))
                }
                Ok(Err(source)) => {
                    let error = SocketError::Receive {
                        source,
                        received: 0,
                    };
                    return Err(Failed::new(error, payload.len()));
                }
                Ok(Ok(n)) => n,
            }
        } else {
            0
        };
        self.udp.push((target.text().clone(), socket));
        Ok(len)
    }
}

/// Opens a TCP connection (from `source` when given), trying each resolved address in turn,
/// all within `limit`.
async fn connect(
    target: &Target,
    limit: Duration,
    source: Option<IpAddr>,
) -> Result<TcpStream, SocketError> {
    let deadline = Instant::now() + limit;
    let addr = || target.text().to_string();
    let timed_out = || SocketError::ConnectTimeout {
        addr: addr(),
        after: limit,
    };
    let addrs = match timeout_at(deadline, target.resolve()).await {
        Err(_) => return Err(timed_out()),
        Ok(Err(source)) => {
            return Err(SocketError::Resolve {
                host: target.host().to_owned(),
                source,
            })
        }
        Ok(Ok(addrs)) => addrs,
    };
    let mut last = io::Error::other("the name has no addresses");
    for socket_addr in addrs {
        match timeout_at(deadline, connect_tcp(socket_addr, source)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(stream)) => {
                // One write per request: do not wait for more to coalesce.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = e,
        }
    }
    Err(match last.kind() {
        io::ErrorKind::ConnectionRefused => SocketError::ConnectionRefused { addr: addr() },
        _ => SocketError::Connect {
            addr: addr(),
            source: last,
        },
    })
}

/// Opens a UDP socket of the target's address family (bound to `source` when given),
/// connected to the target's first resolved address.
async fn open_udp(
    target: &Target,
    limit: Duration,
    source: Option<IpAddr>,
) -> Result<UdpSocket, SocketError> {
    let resolve_error = |source| SocketError::Resolve {
        host: target.host().to_owned(),
        source,
    };
    let addrs = match timeout(limit, target.resolve()).await {
        Err(_) => {
            let e = io::Error::new(io::ErrorKind::TimedOut, "name resolution timed out");
            return Err(resolve_error(e));
        }
        Ok(result) => result.map_err(resolve_error)?,
    };
    let Some(&peer) = addrs.first() else {
        return Err(resolve_error(io::Error::other("the name has no addresses")));
    };
    let socket_error = |source| SocketError::UdpSocket {
        addr: target.text().to_string(),
        source,
    };
    let socket = bind_udp(peer, source).await.map_err(socket_error)?;
    socket.connect(peer).await.map_err(socket_error)?;
    Ok(socket)
}

/// Reads one reply into `buf` per `rule`, within `limit`; returns the reply's length (bytes
/// past it, read in the same go, are left in `buf` and ignored).
async fn read_reply(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    rule: Rule<'_>,
) -> Result<usize, SocketError> {
    let mut searched = 0;
    loop {
        match rule {
            Rule::Bytes(n) if buf.len() >= n => return Ok(n),
            Rule::Bytes(_) => {}
            Rule::Until(delimiter) => {
                if let Some(position) = find(&buf[searched..], delimiter) {
                    return Ok(searched + position + delimiter.len());
                }
                // The delimiter may straddle two reads: search its length - 1 back next time.
                searched = buf.len().saturating_sub(delimiter.len().saturating_sub(1));
                if buf.len() >= MAX_REPLY_BYTES {
                    return Err(SocketError::ReplyTooLarge {
                        delimiter: escaped(delimiter),
                        limit: MAX_REPLY_BYTES,
                    });
                }
            }
        }
        buf.reserve(READ_CHUNK);
        match stream.read_buf(buf).await {
            Ok(0) => {
                return Err(SocketError::Closed {
                    waiting: waiting(rule),
                    received: buf.len(),
                })
            }
            Ok(_) => {}
            Err(source) => {
                return Err(SocketError::Receive {
                    source,
                    received: buf.len(),
                })
            }
        }
    }
}

/// What a reply rule waits for, for an error message.
fn waiting(rule: Rule<'_>) -> Waiting {
    match rule {
        Rule::Bytes(n) => Waiting::Bytes(n),
        Rule::Until(text) => Waiting::Text(escaped(text)),
    }
}

impl StaticUser for SocketUser {
    async fn on_start(&mut self, ctx: &mut UserContext) {
        self.source = ctx.source_address();
    }

    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let tasks = self.tasks.clone();
        let Some(task) = tasks.get(index) else {
            tracing::warn!(index, "socket_user: no task at this index");
            return;
        };
        let timer = ctx.start_timer();
        let target = match task.target(ctx.variables()) {
            Ok(target) => target,
            Err(error) => {
                ctx.record_failure(&task.fallback_meta, timer, None, 0, error);
                return;
            }
        };
        let meta = match task.meta(&target, ctx.variables()) {
            Ok(meta) => meta,
            Err((meta, error)) => {
                ctx.record_failure(&meta, timer, None, 0, error);
                return;
            }
        };
        let rendered = task
            .payload(ctx.variables())
            .and_then(|payload| Ok((payload, task.expect(ctx.variables())?)));
        let (payload, expect) = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                ctx.record_failure(&meta, timer, None, 0, error);
                return;
            }
        };
        let outcome = match task.transport {
            Transport::Tcp => {
                self.tcp_exchange(task, &target, &payload, &expect, &timer)
                    .await
            }
            Transport::Udp => self.udp_exchange(task, &target, &payload, &expect).await,
        };
        match outcome {
            Ok(len) => {
                let reply = &self.buf[..len];
                let failure = expect.check(task.transport, reply);
                let response = SocketReply::new(reply, payload.len(), failure);
                ctx.record_response(&meta, timer, &response);
            }
            Err(Failed { error, transferred }) => {
                ctx.record_failure(&meta, timer, None, transferred, error);
            }
        }
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
    }

    fn on_idle(&mut self) {
        self.buf = Vec::new();
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        for (_, mut stream) in self.tcp.drain(..) {
            let _ = timeout(CLOSE_GRACE, stream.shutdown()).await;
        }
        self.udp.clear();
    }
}
