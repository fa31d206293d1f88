//! One simulated `fast_http_user`: at most one open connection, requests written and
//! responses read inline in the user's own task.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use load_density_core::deadline::RequestDeadline;
use load_density_core::task::http::RenderedHttpRequest;
use load_density_core::{RequestMeta, StaticUser, UserContext};
use tokio::io::AsyncWriteExt as _;
use url::Url;

use crate::codec::{BodyMode, Head, Received, ResponseReader};
use crate::conn::{connect, Connection};
use crate::error::FastHttpError;
use crate::protocol::{CompiledTask, TlsConnectors};
use crate::request::{check_header, encode};
use crate::response::FastHttpResponse;
use crate::MAX_REDIRECTS;

/// A read buffer that grew past this (a large body) is given back after the response.
const KEEP_BUFFER: usize = 1024 * 1024;
/// A written-request buffer bigger than this is given back when the user goes idle; smaller
/// ones (a few hundred bytes of request head) are kept.
const KEEP_WRITE_IDLE: usize = 4 * 1024;
/// How long `on_stop` waits for a TLS close_notify to go out.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

/// Where the bytes of a request are.
#[derive(Clone, Copy)]
enum Wire<'a> {
    /// Pre-encoded at prepare time (static task).
    Fixed(&'a [u8]),
    /// In the user's write buffer.
    Buffer,
}

/// A user's connection and reusable buffers.
struct State {
    conn: Option<Connection>,
    read: BytesMut,
    chunked: BytesMut,
    write: Vec<u8>,
    head: Head,
    /// The local address connections bind to (the group's `source_addresses`).
    source: Option<std::net::IpAddr>,
}

/// The request being made, with what redirects need.
struct Exchange<'a> {
    request: &'a RenderedHttpRequest,
    verify: bool,
    allow_redirects: bool,
    wire: Wire<'a>,
    body: BodyMode,
}

/// One simulated user.
pub(crate) struct FastHttpUser {
    tasks: Arc<[CompiledTask]>,
    tls: TlsConnectors,
    state: State,
    /// The request timeout, one timer reused from request to request.
    deadline: RequestDeadline,
}

impl FastHttpUser {
    pub(crate) fn new(tasks: Arc<[CompiledTask]>, tls: TlsConnectors) -> Self {
        Self {
            tasks,
            tls,
            deadline: RequestDeadline::new(),
            state: State {
                conn: None,
                read: BytesMut::new(),
                chunked: BytesMut::new(),
                write: Vec::new(),
                head: Head::default(),
                source: None,
            },
        }
    }
}

impl StaticUser for FastHttpUser {
    async fn on_start(&mut self, ctx: &mut UserContext) {
        self.state.source = ctx.source_address();
    }

    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let Some(task) = self.tasks.get(index) else {
            tracing::warn!(index, "fast_http_user: no task at this index");
            return;
        };
        let state = &mut self.state;
        let timer = ctx.start_timer();
        // A request rendered per task is boxed: inline, its ~200 bytes would sit in every
        // user's task for the user's whole life (the rendering allocates anyway).
        let mut rendered: Option<Box<RenderedHttpRequest>> = None;
        let (request, constant): (&RenderedHttpRequest, bool) =
            match task.plan.render(ctx.variables()) {
                Ok(Cow::Borrowed(request)) => (request, true),
                Ok(Cow::Owned(request)) => (&**rendered.insert(Box::new(request)), false),
                Err(e) => {
                    let error = FastHttpError::InvalidRequest(e);
                    ctx.record_failure(&task.fallback_meta, timer, None, 0, error);
                    return;
                }
            };
        let dynamic_meta;
        let (meta, wire) = match (&task.fixed, constant) {
            (Some(fixed), true) => (&fixed.meta, Wire::Fixed(&fixed.wire)),
            _ => {
                dynamic_meta = RequestMeta {
                    request_type: request.method.clone(),
                    name: request.name.clone(),
                    url: request.url_text.clone(),
                };
                if let Some(error) = request
                    .headers
                    .iter()
                    .find_map(|(name, value)| check_header(name, value).err())
                {
                    let error = FastHttpError::InvalidRequest(error);
                    ctx.record_failure(&dynamic_meta, timer, None, 0, error);
                    return;
                }
                state.write.clear();
                encode(
                    &mut state.write,
                    &request.method,
                    &request.url,
                    request
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    request.body.as_ref().map(|b| &*b.bytes),
                );
                (&dynamic_meta, Wire::Buffer)
            }
        };
        let exchange = Exchange {
            request,
            verify: task.plan.verify(),
            allow_redirects: task.plan.allow_redirects(),
            wire,
            // Only assertions and extractors read the body: without them it is counted and
            // dropped as it streams in, so a huge (or endless) body costs no memory.
            body: if ctx.needs_body() {
                BodyMode::Keep(task.max_body_size)
            } else {
                BodyMode::Discard
            },
        };
        // Pinned where it is made: `within` then moves a pointer, not the whole exchange
        // future (two copies of it per request otherwise).
        let outcome = {
            let exchange = std::pin::pin!(state.exchange(&exchange, &self.tls));
            self.deadline
                .within(&timer, task.timeout, exchange)
                .await
                .unwrap_or(Err(FastHttpError::Timeout(task.timeout)))
        };
        match outcome {
            Ok(received) => {
                let response = FastHttpResponse::new(&state.head, received.body, received.length);
                ctx.record_response(meta, timer, &response);
            }
            Err(error) => {
                // The connection is in an unknown state: the next request opens a new one.
                state.conn = None;
                let status = matches!(error, FastHttpError::TooManyRedirects(_))
                    .then(|| state.head.status());
                ctx.record_failure(meta, timer, status, 0, error);
            }
        }
        state.trim_buffers();
    }

    fn on_idle(&mut self) {
        self.state.release_buffers();
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        if let Some(mut conn) = self.state.conn.take() {
            let _ = tokio::time::timeout(CLOSE_GRACE, conn.io.shutdown()).await;
        }
    }
}

/// Whether a request with this method may be sent again after a connection failure
/// (RFC 9110 section 9.2.2; as browsers and hyper do).
fn is_idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// Whether a status is a redirect the client follows.
fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

impl State {
    /// Gives back the buffers an idle user does not need: the read buffer when it holds no
    /// unread bytes (the next request makes a new one), the de-chunking scratch space, the
    /// last response's head (recorded already), and a large written request. The connection
    /// stays.
    fn release_buffers(&mut self) {
        if self.read.is_empty() {
            self.read = BytesMut::new();
        }
        self.chunked = BytesMut::new();
        self.head = Head::default();
        if self.write.capacity() > KEEP_WRITE_IDLE {
            self.write = Vec::new();
        }
    }

    /// Gives back buffers a large response made grow.
    fn trim_buffers(&mut self) {
        if self.read.capacity() > KEEP_BUFFER && self.read.is_empty() {
            self.read = BytesMut::new();
        }
        if self.chunked.capacity() > KEEP_BUFFER {
            self.chunked = BytesMut::new();
        }
    }

    /// Sends the request and follows redirects (when allowed); the final response's head is
    /// left in `self.head`.
    async fn exchange(
        &mut self,
        exchange: &Exchange<'_>,
        tls: &TlsConnectors,
    ) -> Result<Received, FastHttpError> {
        let request = exchange.request;
        let received = self
            .send(
                &request.url,
                &request.method,
                exchange.verify,
                exchange.wire,
                exchange.body,
                tls,
            )
            .await?;
        if !exchange.allow_redirects || !is_redirect(self.head.status()) {
            return Ok(received);
        }
        // Boxed: redirects are rare, and their future would otherwise sit in every user's
        // task for the user's whole life.
        Box::pin(self.follow_redirects(exchange, received, tls)).await
    }

    /// Follows the redirects of the response in `self.head` (at most [`MAX_REDIRECTS`]).
    async fn follow_redirects(
        &mut self,
        exchange: &Exchange<'_>,
        mut received: Received,
        tls: &TlsConnectors,
    ) -> Result<Received, FastHttpError> {
        let request = exchange.request;
        let mut url: Cow<'_, Url> = Cow::Borrowed(&request.url);
        let mut method: &str = &request.method;
        let mut body = request.body.as_ref().map(|b| &*b.bytes);
        let mut hops = 0;
        while is_redirect(self.head.status()) {
            let status = self.head.status();
            let Some(location) = self.head.header("location") else {
                // A 3xx without a Location is the final response.
                break;
            };
            if hops == MAX_REDIRECTS {
                return Err(FastHttpError::TooManyRedirects(MAX_REDIRECTS));
            }
            hops += 1;
            let next = url.join(location.trim()).map_err(|e| {
                FastHttpError::InvalidRedirect(format!("Location {location:?}: {e}"))
            })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FastHttpError::InvalidRedirect(format!(
                    "unsupported scheme in Location {location:?}"
                )));
            }
            // As browsers and `requests` do: 303 (and 302) turn into GET, 301 turns POST into
            // GET; 307 and 308 repeat the request as it was.
            let to_get = method != "HEAD"
                && (status == 303 || status == 302 || (status == 301 && method == "POST"));
            if to_get {
                method = "GET";
                body = None;
            }
            let same_origin = next.origin() == url.origin();
            let headers = request.headers.iter().filter(|(name, _)| {
                let cross_origin_secret = name.eq_ignore_ascii_case("authorization")
                    || name.eq_ignore_ascii_case("cookie")
                    || name.eq_ignore_ascii_case("host");
                !(to_get && name.eq_ignore_ascii_case("content-type"))
                    && (same_origin || !cross_origin_secret)
            });
            self.write.clear();
            encode(
                &mut self.write,
                method,
                &next,
                headers.map(|(k, v)| (k.as_str(), v.as_str())),
                body,
            );
            received = self
                .send(
                    &next,
                    method,
                    exchange.verify,
                    Wire::Buffer,
                    exchange.body,
                    tls,
                )
                .await?;
            url = Cow::Owned(next);
        }
        Ok(received)
    }

    /// Sends one `method` request on the user's connection (opening one when there is none
    /// for this origin) and reads the response. A reused connection that turns out closed by
    /// the server is replaced once, for idempotent methods only: a `POST` the server may have
    /// processed before closing is a failure, never sent twice.
    async fn send(
        &mut self,
        url: &Url,
        method: &str,
        verify: bool,
        wire: Wire<'_>,
        body: BodyMode,
        tls: &TlsConnectors,
    ) -> Result<Received, FastHttpError> {
        let head_request = method == "HEAD";
        let mut retried = !is_idempotent(method);
        loop {
            let reused = self
                .conn
                .as_ref()
                .is_some_and(|c| c.origin.matches(url, verify));
            if !reused {
                self.conn = None;
                self.read.clear();
                // Boxed: connecting (DNS, TLS handshake) is rare and its future is large; inline
                // it would sit in every user's task for the user's whole life.
                let conn = Box::pin(connect(url, verify, tls.get(verify), self.source)).await?;
                self.conn = Some(conn);
            }
            let Some(conn) = self.conn.as_mut() else {
                return Err(FastHttpError::ClosedBeforeResponse);
            };
            let bytes = match wire {
                Wire::Fixed(bytes) => bytes,
                Wire::Buffer => &self.write[..],
            };
            let mut reader = ResponseReader {
                io: &mut conn.io,
                buf: &mut self.read,
                chunked: &mut self.chunked,
                received_any: false,
            };
            let result =
                write_and_read(&mut reader, bytes, &mut self.head, head_request, body).await;
            match result {
                Ok(received) => {
                    conn.served += 1;
                    if !received.keep_alive {
                        self.conn = None;
                    }
                    return Ok(received);
                }
                Err((error, received_any)) => {
                    self.conn = None;
                    if reused && !retried && !received_any && error.is_stale_connection() {
                        tracing::debug!(%error, "fast_http_user: reused connection was closed, retrying once");
                        retried = true;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }
}

/// Writes a request and reads its response; on error, also says whether any response byte
/// arrived.
async fn write_and_read(
    reader: &mut ResponseReader<'_>,
    bytes: &[u8],
    head: &mut Head,
    head_request: bool,
    body: BodyMode,
) -> Result<Received, (FastHttpError, bool)> {
    let written = async {
        reader.io.write_all(bytes).await?;
        if reader.io.needs_flush() {
            reader.io.flush().await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = written {
        return Err((FastHttpError::Send(e), false));
    }
    match reader.read(head, head_request, body).await {
        Ok(received) => Ok(received),
        Err(e) => Err((e, reader.received_any)),
    }
}
