//! # load-density-websocket
//!
//! The `websocket_user` of LoadDensity: a WebSocket client (`ws://` and `wss://`, on
//! `tokio-tungstenite`) in which each simulated user owns one connection, keeps it across
//! iterations, reopens it lazily after a failure and closes it when the user stops.
//!
//! The crate registers the user type `"websocket_user"` with [`load_density_core`]; a runner
//! finds it by name. Link it by naming it (`use load_density_websocket as _;`) or through the
//! runner's cargo features.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use load_density_core::context::StopHandle;
//! use load_density_core::variables::UserVariables;
//! use load_density_core::{EventBus, GroupPlan, TaskList, TestRecord, UserContext};
//! use serde_json::json;
//!
//! let server = load_density_testkit::WsEchoServer::start().await?;
//! let tasks = TaskList::from_json(&json!([
//!     {"method": "connect", "url": "/chat"},
//!     {"method": "sendrecv", "payload": "hello", "expect": "hello", "name": "echo"},
//!     {"method": "sendrecv", "payload": "hex:00ff", "timeout": 2},
//! ]))?;
//! let plan = GroupPlan::new("websocket_user", tasks).with_host(Some(server.base_url()));
//! let factory = load_density_core::registry::lookup(load_density_websocket::USER_TYPE)?
//!     .protocol()
//!     .prepare(&plan)
//!     .await?;
//!
//! let bus = Arc::new(EventBus::new(1));
//! let record = Arc::new(TestRecord::default());
//! bus.add_listener(record.clone());
//! let mut ctx = UserContext::new(1, bus.clone(), UserVariables::default(), StopHandle::new().signal());
//! let mut user = factory.new_user(1);
//! for index in 0..3 {
//!     user.run_task(index, &mut ctx).await;
//! }
//! user.on_stop(&mut ctx).await;
//! bus.flush();
//! assert_eq!(record.counts(), (3, 0));
//! let echo = &record.test_record_list()[1];
//! assert_eq!((&*echo.name, echo.response_length), ("echo", 10)); // 5 bytes sent + 5 received
//! assert_eq!(server.connections(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Task keys
//!
//! Tasks are a list of objects (or `{"mode": ..., "tasks": [...]}`; core handles `mode`,
//! `weight`, `run_if`, `skip_if`). String values may hold `${...}` placeholders, except
//! `method`, `subprotocols` and `expect.regex`.
//!
//! | key | meaning |
//! |---|---|
//! | `method` | `connect`, `send`, `recv`, `sendrecv`, `close` (any case); default `send` |
//! | `request_url` / `url` | `ws://` / `wss://` URL (`http(s)://` is turned into `ws(s)://`), absolute or relative to the group's `host` (`ws://localhost` without one); default: the user's current connection |
//! | `name` | statistics name; default the URL's path and query (the URL as written when its path or query holds placeholders), else the method |
//! | `timeout` | seconds (> 0) for each step: connecting, sending, waiting for a frame; default the group's `timeout`, else 5 |
//! | `payload` | `send`/`sendrecv`: text frame; `hex:0a ff` or `b64:AAE=` for a binary frame; `text:` forces text (`text:hex:` sends `hex:`); a JSON object, list or number is sent as JSON text. Default empty text |
//! | `expect` | `recv`/`sendrecv`: a substring the frame must contain, or `{"regex": "..."}` (compiled once). Binary frames are read as UTF-8 with replacement characters |
//! | `skip_non_matching` | `recv`/`sendrecv` with `expect`: ignore frames that do not match until one does or the timeout passes |
//! | `headers` | extra handshake headers (object or `[name, value]` pairs); not the handshake's own (`Upgrade`, `Sec-WebSocket-*`, ...) |
//! | `subprotocols` | list offered in `Sec-WebSocket-Protocol`; the server must accept one of them |
//! | `verify` | verify the server certificate (default the group's `verify`, else `true`) |
//!
//! `headers`, `subprotocols` and `verify` apply when the task opens a connection. A key that
//! has no effect on the task's method (`payload` on `recv`, `expect` on `send`, ...), an unknown
//! key or method, a bad URL, timeout, regex, header, or invalid `hex:`/`b64:` text in a constant
//! payload is rejected by `prepare` with an error naming the task index and key.
//!
//! ```json
//! [
//!   {"method": "connect", "url": "wss://chat.example.com/ws?room=${var.room}",
//!    "headers": {"Authorization": "Bearer ${env.TOKEN}"}, "subprotocols": ["chat.v2"]},
//!   {"method": "sendrecv", "payload": {"op": "join", "user": "${var.user}"},
//!    "expect": {"regex": "\"ok\":\\s*true"}, "name": "join"},
//!   {"method": "send", "payload": "b64:AAECAw==", "name": "binary"},
//!   {"method": "recv", "expect": "tick", "skip_non_matching": true, "timeout": 2},
//!   {"method": "close"}
//! ]
//! ```
//!
//! ## Group options
//!
//! | option | meaning |
//! |---|---|
//! | `timeout` | default task timeout in seconds (a positive number) |
//! | `verify` | default certificate verification (`true`/`false`) |
//! | `ca_file` | path of a PEM file with extra trusted CA certificates, read once at prepare time |
//! | `max_message_size` | largest message (and frame) accepted from the server, in bytes (default [`DEFAULT_MAX_MESSAGE_SIZE`], 16 MiB); a larger one fails the task (`Space limit exceeded: Message too long`) and drops the connection |
//!
//! TLS configurations come from [`load_density_core::tls`], built once per setting and shared
//! by every user (and with other protocols using the same setting).
//!
//! ## Methods and events
//!
//! Every run task reports exactly one event: request type `WS`, the task's name, and the URL
//! of the connection used.
//!
//! | method | does | latency | `response_length` |
//! |---|---|---|---|
//! | `connect` | opens a connection; a no-op (still a success) when already connected to the same URL | the handshake | 0 |
//! | `send` | writes one frame | writing it | payload bytes |
//! | `recv` | waits for a data frame (matching `expect`) | until the frame | bytes of the frame |
//! | `sendrecv` | `send`, then `recv` | from the send to the matching frame | sent + received bytes |
//! | `close` | closes the connection (close handshake, bounded by the timeout); a no-op when none is open | the close | 0 |
//!
//! `send`, `recv` and `sendrecv` connect first when there is no open connection (the
//! connection time then counts in their latency), or when the task names a different URL than
//! the open connection's. The response core sees ([`WsResponse`]) has the received frame as
//! its body, and status `101` plus the handshake headers for `connect`.
//!
//! Failures carry a reason: `connection refused (127.0.0.1:9)`, `timed out after 0.5s
//! waiting for a frame`, `timed out after 5s connecting`, `expected 'abc' in frame, got
//! '...'` (the frame cut at 100 characters), `expected a frame matching /re/, got '...'`,
//! `server closed the connection`, `TLS handshake failed: invalid peer certificate:
//! UnknownIssuer`, `handshake rejected: HTTP 403 Forbidden`, `websocket connection not
//! established (...)` (see [`WsError`]). After a failure on the connection the connection is
//! dropped; the next task reopens it (to the task's URL, or the last one used). A task whose
//! placeholders render into a bad URL, payload or header fails without touching the connection.
//!
//! ## Choices where the Python version leaves it open or gets it wrong
//!
//! - **Bytes, not characters**: lengths count UTF-8 payload bytes.
//! - **Connections are closed** when the user stops (close frame, at most 1 s); Python leaks
//!   them.
//! - **A failure drops the connection**, including an `expect` mismatch or a timeout: a late
//!   frame would otherwise be taken as the answer to the next request.
//! - **Bad tasks fail at prepare**, not silently at run time (Python skips the tick); a bad
//!   value that only shows up after rendering placeholders is a failure event.
//! - **`start_time` is wall-clock time** (Python records a monotonic timestamp).
//! - **Relative URLs use the group's `host`**; Python ignores `host`.
//! - **Control frames**: pings are answered by tungstenite and, like pongs, never count as the
//!   received frame. A close frame from the server is the failure `server closed the
//!   connection`.

mod error;
mod io;
mod protocol;
mod register;
mod response;
mod task;
mod user;

use std::time::Duration;

pub use error::WsError;
pub use protocol::WebSocketProtocol;
pub use response::WsResponse;

/// The user type this crate registers.
pub const USER_TYPE: &str = "websocket_user";

/// The largest message (and frame) a user accepts when the group sets no `max_message_size`
/// (16 MiB): a server cannot make a user buffer more.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Task timeout when neither the task nor the group sets one (as in the Python version).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
