//! One user's connection: TCP or TLS, keyed by origin.

use std::io;
use std::net::SocketAddr;

use rustls::pki_types::ServerName;
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

/// A plain or TLS byte stream (core's, shared with the other protocols that open their own
/// sockets).
pub(crate) use load_density_core::stream::MaybeTlsStream as Transport;

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
