//! A TCP connection, plain or TLS: the byte stream a protocol that opens its own sockets reads
//! and writes.
//!
//! Open the TCP side with [`connect_host`](crate::source_address::connect_host) (or
//! [`connect_tcp`](crate::source_address::connect_tcp)), then [`MaybeTlsStream::tls`] for a
//! TLS connection with one of [`tls`](crate::tls)'s client configurations.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A plain or TLS stream over TCP.
#[derive(Debug)]
pub enum MaybeTlsStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the TLS state is large, a plain stream need not carry its size).
    Tls(Box<TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    /// Runs the TLS handshake over `tcp` for `host` (a name, an address, or an IPv6 address in
    /// brackets), checking the server as `config` says.
    ///
    /// # Errors
    /// `host` is not a valid server name (`InvalidInput`), or the handshake failed.
    pub async fn tls(config: Arc<ClientConfig>, host: &str, tcp: TcpStream) -> io::Result<Self> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid server name {host:?}: {e}"),
            )
        })?;
        let tls = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(MaybeTlsStream::Tls(Box::new(tls)))
    }

    /// Whether writes must be flushed (TLS buffers records; TCP writes straight through).
    pub fn needs_flush(&self) -> bool {
        matches!(self, MaybeTlsStream::Tls(_))
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
