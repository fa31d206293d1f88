//! Broker addresses: `mqtt://host:port`, `mqtts://host:port` (TLS) or a bare `host:port`.

/// The broker used when neither the task, the group option `broker` nor the group's host
/// names one.
pub const DEFAULT_BROKER: &str = "127.0.0.1:1883";

/// A parsed broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broker {
    /// Host name or address; an IPv6 address keeps its brackets (`[::1]`).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

impl Broker {
    /// Parses `mqtt://h:p`, `tcp://h:p`, `mqtts://h:p`, `ssl://h:p`, `tls://h:p` or `h:p`; the
    /// port defaults to 1883 (8883 with TLS).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (tls, rest) = match text.split_once("://") {
            None => (false, text),
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "mqtt" | "tcp" => (false, rest),
                "mqtts" | "ssl" | "tls" => (true, rest),
                other => {
                    return Err(format!(
                        "unsupported broker scheme {other:?} in {text:?} (expected mqtt:// or mqtts://)"
                    ))
                }
            },
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!("a broker address has no path: {text:?}"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((address, after)) = bracketed.split_once(']') else {
                return Err(format!("unclosed '[' in broker address {text:?}"));
            };
            let port = match after {
                "" => default_port,
                _ => match after.strip_prefix(':') {
                    Some(port) => parse_port(port, text)?,
                    None => return Err(format!("invalid broker address {text:?}")),
                },
            };
            (format!("[{address}]"), port)
        } else {
            match rest.split_once(':') {
                None => (rest.to_owned(), default_port),
                Some((host, port)) => (host.to_owned(), parse_port(port, text)?),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(format!("a broker address needs a host: {text:?}"));
        }
        Ok(Self { host, port, tls })
    }
}

fn parse_port(port: &str, text: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("invalid port {port:?} in broker address {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::Broker;

    fn broker(host: &str, port: u16, tls: bool) -> Broker {
        Broker {
            host: host.to_owned(),
            port,
            tls,
        }
    }

    #[test]
    fn parses_the_accepted_shapes() {
        assert_eq!(
            Broker::parse("127.0.0.1:1884"),
            Ok(broker("127.0.0.1", 1884, false))
        );
        assert_eq!(
            Broker::parse("localhost"),
            Ok(broker("localhost", 1883, false))
        );
        assert_eq!(Broker::parse("mqtt://h:1"), Ok(broker("h", 1, false)));
        assert_eq!(Broker::parse("mqtts://h"), Ok(broker("h", 8883, true)));
        assert_eq!(Broker::parse("SSL://h:9/"), Ok(broker("h", 9, true)));
        assert_eq!(Broker::parse("[::1]:5"), Ok(broker("[::1]", 5, false)));
        assert_eq!(
            Broker::parse("mqtts://[::1]"),
            Ok(broker("[::1]", 8883, true))
        );
        for bad in ["http://h", "h:0", "h:x", ":1883", "mqtt://h/x", "[::1", ""] {
            assert!(Broker::parse(bad).is_err(), "{bad}");
        }
    }
}
