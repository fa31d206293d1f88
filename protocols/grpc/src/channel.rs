//! HTTP/2 connections to a target: parsing targets, connecting (TCP, optional TLS, the HTTP/2
//! handshake), and the slots users keep their connection in.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use h2::client::SendRequest;
use http::uri::{Authority, Uri};
use http_body::{Body as _, Frame};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use load_density_core::source_address::connect_host;

use crate::error::ConnectError;

/// Where a task's calls go, parsed from `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// Whether the target is `https://`.
    pub(crate) tls: bool,
    /// `host:port`.
    pub(crate) authority: String,
    /// The host, without brackets for IPv6.
    pub(crate) host: String,
    /// The port.
    pub(crate) port: u16,
}

impl Target {
    /// Parses `host:port`, `http://host[:port]` or `https://host[:port]` (ports 80 and 443 by
    /// default when a scheme is given).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let (tls, rest, default_port) = match trimmed.split_once("://") {
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "http" | "grpc" => (false, rest, Some(80)),
                "https" | "grpcs" => (true, rest, Some(443)),
                other => {
                    return Err(format!(
                        "unsupported scheme {other:?} in target {text:?} (expected host:port, http:// or https://)"
                    ))
                }
            },
            None => (false, trimmed, None),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!(
                "target {text:?} has a path; a gRPC target is host:port (the method path comes from the call)"
            ));
        }
        let authority: Authority = rest
            .parse()
            .map_err(|e| format!("invalid target {text:?}: {e}"))?;
        if authority.as_str().contains('@') {
            return Err(format!("invalid target {text:?}: user info is not allowed"));
        }
        let port = match (authority.port_u16(), default_port) {
            (Some(port), _) => port,
            (None, Some(port)) => port,
            (None, None) => {
                return Err(format!(
                "target {text:?} has no port (expected host:port, or an http:// or https:// URL)"
            ))
            }
        };
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("target {text:?} has no host"));
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Self {
            tls,
            authority,
            host,
            port,
        })
    }

    /// `http://host:port` or `https://host:port`.
    pub(crate) fn origin_text(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

/// One target with the TLS configuration its calls use: what a connection is made from.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) target: Target,
    pub(crate) origin: Uri,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("target", &self.target)
            .field("origin", &self.origin)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// An endpoint for `target`; `tls` must be given for an `https://` target.
    pub(crate) fn new(target: Target, tls: Option<Arc<ClientConfig>>) -> Result<Self, String> {
        let origin: Uri = target
            .origin_text()
            .parse()
            .map_err(|e| format!("invalid target {}: {e}", target.authority))?;
        let tls = match (target.tls, tls) {
            (false, _) => None,
            (true, None) => return Err("an https:// target needs a TLS configuration".to_owned()),
            (true, Some(config)) => {
                let name = ServerName::try_from(target.host.clone())
                    .map_err(|e| format!("invalid TLS server name {:?}: {e}", target.host))?;
                Some((TlsConnector::from(config), name))
            }
        };
        Ok(Self {
            target,
            origin,
            tls,
        })
    }

    /// Opens a new HTTP/2 connection (TCP from `source` when given, TLS when the target is
    /// `https://`, the HTTP/2 handshake). The connection is driven by a spawned task that ends when the connection
    /// closes or every handle to it is dropped.
    pub(crate) async fn connect(&self, source: Option<IpAddr>) -> Result<Connection, ConnectError> {
        let address = self.target.authority.as_str();
        let stream = connect_host(self.target.host.as_str(), self.target.port, source)
            .await
            .map_err(|error| ConnectError::from_io(address, error))?;
        // Small gRPC frames must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => handshake(stream).await,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|error| ConnectError::Tls(error.to_string()))?;
                let (_, session) = stream.get_ref();
                if session.alpn_protocol() != Some(b"h2".as_slice()) {
                    return Err(ConnectError::NoH2(address.to_owned()));
                }
                handshake(stream).await
            }
        }
    }
}

/// Flow-control windows a load generator should advertise: the protocol's 64 KiB default makes
/// a large streamed reply wait for window updates (hyper's client uses the same values).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// An open HTTP/2 connection: the handle that starts calls on it, and whether it has closed.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) send: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Connection {
    /// Whether the connection has ended (its driver task finished).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The HTTP/2 handshake on `io`, with the h2 crate directly: hyper's HTTP/2 client adds a
/// request queue and spawns a task per call, which cost a tenth of a unary call's CPU.
async fn handshake<S>(io: S) -> Result<Connection, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|error| ConnectError::Handshake(error.to_string()))?;
    let closed = Arc::new(AtomicBool::new(false));
    let flag = closed.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("gRPC connection ended: {error}");
        }
        flag.store(true, Ordering::Release);
    });
    Ok(Connection { send, closed })
}

/// An open connection, with an id so that a failed one is discarded only once.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) connection: Connection,
    id: u64,
}

/// Where a user (or, with `share_channel`, every user of a group) keeps its connection to one
/// endpoint. The connection is opened on first use and re-opened after it failed.
#[derive(Debug, Default)]
pub(crate) struct ChannelSlot {
    current: tokio::sync::Mutex<Option<Channel>>,
    next_id: AtomicU64,
}

impl ChannelSlot {
    /// The open connection, opening one when there is none or it was closed.
    pub(crate) async fn get(
        &self,
        endpoint: &Endpoint,
        source: Option<IpAddr>,
    ) -> Result<Channel, ConnectError> {
        let mut current = self.current.lock().await;
        if let Some(channel) = current.as_ref() {
            if !channel.connection.is_closed() {
                return Ok(channel.clone());
            }
        }
        *current = None;
        // Boxed: the connect future (TCP, TLS, HTTP/2 handshake) is large, and inline it would
        // grow every call's future, which is moved into a box for each task.
        let connection = Box::pin(endpoint.connect(source)).await?;
        let channel = Channel {
            connection,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        *current = Some(channel.clone());
        Ok(channel)
    }

    /// Forgets `channel` after a transport error, unless another user already replaced it.
    pub(crate) async fn discard(&self, channel: &Channel) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| c.id == channel.id) {
            *current = None;
        }
    }

    /// Drops the connection (it closes once no call uses it).
    pub(crate) async fn close(&self) {
        self.current.lock().await.take();
    }
}

/// A tower service over one HTTP/2 connection, for `tonic::client::Grpc`: each call opens a
/// stream, writes the request body into it and hands back the response with a body that reads
/// the stream (and finishes writing the request, for a body longer than the wait for the
/// response head).
#[derive(Debug, Clone)]
pub(crate) struct H2Service(pub(crate) SendRequest<Bytes>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<ResponseBody>, h2::Error>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for H2Service {
    type Response = http::Response<ResponseBody>;
    type Error = h2::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (head, body) = request.into_parts();
        let end_of_stream = body.is_end_stream();
        let opened = self
            .0
            .send_request(http::Request::from_parts(head, ()), end_of_stream);
        Box::pin(async move {
            let (mut response, stream) = opened?;
            let mut pipe = (!end_of_stream).then(|| RequestPipe::new(body, stream));
            let head = std::future::poll_fn(|cx| {
                if let Some(writing) = &mut pipe {
                    if writing.poll_write(cx).is_ready() {
                        pipe = None;
                    }
                }
                Pin::new(&mut response).poll(cx)
            })
            .await?;
            let (head, recv) = head.into_parts();
            Ok(http::Response::from_parts(
                head,
                ResponseBody {
                    recv,
                    pipe,
                    data_done: false,
                },
            ))
        })
    }
}

/// Writes a request body into its HTTP/2 stream. h2 buffers data beyond the peer's window and
/// sends it as the window opens, so a frame is handed over as soon as the body yields it.
struct RequestPipe {
    body: tonic::body::Body,
    stream: h2::SendStream<Bytes>,
}

impl RequestPipe {
    fn new(body: tonic::body::Body, stream: h2::SendStream<Bytes>) -> Self {
        Self { body, stream }
    }

    /// Ready when the whole body was handed over, or writing failed (the response says why:
    /// a server may answer and reset the stream before reading the whole request).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let (written, finished) = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => (self.stream.send_data(Bytes::new(), true), true),
                Some(Err(error)) => {
                    tracing::debug!("gRPC request body failed: {error}");
                    self.stream.send_reset(h2::Reason::CANCEL);
                    return Poll::Ready(());
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => (self.stream.send_data(data, false), false),
                    Err(frame) => match frame.into_trailers() {
                        Ok(trailers) => (self.stream.send_trailers(trailers), true),
                        Err(_) => (Ok(()), false),
                    },
                },
            };
            if let Err(error) = written {
                tracing::debug!("gRPC request stream closed while writing: {error}");
                return Poll::Ready(());
            }
            if finished {
                return Poll::Ready(());
            }
        }
    }
}

/// The body of a response: the stream's data frames, then its trailers.
pub(crate) struct ResponseBody {
    recv: h2::RecvStream,
    /// The rest of the request body, for a call that got its response head first.
    pipe: Option<RequestPipe>,
    data_done: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = self.get_mut();
        if let Some(pipe) = &mut this.pipe {
            if pipe.poll_write(cx).is_ready() {
                this.pipe = None;
            }
        }
        if !this.data_done {
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    // The data is consumed: let the peer send more.
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(error)) => return Poll::Ready(Some(Err(error))),
                None => this.data_done = true,
            }
        }
        match ready!(this.recv.poll_trailers(cx)) {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
