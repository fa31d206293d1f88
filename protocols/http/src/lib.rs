//! # load-density-http
//!
//! The `http_user` of LoadDensity: a full-featured HTTP user built on [reqwest], for scenarios
//! that need a browser-like session (cookies, redirects, TLS options, HTTP/2). For raw
//! throughput against simple endpoints, `fast_http_user` (crate `load-density-fast-http`) is
//! leaner.
//!
//! Linking this crate registers the user type `"http_user"` with the core registry; binaries
//! that do not get it through the runner's cargo features name it (`use load_density_http as
//! _;`).
//!
//! | feature | behaviour |
//! |---|---|
//! | cookies | one cookie jar per simulated user, kept for the whole run; never shared between users |
//! | redirects | followed by default, up to 10 (then the request fails); `allow_redirects: false` records the 3xx itself |
//! | timeouts | per task `timeout` (seconds), else the group option `timeout`, else 60 s; it covers connecting, sending and reading the whole body |
//! | TLS | certificates checked against the Mozilla roots plus the group's `ca_file`; `verify: false` (task or group) turns checks off |
//! | HTTP/2 | offered through ALPN (`h2`, `http/1.1`) on TLS connections and used when the server takes it; plain `http` is HTTP/1.1 |
//! | failures | 4xx/5xx responses are failures (`HTTP 503 Service Unavailable`) that keep their status; a request without a complete response is a failure whose reason names the cause (`connection failed: tcp connect error: Connection refused (os error 111)`, `timed out after 0.2s`, `connection failed: invalid peer certificate: UnknownIssuer`) |
//!
//! ## Tasks
//!
//! Tasks use the HTTP task shape shared with `fast_http_user`
//! ([`HttpTask`](load_density_core::task::http::HttpTask)); every value may hold `${...}`
//! placeholders.
//!
//! | key | meaning |
//! |---|---|
//! | `method` | `get`, `post`, `put`, `patch`, `delete`, `head` or `options` (any case); required |
//! | `request_url` / `url` | absolute, or relative to the group's `host`; required |
//! | `name` | statistics name (default: the URL's path and query) |
//! | `headers`, `params`, `cookies` | objects or lists of `[name, value]` pairs |
//! | `json` / `data` | a JSON body, or form fields (object) / a raw body (string) |
//! | `auth` | `{"type": "basic", "username", "password"}` or `{"type": "bearer", "token"}` |
//! | `timeout` | seconds, positive |
//! | `allow_redirects` | follow redirects (default `true`) |
//! | `verify` | check TLS certificates (default `true`, or the group's `verify`) |
//!
//! Group options (from `user_detail_dict` and extra `start_test` keys): `timeout`, `verify`,
//! `ca_file` (path of a PEM file of extra trusted CAs, read when the run is prepared) and
//! `max_body_size` (bytes, default [`DEFAULT_MAX_BODY_SIZE`], 64 MiB): a body that no assertion
//! or extractor reads is counted and dropped as it streams in, so its size costs no memory; a
//! body that one reads and that is larger fails the request with `response body larger than
//! max_body_size (N bytes)`.
//!
//! ```json
//! {"mode": "sequence", "tasks": [
//!   {"method": "post", "url": "/login", "json": {"user": "${var.user}"}},
//!   {"method": "get", "url": "/cookies", "name": "session"},
//!   {"method": "get", "url": "/old", "allow_redirects": false},
//!   {"method": "get", "request_url": "https://127.0.0.1:8443/", "verify": false, "timeout": 2}
//! ]}
//! ```
//!
//! ## Preparing a group
//!
//! The runner does this for you; a test or an embedding program can do it directly and drive
//! [`HttpUser`]s itself (through [`UserTemplate`](load_density_core::UserTemplate), or
//! [`HttpUser::send`] to get the [`HttpResponse`] back).
//!
//! ```
//! use load_density_core::{GroupPlan, PlanError, TaskList};
//! use load_density_http::HttpProtocol;
//! use serde_json::json;
//!
//! # tokio::runtime::Runtime::new().expect("runtime").block_on(async {
//! let tasks = TaskList::from_json(&json!([
//!     {"method": "get", "url": "/get"},
//!     {"method": "post", "url": "/post", "json": {"n": 1}, "timeout": 0.5},
//! ]))
//! .expect("tasks");
//! let plan = GroupPlan::new("http_user", tasks).with_host(Some("http://127.0.0.1:8080".into()));
//! let factory = HttpProtocol.prepare_group(&plan).await.expect("valid plan");
//! assert_eq!(factory.task_count(), 2);
//! let user = factory.user(1);
//! assert_eq!(user.open_clients(), 0); // clients are built on the first request
//!
//! let bad = TaskList::from_json(&json!([{"method": "get", "url": "/", "verify": "no"}]))
//!     .expect("tasks");
//! let error = HttpProtocol
//!     .prepare_group(&GroupPlan::new("http_user", bad))
//!     .await
//!     .expect_err("verify must be a boolean");
//! assert!(matches!(error, PlanError::Task { index: 0, .. }), "{error}");
//! assert!(error.to_string().contains("tasks[0].verify"), "{error}");
//! # });
//! ```
//!
//! ## Choices
//!
//! - **One client per user, lazily more.** reqwest fixes the redirect policy and TLS
//!   configuration per client, so a user keeps one client per combination of `verify` and
//!   `allow_redirects` its tasks use (at most four), created on first need and all sharing the
//!   user's one `Arc<reqwest::cookie::Jar>`. A group using the defaults gets one client per
//!   user. Each client has its own connection pool: users never share connections.
//! - **Shared TLS.** The rustls configurations come from core's
//!   [`tls::client_config`](load_density_core::tls::client_config), built once per distinct
//!   setting and shared; reqwest copies one into each client it builds.
//! - **Task cookies merge with the jar.** A task's `cookies` (or `Cookie` header) are sent
//!   together with the jar's cookies for the URL; on a name clash the task's value wins. The
//!   task's cookies are not stored in the jar (as in Python requests).
//! - **The event's URL is the task's URL**, also after redirects; the final URL is on
//!   [`HttpResponse::final_url`].
//! - **A task that cannot be rendered** (a placeholder giving an invalid URL) is recorded as a
//!   failure named `tasks[<index>]` with an empty URL, rather than dropped silently.
//! - **Failure reasons leave the URL out** (the event carries it), so failures of one kind
//!   group together in the statistics.
//! - Requests send `User-Agent: load-density/<version>` unless the task sets one. Environment
//!   proxy variables are honoured as reqwest does by default.

mod client;
mod error;
mod protocol;
mod register;
mod response;
mod user;
mod wrapper;

pub use client::MAX_REDIRECTS;
pub use error::HttpError;
pub use protocol::{HttpProtocol, HttpUserFactory, DEFAULT_MAX_BODY_SIZE, DEFAULT_TIMEOUT};
pub use response::HttpResponse;
pub use user::HttpUser;
pub use wrapper::{set_wrapper_http_user, USER_TYPE};
