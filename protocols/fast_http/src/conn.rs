//! One user's connection: TCP or TLS, keyed by origin.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use url::{Host, Url};

use crate::error::FastHttpError;

/// What a connection can be reused for: scheme, host, port, and for TLS whether the
/// certificate was verified (a connection opened with `verify: false` never serves a task
/// that verifies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    tls: bool,
    host: Box<str>,
    port: u16,
    verify: bool,
}

impl Origin {
    /// The origin of an `http`/`https` URL.
    pub(crate) fn of(url: &Url, verify: bool) -> Option<Self> {
        let tls = url.scheme() == "https";
        Some(Self {
            tls,
            host: url.host_str()?.into(),
            port: url.port_or_known_default()?,
            verify: verify || !tls,
        })
    }

    /// Whether a connection to this origin can carry a request to `url` (no allocation).
    pub(crate) fn matches(&self, url: &Url, verify: bool) -> bool {
        let tls = url.scheme() == "https";
        self.tls == tls
            && Some(self.port) == url.port_or_known_default()
            && url.host_str() == Some(&*self.host)
            && (!tls || self.verify == verify)
    }
}

/// A plain or TLS byte stream.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Transport {
    /// Whether writes must be flushed (TLS buffers records; TCP writes straight through).
    pub(crate) fn needs_flush(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }
}

/// An open connection and what it is for.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) origin: Origin,
    pub(crate) io: Transport,
    /// Responses received on this connection so far.
    pub(crate) served: u64,
}

/// Opens a connection to `url`'s origin, from `source` when given; `tls` is the connector for
/// `https` URLs.
pub(crate) async fn connect(
    url: &Url,
    verify: bool,
    tls: Option<&TlsConnector>,
    source: Option<std::net::IpAddr>,
) -> Result<Connection, FastHttpError> {
    let origin = Origin::of(url, verify)
        .ok_or_else(|| FastHttpError::InvalidRequest(format!("{url} has no host or port")))?;
    let port = origin.port;
    let addr_text = || format!("{}:{port}", origin.host);
    let host = url
        .host()
        .ok_or_else(|| FastHttpError::InvalidRequest(format!("{url} has no host")))?;
    let addrs: Vec<SocketAddr> = match &host {
        Host::Ipv4(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Ipv6(ip) => vec![SocketAddr::from((*ip, port))],
        Host::Domain(name) => tokio::net::lookup_host((*name, port))
            .await
            .map_err(|source| FastHttpError::Resolve {
                host: (*name).to_owned(),
                source,
            })?
            .collect(),
    };
    let mut last_error = None;
    let mut stream = None;
    for addr in addrs {
        match load_density_core::source_address::connect_tcp(addr, source).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let stream = match (stream, last_error) {
        (Some(stream), _) => stream,
        (None, Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(FastHttpError::ConnectionRefused { addr: addr_text() })
        }
        (None, Some(source)) => {
            return Err(FastHttpError::Connect {
                addr: addr_text(),
                source,
            })
        }
        (None, None) => {
            return Err(FastHttpError::Connect {
                addr: addr_text(),
                source: io::Error::new(io::ErrorKind::NotFound, "no address"),
            })
        }
    };
    // Requests go out in one write; do not let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let io = match (origin.tls, tls) {
        (false, _) => Transport::Plain(stream),
        (true, None) => {
            return Err(FastHttpError::Tls(
                "no TLS configuration for this task".to_owned(),
            ))
        }
        (true, Some(connector)) => {
            let name = match host {
                Host::Ipv4(ip) => ServerName::IpAddress(std::net::IpAddr::V4(ip).into()),
                Host::Ipv6(ip) => ServerName::IpAddress(std::net::IpAddr::V6(ip).into()),
                Host::Domain(name) => ServerName::try_from(name.to_owned()).map_err(|e| {
                    FastHttpError::Tls(format!("invalid server name {name:?}: {e}"))
                })?,
            };
            let tls_stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| FastHttpError::Tls(tls_reason(&e)))?;
            Transport::Tls(Box::new(tls_stream))
        }
    };
    Ok(Connection {
        origin,
        io,
        served: 0,
    })
}

/// The rustls error inside a handshake error (it names the certificate problem), or the I/O
/// error itself.
fn tls_reason(error: &io::Error) -> String {
    if let Some(inner) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return inner.to_string();
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_owned(),
        _ => error.to_string(),
    }
}
