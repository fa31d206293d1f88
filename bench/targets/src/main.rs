//! `ld-bench-targets`: the testkit target servers, as a process the benchmark drivers in
//! `bench/` can start, pin to a CPU and kill.
//!
//! ```sh
//! cargo build --release -p ld-bench-targets
//! $CARGO_TARGET_DIR/release/ld-bench-targets [--threads N]
//! ```
//!
//! Starts an HTTP target, a WebSocket echo server, a TCP echo server, a UDP echo server and
//! the gRPC `loadtest.Echo` service (testkit's `GrpcTarget`, plain text, with reflection) on
//! `127.0.0.1` (ephemeral ports) inside a Tokio runtime with `N` worker threads (default 1),
//! then prints one JSON line with their addresses and where the gRPC service's `.proto` is:
//!
//! ```json
//! {"http": "http://127.0.0.1:P", "ws": "ws://127.0.0.1:P", "tcp": "127.0.0.1:P", "udp": "127.0.0.1:P",
//!  "grpc": "127.0.0.1:P", "grpc_proto": "/.../testkit/proto/loadtest.proto", "grpc_proto_dir": "/.../testkit/proto"}
//! ```
//!
//! Then it reads commands from standard input, one per line:
//!
//! | line | reply (one JSON line on stdout) |
//! |---|---|
//! | `stats` | the servers' counters: `{"http_served", "ws_messages", "ws_connections", "tcp_messages", "tcp_connections", "udp_datagrams", "grpc_calls", "grpc_unary_calls", "grpc_connections"}` |
//! | `quit` (or end of input) | none: the servers stop and the process exits |
//!
//! The counters only grow; a driver takes `stats` before and after a run and uses the
//! difference. `grpc_calls` counts every call to `loadtest.Echo` when it arrives (any method,
//! any outcome; reflection calls are not counted), `grpc_unary_calls` those to `Unary`.

use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use load_density_testkit::{
    grpc, GrpcTarget, HttpTarget, TcpEchoServer, UdpEchoServer, WsEchoServer,
};
use serde_json::json;

/// The running servers.
struct Targets {
    http: HttpTarget,
    ws: WsEchoServer,
    tcp: TcpEchoServer,
    udp: UdpEchoServer,
    grpc: GrpcTarget,
}

impl Targets {
    async fn start() -> anyhow::Result<Self> {
        Ok(Self {
            http: HttpTarget::start()
                .await
                .context("starting the HTTP target")?,
            ws: WsEchoServer::start()
                .await
                .context("starting the WebSocket echo server")?,
            tcp: TcpEchoServer::start()
                .await
                .context("starting the TCP echo server")?,
            udp: UdpEchoServer::start()
                .await
                .context("starting the UDP echo server")?,
            grpc: GrpcTarget::start()
                .await
                .context("starting the gRPC target")?,
        })
    }

    fn addresses(&self) -> serde_json::Value {
        json!({
            "http": self.http.base_url(),
            "ws": self.ws.base_url(),
            "tcp": self.tcp.target(),
            "udp": self.udp.target(),
            "grpc": self.grpc.target(),
            "grpc_proto": grpc::loadtest_proto().display().to_string(),
            "grpc_proto_dir": grpc::loadtest_proto_dir().display().to_string(),
        })
    }

    fn stats(&self) -> serde_json::Value {
        json!({
            "http_served": self.http.served(),
            "ws_messages": self.ws.messages(),
            "ws_connections": self.ws.connections(),
            "tcp_messages": self.tcp.messages(),
            "tcp_connections": self.tcp.connections(),
            "udp_datagrams": self.udp.datagrams(),
            "grpc_calls": self.grpc.calls(),
            "grpc_unary_calls": self.grpc.calls_to("Unary"),
            "grpc_connections": self.grpc.connections(),
        })
    }
}

fn threads_from_args() -> anyhow::Result<usize> {
    let mut args = std::env::args().skip(1);
    let mut threads = 1;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => {
                let value = args.next().context("--threads needs a number")?;
                threads = value
                    .parse()
                    .with_context(|| format!("--threads: not a number: {value:?}"))?;
                if threads == 0 {
                    bail!("--threads must be at least 1");
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: ld-bench-targets [--threads N]  (then `stats` or `quit` on stdin)"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (usage: ld-bench-targets [--threads N])"),
        }
    }
    Ok(threads)
}

fn main() -> anyhow::Result<()> {
    let threads = threads_from_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("building the Tokio runtime")?;
    // The servers' tasks run on the runtime's worker threads; this thread only answers stdin.
    let targets = runtime.block_on(Targets::start())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", targets.addresses())?;
    stdout.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line.context("reading stdin")?.trim() {
            "stats" => {
                writeln!(stdout, "{}", targets.stats())?;
                stdout.flush()?;
            }
            "quit" => break,
            "" => {}
            other => eprintln!("ld-bench-targets: unknown command {other:?} (stats, quit)"),
        }
    }
    drop(targets);
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
