//! # load-density-fast-http
//!
//! The `fast_http_user` of LoadDensity: a lean HTTP/1.1 keep-alive client built for requests
//! per CPU-second. Each simulated user owns at most one connection (plain TCP or TLS), writes
//! each request in one `write` and parses the response with `httparse` in its own task: no
//! connection pool, no lock and no task hand-off on the request path.
//!
//! The crate registers the user type `"fast_http_user"` with
//! [`load_density_core`]; a runner finds it by name. Link it by naming it
//! (`use load_density_fast_http as _;`) or through the runner's cargo features.
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
//! let target = load_density_testkit::HttpTarget::start().await?;
//! let tasks = TaskList::from_json(&json!([
//!     {"method": "get", "request_url": "/get", "params": {"page": 1}},
//!     {"method": "post", "request_url": "/post", "json": {"id": 7}, "name": "create"},
//! ]))?;
//! let plan = GroupPlan::new("fast_http_user", tasks).with_host(Some(target.base_url()));
//! // Naming the crate links it, and with it its registration.
//! let factory = load_density_core::registry::lookup(load_density_fast_http::USER_TYPE)?
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
//! assert_eq!(&*record.test_record_list()[1].name, "create");
//! # Ok(())
//! # }
//! ```
//!
//! ## Task keys
//!
//! The HTTP task shape shared with `http_user` ([`HttpTask`](load_density_core::task::http::HttpTask));
//! every string value may hold `${...}` placeholders.
//!
//! | key | meaning |
//! |---|---|
//! | `method` | `get`, `post`, `put`, `patch`, `delete`, `head`, `options` (any case); required |
//! | `request_url` / `url` | absolute (`http://` or `https://`), or relative to the group's `host` (an error without one); required |
//! | `name` | statistics name (default: path and query) |
//! | `headers` | object or `[name, value]` pairs, sent in order |
//! | `params` | query parameters appended to the URL |
//! | `cookies` | sent as one `Cookie` header |
//! | `json` | JSON body, `Content-Type: application/json` |
//! | `data` | object/pairs: form body (`application/x-www-form-urlencoded`); string: raw body |
//! | `auth` | `{"type": "basic", "username", "password"}` or `{"type": "bearer", "token"}` |
//! | `timeout` | seconds for connect + request + whole response (+ redirects); default 60 |
//! | `allow_redirects` | follow redirects (default `true`, at most [`MAX_REDIRECTS`]) |
//! | `verify` | verify the server certificate (default `true`) |
//! | `weight`, `run_if`, `skip_if`, `assertions`, `extract` | handled by core |
//!
//! An unknown key, a bad method, an invalid URL or header is rejected by `prepare`, naming the
//! task index and the key:
//!
//! ```json
//! [
//!   {"method": "get", "request_url": "/get", "params": {"q": "${var.term}"}, "name": "search"},
//!   {"method": "post", "request_url": "https://api.example.com/login",
//!    "json": {"user": "${var.user}"}, "headers": {"X-Trace": "1"}, "timeout": 2.5},
//!   {"method": "get", "url": "/admin", "auth": {"type": "bearer", "token": "${env.TOKEN}"},
//!    "verify": false, "allow_redirects": false}
//! ]
//! ```
//!
//! ## Group options
//!
//! Read from the group's options (`user_detail_dict` keys and extra `start_test` keys):
//!
//! | option | meaning |
//! |---|---|
//! | `timeout` | default per-request timeout in seconds (a positive number) |
//! | `verify` | default certificate verification (`true`/`false`) |
//! | `ca_file` | path of a PEM file with extra trusted CA certificates, read once at prepare time |
//! | `max_body_size` | most bytes of a response body kept for assertions and extractors (default [`DEFAULT_MAX_BODY_SIZE`], 64 MiB); a larger body fails the request with `response body larger than max_body_size (N bytes)` |
//!
//! A value of the wrong type, or a `ca_file` that cannot be read, is a
//! [`PlanError::Config`](load_density_core::PlanError::Config) naming the option.
//!
//! ## Events
//!
//! Every run task reports exactly one event, under the task's method, name and full URL:
//! - a response of status < 400 is a success; 400 and above are failures that keep their
//!   status, with the error `HTTP 503 Service Unavailable`;
//! - no response is a failure with status `None`, length 0 and a reason such as
//!   `connection refused (127.0.0.1:8080)`, `timed out after 2s`,
//!   `TLS handshake failed: invalid peer certificate: UnknownIssuer`,
//!   `connection closed before the response` (see [`FastHttpError`]);
//! - `response_length` is the number of body bytes (after de-chunking). The body is kept only
//!   when the task's assertions or extractors read it (up to `max_body_size`); otherwise it is
//!   counted and dropped as it streams in, so a huge or endless body costs no memory (an
//!   endless one ends at the task's timeout);
//! - a task whose placeholders render into an invalid request is a failure recorded under its
//!   templates as written.
//!
//! ## Choices where Locust or the Python version leave it open
//!
//! - **Redirects are followed**, as Locust's `FastHttpUser` does by default (its
//!   `allow_redirects` defaults to true as well): at most [`MAX_REDIRECTS`] (5) in a row, with
//!   the `requests` method rules (303 and 302 become `GET`, 301 turns `POST` into `GET`,
//!   307/308 repeat the request). `Authorization`, `Cookie` and a custom `Host` are not sent to
//!   another origin. One event covers the whole chain: the final response's status and body,
//!   the task's name and URL, the time of every hop. A sixth redirect in a row is the failure
//!   `too many redirects (more than 5)` (with the 3xx status). `allow_redirects: false` returns
//!   the 3xx itself, a success. Following costs nothing on responses that are not redirects.
//! - **One connection per user**, keyed by scheme, host, port and (for TLS) `verify`: a task
//!   to another origin replaces it. It is opened lazily, reopened after any error, after
//!   `Connection: close`, an HTTP/1.0 response without keep-alive or a close-delimited body,
//!   and closed in `on_stop`. When a kept-alive connection turns out closed by the server
//!   before any byte of the response arrived, the request is sent once more on a new
//!   connection (an idle keep-alive connection closed by the server is not a failure of the
//!   target); a fresh connection is never retried. Only idempotent methods (`GET`, `HEAD`,
//!   `PUT`, `DELETE`, `OPTIONS`, `TRACE`) are sent again, as browsers and hyper do: a `POST` or
//!   `PATCH` the server may already have processed is recorded as the failure instead.
//! - **Connect time counts**: the timer starts before connecting, and the timeout covers
//!   connect, TLS handshake, request, redirects and the whole body.
//! - **TLS**: rustls through core's shared configurations (one verifying, one not, built at
//!   prepare time and shared by every user), ALPN `http/1.1` only. Unlike Locust's
//!   `FastHttpUser` (insecure by default), certificates are verified unless `verify: false`.
//! - **No cookie jar** and **no compression**: `Set-Cookie` is not remembered (use `cookies`
//!   or `http_user` for sessions) and no `Accept-Encoding` is sent, so bodies arrive as the
//!   server stores them. Credentials in the URL (`http://user:pass@host`) are not turned into
//!   `Authorization`; use `auth`.
//! - **Headers the client writes**: `Host` (unless the task sets one), `User-Agent:
//!   load-density/<version>` (unless the task sets one) and `Content-Length` (always computed;
//!   a task's `Content-Length` or `Transfer-Encoding` is ignored). `POST`, `PUT` and `PATCH`
//!   without a body send `Content-Length: 0`, as `requests` does.
//! - **Why not hyper**: hyper's client connection runs its protocol state machine in a
//!   separate task and hands each request and response across channels. Writing the request
//!   in one `write` and parsing the response inline with `httparse` (hyper's own parser) costs
//!   less CPU per request: about 1.35 times the requests per client CPU-second of
//!   `hyper::client::conn::http1`, over TCP and TLS alike (`benches/client_cpu.rs` measures
//!   both against the same server).
//!
//! A static task (no placeholders) is encoded into its exact request bytes once, at prepare
//! time: per request there is no rendering, no `String`, no map and no formatting, only the
//! write, the read and the event.

mod codec;
#[cfg(test)]
mod codec_fuzz;
mod conn;
mod error;
mod protocol;
mod register;
mod request;
mod response;
mod user;
mod wrapper;

use std::time::Duration;

pub use error::FastHttpError;
pub use protocol::FastHttpProtocol;
pub use wrapper::set_wrapper_fasthttp_user;

/// The user type this crate registers.
pub const USER_TYPE: &str = "fast_http_user";

/// Redirects followed in a row before a request fails with `too many redirects`.
pub const MAX_REDIRECTS: usize = 5;

/// The largest response body kept for a task's assertions and extractors when the group sets
/// no `max_body_size` (64 MiB). Bodies nothing reads are counted and dropped, whatever their
/// size.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 64 * 1024 * 1024;

/// The timeout of a task that sets none, when the group sets none either.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
