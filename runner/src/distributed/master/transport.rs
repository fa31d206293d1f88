//! The master's messages: decoding what the ROUTER received, routing messages to their
//! handlers, and the listening socket.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Inner, NodeState, PeerLogs};
use crate::distributed::token::AUTH_MESSAGE;
use crate::distributed::wire::{self, Message, WireError};
use crate::distributed::zmtp::router::Inbound;

pub(super) async fn recv_loop(mut inbound: mpsc::Receiver<Inbound>, inner: Arc<Inner>) {
    while let Some(Inbound { identity, frames }) = inbound.recv().await {
        let mut message = Vec::with_capacity(frames.len() + 1);
        message.push(identity);
        message.extend(frames);
        // Nothing a peer sends may end this loop, not even a bug in a handler.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            inner.handle_frames(message)
        }));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                inner.malformed.fetch_add(1, Ordering::Relaxed);
                let count = &inner.peer_logs.malformed;
                if PeerLogs::allow(count) {
                    tracing::warn!(%error, "skipped a message from a worker{}", PeerLogs::note(count));
                }
            }
            Err(_) => {
                inner.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::error!("handling a worker's message panicked; the master goes on");
            }
        }
    }
}

impl Inner {
    pub(super) fn send(&self, to: &str, message: Message) {
        self.router.send(to.as_bytes(), &message.encode());
    }

    pub(super) fn handle_frames(&self, frames: Vec<Bytes>) -> Result<(), WireError> {
        if frames.len() < 2 {
            return Err(WireError::Frames(format!(
                "a message of {} frame(s); expected [identity, payload]",
                frames.len()
            )));
        }
        let identity = std::str::from_utf8(&frames[0])
            .map_err(|_| {
                WireError::Frames("Unrecognized message detected: the identity is not UTF-8".into())
            })?
            .to_owned();
        // Frame 0 is the address, frame 1 the payload (a stray empty delimiter is skipped).
        let payload = if frames[1].is_empty() && frames.len() > 2 {
            &frames[2]
        } else {
            &frames[1]
        };
        let message = Message::decode_limited(payload, self.options.max_message_size)
            .map_err(|e| WireError::Frames(format!("from {identity}: {e}")))?;
        self.handle(&identity, message)
            .map_err(|e| WireError::Frames(format!("from {identity}: {e}")))
    }

    pub(super) fn handle(&self, identity: &str, msg: Message) -> Result<(), WireError> {
        // Messages are keyed by node_id: a peer may only speak for itself.
        if msg.node_id != identity {
            return Err(msg.field_error(format!(
                "node_id {:?} is not the sender's identity",
                msg.node_id
            )));
        }
        match msg.kind.as_str() {
            "client_ready" => self.on_client_ready(identity, &msg),
            AUTH_MESSAGE => self.on_auth(identity, &msg),
            "heartbeat" => self.on_heartbeat(&msg),
            "stats" => self.on_stats(&msg),
            "spawning" => {
                self.with_node(&msg, |node| node.state = NodeState::Spawning);
                Ok(())
            }
            "spawning_complete" => {
                let counts = wire::req_counts(&msg, "user_classes_count")?;
                self.with_node(&msg, |node| {
                    node.state = NodeState::Running;
                    node.user_classes_count = counts;
                });
                Ok(())
            }
            "client_stopped" => {
                self.with_node(&msg, |node| {
                    node.state = NodeState::Stopped;
                    node.user_classes_count.clear();
                });
                self.core.lock().placement_stale = true;
                self.wake.notify_one();
                Ok(())
            }
            "quit" => {
                self.on_quit(&msg);
                Ok(())
            }
            "exception" => {
                let text = wire::req_str(&msg, "msg").unwrap_or("(no message)");
                let count = &self.peer_logs.exception;
                if PeerLogs::allow(count) {
                    tracing::warn!(
                        worker = %msg.node_id,
                        exception = text,
                        "a worker reported an exception{}",
                        PeerLogs::note(count)
                    );
                }
                Ok(())
            }
            "logs" => Ok(()),
            other => {
                let count = &self.peer_logs.unknown_kind;
                if PeerLogs::allow(count) {
                    tracing::warn!(
                        worker = %msg.node_id,
                        kind = other,
                        "unknown message type from a worker (ignored){}",
                        PeerLogs::note(count)
                    );
                }
                Ok(())
            }
        }
    }
}

/// Idle time before the kernel probes a silent connection to a worker (Locust sets the same).
pub(super) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// The master's listening socket on `host:port`.
///
/// `*` (or an empty host) means every interface, as in Locust: a dual-stack `[::]` socket, so
/// workers reach it over IPv4 and IPv6 alike, or `0.0.0.0` on a host without IPv6. Other hosts
/// are resolved and the first address that binds is used. Connections accepted on it inherit
/// TCP keepalive, so a worker whose machine vanished is noticed by the kernel as well as by the
/// missing heartbeats.
pub(super) fn listen(host: &str, port: u16) -> io::Result<std::net::TcpListener> {
    if matches!(host, "*" | "") {
        let any_v6 = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
        let any_v4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port));
        return listen_on(any_v6, true).or_else(|_| listen_on(any_v4, false));
    }
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        match listen_on(addr, false) {
            Ok(listener) => return Ok(listener),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the host resolved to no address")
    }))
}

pub(super) fn listen_on(addr: SocketAddr, dual_stack: bool) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(KEEPALIVE_IDLE))?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn every_interface_takes_ipv4_and_ipv6_and_accepted_connections_keep_alive() {
        let listener = listen("*", 0).expect("listen on every interface");
        let port = listener.local_addr().expect("address").port();
        let mut targets = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        if listener.local_addr().expect("address").is_ipv6() {
            targets.push(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)));
        }
        for target in targets {
            let _client = std::net::TcpStream::connect(target).expect("connect");
            let (accepted, _) = listener.accept().expect("accept");
            let accepted = socket2::SockRef::from(&accepted);
            assert!(accepted.keepalive().expect("SO_KEEPALIVE"), "{target}");
            assert_eq!(
                accepted.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
                KEEPALIVE_IDLE,
                "{target}"
            );
        }
    }

    #[test]
    pub(super) fn a_named_host_binds_that_address_and_a_taken_port_is_an_error() {
        let listener = listen("127.0.0.1", 0).expect("listen");
        let addr = listener.local_addr().expect("address");
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert_eq!(
            listen("127.0.0.1", addr.port())
                .expect_err("the port is taken")
                .kind(),
            io::ErrorKind::AddrInUse
        );
    }
}
