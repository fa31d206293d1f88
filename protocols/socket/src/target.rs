//! `host:port` targets: parsing (IPv4, IPv6 in brackets, host names) and resolution.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// The transport of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// Parses `tcp` / `udp`, case-insensitively.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("tcp") {
            Some(Self::Tcp)
        } else if name.eq_ignore_ascii_case("udp") {
            Some(Self::Udp)
        } else {
            None
        }
    }

    /// `tcp` or `udp`.
    pub(crate) fn lower(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }

    /// The event's request type: `TCP` or `UDP`.
    pub(crate) fn upper(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        }
    }
}

/// A parsed `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host name or IP address, without brackets.
    host: Box<str>,
    port: u16,
    /// Set when the host is an IP address: no resolution needed.
    ip: Option<IpAddr>,
    /// `host:port`, IPv6 in brackets: the key of the user's connection and what events show.
    text: Arc<str>,
}

impl Target {
    /// Parses `host:port`, `[v6]:port`, optionally behind `tcp://` or `udp://` (which must
    /// match the transport).
    pub(crate) fn parse(input: &str, transport: Transport) -> Result<Self, String> {
        let mut rest = input.trim();
        if let Some((scheme, after)) = rest.split_once("://") {
            if !scheme.eq_ignore_ascii_case(transport.lower()) {
                return Err(format!(
                    "scheme {scheme:?} does not match protocol {} (write host:port)",
                    transport.lower()
                ));
            }
            rest = after;
        }
        if rest.is_empty() {
            return Err("empty target (expected host:port)".to_owned());
        }
        if rest.contains('/') {
            return Err("a target is host:port, without a path".to_owned());
        }
        let (host, port_text) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| "missing ']' after the IPv6 address".to_owned())?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| "missing port (expected [address]:port)".to_owned())?;
            (inside, port)
        } else {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| "missing port (expected host:port)".to_owned())?;
            if host.contains(':') {
                return Err(
                    "an IPv6 address must be written in brackets, e.g. [::1]:9000".to_owned(),
                );
            }
            (host, port)
        };
        let port = parse_port(port_text)?;
        if host.is_empty() {
            return Err("missing host (expected host:port)".to_owned());
        }
        let ip = if rest.starts_with('[') {
            let v6: Ipv6Addr = host
                .parse()
                .map_err(|_| format!("invalid IPv6 address {host:?}"))?;
            Some(IpAddr::V6(v6))
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            Some(ip)
        } else if host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            None
        } else {
            return Err(format!("invalid host name {host:?}"));
        };
        let text: Arc<str> = match ip {
            Some(ip) => Arc::from(SocketAddr::new(ip, port).to_string()),
            None => Arc::from(format!("{host}:{port}")),
        };
        Ok(Self {
            host: host.into(),
            port,
            ip,
            text,
        })
    }

    /// `host:port` (IPv6 in brackets).
    pub(crate) fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// The host name or address, without brackets.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The addresses to try, in resolver order.
    pub(crate) async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        if let Some(ip) = self.ip {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((&*self.host, self.port))
            .await?
            .collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the name has no addresses",
            ));
        }
        Ok(addrs)
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("missing port (expected host:port)".to_owned());
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(format!("invalid port {text:?} (expected 1-65535)")),
    }
}
