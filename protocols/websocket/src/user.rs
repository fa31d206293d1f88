//! One simulated WebSocket user: its connection and how each method uses it.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use load_density_core::deadline::RequestDeadline;
use load_density_core::variables::UserVariables;
use load_density_core::{RequestMeta, RequestTimer, StaticUser, UserContext};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::error::UrlError;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::WsError;
use crate::io::{BufferedIo, WsConn};
use crate::protocol::Shared;
use crate::response::WsResponse;
use crate::task::{CompiledTask, Method};

/// How long closing a connection the user no longer needs may take (on stop, or when a
/// `connect` replaces it).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// tungstenite's own read buffer (see [`frame_buffers`]).
const READ_BUFFER: usize = 512;

/// The event's request type.
const REQUEST_TYPE: &str = "WS";

type Stream = WsConn;

/// An open connection and what it was opened with.
struct Connection {
    ws: Stream,
    url: Arc<str>,
    verify: bool,
}

/// One `websocket_user`: at most one connection, kept across iterations.
pub(crate) struct WebSocketUser {
    shared: Arc<Shared>,
    conn: Option<Connection>,
    /// The URL of the last connection attempt; kept after `close` and after failures, so a
    /// task without a URL reconnects there.
    last_url: Option<Arc<str>>,
    request_type: Arc<str>,
    /// The send and receive timeout, one timer reused from task to task.
    deadline: RequestDeadline,
    /// The local address connections bind to (the group's `source_addresses`).
    source: Option<std::net::IpAddr>,
}

/// What a task did: the URL it used and its outcome.
struct Outcome {
    url: Arc<str>,
    result: Result<WsResponse, WsError>,
}

impl Outcome {
    fn new(url: Option<&Arc<str>>, result: Result<WsResponse, WsError>) -> Self {
        Self {
            url: url.cloned().unwrap_or_else(|| Arc::from("")),
            result,
        }
    }
}

/// `host:port` of a ws/wss URL, for error messages.
fn authority(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            match parsed.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        }
        Err(_) => url.to_owned(),
    }
}

/// Sends a close frame and waits (bounded) for the server's reply; errors are ignored.
async fn close_quietly(mut conn: Connection, bound: Duration) {
    let closing = async {
        if conn.ws.close().await.is_ok() {
            while let Some(Ok(_)) = conn.ws.next().await {}
        }
    };
    let _ = tokio::time::timeout(bound, closing).await;
}

/// Waits for a data frame that passes `expect` (or, without `skip_non_matching`, for the first
/// data frame). Ping and pong frames are skipped; tungstenite answers pings. The caller bounds
/// the wait (the task's timeout).
///
/// Returns the frame and, when it does not match, the reason.
async fn receive(
    ws: &mut Stream,
    task: &CompiledTask,
    vars: &UserVariables,
) -> Result<(Bytes, Option<String>), WsError> {
    loop {
        let next = ws.next().await;
        let frame: Bytes = match next {
            None => return Err(WsError::Closed),
            Some(Err(error)) => return Err(WsError::from_stream(error)),
            Some(Ok(Message::Text(text))) => text.into(),
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Close(_))) => return Err(WsError::Closed),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
        };
        let verdict = task.expect.as_ref().and_then(|e| e.check(&frame, vars));
        match verdict {
            Some(_) if task.skip_non_matching => continue,
            verdict => return Ok((frame, verdict)),
        }
    }
}

/// Opens the TCP connection for `url` from `source` (tungstenite's own connect cannot bind).
async fn connect_from(url: &str, source: std::net::IpAddr) -> std::io::Result<TcpStream> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let parsed = url::Url::parse(url).map_err(|e| invalid(format!("{url}: {e}")))?;
    let (Some(host), Some(port)) = (parsed.host_str(), parsed.port_or_known_default()) else {
        return Err(invalid(format!("{url} has no host or port")));
    };
    let stream = load_density_core::source_address::connect_host(host, port, Some(source)).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Opens the TCP connection for `request` as tokio-tungstenite's own connect does (the same
/// errors), but keeps the stream so that it can sit under a [`BufferedIo`].
async fn connect_direct(request: &Request) -> Result<TcpStream, tungstenite::Error> {
    let uri = request.uri();
    let host = uri
        .host()
        .ok_or(tungstenite::Error::Url(UrlError::NoHostName))?;
    let port = uri
        .port_u16()
        .or_else(|| match uri.scheme_str() {
            Some("wss") => Some(443),
            Some("ws") => Some(80),
            _ => None,
        })
        .ok_or(tungstenite::Error::Url(UrlError::UnsupportedUrlScheme))?;
    let stream = TcpStream::connect(format!("{host}:{port}"))
        .await
        .map_err(tungstenite::Error::Io)?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Rebuilds a plain connection whose handshake left nothing buffered in tungstenite (see
/// [`crate::io`]) around the same stream, with the configured read buffer; anything else
/// stays as the handshake left it, boxed.
async fn lean(ws: crate::io::Handshaken, max_message_size: usize) -> WsConn {
    let plain_and_clean = matches!(ws.get_ref(), MaybeTlsStream::Plain(io) if io.head_passed());
    if !plain_and_clean {
        return WsConn::Handshaken(Box::new(ws));
    }
    match ws.into_inner() {
        MaybeTlsStream::Plain(io) => WsConn::Lean(
            WebSocketStream::from_raw_socket(
                io,
                Role::Client,
                Some(frame_buffers(max_message_size)),
            )
            .await,
        ),
        // Not reached: checked above, before taking the stream out.
        other => WsConn::Handshaken(Box::new(
            WebSocketStream::from_raw_socket(
                other,
                Role::Client,
                Some(frame_buffers(max_message_size)),
            )
            .await,
        )),
    }
}

impl WebSocketUser {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            conn: None,
            last_url: None,
            request_type: Arc::from(REQUEST_TYPE),
            deadline: RequestDeadline::new(),
            source: None,
        }
    }

    /// Opens a connection to `url` for `task`, replacing none (the caller closed the old one).
    /// Returns the handshake response's headers.
    async fn open(
        &mut self,
        task: &CompiledTask,
        url: &Arc<str>,
        vars: &UserVariables,
    ) -> Result<Vec<(String, String)>, WsError> {
        self.last_url = Some(url.clone());
        let mut request = url
            .as_ref()
            .into_client_request()
            .map_err(|e| WsError::Url(e.to_string()))?;
        for (name, value) in task.headers(vars)? {
            if name == "host" {
                request.headers_mut().insert(name, value);
            } else {
                request.headers_mut().append(name, value);
            }
        }
        let connector = self
            .shared
            .tls
            .get(task.verify)
            .map(|config| Connector::Rustls(config.clone()));
        let max_message_size = self.shared.max_message_size;
        let buffers = Some(frame_buffers(max_message_size));
        let source = self.source;
        let connecting = async move {
            let stream = match source {
                None => connect_direct(&request).await?,
                Some(source) => connect_from(url, source)
                    .await
                    .map_err(tungstenite::Error::Io)?,
            };
            // Over plain TCP the handshake reads through the buffer that stops at the end of
            // the response head; under TLS the head is inside the records, so no stop there.
            let plain = request.uri().scheme_str() == Some("ws");
            let io = BufferedIo::new(stream, plain);
            let (ws, response) =
                tokio_tungstenite::client_async_tls_with_config(request, io, buffers, connector)
                    .await?;
            Ok::<_, tungstenite::Error>((lean(ws, max_message_size).await, response))
        };
        let (ws, response) = tokio::time::timeout(task.timeout, connecting)
            .await
            .map_err(|_| WsError::ConnectTimeout(task.timeout))?
            .map_err(|e| WsError::from_connect(e, &authority(url)))?;
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.conn = Some(Connection {
            ws,
            url: url.clone(),
            verify: task.verify,
        });
        Ok(headers)
    }

    /// Closes the current connection, if any.
    async fn close_current(&mut self, bound: Duration) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        // Boxed: closing is rare and its future holds the whole connection; inline it would
        // sit in every user's task for the user's whole life.
        let closing = Box::pin(close_quietly(conn, bound));
        closing.await;
    }

    /// Closes a connection the task replaces; the task's latency starts after it.
    async fn replace_current(&mut self, task: &CompiledTask, timer: &mut RequestTimer) {
        if self.conn.is_some() {
            self.close_current(CLOSE_GRACE.min(task.timeout)).await;
            *timer = RequestTimer::start();
        }
    }

    async fn connect(
        &mut self,
        task: &CompiledTask,
        target: Option<Arc<str>>,
        vars: &UserVariables,
        timer: &mut RequestTimer,
    ) -> Outcome {
        let Some(url) = target.or_else(|| self.last_url.clone()) else {
            return Outcome::new(None, Err(WsError::NotConnected));
        };
        if let Some(conn) = &self.conn {
            if conn.url == url && conn.verify == task.verify {
                return Outcome::new(Some(&url), Ok(WsResponse::handshake(Vec::new())));
            }
        }
        self.replace_current(task, timer).await;
        let result = self.open(task, &url, vars).await.map(WsResponse::handshake);
        Outcome::new(Some(&url), result)
    }

    async fn close(&mut self, task: &CompiledTask, target: Option<Arc<str>>) -> Outcome {
        let url = self
            .conn
            .as_ref()
            .map(|c| c.url.clone())
            .or(target)
            .or_else(|| self.last_url.clone());
        self.close_current(task.timeout).await;
        Outcome::new(url.as_ref(), Ok(WsResponse::new(Bytes::new(), 0)))
    }

    /// `send`, `recv` and `sendrecv`: connect when needed, then exchange frames.
    async fn exchange(
        &mut self,
        task: &CompiledTask,
        target: Option<Arc<str>>,
        vars: &UserVariables,
        timer: &mut RequestTimer,
    ) -> Outcome {
        let payload = if task.method.sends() {
            match task.payload(vars) {
                Ok(payload) => Some(payload),
                Err(e) => {
                    let url = target
                        .or_else(|| self.conn.as_ref().map(|c| c.url.clone()))
                        .or_else(|| self.last_url.clone());
                    return Outcome::new(url.as_ref(), Err(e));
                }
            }
        } else {
            None
        };
        // Reuse the connection unless the task names another URL (or TLS setting).
        let reusable = self.conn.as_ref().is_some_and(|conn| {
            target
                .as_ref()
                .is_none_or(|url| *url == conn.url && task.verify == conn.verify)
        });
        // The exchange's timeout runs from the task's start, or from the end of the handshake
        // when the task had to connect first (one more clock read, on that path only).
        let mut exchange_timer = *timer;
        if !reusable {
            let Some(url) = target.or_else(|| self.last_url.clone()) else {
                return Outcome::new(None, Err(WsError::NotConnected));
            };
            // Boxed: the handshake's future is large, and keeping it out of this one keeps the
            // per-message future (moved into a box for every task) small.
            Box::pin(self.replace_current(task, timer)).await;
            if let Err(e) = Box::pin(self.open(task, &url, vars)).await {
                return Outcome::new(Some(&url), Err(e));
            }
            exchange_timer = RequestTimer::start();
        }
        let Some(conn) = self.conn.as_mut() else {
            return Outcome::new(None, Err(WsError::NotConnected));
        };
        let url = conn.url.clone();
        let mut sent = 0;
        if let Some((message, len)) = payload {
            let mut send = conn.ws.send(message);
            // A small frame is usually written at the first try: only arm a timer when the
            // socket is full (a timer per message costs more than the write itself).
            let first_try = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut send).poll(cx)));
            let sending = match first_try.await {
                Poll::Ready(written) => Ok(written),
                Poll::Pending => self
                    .deadline
                    .within(&exchange_timer, task.timeout, send)
                    .await
                    .ok_or(()),
            };
            match sending {
                Err(()) => {
                    return Outcome::new(Some(&url), Err(WsError::SendTimeout(task.timeout)))
                }
                Ok(Err(e)) => return Outcome::new(Some(&url), Err(WsError::from_stream(e))),
                Ok(Ok(())) => sent = len,
            }
        }
        if !task.method.receives() {
            return Outcome::new(Some(&url), Ok(WsResponse::new(Bytes::new(), sent)));
        }
        let result = self
            .deadline
            .within(
                &exchange_timer,
                task.timeout,
                receive(&mut conn.ws, task, vars),
            )
            .await
            .unwrap_or(Err(WsError::RecvTimeout(task.timeout)))
            .map(|(frame, mismatch)| {
                let length = sent + frame.len() as u64;
                let response = WsResponse::new(frame, length);
                match mismatch {
                    Some(reason) => response.with_failure(reason),
                    None => response,
                }
            });
        Outcome::new(Some(&url), result)
    }
}

impl StaticUser for WebSocketUser {
    async fn on_start(&mut self, ctx: &mut UserContext) {
        self.source = ctx.source_address();
    }

    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let shared = self.shared.clone();
        let Some(task) = shared.tasks.get(index) else {
            return;
        };
        let mut timer = ctx.start_timer();
        let vars = ctx.variables();
        let outcome = match task.target(shared.base.as_ref(), vars) {
            Err(e) => Outcome::new(None, Err(e)),
            Ok(target) => {
                if target.is_some() {
                    // The task names the URL to use from now on, even if it fails early.
                    self.last_url.clone_from(&target);
                }
                match task.method {
                    // Boxed for the same reason as in `exchange`.
                    Method::Connect => Box::pin(self.connect(task, target, vars, &mut timer)).await,
                    Method::Close => Box::pin(self.close(task, target)).await,
                    Method::Send | Method::Recv | Method::SendRecv => {
                        self.exchange(task, target, vars, &mut timer).await
                    }
                }
            }
        };
        let meta = RequestMeta {
            request_type: self.request_type.clone(),
            name: task.name(shared.base.as_ref(), ctx.variables()),
            url: outcome.url,
        };
        match outcome.result {
            Ok(response) => {
                if load_density_core::Response::failure(&response).is_some() {
                    // The stream no longer matches the script: start afresh next time.
                    self.conn = None;
                }
                ctx.record_response(&meta, timer, &response);
            }
            Err(error) => {
                if error.involves_connection() {
                    self.conn = None;
                }
                ctx.record_failure(&meta, timer, None, 0, error);
            }
        }
    }

    fn on_idle(&mut self) {
        if let Some(conn) = &mut self.conn {
            conn.ws.release_idle();
        }
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        self.close_current(CLOSE_GRACE).await;
    }
}

/// Socket buffer sizes for a load generator. tungstenite's 128 KiB default read buffer is
/// zero-filled before every read (a third of the CPU of a sendrecv loop of small frames), and
/// it stays allocated for the connection's whole life. Reads from the socket go through the
/// connection's [`BufferedIo`] (4 KiB, given back when the user is idle), so tungstenite's
/// own buffer only needs to take a typical frame in one call from there: 512 bytes. A larger
/// frame gets its whole length reserved once its header is read (kept until a larger one). Frames are written as they are sent
/// (`write_buffer_size` 0: the user flushes every message anyway), so the write buffer holds
/// at most the frame being written. A message or frame above `max_message_size` (the group
/// option) ends the connection with an error instead of growing the user's memory.
fn frame_buffers(
    max_message_size: usize,
) -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_size))
        .max_frame_size(Some(max_message_size))
}
