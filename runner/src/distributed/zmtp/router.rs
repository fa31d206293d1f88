//! The master's ROUTER: accepts DEALER peers, reads their messages into one channel with the
//! sender's identity, and sends to a peer by identity without ever waiting on it.
//!
//! - Each connection has its own reader and writer task. The reader checks every claimed
//!   length against `max_message_size` before reading (see `codec`); a peer
//!   that breaks that, or the handshake, is disconnected with one log line and counted.
//! - Sending puts the encoded message in the peer's queue ([`SEND_QUEUE`] messages) and
//!   returns. A peer whose queue is full is not reading: it is disconnected, so a slow peer
//!   never holds up the master or the other peers.
//! - At most `max_connections` connections at once; more are closed as they arrive.
//! - A message to an unknown identity is dropped, as a libzmq ROUTER does. A second
//!   connection with the identity of a live one (it sent something in the last
//!   [`HANDOVER_AFTER`]) is refused, as libzmq refuses it; a silent one is replaced, so a
//!   worker whose old connection died unnoticed can come back at once.
//! - A peer silent for [`IDLE_TIMEOUT`] is disconnected (workers send a heartbeat a second).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncWriteExt as _, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::codec;
use super::{ZmtpError, HANDSHAKE_TIMEOUT};

/// Messages queued for one peer before it counts as not reading.
pub(crate) const SEND_QUEUE: usize = 1024;
/// How long a peer may stay silent.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Silence after which a connection's identity may be taken over by a new connection.
pub(crate) const HANDOVER_AFTER: Duration = Duration::from_secs(5);
/// How long one write to a peer may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Messages read but not yet handled, over all peers (readers wait when it is full).
const INBOUND_QUEUE: usize = 256;
/// Dropped connections logged as warnings; later ones are logged at debug level.
const MAX_DROP_WARNINGS: u64 = 20;

/// The ROUTER's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouterOptions {
    /// The largest message (all its frames) a peer may send.
    pub(crate) max_message_size: usize,
    /// Connections open at once.
    pub(crate) max_connections: usize,
}

/// A message from a peer.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// The peer's identity.
    pub(crate) identity: Bytes,
    /// The message's frames.
    pub(crate) frames: Vec<Bytes>,
}

/// Sends to peers and counts what the ROUTER dropped. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Router {
    shared: Arc<Shared>,
}

struct Shared {
    options: RouterOptions,
    peers: Mutex<HashMap<Bytes, Peer>>,
    connections: AtomicUsize,
    next_connection: AtomicU64,
    dropped: AtomicU64,
    over_capacity_logged: AtomicBool,
    started: Instant,
}

struct Peer {
    connection: u64,
    queue: mpsc::Sender<Bytes>,
    last_read_ms: Arc<AtomicU64>,
    close: Arc<Notify>,
}

impl Router {
    /// Serves `listener` on the current runtime; what peers send arrives on the receiver.
    pub(crate) fn serve(
        listener: std::net::TcpListener,
        options: RouterOptions,
    ) -> std::io::Result<(Self, mpsc::Receiver<Inbound>)> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let (inbound, receiver) = mpsc::channel(INBOUND_QUEUE);
        let router = Self {
            shared: Arc::new(Shared {
                options,
                peers: Mutex::new(HashMap::new()),
                connections: AtomicUsize::new(0),
                next_connection: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                over_capacity_logged: AtomicBool::new(false),
                started: Instant::now(),
            }),
        };
        tokio::spawn(accept_loop(listener, router.shared.clone(), inbound));
        Ok((router, receiver))
    }

    /// Queues `payload` (one frame) for the peer `identity`. Unknown peers are ignored; a peer
    /// whose queue is full is disconnected.
    pub(crate) fn send(&self, identity: &[u8], payload: &[u8]) {
        let message = Bytes::from(codec::encode_message(&[payload]));
        let mut peers = self.shared.peers.lock();
        let Some(peer) = peers.get(identity) else {
            return;
        };
        match peer.queue.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let peer = peers.remove(identity);
                drop(peers);
                if let Some(peer) = peer {
                    peer.close.notify_one();
                }
                self.shared.count_drop(format_args!(
                    "disconnected a peer ({}) that does not read: {SEND_QUEUE} messages wait for it",
                    String::from_utf8_lossy(identity)
                ));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                peers.remove(identity);
            }
        }
    }

    /// Connections the ROUTER closed for breaking the protocol or a limit, being too slow,
    /// or arriving beyond `max_connections`.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub(crate) fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn count_drop(&self, what: std::fmt::Arguments<'_>) {
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed);
        if dropped < MAX_DROP_WARNINGS {
            tracing::warn!("{what}");
        } else {
            tracing::debug!("{what}");
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, inbound: mpsc::Sender<Inbound>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = inbound.closed() => return,
        };
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::debug!(%error, "accept failed on the master socket");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = shared.connections.load(Ordering::Relaxed);
        if open >= shared.options.max_connections {
            let dropped = shared.dropped.fetch_add(1, Ordering::Relaxed);
            if !shared.over_capacity_logged.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    peer = %addr,
                    open,
                    dropped_so_far = dropped + 1,
                    "the master has max_peers connections open: refusing more (logged once; \
                     see Master::dropped_connections)"
                );
            }
            drop(stream);
            continue;
        }
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let inbound = inbound.clone();
        tokio::spawn(async move {
            serve(stream, addr, &shared, inbound).await;
            shared.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn handshake(
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
) -> Result<codec::Ready, ZmtpError> {
    writer.write_all(&codec::greeting()).await?;
    codec::read_greeting(reader).await?;
    writer.write_all(&codec::ready("ROUTER", b"")).await?;
    let ready = codec::read_ready(reader).await?;
    if !matches!(ready.socket_type.as_str(), "DEALER" | "REQ" | "ROUTER") {
        return Err(ZmtpError::SocketType {
            peer: ready.socket_type,
            ours: "ROUTER",
        });
    }
    Ok(ready)
}

async fn serve(
    stream: TcpStream,
    addr: SocketAddr,
    shared: &Arc<Shared>,
    inbound: mpsc::Sender<Inbound>,
) {
    let _ = stream.set_nodelay(true);
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(16 * 1024, read_half);
    let ready = match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&mut reader, &mut write_half),
    )
    .await
    {
        Ok(Ok(ready)) => ready,
        Ok(Err(error)) => return end(shared, addr, None, &error),
        Err(_) => {
            return end(
                shared,
                addr,
                None,
                &ZmtpError::Timeout(HANDSHAKE_TIMEOUT, "complete the ZMTP handshake"),
            )
        }
    };
    let connection = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let identity = if ready.identity.is_empty() {
        // libzmq's choice for a peer without one: a zero byte, then a number.
        let mut generated = vec![0u8];
        generated.extend_from_slice(&(connection as u32).to_be_bytes());
        Bytes::from(generated)
    } else {
        ready.identity
    };
    let (queue, outgoing) = mpsc::channel(SEND_QUEUE);
    let close = Arc::new(Notify::new());
    let last_read_ms = Arc::new(AtomicU64::new(shared.now_ms()));
    {
        let mut peers = shared.peers.lock();
        if let Some(old) = peers.get(&identity) {
            let silent_ms = shared
                .now_ms()
                .saturating_sub(old.last_read_ms.load(Ordering::Relaxed));
            if u128::from(silent_ms) < HANDOVER_AFTER.as_millis() {
                drop(peers);
                shared.count_drop(format_args!(
                    "refused a second connection from {addr} for the identity {:?}, which a \
                     live connection holds",
                    String::from_utf8_lossy(&identity)
                ));
                return;
            }
            old.close.notify_one();
        }
        peers.insert(
            identity.clone(),
            Peer {
                connection,
                queue,
                last_read_ms: last_read_ms.clone(),
                close: close.clone(),
            },
        );
    }
    tokio::spawn(write_loop(write_half, outgoing, close.clone()));
    let max = shared.options.max_message_size;
    let outcome = loop {
        tokio::select! {
            _ = close.notified() => break None,
            read = tokio::time::timeout(IDLE_TIMEOUT, codec::read_message(&mut reader, max)) => match read {
                Ok(Ok(frames)) => {
                    last_read_ms.store(shared.now_ms(), Ordering::Relaxed);
                    let message = Inbound { identity: identity.clone(), frames };
                    tokio::select! {
                        sent = inbound.send(message) => if sent.is_err() { break None },
                        _ = close.notified() => break None,
                    }
                }
                Ok(Err(error)) => break Some(error),
                Err(_) => break Some(ZmtpError::Timeout(IDLE_TIMEOUT, "send anything")),
            },
        }
    };
    {
        let mut peers = shared.peers.lock();
        if peers
            .get(&identity)
            .is_some_and(|p| p.connection == connection)
        {
            // Dropping the queue's sender ends the writer.
            peers.remove(&identity);
        }
    }
    close.notify_one();
    if let Some(error) = outcome {
        end(shared, addr, Some(&identity), &error);
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut outgoing: mpsc::Receiver<Bytes>,
    close: Arc<Notify>,
) {
    while let Some(message) = outgoing.recv().await {
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&message)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::debug!(%error, "could not write to a peer");
                close.notify_one();
                break;
            }
            Err(_) => {
                tracing::info!(
                    "a peer took more than {WRITE_TIMEOUT:?} to take one message: disconnected"
                );
                close.notify_one();
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}

/// Logs why a connection ended, at the level it deserves, and counts the drops.
fn end(shared: &Shared, addr: SocketAddr, identity: Option<&Bytes>, error: &ZmtpError) {
    let who = identity.map_or_else(String::new, |i| {
        format!(" ({})", String::from_utf8_lossy(i))
    });
    match error {
        ZmtpError::Closed => tracing::debug!(peer = %addr, "a peer{who} disconnected"),
        ZmtpError::Io(error) => {
            tracing::debug!(peer = %addr, %error, "a peer's connection{who} failed")
        }
        ZmtpError::Truncated => {
            tracing::info!(peer = %addr, "a peer{who} disconnected in the middle of a frame")
        }
        ZmtpError::Oversize { claimed, .. } => shared.count_drop(format_args!(
            "dropped the peer {addr}{who}: a frame claims {claimed} bytes, more than \
             max_message_size ({} bytes); nothing of it was read",
            shared.options.max_message_size
        )),
        other => shared.count_drop(format_args!("dropped the peer {addr}{who}: {other}")),
    }
}
