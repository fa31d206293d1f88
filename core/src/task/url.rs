//! URLs every URL-based protocol shares: a group's `host` as a base URL, and a task's URL
//! resolved against it.
//!
//! Protocol-neutral: the HTTP users, `websocket_user` and any other protocol whose tasks name
//! URLs use the same rules, so `host: "127.0.0.1:8080"` means the same thing everywhere.
//!
//! ```
//! use load_density_core::task::url::{parse_host, resolve_url};
//!
//! let base = parse_host("127.0.0.1:8080").expect("a host");
//! assert_eq!(base.as_str(), "http://127.0.0.1:8080/");
//! let url = resolve_url(Some(&base), "/get?a=1").expect("a URL");
//! assert_eq!(url.as_str(), "http://127.0.0.1:8080/get?a=1");
//! ```

use ::url::{ParseError, Url};

use crate::task::PlanError;

/// Parses a `host` setting into a base URL; a host without a scheme is taken as `http://`.
///
/// # Errors
/// A [`PlanError::Config`] naming the host when it is not a valid URL.
pub fn parse_host(host: &str) -> Result<Url, PlanError> {
    let with_scheme = if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    Url::parse(&with_scheme)
        .map_err(|e| PlanError::Config(format!("host {host:?} is not a valid URL: {e}")))
}

/// Resolves a URL against an optional base (the group's `host`). An absolute URL is returned
/// as it is, whatever its scheme: the protocol checks the scheme.
///
/// # Errors
/// The reason, naming the URL, when `text` is not a valid absolute or relative URL; when it is
/// relative and there is no base (it would otherwise go to `localhost` unnoticed); when it
/// looks like an address without a scheme (`127.0.0.1:8080/get`, which would otherwise be the
/// path `/127.0.0.1:8080/get`).
pub fn resolve_url(base: Option<&Url>, text: &str) -> Result<Url, String> {
    match Url::parse(text) {
        Ok(url) => Ok(url),
        Err(ParseError::RelativeUrlWithoutBase) => {
            // RFC 3986 4.2: the first segment of a relative path has no colon; one that has
            // is an address whose scheme was forgotten.
            let first_segment = text.split(['/', '?', '#']).next().unwrap_or_default();
            if first_segment.contains(':') {
                return Err(format!(
                    "{text:?} has no scheme: write \"http://{text}\" (or \"./{text}\" for a relative path)"
                ));
            }
            let Some(base) = base else {
                return Err(format!(
                    "the relative URL {text:?} needs a `host` for the group (or write an absolute URL such as \"http://127.0.0.1:8080{}\")",
                    if text.starts_with('/') { "" } else { "/" }
                ));
            };
            base.join(text)
                .map_err(|e| format!("invalid URL {text:?}: {e}"))
        }
        Err(e) => Err(format!("invalid URL {text:?}: {e}")),
    }
}

/// How a request is named in the statistics when its task gives no `name`, by its URL
/// template ([`url_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlName {
    /// Always this name: the path and query of a URL without placeholders, or the URL as
    /// written when its path or query holds placeholders (so that one task stays one
    /// statistics entry, whatever its URL renders to).
    Fixed(String),
    /// The path and query of each rendered URL ([`path_and_query`]): the placeholders sit
    /// only in the scheme and host (`${var.base}/get` is named `/get`).
    PathAndQuery,
}

/// The one naming rule of every URL-based protocol: a request is named by its URL's path and
/// query; where the path or query itself holds placeholders, by the URL as written.
///
/// ```
/// use load_density_core::task::url::{url_name, UrlName};
/// use load_density_core::Template;
///
/// let name = |url: &str| url_name(&Template::parse(url), None);
/// assert_eq!(name("http://127.0.0.1:8080/get?a=1"), UrlName::Fixed("/get?a=1".into()));
/// assert_eq!(name("${var.base}/get"), UrlName::PathAndQuery);
/// assert_eq!(name("http://${env.HOST}:8080/get"), UrlName::PathAndQuery);
/// assert_eq!(
///     name("${var.base}/items/${uuid()}"),
///     UrlName::Fixed("${var.base}/items/${uuid()}".into())
/// );
/// assert_eq!(name("${var.url}"), UrlName::Fixed("${var.url}".into()));
/// ```
pub fn url_name(url: &crate::template::Template, base: Option<&Url>) -> UrlName {
    if let Some(text) = url.as_constant() {
        return UrlName::Fixed(
            resolve_url(base, text)
                .map(|u| path_and_query(&u))
                .unwrap_or_else(|_| text.to_owned()),
        );
    }
    let pieces: Vec<Option<&str>> = url.pieces().collect();
    let Some(last_placeholder) = pieces.iter().rposition(Option::is_none) else {
        return UrlName::Fixed(url.source().to_owned());
    };
    // The literal text before the last placeholder must not have reached the path yet...
    let before: String = pieces[..last_placeholder]
        .iter()
        .flatten()
        .copied()
        .collect();
    let before_authority = match before.find("://") {
        Some(at) => &before[at + 3..],
        None => before.as_str(),
    };
    // ...and the literal text after it must start the path or query (after a scheme
    // separator or a port, when the placeholder was the scheme or the host).
    let after: String = pieces[last_placeholder + 1..]
        .iter()
        .flatten()
        .copied()
        .collect();
    let after_authority = match after.find("://") {
        Some(at) => &after[at + 3..],
        None => after.as_str(),
    };
    let reaches_path = |text: &str| text.contains(['/', '?']);
    if !reaches_path(before_authority) && reaches_path(after_authority) {
        UrlName::PathAndQuery
    } else {
        UrlName::Fixed(url.source().to_owned())
    }
}

/// A URL's path and query (`/get?a=1`): the name of a request by its URL.
pub fn path_and_query(url: &Url) -> String {
    let mut name = url.path().to_owned();
    if let Some(query) = url.query() {
        name.push('?');
        name.push_str(query);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_get_a_scheme_and_bad_ones_are_named() {
        let base = parse_host("example.com:81").expect("host:port");
        assert_eq!(base.as_str(), "http://example.com:81/");
        let base = parse_host("wss://example.com/chat/").expect("with a scheme");
        assert_eq!(base.scheme(), "wss");
        assert_eq!(base.path(), "/chat/");
        let error = parse_host("http://exa mple.com").expect_err("a space");
        assert!(
            matches!(&error, PlanError::Config(m) if m.starts_with("host \"http://exa mple.com\" is not a valid URL")),
            "{error}"
        );
    }

    #[test]
    fn urls_resolve_against_the_base_and_need_one() {
        let base = parse_host("http://h:1/api/").expect("host");
        let url = resolve_url(Some(&base), "v1/items").expect("relative");
        assert_eq!(url.as_str(), "http://h:1/api/v1/items");
        let url = resolve_url(Some(&base), "/root").expect("absolute path");
        assert_eq!(url.as_str(), "http://h:1/root");
        let url = resolve_url(Some(&base), "ws://other:2/x").expect("absolute");
        assert_eq!(url.as_str(), "ws://other:2/x");
        let error = resolve_url(None, "/get").expect_err("no base");
        assert!(
            error.starts_with("the relative URL \"/get\" needs a `host`"),
            "{error}"
        );
        let error = resolve_url(Some(&base), "127.0.0.1:8080/get").expect_err("no scheme");
        assert!(
            error.starts_with("\"127.0.0.1:8080/get\" has no scheme"),
            "{error}"
        );
        let url = resolve_url(Some(&base), "./a:b").expect("a colon after ./");
        assert_eq!(url.as_str(), "http://h:1/api/a:b");
        let error = resolve_url(None, "http://[::1").expect_err("bad URL");
        assert!(error.starts_with("invalid URL \"http://[::1\""), "{error}");
    }
}
