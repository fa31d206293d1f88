//! The HTTP task shape, shared by `fast_http_user` and `http_user`.
//!
//! [`HttpTask`] is the task JSON (keys as in the Python version: `method`, `request_url` /
//! `url`, `name`, `headers`, `params`, `json`, `data`, `cookies`, `auth`, `timeout`,
//! `allow_redirects`, `verify`). [`HttpRequestPlan::compile`] validates it once, resolves a
//! relative URL against the group's `host`, and pre-renders everything that has no
//! placeholders, so a static task renders per request without allocating.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use url::Url;

use crate::task::options::{task_seconds, GroupOptions};
use crate::task::url::{path_and_query, url_name, UrlName};
use crate::task::{GroupPlan, PlanError};
use crate::template::{JsonTemplate, Template};
use crate::variables::UserVariables;

/// Moved to the protocol-neutral [`crate::task::url`]; re-exported here for existing callers.
pub use crate::task::url::{parse_host, resolve_url};

/// HTTP methods a task may use.
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

/// A map of names to string templates (headers, cookies, form fields, query parameters).
///
/// Accepts an object (`{"a": "1"}`) or a list of pairs (`[["a", "1"]]`); numbers and booleans
/// are written as JSON text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplatePairs(pub Vec<(String, Template)>);

impl<'de> Deserialize<'de> for TemplatePairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        fn text<E: Error>(value: &Value) -> Result<Template, E> {
            match value {
                Value::String(s) => Ok(Template::parse(s)),
                Value::Number(n) => Ok(Template::parse(&n.to_string())),
                Value::Bool(b) => Ok(Template::parse(&b.to_string())),
                other => Err(E::custom(format!(
                    "expected a string, number or boolean value, got {other}"
                ))),
            }
        }
        match Value::deserialize(deserializer)? {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), text(v)?)))
                .collect::<Result<_, _>>()
                .map(TemplatePairs),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Array(pair) if pair.len() == 2 => match &pair[0] {
                        Value::String(k) => Ok((k.clone(), text(&pair[1])?)),
                        other => Err(D::Error::custom(format!(
                            "a pair's name must be a string, got {other}"
                        ))),
                    },
                    other => Err(D::Error::custom(format!(
                        "expected [name, value] pairs, got {other}"
                    ))),
                })
                .collect::<Result<_, _>>()
                .map(TemplatePairs),
            other => Err(D::Error::custom(format!(
                "expected an object or a list of [name, value] pairs, got {other}"
            ))),
        }
    }
}

/// The `data` key: form fields, or a raw body.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpData {
    /// A raw body (a JSON string).
    Raw(Template),
    /// Form fields, sent `application/x-www-form-urlencoded`.
    Form(TemplatePairs),
}

impl<'de> Deserialize<'de> for HttpData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IntoDeserializer;
        let value = Value::deserialize(deserializer)?;
        match value {
            Value::String(s) => Ok(HttpData::Raw(Template::parse(&s))),
            other => TemplatePairs::deserialize(other.into_deserializer())
                .map(HttpData::Form)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// The `auth` key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HttpAuth {
    /// `{"type": "basic", "username": .., "password": ..}`.
    #[serde(alias = "Basic", alias = "BASIC")]
    Basic {
        /// User name (default empty).
        #[serde(default)]
        username: Option<Template>,
        /// Password (default empty).
        #[serde(default)]
        password: Option<Template>,
    },
    /// `{"type": "bearer", "token": ..}`.
    #[serde(alias = "Bearer", alias = "BEARER")]
    Bearer {
        /// The token.
        token: Template,
    },
}

/// One HTTP task as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTask {
    /// HTTP method, case-insensitive.
    pub method: String,
    /// Target URL (takes priority over `url`).
    #[serde(default)]
    pub request_url: Option<Template>,
    /// Target URL.
    #[serde(default)]
    pub url: Option<Template>,
    /// Statistics name. Default: the URL's path and query; for a URL with placeholders, the
    /// URL as written (so one task is one statistics entry, whatever it renders to); for
    /// query parameters with placeholders, the path.
    #[serde(default)]
    pub name: Option<Template>,
    /// Request headers.
    #[serde(default)]
    pub headers: Option<TemplatePairs>,
    /// Query parameters.
    #[serde(default)]
    pub params: Option<TemplatePairs>,
    /// Cookies.
    #[serde(default)]
    pub cookies: Option<TemplatePairs>,
    /// A JSON body.
    #[serde(default)]
    pub json: Option<JsonTemplate>,
    /// A form or raw body.
    #[serde(default)]
    pub data: Option<HttpData>,
    /// Multipart files: not supported yet, rejected at validation.
    #[serde(default)]
    pub files: Option<Value>,
    /// Authentication.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// Per-request timeout in seconds.
    #[serde(default, deserialize_with = "crate::task::values::opt_seconds")]
    pub timeout: Option<f64>,
    /// Follow redirects (`http_user` only; default true).
    #[serde(default, deserialize_with = "crate::task::values::opt_bool")]
    pub allow_redirects: Option<bool>,
    /// Verify TLS certificates (default true).
    #[serde(default, deserialize_with = "crate::task::values::opt_bool")]
    pub verify: Option<bool>,
}

/// Group-level HTTP settings every task inherits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpDefaults {
    /// Base host for relative URLs (`http://127.0.0.1:8080`).
    pub host: Option<String>,
    /// Default timeout.
    pub timeout: Option<Duration>,
    /// Default TLS verification.
    pub verify: Option<bool>,
}

impl HttpDefaults {
    /// The defaults of `plan`'s group: its `host`, and the `timeout` and `verify` of its
    /// parsed `options`.
    pub fn from_plan(plan: &GroupPlan, options: &GroupOptions) -> Self {
        Self {
            host: plan.host().map(str::to_owned),
            timeout: options.timeout(),
            verify: options.verify(),
        }
    }
}

/// A compiled request part: constant or rendered per request.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Constant(Arc<str>),
    Dynamic(Template),
}

impl Part {
    fn new(template: &Template) -> Self {
        match template.as_constant() {
            Some(c) => Part::Constant(Arc::from(c)),
            None => Part::Dynamic(template.clone()),
        }
    }
    fn render<'a>(&'a self, vars: &UserVariables) -> Cow<'a, str> {
        match self {
            Part::Constant(c) => Cow::Borrowed(c),
            Part::Dynamic(t) => t.render(vars),
        }
    }
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedHttpRequest {
    /// Upper-case method (also the event's request type).
    pub method: Arc<str>,
    /// The absolute URL.
    pub url: Url,
    /// The URL as text (the event's `url`).
    pub url_text: Arc<str>,
    /// Statistics name.
    pub name: Arc<str>,
    /// Headers, in order (including `Cookie`, `Authorization` and `Content-Type` when set).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Option<bytes_body::Body>,
}

/// Request bodies.
pub mod bytes_body {
    use std::sync::Arc;

    /// An encoded body and its content type.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Body {
        /// Encoded bytes.
        pub bytes: Arc<[u8]>,
        /// `Content-Type`, when the body kind implies one.
        pub content_type: Option<&'static str>,
    }
}

use bytes_body::Body;

/// A validated HTTP task, ready to render per request.
#[derive(Debug, Clone)]
pub struct HttpRequestPlan {
    method: Arc<str>,
    base: Option<Url>,
    url: Part,
    name: Option<Part>,
    headers: Vec<(String, Part)>,
    params: Vec<(String, Part)>,
    cookies: Vec<(String, Part)>,
    json: Option<JsonTemplate>,
    data: Option<HttpData>,
    auth: Option<HttpAuth>,
    timeout: Option<Duration>,
    allow_redirects: bool,
    verify: bool,
    constant: Option<RenderedHttpRequest>,
    /// Named by the rendered path alone (the URL's placeholders sit only in its scheme and
    /// host, and its query parameters vary).
    name_path_only: bool,
}

fn parts(pairs: &Option<TemplatePairs>) -> Vec<(String, Part)> {
    pairs
        .as_ref()
        .map(|p| p.0.iter().map(|(k, v)| (k.clone(), Part::new(v))).collect())
        .unwrap_or_default()
}

impl HttpRequestPlan {
    /// Validates task `index` and prepares it.
    pub fn compile(
        index: usize,
        task: &HttpTask,
        defaults: &HttpDefaults,
    ) -> Result<Self, PlanError> {
        let method = task.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(PlanError::task(
                index,
                "method",
                format!(
                    "unsupported HTTP method {:?} (expected one of {})",
                    task.method,
                    METHODS.join(", ").to_ascii_lowercase()
                ),
            ));
        }
        let url = task
            .request_url
            .as_ref()
            .or(task.url.as_ref())
            .ok_or_else(|| PlanError::task(index, "", "missing \"request_url\" (or \"url\")"))?;
        if task.files.is_some() {
            return Err(PlanError::task(
                index,
                "files",
                "multipart \"files\" are not supported yet",
            ));
        }
        if task.json.is_some() && task.data.is_some() {
            return Err(PlanError::task(
                index,
                "",
                "give either \"json\" or \"data\", not both",
            ));
        }
        let timeout = match task.timeout {
            Some(secs) => Some(task_seconds(index, "timeout", secs)?),
            None => defaults.timeout,
        };
        let base = defaults.host.as_deref().map(parse_host).transpose()?;
        let mut plan = Self {
            method: Arc::from(method),
            base,
            url: Part::new(url),
            // As the Python version: a name is used only when it is not empty.
            name: task
                .name
                .as_ref()
                .filter(|name| !name.source().is_empty())
                .map(Part::new),
            headers: parts(&task.headers),
            params: parts(&task.params),
            cookies: parts(&task.cookies),
            json: task.json.clone(),
            data: task.data.clone(),
            auth: task.auth.clone(),
            timeout,
            allow_redirects: task.allow_redirects.unwrap_or(true),
            verify: task.verify.or(defaults.verify).unwrap_or(true),
            constant: None,
            name_path_only: false,
        };
        // Validate a constant URL now; dynamic ones are checked when rendered.
        let static_path = match &plan.url {
            Part::Constant(text) => Some(
                resolve_url(plan.base.as_ref(), text)
                    .map_err(|e| PlanError::task(index, "request_url", e))?
                    .path()
                    .to_owned(),
            ),
            // A path with placeholders but no host can only go to a machine nobody named.
            Part::Dynamic(_) if plan.base.is_none() && url.source().starts_with('/') => {
                return Err(PlanError::task(
                    index,
                    "request_url",
                    format!(
                        "the relative URL {:?} needs a `host` for the group (or write an absolute URL)",
                        url.source()
                    ),
                ))
            }
            Part::Dynamic(_) => None,
        };
        // Without a `name`, a request is named by its path and query (core's rule,
        // `url::url_name`). A URL whose path or query changes per request would make one
        // statistics entry per request: such a task is named by its URL as written
        // (placeholders and all), or by its path when only the query parameters vary.
        if plan.name.is_none() {
            let params_vary = plan
                .params
                .iter()
                .any(|(_, p)| matches!(p, Part::Dynamic(_)));
            plan.name = match static_path {
                None => match url_name(url, plan.base.as_ref()) {
                    UrlName::PathAndQuery => {
                        plan.name_path_only = params_vary;
                        None
                    }
                    UrlName::Fixed(name) => Some(Part::Constant(Arc::from(name))),
                },
                Some(path) if params_vary => Some(Part::Constant(Arc::from(path))),
                Some(_) => None,
            };
        }
        if plan.is_static() {
            let empty = UserVariables::default();
            let rendered = plan
                .render_now(&empty)
                .map_err(|e| PlanError::task(index, "", e))?;
            plan.constant = Some(rendered);
        }
        Ok(plan)
    }

    fn is_static(&self) -> bool {
        let constant = |p: &Part| matches!(p, Part::Constant(_));
        constant(&self.url)
            && self.name.as_ref().is_none_or(constant)
            && self.headers.iter().all(|(_, p)| constant(p))
            && self.params.iter().all(|(_, p)| constant(p))
            && self.cookies.iter().all(|(_, p)| constant(p))
            && self.json.as_ref().is_none_or(|j| !j.is_dynamic())
            && match &self.data {
                None => true,
                Some(HttpData::Raw(t)) => t.as_constant().is_some(),
                Some(HttpData::Form(p)) => p.0.iter().all(|(_, t)| t.as_constant().is_some()),
            }
            && match &self.auth {
                None => true,
                Some(HttpAuth::Basic { username, password }) => {
                    username.as_ref().is_none_or(|t| t.as_constant().is_some())
                        && password.as_ref().is_none_or(|t| t.as_constant().is_some())
                }
                Some(HttpAuth::Bearer { token }) => token.as_constant().is_some(),
            }
    }

    /// The request, when the task has no placeholders: rendered once at compile time.
    pub fn constant(&self) -> Option<&RenderedHttpRequest> {
        self.constant.as_ref()
    }

    /// The method (upper case).
    pub fn method(&self) -> &Arc<str> {
        &self.method
    }
    /// The timeout for this task, if any.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    /// Whether to follow redirects.
    pub fn allow_redirects(&self) -> bool {
        self.allow_redirects
    }
    /// Whether to verify TLS certificates.
    pub fn verify(&self) -> bool {
        self.verify
    }

    /// The request for this user: borrowed when the task has no placeholders.
    pub fn render<'a>(
        &'a self,
        vars: &UserVariables,
    ) -> Result<Cow<'a, RenderedHttpRequest>, String> {
        match &self.constant {
            Some(constant) => Ok(Cow::Borrowed(constant)),
            None => self.render_now(vars).map(Cow::Owned),
        }
    }

    fn render_now(&self, vars: &UserVariables) -> Result<RenderedHttpRequest, String> {
        let mut url = resolve_url(self.base.as_ref(), &self.url.render(vars))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "unsupported URL scheme {:?} in {url}",
                url.scheme()
            ));
        }
        if !self.params.is_empty() {
            let mut query = url.query_pairs_mut();
            for (k, v) in &self.params {
                query.append_pair(k, &v.render(vars));
            }
        }
        let url_text: Arc<str> = Arc::from(url.as_str());
        let name: Arc<str> = match &self.name {
            Some(Part::Constant(c)) => c.clone(),
            Some(dynamic) => Arc::from(dynamic.render(vars).as_ref()),
            None if self.name_path_only => Arc::from(url.path()),
            None => Arc::from(path_and_query(&url)),
        };
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.render(vars).into_owned()))
            .collect();
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={}", v.render(vars)))
                .collect::<Vec<_>>()
                .join("; ");
            headers.push(("Cookie".to_owned(), cookie));
        }
        match &self.auth {
            Some(HttpAuth::Basic { username, password }) => {
                let user = username
                    .as_ref()
                    .map(|t| t.render(vars))
                    .unwrap_or_default();
                let pass = password
                    .as_ref()
                    .map(|t| t.render(vars))
                    .unwrap_or_default();
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                headers.push(("Authorization".to_owned(), format!("Basic {encoded}")));
            }
            Some(HttpAuth::Bearer { token }) => {
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                headers.push((
                    "Authorization".to_owned(),
                    format!("Bearer {}", token.render(vars)),
                ));
            }
            None => {}
        }
        let body = if let Some(json) = &self.json {
            let bytes =
                serde_json::to_vec(json.render(vars).as_ref()).map_err(|e| e.to_string())?;
            Some(Body {
                bytes: Arc::from(bytes),
                content_type: Some("application/json"),
            })
        } else {
            match &self.data {
                None => None,
                Some(HttpData::Raw(t)) => Some(Body {
                    bytes: Arc::from(t.render(vars).as_bytes()),
                    content_type: None,
                }),
                Some(HttpData::Form(pairs)) => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for (k, v) in &pairs.0 {
                        form.append_pair(k, &v.render(vars));
                    }
                    Some(Body {
                        bytes: Arc::from(form.finish().into_bytes()),
                        content_type: Some("application/x-www-form-urlencoded"),
                    })
                }
            }
        };
        let has_content_type = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if let Some(Body {
            content_type: Some(ct),
            ..
        }) = &body
        {
            if !has_content_type {
                headers.push(("Content-Type".to_owned(), (*ct).to_owned()));
            }
        }
        Ok(RenderedHttpRequest {
            method: self.method.clone(),
            url,
            url_text,
            name,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskList;
    use crate::variables::Variables;
    use serde_json::json;

    fn compile(task: Value, host: Option<&str>) -> Result<HttpRequestPlan, PlanError> {
        let list = TaskList::from_json(&json!([task]))?;
        let tasks = list.compile::<HttpTask>()?;
        HttpRequestPlan::compile(
            0,
            &tasks[0],
            &HttpDefaults {
                host: host.map(str::to_owned),
                ..HttpDefaults::default()
            },
        )
    }

    #[test]
    fn static_task_renders_borrowed_with_host_params_and_form() {
        let plan = compile(
            json!({"method": "post", "url": "/post", "params": {"a": 1}, "data": {"x": "y z"},
                   "auth": {"type": "basic", "username": "u", "password": "p"}}),
            Some("127.0.0.1:8080"),
        )
        .expect("compile");
        let vars = UserVariables::default();
        let rendered = plan.render(&vars).expect("render");
        assert!(matches!(rendered, Cow::Borrowed(_)));
        assert_eq!(&*rendered.url_text, "http://127.0.0.1:8080/post?a=1");
        assert_eq!(&*rendered.name, "/post?a=1");
        assert_eq!(&*rendered.method, "POST");
        let body = rendered.body.as_ref().expect("body");
        assert_eq!(&*body.bytes, b"x=y+z");
        assert!(rendered
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v == "Basic dTpw"));
    }

    #[test]
    fn dynamic_task_renders_variables() {
        let plan = compile(
            json!({"method": "GET", "request_url": "${var.base}/get", "name": "get",
                   "json": {"n": "${var.n}"}, "auth": {"type": "bearer", "token": "${t}"}}),
            None,
        )
        .expect("compile");
        let run: Variables = [
            ("base".to_owned(), json!("http://h:1")),
            ("n".to_owned(), json!(5)),
            ("t".to_owned(), json!("tok")),
        ]
        .into_iter()
        .collect();
        let vars = UserVariables::new(Arc::new(run));
        let rendered = plan.render(&vars).expect("render");
        assert_eq!(&*rendered.url_text, "http://h:1/get");
        assert_eq!(&*rendered.body.as_ref().expect("body").bytes, br#"{"n":5}"#);
        assert!(rendered
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v == "Bearer tok"));
    }

    #[test]
    fn invalid_tasks_are_rejected_with_their_key() {
        let text = compile(json!({"method": "fetch", "url": "/"}), None)
            .expect_err("method")
            .to_string();
        assert!(
            text.contains("tasks[0].method") && text.contains("fetch"),
            "{text}"
        );
        let text = compile(json!({"method": "get"}), None)
            .expect_err("url")
            .to_string();
        assert!(text.contains("request_url"), "{text}");
        let text = compile(json!({"method": "get", "url": "/", "timeout": -1}), None)
            .expect_err("timeout")
            .to_string();
        assert!(text.contains("tasks[0].timeout"), "{text}");
        let text = compile(
            json!({"method": "get", "url": "/", "headers": {"a": [1]}}),
            None,
        )
        .expect_err("header")
        .to_string();
        assert!(text.contains("tasks[0].headers"), "{text}");
    }
}

#[cfg(test)]
mod naming_tests {
    use super::*;
    use crate::task::TaskList;
    use serde_json::json;

    fn name_of(task: Value) -> String {
        let list = TaskList::from_json(&json!([task])).expect("tasks");
        let tasks = list.compile::<HttpTask>().expect("compile");
        let plan = HttpRequestPlan::compile(0, &tasks[0], &HttpDefaults::default()).expect("plan");
        let vars = UserVariables::default();
        let rendered = plan.render(&vars).expect("render");
        rendered.name.to_string()
    }

    #[test]
    fn placeholders_only_in_the_scheme_and_host_name_the_request_by_its_path() {
        let task = |url: &str, params: Value| {
            let list = TaskList::from_json(&json!([
                {"method": "get", "url": url, "params": params}
            ]))
            .expect("tasks");
            let tasks = list.compile::<HttpTask>().expect("compile");
            let plan =
                HttpRequestPlan::compile(0, &tasks[0], &HttpDefaults::default()).expect("plan");
            let vars = crate::variables::Variables::from_iter([(
                "base".to_owned(),
                json!("http://127.0.0.1:8080"),
            )]);
            let vars = UserVariables::new(std::sync::Arc::new(vars));
            plan.render(&vars).expect("render").name.to_string()
        };
        assert_eq!(task("${var.base}/get", json!({})), "/get");
        assert_eq!(task("${var.base}/get?a=1", json!({})), "/get?a=1");
        assert_eq!(task("${var.base}/search", json!({"q": "x"})), "/search?q=x");
        assert_eq!(
            task("${var.base}/search", json!({"q": "${uuid()}"})),
            "/search"
        );
        assert_eq!(
            task("${var.base}/items/${randint(1,9)}", json!({})),
            "${var.base}/items/${randint(1,9)}"
        );
    }

    #[test]
    fn dynamic_urls_are_named_by_their_template_not_per_request() {
        assert_eq!(
            name_of(json!({"method": "get", "url": "http://h/items/${uuid()}?x=1"})),
            "http://h/items/${uuid()}?x=1"
        );
        assert_eq!(
            name_of(
                json!({"method": "get", "url": "http://h/search", "params": {"q": "${uuid()}"}})
            ),
            "/search"
        );
        assert_eq!(
            name_of(json!({"method": "get", "url": "http://h/search", "params": {"q": "x"}})),
            "/search?q=x"
        );
    }
}
