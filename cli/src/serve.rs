//! `load-density serve`: the control socket (see `load_density::socket_server`).

use std::path::PathBuf;

use anyhow::Context as _;
use load_density::socket_server::{announce, SocketServer, SocketServerOptions};

/// `serve`'s options (the Python CLI's, plus the limits).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to bind.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Port to bind (0 picks a free one; the line `Server started on ADDR` names it).
    #[arg(long, default_value_t = 9940)]
    port: u16,
    /// Length-prefixed frames (4-byte big-endian length) instead of raw JSON text.
    #[arg(long)]
    framed: bool,
    /// Token clients must send; defaults to $LOAD_DENSITY_SOCKET_TOKEN.
    #[arg(long)]
    token: Option<String>,
    /// PEM certificate chain (TLS 1.2+, with --tls-key).
    #[arg(long = "tls-cert")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key")]
    tls_key: Option<PathBuf>,
    /// Connections served at once.
    #[arg(long, default_value_t = 32)]
    max_connections: usize,
    /// Seconds a client has to send its whole request.
    #[arg(long, default_value_t = 30.0)]
    read_timeout: f64,
    /// Seconds without a byte before a connection is closed.
    #[arg(long, default_value_t = 10.0)]
    idle_timeout: f64,
}

/// Serves until a client sends quit, or Ctrl-C.
pub fn run(args: ServeArgs) -> anyhow::Result<bool> {
    let options = SocketServerOptions {
        host: args.host,
        port: args.port,
        framed: args.framed,
        token: args.token,
        certfile: args.tls_cert,
        keyfile: args.tls_key,
        max_connections: args.max_connections,
        read_timeout: args.read_timeout,
        idle_timeout: args.idle_timeout,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = SocketServer::bind(options).await?;
        announce(server.local_addr());
        let quit = server.quit_handle();
        let wait = server.wait();
        tokio::pin!(wait);
        tokio::select! {
            () = &mut wait => {}
            _ = tokio::signal::ctrl_c() => {
                tracing::warn!("Ctrl-C: the control socket stops accepting connections");
                quit.quit();
                wait.await;
            }
        }
        println!("Server shutdown complete");
        anyhow::Ok(true)
    })
}
