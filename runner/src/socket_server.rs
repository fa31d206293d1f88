//! The control socket: other programs send action documents over TCP (optionally TLS) and get
//! each action's result back (`LD_start_socket_server`, `load-density serve`).
//!
//! It speaks the Python LoadDensity's protocol, so its clients work unchanged:
//!
//! - **one request per connection**. In the legacy mode the request is the raw JSON text; in the
//!   framed mode (`framed: true`) it is a 4-byte big-endian length and that many bytes, and
//!   every reply message is framed the same way;
//! - the request is an action document (`[...]` or `{"load_density": [...]}`), or an
//!   **envelope** `{"token": "...", "command": <document>}`; `{"token": "...", "op": "quit"}`
//!   (or the text `quit_server` when no token is set) stops the server;
//! - the reply is one line per action, in order (its JSON result; a string as is; a failure as
//!   `Error: action N (LD_x): why`), then the terminator line `Return_Data_Over_JE`.
//!
//! ```no_run
//! use load_density::socket_server::{SocketServer, SocketServerOptions};
//!
//! # async fn example() -> Result<(), load_density::socket_server::SocketServerError> {
//! let options = SocketServerOptions {
//!     host: "127.0.0.1".into(),
//!     port: 0,
//!     token: Some("secret".into()),
//!     ..SocketServerOptions::default()
//! };
//! let server = SocketServer::bind(options).await?;
//! println!("listening on {}", server.local_addr());
//! server.wait().await; // until a client sends {"token": "secret", "op": "quit"}
//! # Ok(())
//! # }
//! ```
//!
//! What it does better than the Python server (its flaws, fixed):
//!
//! - a quit takes effect at once, not when the next connection arrives;
//! - the legacy mode reads until the JSON is complete (or 1 MiB), not one 8 KiB `recv`;
//! - the token is compared in constant time, and is required in both modes once set;
//! - TLS is rustls with TLS 1.2 or later; a certificate without its key (or the reverse) is an
//!   error, not a plaintext server;
//! - each connection has a read timeout (the whole request) and an idle timeout (between
//!   bytes, and for the TLS handshake), so a half-open connection is closed;
//! - at most `max_connections` connections are served at once; one more is told so and closed;
//! - a document that would start a test while another runs is answered with an error naming
//!   the running one ([`crate::run_slot`]), not run behind it;
//! - binding to an address other than loopback without a token logs a warning;
//! - replies are JSON, not Python `str()`;
//! - errors the Python server met by closing silently (a zero or oversized frame length, a
//!   request over 1 MiB, a timeout) get an `Error: ...` line and the terminator first.

mod handler;
mod options;
mod tls;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

pub(crate) use options::PARAMS;
pub use options::{SocketServerOptions, TOKEN_ENV};

/// The line that ends every reply to a document.
pub const TERMINATOR: &str = "Return_Data_Over_JE\n";

/// The largest request accepted: a frame's length, or the legacy mode's JSON text.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketServerError {
    /// The address could not be bound.
    #[error("cannot listen on {host}:{port}")]
    Bind {
        /// The host given.
        host: String,
        /// The port given.
        port: u16,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Only one of `certfile` and `keyfile` was given.
    #[error(
        "TLS needs both certfile and keyfile; only {given} was given (refusing to serve \
         plaintext instead)"
    )]
    TlsIncomplete {
        /// `certfile` or `keyfile`.
        given: &'static str,
    },
    /// The certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// An option is out of range.
    #[error("invalid option {name}: {message}")]
    Option {
        /// The option.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The async runtime could not start.
    #[error("could not start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// What every connection handler shares.
struct Shared {
    options: SocketServerOptions,
    token: Option<String>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    quit: watch::Sender<bool>,
}

impl Shared {
    fn quit(&self) {
        self.quit.send_replace(true);
    }
}

/// A running control socket.
pub struct SocketServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SocketServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl SocketServer {
    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// A bad option, an incomplete or unreadable TLS configuration, or an address that cannot
    /// be bound.
    pub async fn bind(options: SocketServerOptions) -> Result<Self, SocketServerError> {
        options.validate()?;
        let token = options.resolved_token();
        let tls = tls::acceptor(&options)?;
        let listener = TcpListener::bind((options.host.as_str(), options.port))
            .await
            .map_err(|source| SocketServerError::Bind {
                host: options.host.clone(),
                port: options.port,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SocketServerError::Bind {
                host: options.host.clone(),
                port: options.port,
                source,
            })?;
        if token.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "the control socket listens on a non-loopback address without a token: anyone \
                 who can reach it can run load tests from this machine (set token or {TOKEN_ENV})"
            );
        }
        let (quit, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            options,
            token,
            tls,
            quit,
        });
        tracing::info!(%addr, framed = shared.options.framed, tls = shared.tls.is_some(),
                       "control socket started");
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(SocketServer { addr, shared, task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections at once; connections being served finish.
    pub fn quit(&self) {
        self.shared.quit();
    }

    /// A handle that stops the server, for use while [`wait`](Self::wait) runs.
    pub fn quit_handle(&self) -> QuitHandle {
        QuitHandle(self.shared.clone())
    }

    /// Waits until the server has stopped (a client's quit, or [`quit`](Self::quit)) and the
    /// connections it was serving have finished (at most the read timeout more).
    pub async fn wait(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the control socket's accept loop failed");
        }
    }
}

/// Stops a [`SocketServer`] from elsewhere (e.g. on Ctrl-C).
#[derive(Clone)]
pub struct QuitHandle(Arc<Shared>);

impl QuitHandle {
    /// Stops accepting connections at once; connections being served finish.
    pub fn quit(&self) {
        self.0.quit();
    }
}

impl std::fmt::Debug for QuitHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuitHandle").finish_non_exhaustive()
    }
}

/// Runs a control socket on a runtime of its own until a client stops it; what
/// `LD_start_socket_server` does. Prints `Server started on ADDR` to stdout when listening.
///
/// # Errors
/// See [`SocketServer::bind`].
pub fn run_blocking(options: SocketServerOptions) -> Result<SocketAddr, SocketServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("ld-socket")
        .enable_all()
        .build()
        .map_err(SocketServerError::Runtime)?;
    runtime.block_on(async {
        let server = SocketServer::bind(options).await?;
        let addr = server.local_addr();
        announce(addr);
        server.wait().await;
        println!("Server shutdown complete");
        Ok(addr)
    })
}

/// Prints `Server started on ADDR` on stdout (clients and scripts read the port from it).
pub fn announce(addr: SocketAddr) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // A closed stdout must not stop the server.
    let _ = writeln!(stdout, "Server started on {addr}");
    let _ = stdout.flush();
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let max = shared.options.max_connections;
    let permits = Arc::new(Semaphore::new(max));
    // Refusals are bounded too: past this, a connection over the limit is closed unanswered.
    let refusals = Arc::new(Semaphore::new(max.min(64)));
    let mut quit = shared.quit.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = quit.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: transient; do not spin.
                tracing::warn!(%error, "control socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max, "control socket: too many connections; refusing one");
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                let shared = shared.clone();
                tokio::spawn(async move {
                    refuse(stream, shared, max).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            handler::connection(stream, peer, &shared).await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("control socket: stopped accepting; waiting for open connections");
    let grace = shared.options.read_timeout() + Duration::from_secs(1);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("control socket: connections still open after {grace:?}; leaving them");
    }
}

/// Tells a connection over the limit so (plaintext only: a TLS client gets the close).
async fn refuse(mut stream: TcpStream, shared: Arc<Shared>, max: usize) {
    if shared.tls.is_some() {
        return;
    }
    let message = format!("Error: too many connections (at most {max}); try again later\n");
    let _ = tokio::time::timeout(
        shared.options.idle_timeout(),
        wire::write_messages(
            &mut stream,
            shared.options.framed,
            &[message, TERMINATOR.into()],
        ),
    )
    .await;
}
