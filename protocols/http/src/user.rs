//! One simulated `http_user`.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, COOKIE};
use load_density_core::task::http::{HttpRequestPlan, RenderedHttpRequest};
use load_density_core::variables::UserVariables;
use load_density_core::{async_trait, RequestMeta, RequestTimer, UserContext, UserTemplate};

use crate::client::{has_cookie, merge_cookies, ClientKind, UserClients};
use crate::error::HttpError;
use crate::protocol::{GroupShared, DEFAULT_TIMEOUT};
use crate::response::HttpResponse;

/// One simulated user: its own cookie jar and its own reqwest clients (connection pools).
///
/// Made by [`HttpUserFactory`](crate::HttpUserFactory). The runner drives it through
/// [`UserTemplate`]; [`HttpUser::send`] runs one task and hands the response back instead of
/// recording it.
#[derive(Debug)]
pub struct HttpUser {
    user_id: u64,
    shared: Arc<GroupShared>,
    clients: UserClients,
}

impl HttpUser {
    pub(crate) fn new(user_id: u64, shared: Arc<GroupShared>) -> Self {
        Self {
            user_id,
            shared,
            clients: UserClients::default(),
        }
    }

    /// The user's id.
    pub fn user_id(&self) -> u64 {
        self.user_id
    }

    /// Number of reqwest clients this user has built (one per combination of `verify` and
    /// `allow_redirects` its tasks have used, so 1 for a group using the defaults).
    pub fn open_clients(&self) -> usize {
        self.clients.open_clients()
    }

    /// Runs task `index` with `variables` and returns the complete response, whatever its
    /// status. Nothing is recorded.
    ///
    /// # Errors
    /// An [`HttpError`] when the task cannot be rendered or no complete response arrives.
    pub async fn send(
        &mut self,
        index: usize,
        variables: &UserVariables,
    ) -> Result<HttpResponse, HttpError> {
        let plan = self
            .shared
            .requests
            .get(index)
            .ok_or(HttpError::NoSuchTask {
                index,
                len: self.shared.requests.len(),
            })?;
        let rendered = plan
            .render(variables)
            .map_err(|message| HttpError::Render { index, message })?;
        execute(&mut self.clients, &self.shared, plan, &rendered, true).await
    }
}

#[async_trait]
impl UserTemplate for HttpUser {
    async fn on_start(&mut self, ctx: &mut UserContext) {
        self.clients.set_source(ctx.source_address());
    }

    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let Some(plan) = self.shared.requests.get(index) else {
            tracing::error!(
                index,
                tasks = self.shared.requests.len(),
                "http_user asked to run a task that does not exist"
            );
            return;
        };
        let rendered = match plan.render(ctx.variables()) {
            Ok(rendered) => rendered,
            Err(message) => {
                // No URL or name to record under: name the task instead.
                let meta = RequestMeta::new(plan.method().clone(), format!("tasks[{index}]"), "");
                let error = HttpError::Render { index, message };
                ctx.record_failure(&meta, RequestTimer::start(), None, 0, error.reason());
                return;
            }
        };
        let meta = RequestMeta::new(
            rendered.method.clone(),
            rendered.name.clone(),
            rendered.url_text.clone(),
        );
        let timer = RequestTimer::start();
        // Only assertions and extractors read the body: without them it is counted and
        // dropped as it streams in.
        let keep_body = ctx.needs_body();
        match execute(&mut self.clients, &self.shared, plan, &rendered, keep_body).await {
            Ok(response) => ctx.record_response(&meta, timer, &response),
            Err(error) => ctx.record_failure(&meta, timer, error.status(), 0, error.reason()),
        }
    }

    async fn on_stop(&mut self, _ctx: &mut UserContext) {
        self.clients.close();
    }
}

/// Sends one rendered request and reads the whole response; the body is kept (at most
/// `max_body_size` bytes) when `keep_body`, else counted and dropped.
async fn execute(
    clients: &mut UserClients,
    shared: &GroupShared,
    plan: &HttpRequestPlan,
    rendered: &RenderedHttpRequest,
    keep_body: bool,
) -> Result<HttpResponse, HttpError> {
    let timeout = plan.timeout().unwrap_or(DEFAULT_TIMEOUT);
    let method = http::Method::from_bytes(rendered.method.as_bytes()).map_err(|e| {
        HttpError::InvalidHeader {
            name: ":method".to_owned(),
            message: e.to_string(),
        }
    })?;
    let mut headers = header_map(&rendered.headers)?;
    if has_cookie(&headers) {
        // The task sets cookies itself: reqwest would then leave the jar's out entirely.
        if let Some(jar) = clients.jar_cookies(&rendered.url) {
            let own = headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join("; ");
            let merged = merge_cookies(&own, Some(&jar));
            let value = HeaderValue::from_str(&merged).map_err(|e| HttpError::InvalidHeader {
                name: "Cookie".to_owned(),
                message: e.to_string(),
            })?;
            headers.insert(COOKIE, value);
        }
    }

    let kind = ClientKind {
        verify: plan.verify(),
        follow_redirects: plan.allow_redirects(),
    };
    let client = clients
        .get(&shared.tls, kind, &rendered.url)
        .map_err(HttpError::Client)?;

    let mut request = reqwest::Request::new(method, rendered.url.clone());
    *request.headers_mut() = headers;
    *request.timeout_mut() = Some(timeout);
    if let Some(body) = &rendered.body {
        *request.body_mut() = Some(reqwest::Body::from(Bytes::from_owner(body.bytes.clone())));
    }

    let mut response = client
        .execute(request)
        .await
        .map_err(|e| HttpError::from_send(e, timeout))?;
    let status = response.status();
    let version = response.version();
    let headers = std::mem::take(response.headers_mut());
    let url = response.url().clone();
    let mut body = BytesMut::new();
    let mut length: u64 = 0;
    let limit = shared.max_body_size;
    if keep_body
        && response
            .content_length()
            .is_some_and(|announced| announced > limit)
    {
        return Err(HttpError::BodyTooLarge {
            status: status.as_u16(),
            limit,
        });
    }
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HttpError::from_body(e, status.as_u16(), timeout))?
    {
        length = length.saturating_add(chunk.len() as u64);
        if keep_body {
            if length > limit {
                return Err(HttpError::BodyTooLarge {
                    status: status.as_u16(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
    }
    Ok(HttpResponse::new(
        status,
        version,
        headers,
        url,
        body.freeze(),
        length,
    ))
}

fn header_map(pairs: &[(String, String)]) -> Result<HeaderMap, HttpError> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let invalid = |message: String| HttpError::InvalidHeader {
            name: name.clone(),
            message,
        };
        let header_name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let header_value = HeaderValue::from_str(value).map_err(|e| invalid(e.to_string()))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}
