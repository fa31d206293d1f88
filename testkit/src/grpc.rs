//! An in-process gRPC target: the `loadtest.Echo` service of `proto/loadtest.proto`, with
//! server reflection, on `127.0.0.1:0`.
//!
//! The service is implemented generically: the checked-in `.proto` is compiled at run time
//! with protox, requests are decoded and replies built as prost-reflect `DynamicMessage`s, and
//! tonic does the gRPC framing (and gzip). No protoc, no build script, no generated code.
//!
//! | method | kind | behaviour |
//! |---|---|---|
//! | `Unary(EchoRequest) -> EchoReply` | unary | echoes `message`, `id`, `mood`, `tags`, `inner`, and the request's `x-...` metadata in `metadata`; waits `delay_ms` first |
//! | `ServerStream(StreamRequest) -> stream EchoReply` | server streaming | `count` replies with `index` 0.., `delay_ms` apart |
//! | `ClientStream(stream Number) -> Sum` | client streaming | `total` of the values and their `count` |
//! | `Bidi(stream EchoRequest) -> stream EchoReply` | bidirectional | one reply per request, as it arrives, `index` = its position |
//! | `Fail(FailRequest) -> EchoReply` | unary | the status `code` with `message` (`0` answers an empty reply) |
//!
//! Reflection (`grpc.reflection.v1` and `v1alpha`, configurable) serves the same file and its
//! import `google/protobuf/timestamp.proto`. [`GrpcTarget::calls`] counts every call to
//! `loadtest.Echo` when it arrives, whatever its outcome; reflection calls are not counted.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use load_density_testkit::GrpcTarget;
//!
//! let target = GrpcTarget::start().await?;
//! let address = target.target(); // "127.0.0.1:PORT"
//! // ... call loadtest.Echo/Unary at `address` ...
//! target.stop().await; // the server goes away: connections are cut, the port refuses
//! target.restart().await?; // back on the same port
//! # Ok(())
//! # }
//! ```

mod codec;
mod echo;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use prost_reflect::DescriptorPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tonic::Status;

use crate::tls::{self, TlsMaterial};
use echo::Echo;

/// Which reflection services a [`GrpcTarget`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GrpcReflection {
    /// `grpc.reflection.v1` and `grpc.reflection.v1alpha` (the default).
    #[default]
    Both,
    /// Only the older `grpc.reflection.v1alpha`, as many deployed servers.
    V1AlphaOnly,
    /// None: reflection calls are `UNIMPLEMENTED`.
    Disabled,
}

/// Path of the checked-in `loadtest.proto`.
pub fn loadtest_proto() -> PathBuf {
    loadtest_proto_dir().join("loadtest.proto")
}

/// The directory holding `loadtest.proto` (its import path).
pub fn loadtest_proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto")
}

/// `loadtest.proto` compiled (with its imports) once per process.
fn compiled() -> io::Result<&'static (prost_types::FileDescriptorSet, DescriptorPool)> {
    static COMPILED: OnceLock<Result<(prost_types::FileDescriptorSet, DescriptorPool), String>> =
        OnceLock::new();
    COMPILED
        .get_or_init(|| {
            let set = protox::compile([loadtest_proto()], [loadtest_proto_dir()])
                .map_err(|e| format!("compiling loadtest.proto: {e}"))?;
            let pool = DescriptorPool::from_file_descriptor_set(set.clone())
                .map_err(|e| format!("loadtest.proto descriptors: {e}"))?;
            Ok((set, pool))
        })
        .as_ref()
        .map_err(|e| io::Error::other(e.clone()))
}

/// The encoded `FileDescriptorSet` of `loadtest.proto` with its imports (what `protoc
/// --include_imports --descriptor_set_out` writes).
pub fn loadtest_descriptor_set() -> io::Result<Vec<u8>> {
    use prost::Message as _;
    Ok(compiled()?.0.encode_to_vec())
}

type BoxedHandler = Arc<
    dyn Fn(
            http::Request<Incoming>,
        ) -> Pin<Box<dyn Future<Output = http::Response<tonic::body::Body>> + Send>>
        + Send
        + Sync,
>;

fn boxed<S>(service: S) -> BoxedHandler
where
    S: tower_service::Service<
            http::Request<Incoming>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    Arc::new(move |request| {
        let mut service = service.clone();
        Box::pin(async move {
            match service.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        })
    })
}

/// What the server shares between connections.
struct State {
    echo: Arc<Echo>,
    reflection_v1: Option<BoxedHandler>,
    reflection_v1alpha: Option<BoxedHandler>,
    calls: AtomicU64,
    compressed: AtomicU64,
    connections: AtomicU64,
    by_method: Mutex<BTreeMap<String, u64>>,
    peers: crate::stats::Peers,
}

impl State {
    async fn route(&self, request: http::Request<Incoming>) -> http::Response<tonic::body::Body> {
        let path = request.uri().path().to_owned();
        if let Some(method) = path.strip_prefix("/loadtest.Echo/") {
            self.calls.fetch_add(1, Ordering::Relaxed);
            *self.by_method.lock().entry(method.to_owned()).or_default() += 1;
            if request
                .headers()
                .get("grpc-encoding")
                .is_some_and(|v| v.as_bytes() != b"identity")
            {
                self.compressed.fetch_add(1, Ordering::Relaxed);
            }
            return echo::handle(self.echo.clone(), method, request).await;
        }
        let handler = if path.starts_with("/grpc.reflection.v1.ServerReflection/") {
            self.reflection_v1.as_ref()
        } else if path.starts_with("/grpc.reflection.v1alpha.ServerReflection/") {
            self.reflection_v1alpha.as_ref()
        } else {
            None
        };
        match handler {
            Some(handler) => handler(request).await,
            None => Status::unimplemented(format!("unknown method {path}")).into_http(),
        }
    }
}

/// Configures a [`GrpcTarget`] before it starts.
#[derive(Debug, Clone, Default)]
pub struct GrpcTargetBuilder {
    tls: bool,
    reflection: GrpcReflection,
}

impl GrpcTargetBuilder {
    /// Serve TLS (a fresh self-signed certificate for `localhost` and `127.0.0.1`, ALPN `h2`).
    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    /// Which reflection services to offer (default both versions).
    pub fn reflection(mut self, reflection: GrpcReflection) -> Self {
        self.reflection = reflection;
        self
    }

    /// Starts the server on `127.0.0.1:0`.
    pub async fn start(self) -> io::Result<GrpcTarget> {
        let (set, pool) = compiled()?;
        let echo = Arc::new(Echo::new(pool).map_err(io::Error::other)?);
        let v1 = matches!(self.reflection, GrpcReflection::Both).then(|| {
            tonic_reflection::server::Builder::configure()
                .register_file_descriptor_set(set.clone())
                .build_v1()
        });
        let v1alpha = matches!(
            self.reflection,
            GrpcReflection::Both | GrpcReflection::V1AlphaOnly
        )
        .then(|| {
            tonic_reflection::server::Builder::configure()
                .register_file_descriptor_set(set.clone())
                .build_v1alpha()
        });
        let reflection_v1 = v1.transpose().map_err(io::Error::other)?.map(boxed);
        let reflection_v1alpha = v1alpha.transpose().map_err(io::Error::other)?.map(boxed);
        let state = Arc::new(State {
            echo,
            reflection_v1,
            reflection_v1alpha,
            calls: AtomicU64::new(0),
            compressed: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            by_method: Mutex::new(BTreeMap::new()),
            peers: crate::stats::Peers::default(),
        });
        let tls = if self.tls {
            let (material, config) = tls::generate()?;
            Some((material, TlsAcceptor::from(config)))
        } else {
            None
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let target = GrpcTarget {
            addr,
            tls,
            state,
            server: Mutex::new(None),
        };
        target.spawn(listener);
        Ok(target)
    }
}

/// The in-process gRPC test server. See the [module docs](self).
pub struct GrpcTarget {
    addr: SocketAddr,
    tls: Option<(TlsMaterial, TlsAcceptor)>,
    state: Arc<State>,
    server: Mutex<Option<Serving>>,
}

/// The running accept loop and the way to stop it.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for GrpcTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcTarget")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl GrpcTarget {
    /// Starts a plain-text server with both reflection versions on `127.0.0.1:0`.
    pub async fn start() -> io::Result<GrpcTarget> {
        Self::builder().start().await
    }

    /// A builder for TLS or other reflection settings.
    pub fn builder() -> GrpcTargetBuilder {
        GrpcTargetBuilder::default()
    }

    fn spawn(&self, listener: TcpListener) {
        let state = self.state.clone();
        let acceptor = self.tls.as_ref().map(|(_, acceptor)| acceptor.clone());
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, state, acceptor, stopped));
        if let Some(old) = self.server.lock().replace(Serving { stop, task }) {
            old.task.abort();
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, the form a `grpc_user` target takes.
    pub fn target(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`, or `https://...` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM of the self-signed certificate, when serving TLS.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|(material, _)| material.cert_pem.clone())
    }

    /// Calls to `loadtest.Echo` received so far (any method, any outcome).
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }

    /// Calls received to one method (`"Unary"`, `"Bidi"`, ...).
    pub fn calls_to(&self, method: &str) -> u64 {
        self.state
            .by_method
            .lock()
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    /// Calls whose request messages were compressed (`grpc-encoding` other than `identity`).
    pub fn compressed_calls(&self) -> u64 {
        self.state.compressed.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Connections accepted so far per source (peer) address, in address order.
    pub fn connection_sources(&self) -> Vec<(std::net::IpAddr, u64)> {
        self.state.peers.snapshot()
    }

    /// Whether the server is accepting connections.
    pub fn is_running(&self) -> bool {
        self.server
            .lock()
            .as_ref()
            .is_some_and(|serving| !serving.task.is_finished())
    }

    /// Makes the server go away: stops listening and cuts every open connection at once (no
    /// GOAWAY), so calls in flight fail and new connections are refused. Idempotent.
    ///
    /// When it returns, the listener and every connection's socket are closed: no call
    /// started afterwards can reach this server until [`restart`](Self::restart).
    pub async fn stop(&self) {
        let serving = self.server.lock().take();
        if let Some(Serving { stop, task }) = serving {
            // An error means the loop has already ended.
            let _ = stop.send(());
            if let Err(error) = task.await {
                tracing::debug!("grpc target accept loop: {error}");
            }
        }
    }

    /// Listens again on the same port after [`stop`](Self::stop) (a no-op while running).
    /// Retries for up to 5 s while the port is still held.
    pub async fn restart(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if error.kind() == io::ErrorKind::AddrInUse && attempts < 100 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error),
            }
        };
        self.spawn(listener);
        Ok(())
    }
}

impl Drop for GrpcTarget {
    fn drop(&mut self) {
        if let Some(serving) = self.server.lock().take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection too.
            serving.task.abort();
        }
    }
}

/// Accepts connections until told to stop; then closes the listener, cuts every connection
/// and returns only once every connection task is gone (their sockets closed). A plain
/// abort would not wait: an aborted task is dropped whenever a worker next gets to it.
async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<TlsAcceptor>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    state.peers.record(peer.ip());
                    state.connections.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve_connection(stream, state.clone(), tls.clone()));
                }
                Err(error) => {
                    tracing::debug!("grpc target accept: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
}

async fn serve_connection(stream: TcpStream, state: Arc<State>, tls: Option<TlsAcceptor>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(state.route(request).await) }
    });
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    let result = match tls {
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(stream) => {
                builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
            }
            Err(error) => {
                tracing::debug!("grpc target TLS handshake: {error}");
                return;
            }
        },
    };
    if let Err(error) = result {
        tracing::debug!("grpc target connection: {error}");
    }
}
