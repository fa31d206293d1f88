//! In-process target servers for LoadDensity tests, benchmarks and demos.
//!
//! The main entry point is [`HttpTarget`], an httpbin-like HTTP/HTTPS server
//! bound to `127.0.0.1` on an ephemeral port. It counts every request it
//! receives (in total and per request path) so tests can assert exactly how
//! much traffic a load generator produced.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use load_density_testkit::HttpTarget;
//!
//! let target = HttpTarget::start().await?;
//! let url = target.url("/status/204");
//! // ... drive traffic against `url` ...
//! assert_eq!(target.served_path("/status/"), 0);
//! target.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Routes
//!
//! All routes accept any HTTP method. JSON responses use
//! `content-type: application/json`.
//!
//! | Route | Behaviour |
//! |-------|-----------|
//! | `/` | `200` text `ok` |
//! | `/get` | JSON `{"args", "headers", "method", "url"}` |
//! | `/post`, `/put`, `/patch`, `/delete`, `/anything`, `/anything/{*rest}` | JSON echo `{"method", "url", "args", "headers", "json", "data", "form", "cookies"}` |
//! | `/status/{code}` | that status (100..=599, otherwise `400`), empty body; hyper cannot send a final 1xx, so 1xx arrives as `500` |
//! | `/delay/{ms}` | sleeps `ms` (capped at 60000) then `{"delay_ms": ms}` |
//! | `/stall/{stall_ms}/{period_ms}` | freezes for the first `stall_ms` of every `period_ms` (a request arriving then waits until the stall ends), then `{"stalled_ms": waited}` |
//! | `/bytes/{n}` | `n` bytes (capped at 100 MiB); byte at offset `i` is `i % 256` |
//! | `/headers` | `{"headers": {...}}` |
//! | `/cookies` | `{"cookies": {...}}` |
//! | `/cookies/set?name=value&...` | sets cookies (`Path=/`), `302` to `/cookies` |
//! | `/redirect/{n}` | `302` to `/redirect/{n-1}`; `/redirect/0` redirects to `/get` |
//! | `/basic-auth/{user}/{pass}` | `200 {"authenticated": true, "user"}` or `401` |
//! | `/bearer` | `200 {"authenticated": true, "token"}` or `401` |
//! | `/token` | `200 {"token": "tok-N"}` plus header `X-Token: tok-N` (unique per request) |
//! | `/echo-token` | `200 {"token": value of X-Token header or ?token= query, else null}` |
//! | `/app`, `/app/login`, `/app/api` | a page that logs in and calls an API with its session (see `app.rs`) |
//!
//! Unknown paths get an empty `404` (and are counted too).

mod app;
pub mod conformance;
pub mod grpc;
pub mod harness;
mod http;
pub mod mqtt;
mod routes;
pub mod socket;
mod stats;
mod tls;
mod ws;

pub use grpc::{GrpcReflection, GrpcTarget, GrpcTargetBuilder};
pub use http::HttpTarget;
pub use mqtt::{Mosquitto, MosquittoConfig, MqttBroker, MqttBrokerConfig};
pub use socket::{TcpEchoServer, UdpEchoServer};
pub use ws::{WsEchoServer, WsFrame, WsHandshake};

/// Returns a port on `127.0.0.1` that nothing is listening on.
///
/// The port is found by binding `127.0.0.1:0`, reading the assigned port and
/// closing the socket again. Another process could grab the port afterwards,
/// so use it promptly (typically to provoke "connection refused" errors).
///
/// # Panics
///
/// Panics if no local socket can be bound at all (which means the test
/// environment is unusable).
pub fn unused_local_port() -> u16 {
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .expect("binding an ephemeral port on 127.0.0.1 must succeed");
    listener
        .local_addr()
        .expect("a bound listener has a local address")
        .port()
}
