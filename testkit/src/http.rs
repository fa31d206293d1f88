//! The in-process HTTP/HTTPS target server.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::stats::Stats;
use crate::tls::{self, TlsMaterial};

/// How long [`HttpTarget::shutdown`] waits for in-flight requests before
/// aborting the remaining connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Maximum duration of a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Listen backlog; large so that benchmark connection bursts are not refused.
const LISTEN_BACKLOG: u32 = 4096;

/// An httpbin-like HTTP (or HTTPS) server running inside the current Tokio
/// runtime, listening on `127.0.0.1` on an ephemeral port.
///
/// Serves HTTP/1.1 (with keep-alive) and HTTP/2 — over TLS negotiated via
/// ALPN, in plain text via prior knowledge. Every request that reaches the
/// server is counted as soon as it arrives (before any handler delay), both
/// in total ([`served`](Self::served)) and per exact request path
/// ([`served_path`](Self::served_path)). See the [crate docs](crate) for the
/// list of routes.
///
/// Dropping the handle stops the server immediately (all tasks are aborted);
/// [`shutdown`](Self::shutdown) stops it gracefully.
pub struct HttpTarget {
    addr: SocketAddr,
    tls: Option<TlsMaterial>,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTarget")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("served", &self.served())
            .finish_non_exhaustive()
    }
}

impl HttpTarget {
    /// Starts a plain-HTTP target on `127.0.0.1:0`.
    ///
    /// Must be called from within a Tokio runtime; the server runs as a task
    /// on that runtime.
    pub async fn start() -> io::Result<HttpTarget> {
        Self::start_with(None).await
    }

    /// Starts an HTTPS target on `127.0.0.1:0` with a freshly generated
    /// self-signed certificate valid for `localhost` and `127.0.0.1`.
    ///
    /// HTTP/1.1 and HTTP/2 are offered via ALPN. Clients must trust
    /// [`ca_cert_pem`](Self::ca_cert_pem) / [`ca_cert_der`](Self::ca_cert_der)
    /// (or use [`client_tls_config`](Self::client_tls_config)).
    pub async fn start_tls() -> io::Result<HttpTarget> {
        let (material, config) = tls::generate()?;
        Self::start_with(Some((material, TlsAcceptor::from(config)))).await
    }

    async fn start_with(tls: Option<(TlsMaterial, TlsAcceptor)>) -> io::Result<HttpTarget> {
        let listener = bind_listener()?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let router = crate::routes::router(Arc::clone(&stats));
        let (stop, stop_rx) = watch::channel(false);
        let (material, acceptor) = match tls {
            Some((material, acceptor)) => (Some(material), Some(acceptor)),
            None => (None, None),
        };
        let task = tokio::spawn(accept_loop(
            listener,
            acceptor,
            router,
            Arc::clone(&stats),
            stop_rx,
        ));
        Ok(HttpTarget {
            addr,
            tls: material,
            stats,
            stop,
            task: Some(task),
        })
    }

    /// The socket address the server listens on (always `127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether this target serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `"http://127.0.0.1:PORT"` or `"https://127.0.0.1:PORT"` (no trailing slash).
    pub fn base_url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// [`base_url`](Self::base_url) followed by `path`, e.g. `url("/get?a=1")`.
    ///
    /// `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// PEM of the self-signed server certificate (TLS targets only).
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|t| t.cert_pem.clone())
    }

    /// DER of the self-signed server certificate (TLS targets only).
    pub fn ca_cert_der(&self) -> Option<Vec<u8>> {
        self.tls.as_ref().map(|t| t.cert_der.to_vec())
    }

    /// A rustls client configuration (ring provider) that trusts exactly this
    /// target's certificate and offers ALPN `h2` and `http/1.1`
    /// (TLS targets only). Adjust `alpn_protocols` to force a protocol.
    pub fn client_tls_config(&self) -> Option<rustls::ClientConfig> {
        let material = self.tls.as_ref()?;
        Some(
            tls::client_config(&material.cert_der)
                .expect("a freshly generated certificate is a valid trust anchor"),
        )
    }

    /// Total number of requests received (all routes, including unknown paths)
    /// since start or the last [`reset_counts`](Self::reset_counts).
    pub fn served(&self) -> u64 {
        self.stats.total()
    }

    /// Number of requests whose path (without query string) starts with
    /// `path_prefix`, e.g. `served_path("/status/")` or `served_path("/get")`.
    pub fn served_path(&self, path_prefix: &str) -> u64 {
        self.stats.by_prefix(path_prefix)
    }

    /// Snapshot of the per-path counters, sorted by path.
    pub fn path_counts(&self) -> Vec<(String, u64)> {
        self.stats.snapshot()
    }

    /// Connections accepted so far per source (peer) address, in address order (never reset).
    pub fn connection_sources(&self) -> Vec<(std::net::IpAddr, u64)> {
        self.stats.peers.snapshot()
    }

    /// Resets all request counters to zero.
    pub fn reset_counts(&self) {
        self.stats.reset();
    }

    /// Forgets every session `/app/login` issued: `/app/api` answers 401 to them from now on.
    pub fn forget_sessions(&self) {
        self.stats.forget_sessions();
    }

    /// Stops the server gracefully: stops accepting, lets in-flight requests
    /// finish (up to 5 seconds, then remaining connections are aborted) and
    /// closes idle keep-alive connections.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                tracing::debug!(%err, "testkit http target task ended abnormally");
            }
        }
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            // Aborting the accept task drops its JoinSet, which aborts every
            // connection task as well.
            task.abort();
        }
    }
}

/// Resolves once the stop flag is set (or the [`HttpTarget`] handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: stop as well. The returned
    // guard is dropped here so callers' futures stay `Send`.
    let _ = stop.wait_for(|stop| *stop).await;
}

fn bind_listener() -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    socket.listen(LISTEN_BACKLOG)
}

/// Whether an `accept` error concerns only the one (already failed) connection.
fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    router: axum::Router,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    stats.peers.record(peer.ip());
                    connections.spawn(serve_connection(
                        stream,
                        acceptor.clone(),
                        Arc::clone(&builder),
                        router.clone(),
                        Arc::clone(&stats),
                        stop.clone(),
                    ));
                }
                Err(err) if is_connection_error(&err) => {}
                Err(err) => {
                    // E.g. EMFILE: back off instead of spinning.
                    tracing::warn!(%err, "testkit http target: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listener);

    // Connection tasks observe the same stop signal and shut down gracefully.
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: axum::Router,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    // Small request/response exchanges: do not wait for Nagle.
    let _ = stream.set_nodelay(true);

    let router = TowerToHyperService::new(router);
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        stats.record(req.uri().path());
        router.call(req)
    });

    match acceptor {
        None => drive(&builder, TokioIo::new(stream), service, stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let tls_stream = tokio::select! {
                res = handshake => match res {
                    Ok(Ok(tls_stream)) => tls_stream,
                    Ok(Err(err)) => {
                        tracing::debug!(%err, "testkit http target: TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("testkit http target: TLS handshake timed out");
                        return;
                    }
                },
                _ = stopped(&mut stop) => return,
            };
            drive(&builder, TokioIo::new(tls_stream), service, stop).await;
        }
    }
}

async fn drive<I, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: S,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = hyper::Response<axum::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(%err, "testkit http target: connection error");
            }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            if let Err(err) = conn.await {
                tracing::debug!(%err, "testkit http target: connection error during shutdown");
            }
        }
    }
}
