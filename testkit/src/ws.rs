//! The in-process WebSocket echo server.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::tls::{self, TlsMaterial};

/// Maximum duration of a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Maximum duration of a WebSocket handshake (after TLS).
const WS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server-initiated close waits for the client's close reply.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Longest `delay:<ms>:` honoured.
const MAX_DELAY_MS: u64 = 60_000;
/// Handshakes kept for [`WsEchoServer::handshakes`]; later ones are counted but not kept.
const MAX_KEPT_HANDSHAKES: usize = 10_000;
/// Frames kept for [`WsEchoServer::frames`]; later ones are counted but not kept.
const MAX_KEPT_FRAMES: usize = 10_000;
/// Listen backlog; large so that bursts of 200+ connecting users are not refused.
const LISTEN_BACKLOG: u32 = 4096;

/// What the server saw of one WebSocket opening handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsHandshake {
    path: String,
    headers: Vec<(String, String)>,
    offered: Vec<String>,
    selected: Option<String>,
}

impl WsHandshake {
    /// The request path and query (`/chat?room=1`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every request header, in order, names in lower case (values decoded lossily).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in order.
    pub fn offered_subprotocols(&self) -> &[String] {
        &self.offered
    }

    /// The subprotocol the server answered with: the first one offered, if any.
    pub fn selected_subprotocol(&self) -> Option<&str> {
        self.selected.as_deref()
    }
}

/// A data frame the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsFrame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

#[derive(Debug, Default)]
struct State {
    messages: AtomicU64,
    connections: AtomicU64,
    open: AtomicU64,
    handshakes: Mutex<Vec<WsHandshake>>,
    frames: Mutex<Vec<WsFrame>>,
    peers: crate::stats::Peers,
}

impl State {
    fn received(&self, frame: impl FnOnce() -> WsFrame) {
        self.messages.fetch_add(1, Ordering::SeqCst);
        let mut kept = self.frames.lock();
        if kept.len() < MAX_KEPT_FRAMES {
            kept.push(frame());
        }
    }
}

/// A WebSocket echo server (`ws://` or `wss://`) running inside the current Tokio runtime,
/// listening on `127.0.0.1` on an ephemeral port.
///
/// Every text and binary frame is echoed back unchanged, except for these text frames:
///
/// | frame | behaviour |
/// |---|---|
/// | `delay:<ms>:<text>` | echoed unchanged after `<ms>` milliseconds (at most 60000); frames behind it on the same connection wait |
/// | `close-me` | not echoed: the server starts the close handshake (code 1000) and drops the connection |
/// | `silent` | not echoed: no reply at all |
///
/// A handshake to the path `/status/<code>` (a 4xx or 5xx code) is rejected with that HTTP
/// status. The server answers the first subprotocol a client offers, and records every
/// handshake's path and headers ([`handshakes`](Self::handshakes)).
///
/// [`messages`](Self::messages) counts data frames (text and binary, not ping/pong/close) as
/// they arrive, before any reply; [`connections`](Self::connections) counts completed
/// WebSocket handshakes.
///
/// Dropping the handle stops the server and aborts every connection;
/// [`shutdown`](Self::shutdown) closes the connections with a close frame first.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use load_density_testkit::WsEchoServer;
///
/// let server = WsEchoServer::start().await?;
/// let url = server.url("/echo");
/// // ... connect to `url`, send frames ...
/// assert_eq!(server.messages(), 0);
/// server.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct WsEchoServer {
    addr: SocketAddr,
    tls: Option<TlsMaterial>,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for WsEchoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsEchoServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("messages", &self.messages())
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

impl WsEchoServer {
    /// Starts a plain `ws://` echo server on `127.0.0.1:0`.
    ///
    /// Must be called from within a Tokio runtime; the server runs as a task on it.
    pub async fn start() -> io::Result<WsEchoServer> {
        Self::start_with(None)
    }

    /// Starts a `wss://` echo server on `127.0.0.1:0` with a freshly generated self-signed
    /// certificate valid for `localhost` and `127.0.0.1` (trust it with
    /// [`ca_cert_pem`](Self::ca_cert_pem)).
    pub async fn start_tls() -> io::Result<WsEchoServer> {
        let (material, config) = tls::generate()?;
        Self::start_with(Some((material, TlsAcceptor::from(config))))
    }

    fn start_with(tls: Option<(TlsMaterial, TlsAcceptor)>) -> io::Result<WsEchoServer> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let (stop, stop_rx) = watch::channel(false);
        let (material, acceptor) = match tls {
            Some((material, acceptor)) => (Some(material), Some(acceptor)),
            None => (None, None),
        };
        let task = tokio::spawn(accept_loop(listener, acceptor, state.clone(), stop_rx));
        Ok(WsEchoServer {
            addr,
            tls: material,
            state,
            stop,
            task: Some(task),
        })
    }

    /// The socket address the server listens on (always `127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether this server speaks `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `"ws://127.0.0.1:PORT"` or `"wss://127.0.0.1:PORT"` (no trailing slash).
    pub fn base_url(&self) -> String {
        let scheme = if self.is_tls() { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// [`base_url`](Self::base_url) followed by `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// PEM of the self-signed server certificate (TLS servers only).
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|t| t.cert_pem.clone())
    }

    /// Data frames (text and binary) received since start or the last
    /// [`reset_counts`](Self::reset_counts).
    pub fn messages(&self) -> u64 {
        self.state.messages.load(Ordering::SeqCst)
    }

    /// Completed WebSocket handshakes since start or the last
    /// [`reset_counts`](Self::reset_counts).
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections open right now (handshake completed, not yet closed by either side).
    pub fn open_connections(&self) -> u64 {
        self.state.open.load(Ordering::SeqCst)
    }

    /// The handshakes seen so far, in arrival order (the first 10000).
    pub fn handshakes(&self) -> Vec<WsHandshake> {
        self.state.handshakes.lock().clone()
    }

    /// The data frames received so far, in arrival order across connections (the first
    /// 10000).
    pub fn frames(&self) -> Vec<WsFrame> {
        self.state.frames.lock().clone()
    }

    /// TCP connections accepted so far per source (peer) address, in address order (never
    /// reset).
    pub fn connection_sources(&self) -> Vec<(std::net::IpAddr, u64)> {
        self.state.peers.snapshot()
    }

    /// Resets the message and connection counters and forgets the handshakes and frames.
    pub fn reset_counts(&self) {
        self.state.messages.store(0, Ordering::SeqCst);
        self.state.connections.store(0, Ordering::SeqCst);
        self.state.handshakes.lock().clear();
        self.state.frames.lock().clear();
    }

    /// Stops the server: stops accepting, sends every open connection a close frame (code
    /// 1001, going away), and drops whatever has not closed after 2 seconds.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::debug!(%err, "testkit ws server task ended abnormally");
            }
        }
    }
}

impl Drop for WsEchoServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            // Aborting the accept task drops its JoinSet, which aborts every connection too.
            task.abort();
        }
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the handle is gone: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    state.peers.record(peer.ip());
                    connections.spawn(serve_connection(
                        stream,
                        acceptor.clone(),
                        state.clone(),
                        stop.clone(),
                    ));
                }
                Err(err) => {
                    tracing::debug!(%err, "testkit ws server: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(CLOSE_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    state: Arc<State>,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match acceptor {
        None => serve_ws(stream, state, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => serve_ws(tls_stream, state, stop).await,
                Ok(Err(err)) => tracing::debug!(%err, "testkit ws server: TLS handshake failed"),
                Err(_) => tracing::debug!("testkit ws server: TLS handshake timed out"),
            }
        }
    }
}

/// Records the handshake, answers the first offered subprotocol, rejects `/status/<code>`.
// The result type is tungstenite's `Callback` signature.
#[allow(clippy::result_large_err)]
fn on_handshake(
    state: &State,
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    let path = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let offered: Vec<String> = request
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let selected = offered.first().cloned();
    if let Some(protocol) = &selected {
        if let Ok(value) = HeaderValue::from_str(protocol) {
            response
                .headers_mut()
                .insert("sec-websocket-protocol", value);
        }
    }
    {
        let mut kept = state.handshakes.lock();
        if kept.len() < MAX_KEPT_HANDSHAKES {
            kept.push(WsHandshake {
                path: path.clone(),
                headers,
                offered,
                selected,
            });
        }
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|rest| rest.split(['?', '/']).next())
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|code| code.is_client_error() || code.is_server_error())
    {
        let mut rejection = ErrorResponse::new(Some(format!("rejected with {code}")));
        *rejection.status_mut() = code;
        return Err(rejection);
    }
    Ok(response)
}

// The callback's result type is tungstenite's `Callback` signature.
#[allow(clippy::result_large_err)]
async fn serve_ws<S>(stream: S, state: Arc<State>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let callback_state = state.clone();
    let callback = move |request: &Request, response: Response| {
        on_handshake(&callback_state, request, response)
    };
    // Small buffers: the 128 KiB default is zero-filled before every read (see the client).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024);
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let mut ws = match tokio::time::timeout(WS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(err)) => {
            tracing::debug!(%err, "testkit ws server: handshake failed");
            return;
        }
        Err(_) => return,
    };
    state.connections.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard::new(&state);
    loop {
        let next = tokio::select! {
            next = ws.next() => next,
            _ = stopped(&mut stop) => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                close_gracefully(&mut ws, Some(frame)).await;
                return;
            }
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(err)) => {
                tracing::debug!(%err, "testkit ws server: connection error");
                return;
            }
            None => return,
        };
        let reply = match message {
            Message::Text(text) => {
                state.received(|| WsFrame::Text(text.as_str().to_owned()));
                match text.as_str() {
                    "close-me" => {
                        close_gracefully(&mut ws, None).await;
                        return;
                    }
                    "silent" => continue,
                    other => {
                        if let Some(ms) = delay_of(other) {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                                _ = stopped(&mut stop) => continue,
                            }
                        }
                        Message::Text(text)
                    }
                }
            }
            Message::Binary(bytes) => {
                state.received(|| WsFrame::Binary(bytes.to_vec()));
                Message::Binary(bytes)
            }
            // Pings are answered by tungstenite; a client close is answered by it too, after
            // which the stream ends.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => continue,
        };
        if ws.send(reply).await.is_err() {
            return;
        }
    }
}

/// Counts an open connection for as long as it lives.
struct OpenGuard<'a>(&'a State);

impl<'a> OpenGuard<'a> {
    fn new(state: &'a State) -> Self {
        state.open.fetch_add(1, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `delay:<ms>:<text>` → `ms` (capped).
fn delay_of(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("delay:")?;
    let (ms, _) = rest.split_once(':')?;
    ms.parse::<u64>().ok().map(|ms| ms.min(MAX_DELAY_MS))
}

/// Sends a close frame and waits (bounded) for the client's reply.
async fn close_gracefully<S>(ws: &mut WebSocketStream<S>, frame: Option<CloseFrame>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let closing = async {
        if ws.close(frame).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, closing).await;
}
