//! HTTP/2 connections to a target: parsing targets, connecting (TCP, optional TLS, the HTTP/2
//! handshake), and the slots users keep their connection in.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::uri::{Authority, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

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

    /// Opens a new HTTP/2 connection (TCP, TLS when the target is `https://`, the HTTP/2
    /// handshake). The connection is driven by a spawned task that ends when the connection
    /// closes or every handle to it is dropped.
    pub(crate) async fn connect(&self) -> Result<SendRequest<tonic::body::Body>, ConnectError> {
        let address = self.target.authority.as_str();
        let stream = TcpStream::connect((self.target.host.as_str(), self.target.port))
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

async fn handshake<S>(io: S) -> Result<SendRequest<tonic::body::Body>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(io))
        .await
        .map_err(|error| ConnectError::Handshake(error.to_string()))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!("gRPC connection ended: {error}");
        }
    });
    Ok(send)
}

/// An open connection, with an id so that a failed one is discarded only once.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) send: SendRequest<tonic::body::Body>,
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
    pub(crate) async fn get(&self, endpoint: &Endpoint) -> Result<Channel, ConnectError> {
        let mut current = self.current.lock().await;
        if let Some(channel) = current.as_ref() {
            if !channel.send.is_closed() {
                return Ok(channel.clone());
            }
        }
        *current = None;
        let send = endpoint.connect().await?;
        let channel = Channel {
            send,
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

/// A tower service over one HTTP/2 connection, for `tonic::client::Grpc`.
#[derive(Debug, Clone)]
pub(crate) struct H2Service(pub(crate) SendRequest<tonic::body::Body>);

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for H2Service {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}
