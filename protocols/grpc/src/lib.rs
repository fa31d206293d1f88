//! # load-density-grpc
//!
//! The `grpc_user` of LoadDensity: a gRPC client for **any** service, with no code generation.
//! The call is data, the way `ghz` and `grpcurl` take it: a method name and a JSON payload,
//! converted to protobuf through the service's descriptors, which come from `.proto` files
//! (compiled in-process with [protox](https://docs.rs/protox), no `protoc`), a descriptor set
//! file, or server reflection. Unary, server-streaming, client-streaming and bidirectional
//! calls; TLS on rustls (ring); gzip.
//!
//! The crate registers the user type `"grpc_user"` with [`load_density_core`]; a runner finds
//! it by name. Link it by naming it (`use load_density_grpc as _;`) or through the runner's
//! cargo features.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use load_density_core::context::StopHandle;
//! use load_density_core::variables::UserVariables;
//! use load_density_core::{EventBus, GroupPlan, TaskList, TestRecord, UserContext};
//! use load_density_testkit::{grpc, GrpcTarget};
//! use serde_json::json;
//!
//! let server = GrpcTarget::start().await?; // loadtest.Echo, with reflection
//! let tasks = TaskList::from_json(&json!([
//!     {"call": "loadtest.Echo/Unary", "payload": {"message": "hi", "id": 7}},
//!     {"call": "loadtest.Echo/ServerStream", "payload": {"count": 3}, "name": "stream"},
//!     {"call": "loadtest.Echo/Fail", "payload": {"code": 5, "message": "no such thing"}},
//! ]))?;
//! let options = json!({"proto_files": [grpc::loadtest_proto().display().to_string()]});
//! let plan = GroupPlan::new("grpc_user", tasks)
//!     .with_host(Some(server.target()))
//!     .with_options(options.as_object().cloned().unwrap_or_default());
//! let factory = load_density_core::registry::lookup(load_density_grpc::USER_TYPE)?
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
//! assert_eq!(record.counts(), (2, 1));
//! assert_eq!(server.calls(), 3);
//! # Ok(())
//! # }
//! ```
//!
//! ## Task keys
//!
//! Tasks are a list of objects (or `{"mode": ..., "tasks": [...]}`; core handles `mode`,
//! `weight`, `run_if`, `skip_if`, `assertions` and `extract`). Strings in `payload`,
//! `messages` and `metadata` values may hold `${...}` placeholders.
//!
//! | key | meaning |
//! |---|---|
//! | `call` | `"package.Service/Method"` (a leading `/` is allowed; the service may be its short name when that is unambiguous) |
//! | `service` + `method` | the same, in two keys (instead of `call`) |
//! | `target` (or `host`) | `host:port` (plain text), `http://host[:port]` or `https://host[:port]` (TLS); default: the group's `target` option, else the group's `host`, else `localhost:50051` |
//! | `payload` | the request message as JSON (the protobuf JSON mapping: proto or lowerCamel field names, enums by name or number, 64-bit integers as numbers or strings, well-known types in their JSON forms); default `{}`. For client and bidi streams, the message sent `count` times |
//! | `messages` | client and bidi streams: the list of messages to send, in order (instead of `payload`) |
//! | `count` | client and bidi streams: how many times to send `payload` (default 1, at most 100000; placeholders are rendered per message) |
//! | `metadata` | request metadata: an object, or a list of `[name, value]` pairs; names are lower-cased; `-bin` names carry the value's bytes; `grpc-*`, `content-type`, `te` and `user-agent` are reserved |
//! | `timeout` | seconds for the whole call, connecting included, also sent as `grpc-timeout` (so at most 99999999 hours); default the group's `timeout`, else 10 |
//! | `name` | statistics name; default `/package.Service/Method` |
//! | `each_message_event` | server and bidi streams: also record each received message as its own event (request type `GRPC_MSG`) |
//! | `verify` | verify the server certificate of an `https://` target (default the group's `verify`, else `true`) |
//! | `compression` | `"gzip"` to compress requests (default the group's `compression`, else none); gzip responses are accepted (advertised) only then |
//!
//! ```json
//! [
//!   {"call": "shop.Cart/AddItem", "target": "https://cart.internal:8443",
//!    "payload": {"user_id": "${var.user}", "sku": "${csv.items.sku}", "quantity": 2},
//!    "metadata": {"authorization": "Bearer ${env.TOKEN}"}, "timeout": 2,
//!    "assertions": [{"type": "status_code", "value": "OK"},
//!                   {"type": "json_path", "path": "cart.items.0.sku", "value": "${csv.items.sku}"}],
//!    "extract": [{"var": "cart", "path": "cart.id"}]},
//!   {"call": "shop.Cart/Watch", "payload": {"cart_id": "${var.cart}"}, "each_message_event": true},
//!   {"call": "shop.Cart/Import", "messages": [{"sku": "a"}, {"sku": "b"}], "compression": "gzip"}
//! ]
//! ```
//!
//! Everything is checked by `prepare`, before the run, with an error naming the task index
//! and the field: an unknown key, service (listing the known services) or method (listing the
//! service's methods), a payload field the message does not have (listing its fields), a value
//! of the wrong type (`task 0 (tasks[0].payload.inner.value): invalid type: boolean `true`,
//! expected a 64-bit signed integer ... (field `inner.value` of shop.Item is int64)`), keys that
//! do not fit the call's kind (`messages` on a unary call), a bad target, timeout, metadata or
//! compression. A constant payload is converted and encoded once, at prepare; a payload with
//! placeholders has its field names checked at prepare and is converted per call (a value that
//! renders into the wrong type is a failure event `INVALID_ARGUMENT: payload: ...`, and
//! nothing is sent).
//!
//! ## Group options
//!
//! | option | meaning |
//! |---|---|
//! | `proto_files` | `.proto` files (a path or a list), compiled with their imports at prepare; the well-known `google/protobuf/*` types are built in |
//! | `import_paths` | where imports are looked up (default: the directory of each file) |
//! | `descriptor_set` | a binary `FileDescriptorSet` file (`protoc --include_imports --descriptor_set_out`, `buf build -o`) |
//! | `reflection` | `true`: ask each target's server reflection (`grpc.reflection.v1`, falling back to `v1alpha`) at prepare, for the services the tasks call, within the group's `timeout`; imports the server does not send are taken from the bundled well-known types |
//! | `target` | default target of the tasks |
//! | `timeout` | default call timeout in seconds (at most 99999999 hours) |
//! | `verify` | default certificate verification (`true`/`false`) |
//! | `ca_file` | a PEM file of extra trusted CA certificates, read at prepare |
//! | `share_channel` | `true`: one HTTP/2 connection per target for all users of the group, instead of one per user |
//! | `compression` | default request compression (`"gzip"`) |
//!
//! The descriptors come from the first of `proto_files`, `descriptor_set`, `reflection` that is
//! set (a warning is logged when more are); they are loaded once per group and shared by every
//! user (prost-reflect's `DescriptorPool` is reference-counted).
//!
//! ## Events
//!
//! One event per call, covering the whole call (connecting, sending every message, receiving
//! every message and the trailers): request type `GRPC`, the task's name, the URL
//! `http(s)://host:port/package.Service/Method`, the numeric gRPC status code, and as length
//! the bytes of the received messages. The response core's assertions and extractors see
//! ([`GrpcResponse`]) has the status name (`status_code` assertions take `"NOT_FOUND"` or
//! `5`), the response headers and trailers, and the body as JSON: the message for unary and
//! client-streaming calls, a list of every received message for server and bidi streams
//! (`json_path` `"2.index"`). Response JSON uses the proto field names and includes fields
//! with default values; 64-bit integers are strings, enums their names (the protobuf JSON
//! mapping). The body is decoded only when a check reads it.
//!
//! With `each_message_event`, each received message is also an event of its own (request
//! type `GRPC_MSG`, status 0, its bytes, and as time the wait since the previous message, or
//! since the call started for the first). These events are not judged by the task's
//! assertions, which apply to the call's event.
//!
//! Outcomes:
//! - `OK`: a success;
//! - any other status from the server: a failure `NAME: message` (`NOT_FOUND: no such
//!   thing`) with the code as status, unless a `status_code` assertion expects it;
//! - the client deadline (`timeout`): `DEADLINE_EXCEEDED: timed out after 2s (client
//!   deadline)` with status 4; the connection is kept;
//! - no connection (`UNAVAILABLE: connection refused (127.0.0.1:50051)`, `UNAVAILABLE: TLS
//!   handshake failed: invalid peer certificate: UnknownIssuer`), or the connection broke
//!   during the call (`UNAVAILABLE: connection lost: ...`): a failure with no status (no
//!   response was received). The connection is dropped and the next call opens a new one, so
//!   users recover on their own when the server comes back.
//!
//! ## Choices
//!
//! - **No generated code.** The Python version imports generated stubs by dotted path; here a
//!   call is a method name and JSON, converted with `prost-reflect`'s `DynamicMessage`, and sent
//!   as bytes through tonic's gRPC framing over an HTTP/2 connection this crate manages.
//! - **HTTP/2 on the h2 crate directly**, not through hyper's client: hyper queues each call
//!   to a connection task and spawns a task per call, and dropping that layer made a unary call
//!   cost ~35% less CPU (bench/RESULTS.md). A call's request body is written into its stream as
//!   the call is polled; h2 buffers what the peer's window does not yet allow.
//! - **One connection per user**, opened on first use, kept across iterations, re-opened after
//!   a transport error, closed when the user stops (Python leaks its channels). A connection
//!   found closed before a request was sent is replaced and the call retried once, since
//!   nothing reached the server.
//! - **All four call kinds**; Python has unary calls only.
//! - **TLS** is rustls with the ring provider, from [`load_density_core::tls`] (shared
//!   configurations, ALPN `h2`); Python's channels are always insecure.
//! - **Bad tasks fail at prepare**, not as events at run time.
//! - **`start_time` is wall-clock time** and response times are measured on a monotonic clock.

mod channel;
mod codec;
mod descriptors;
mod error;
mod payload;
mod protocol;
mod reflection;
mod register;
mod response;
mod task;
mod user;

use std::time::Duration;

pub use error::{CallError, ConnectError};
pub use protocol::GrpcProtocol;
pub use response::{code_name, GrpcResponse};

/// The user type this crate registers.
pub const USER_TYPE: &str = "grpc_user";

/// Call timeout when neither the task nor the group sets one (as in the Python version).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The target when neither the task, the group's `target` option nor the group's `host` names
/// one (as in the Python version).
pub const DEFAULT_TARGET: &str = "localhost:50051";
