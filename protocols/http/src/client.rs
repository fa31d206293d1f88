//! One user's reqwest clients and cookie jar.
//!
//! reqwest fixes the redirect policy and the TLS configuration per client, while a task may
//! turn redirects (`allow_redirects`) and certificate checks (`verify`) off for itself. A user
//! therefore keeps up to four clients, one per combination a task needs, created lazily on the
//! first request that needs it. They all share the user's one cookie jar, so a cookie set
//! through any of them is sent by all of them. A group whose tasks all use the defaults gives
//! each user exactly one client.

use std::net::IpAddr;
use std::sync::Arc;

use http::header::{HeaderValue, COOKIE};
use reqwest::cookie::{CookieStore as _, Jar};
use reqwest::redirect::Policy;
use rustls::ClientConfig;
use url::Url;

/// Redirects followed before a request fails.
pub const MAX_REDIRECTS: usize = 10;

/// The `User-Agent` sent unless a task sets its own.
const USER_AGENT: &str = concat!("load-density/", env!("CARGO_PKG_VERSION"));

/// The group's TLS configurations, shared by every user (reqwest copies them per client).
#[derive(Debug)]
pub(crate) struct TlsConfigs {
    verified: Arc<ClientConfig>,
    insecure: Arc<ClientConfig>,
}

impl TlsConfigs {
    pub(crate) fn new(verified: Arc<ClientConfig>, insecure: Arc<ClientConfig>) -> Self {
        Self { verified, insecure }
    }

    /// Builds one client of each kind and drops it, to surface build errors at prepare time.
    pub(crate) fn check(&self) -> Result<(), reqwest::Error> {
        let jar = Arc::new(Jar::default());
        for verify in [true, false] {
            build(self, verify, true, &jar, None)?;
        }
        Ok(())
    }
}

fn build(
    tls: &TlsConfigs,
    verify: bool,
    follow_redirects: bool,
    jar: &Arc<Jar>,
    source: Option<IpAddr>,
) -> Result<reqwest::Client, reqwest::Error> {
    let config = if verify { &tls.verified } else { &tls.insecure };
    let policy = if follow_redirects {
        Policy::limited(MAX_REDIRECTS)
    } else {
        Policy::none()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured((**config).clone())
        .cookie_provider(jar.clone())
        .redirect(policy)
        .user_agent(USER_AGENT)
        .local_address(source)
        .build()
}

/// What kind of client a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientKind {
    pub(crate) verify: bool,
    pub(crate) follow_redirects: bool,
}

impl ClientKind {
    fn slot(self) -> usize {
        usize::from(self.verify) << 1 | usize::from(self.follow_redirects)
    }
}

/// One user's clients, created on demand, and its cookie jar.
#[derive(Debug, Default)]
pub(crate) struct UserClients {
    jar: Arc<Jar>,
    clients: [Option<reqwest::Client>; 4],
    /// The local address every client binds to (the group's `source_addresses`).
    source: Option<IpAddr>,
}

impl UserClients {
    /// Binds the clients built from now on to `source`.
    pub(crate) fn set_source(&mut self, source: Option<IpAddr>) {
        self.source = source;
    }

    /// The client for `kind`, built on first use. A plain-`http` request has no certificate to
    /// check, so it reuses an existing client that differs only in `verify`.
    pub(crate) fn get(
        &mut self,
        tls: &TlsConfigs,
        kind: ClientKind,
        url: &Url,
    ) -> Result<&reqwest::Client, reqwest::Error> {
        let mut slot = kind.slot();
        if url.scheme() != "https" && self.clients[slot].is_none() {
            let other = ClientKind {
                verify: !kind.verify,
                ..kind
            }
            .slot();
            if self.clients[other].is_some() {
                slot = other;
            }
        }
        let client = match self.clients[slot].take() {
            Some(client) => client,
            None => build(
                tls,
                kind.verify,
                kind.follow_redirects,
                &self.jar,
                self.source,
            )?,
        };
        Ok(self.clients[slot].insert(client))
    }

    /// The jar's cookies for `url`, as a `Cookie` header value.
    pub(crate) fn jar_cookies(&self, url: &Url) -> Option<HeaderValue> {
        self.jar.cookies(url)
    }

    /// Drops every client (closing their pooled connections); the jar stays.
    pub(crate) fn close(&mut self) {
        self.clients = Default::default();
    }

    /// Number of clients built so far.
    pub(crate) fn open_clients(&self) -> usize {
        self.clients.iter().filter(|c| c.is_some()).count()
    }
}

/// Merges a task's own `Cookie` header with the jar's cookies for the request: the task's
/// cookies come first and win over jar cookies of the same name (as in Python requests, where
/// request cookies are merged over the session's).
pub(crate) fn merge_cookies(task_cookie: &str, jar: Option<&HeaderValue>) -> String {
    let Some(jar) = jar.and_then(|v| v.to_str().ok()) else {
        return task_cookie.to_owned();
    };
    let names = |text: &str| -> Vec<String> {
        text.split(';')
            .filter_map(|pair| {
                let name = pair.split('=').next()?.trim();
                (!name.is_empty()).then(|| name.to_owned())
            })
            .collect()
    };
    let task_names = names(task_cookie);
    let mut merged = task_cookie.trim().to_owned();
    for pair in jar.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let name = pair.split('=').next().unwrap_or_default().trim();
        if !task_names.iter().any(|n| n == name) {
            if !merged.is_empty() {
                merged.push_str("; ");
            }
            merged.push_str(pair);
        }
    }
    merged
}

/// Whether `headers` has a `Cookie` header.
pub(crate) fn has_cookie(headers: &http::HeaderMap) -> bool {
    headers.contains_key(COOKIE)
}
