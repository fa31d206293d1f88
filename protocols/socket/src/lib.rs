//! # load-density-socket
//!
//! The `socket_user` of LoadDensity: raw TCP and UDP request/reply. A task sends a payload
//! (text, hex or base64) to a `host:port` and, when told what to expect, reads a reply framed
//! by a byte count, a delimiter or a substring, and checks it. Each simulated user keeps one
//! TCP connection (and one UDP socket) per target across tasks, reconnecting lazily.
//!
//! The crate registers the user type `"socket_user"` with [`load_density_core`]; a runner
//! finds it by name. Link it by naming it (`use load_density_socket as _;`) or through the
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
//! let server = load_density_testkit::TcpEchoServer::start().await?;
//! let tasks = TaskList::from_json(&json!([
//!     {"payload": "ping\n", "read_until": "\n", "expect_substring": "ping"},
//!     {"payload": "hex:00ff0a", "expect_bytes": 3, "name": "binary"},
//! ]))?;
//! let plan = GroupPlan::new("socket_user", tasks).with_host(Some(server.target()));
//! // Naming the crate links it, and with it its registration.
//! let factory = load_density_core::registry::lookup(load_density_socket::USER_TYPE)?
//!     .protocol()
//!     .prepare(&plan)
//!     .await?;
//!
//! let bus = Arc::new(EventBus::new(1));
//! let record = Arc::new(TestRecord::default());
//! bus.add_listener(record.clone());
//! let mut ctx = UserContext::new(1, bus.clone(), UserVariables::default(), StopHandle::new().signal());
//! let mut user = factory.new_user(1);
//! user.run_task(0, &mut ctx).await;
//! user.run_task(1, &mut ctx).await;
//! user.on_stop(&mut ctx).await;
//! bus.flush();
//! assert_eq!(record.counts(), (2, 0));
//! assert_eq!(&*record.test_record_list()[1].name, "binary");
//! assert_eq!(server.connections(), 1); // one kept-alive connection for both tasks
//! # Ok(())
//! # }
//! ```
//!
//! ## Task keys
//!
//! Tasks are a list of objects. Text values (`target`/`host`, `payload`, `read_until`,
//! `expect_substring`, `name`) may hold `${...}` placeholders.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `protocol` | `tcp` | `tcp` or `udp`, any case |
//! | `target` or `host` | the group's host, else `127.0.0.1:9000` | `host:port`; IPv6 in brackets (`[::1]:9000`); a `tcp://` / `udp://` prefix matching `protocol` is accepted. Give one of the two keys, not both |
//! | `payload` | empty | text sent as UTF-8; `hex:0a ff` (hex digits, whitespace ignored); `b64:AAr/` (standard base64). A number or boolean is sent as its JSON text |
//! | `expect_bytes` | none | read exactly this many bytes of reply (`0`: read nothing) |
//! | `read_until` | none | read until this delimiter (e.g. `"\n"`) has been seen; the reply ends with it |
//! | `expect_substring` | none | the reply must contain it; without `expect_bytes`/`read_until`, read until it has been seen |
//! | `connect_timeout` | group option, else 5 | seconds for name resolution and the TCP handshake (TCP only) |
//! | `timeout` | group option, else 5 | seconds for sending the payload, and again for the whole reply to arrive (UDP: also for name resolution) |
//! | `keep_alive` | `true` | TCP only: keep the connection for the next task to the same target; `false` opens and closes one per task |
//! | `name` | `<protocol>:<target>` | statistics name |
//! | `weight`, `run_if`, `skip_if`, `assertions`, `extract` | | handled by core |
//!
//! Without `expect_bytes`, `read_until` or `expect_substring`, no reply is read: the task is
//! fire-and-forget and succeeds once the payload is written. `expect_bytes` and `read_until`
//! exclude each other. For UDP, expecting anything means waiting for one reply datagram; it
//! then must be at least `expect_bytes` long and contain `read_until` and `expect_substring`.
//!
//! ```json
//! [
//!   {"target": "127.0.0.1:7000", "payload": "PING ${var.id}\r\n", "read_until": "\r\n",
//!    "expect_substring": "PONG", "name": "ping"},
//!   {"target": "[::1]:7000", "payload": "hex:02 00 01 ff", "expect_bytes": 4, "timeout": 0.5},
//!   {"protocol": "udp", "target": "10.0.0.5:5353", "payload": "b64:AAEAAA==",
//!    "expect_bytes": 12},
//!   {"protocol": "UDP", "host": "127.0.0.1:8125", "payload": "hits:1|c"},
//!   {"payload": "QUIT\n", "keep_alive": false}
//! ]
//! ```
//!
//! Every key and value is checked by `prepare`, before the run: an unknown key, an unknown
//! protocol, a constant target without a valid port, invalid constant hex or base64, a
//! non-positive timeout, `keep_alive` or `connect_timeout` on a UDP task, an empty delimiter
//! are [`PlanError`](load_density_core::PlanError)s naming the task index and key.
//!
//! ## Group options
//!
//! | option | meaning |
//! |---|---|
//! | `connect_timeout` | default `connect_timeout` in seconds (a positive number) |
//! | `timeout` | default `timeout` in seconds (a positive number) |
//!
//! ## Events
//!
//! Every run task reports exactly one event, with request type `TCP` or `UDP`, the task's
//! name and the URL `tcp://host:port` (`udp://...`):
//! - a reply (or a written fire-and-forget payload) is recorded with
//!   [`UserContext::record_response`](load_density_core::UserContext::record_response): the
//!   reply bytes are the response body that core's assertions and extractors see, and the
//!   length is bytes sent + reply bytes. A reply without `expect_substring` is the failure
//!   `expected 'x' in reply, got '...'`;
//! - no reply is a failure whose reason says what happened ([`SocketError`]):
//!   `connection refused (127.0.0.1:9000)`, `connect timed out after 5s (10.0.0.1:80)`,
//!   `read timed out after 0.3s waiting for '\n' (0 bytes received)`,
//!   `connection closed after 3 of 10 bytes`, `connection reset by peer (...)`, UDP
//!   `connection refused (...): ICMP port unreachable` (tasks that expect a reply); its length
//!   is the bytes moved;
//! - a target, payload or delimiter whose placeholders render into something invalid is a
//!   failure event too (`invalid target "${var.x}:1": ...`, `invalid payload: ...`), never a
//!   silent skip.
//!
//! ## Choices where the Python version leaves it open or we do better
//!
//! - **Connections are kept** (the Python version opens one per step): one per user and
//!   target, opened lazily, dropped after any error and reopened by the next task, closed in
//!   `on_stop`. A kept connection the peer closed while idle is noticed before the next
//!   request and replaced without a failure. `keep_alive: false` restores the old behaviour.
//! - **Request/reply alignment**: before a request on a kept connection (or UDP socket), bytes
//!   that arrived unasked (late or surplus replies, bytes past the previous reply's frame) are
//!   discarded, so they are never taken for this request's reply. A protocol that pipelines
//!   or pushes unsolicited data is not a request/reply protocol and is out of scope.
//! - **A short reply is a failure**: EOF before `expect_bytes` bytes (or the delimiter) is
//!   `connection closed after N of M bytes`, where Python returned what it had.
//! - **Separate timeouts**: `connect_timeout` (handshake) and `timeout` (send, then reply),
//!   where Python used one value for all three; the failure says which one expired.
//! - **UDP** works over IPv6, reads the whole reply datagram (up to 64 KiB, never truncated)
//!   and, for a task that expects a reply, reports ICMP port unreachable as a refusal. A
//!   fire-and-forget datagram (no `expect_*`) succeeds once written: it cannot see whether
//!   its target is reachable, and the ICMP error the kernel keeps for an earlier datagram is
//!   never reported against it (the datagram is sent again once that error is cleared).
//! - **`hex:`/`b64:` are read from the payload as written**, never from a variable's value:
//!   `"${var.p}"` sends the variable's text even if it starts with `hex:`. To send text that
//!   starts with `hex:`, write it as `b64:`.
//! - Replies are capped at [`MAX_REPLY_BYTES`]; a reply that reaches it without the delimiter
//!   is a failure. Timing starts before the connection is opened, so a new connection's
//!   handshake counts in the response time.

mod error;
mod payload;
mod protocol;
mod register;
mod response;
mod target;
mod user;

use std::time::Duration;

pub use error::{SocketError, Waiting};
pub use protocol::SocketProtocol;
pub use response::SocketReply;

/// The user type this crate registers.
pub const USER_TYPE: &str = "socket_user";

/// The target of a task that gives none, in a group without a host.
pub const DEFAULT_TARGET: &str = "127.0.0.1:9000";

/// The connect timeout of a task that sets none, when the group sets none either.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The send/read timeout of a task that sets none, when the group sets none either.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest TCP reply read (and the largest `expect_bytes`): 16 MiB.
pub const MAX_REPLY_BYTES: usize = 16 * 1024 * 1024;

/// The receive buffer for one UDP reply datagram: large enough for any datagram.
pub const MAX_DATAGRAM_BYTES: usize = 64 * 1024;
