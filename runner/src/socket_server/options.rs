//! The control socket's options: the Python server's six, plus the limits it lacked.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::SocketServerError;

/// The environment variable the token is read from when none is given.
pub const TOKEN_ENV: &str = "LOAD_DENSITY_SOCKET_TOKEN";

/// `LD_start_socket_server`'s keyword arguments (and `load-density serve`'s flags).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketServerOptions {
    /// Address to bind (default `"localhost"`).
    pub host: String,
    /// Port to bind (default 9940; 0 picks a free one).
    pub port: u16,
    /// Length-prefixed frames instead of raw JSON text (default false).
    pub framed: bool,
    /// The token clients must send in the envelope; `None` reads [`TOKEN_ENV`], and an empty
    /// value means no token.
    pub token: Option<String>,
    /// PEM certificate chain: with `keyfile`, the server speaks TLS (1.2 or later).
    pub certfile: Option<PathBuf>,
    /// PEM private key for `certfile`.
    pub keyfile: Option<PathBuf>,
    /// Connections served at once (default 32); more are refused with an error line.
    pub max_connections: usize,
    /// Seconds a client has to send its whole request (default 30).
    pub read_timeout: f64,
    /// Seconds without a byte from the client (or to finish the TLS handshake) before the
    /// connection is closed (default 10).
    pub idle_timeout: f64,
}

impl Default for SocketServerOptions {
    fn default() -> Self {
        Self {
            host: "localhost".to_owned(),
            port: 9940,
            framed: false,
            token: None,
            certfile: None,
            keyfile: None,
            max_connections: 32,
            read_timeout: 30.0,
            idle_timeout: 10.0,
        }
    }
}

/// The parameter names, in positional order.
pub(crate) const PARAMS: &[&str] = &[
    "host",
    "port",
    "framed",
    "token",
    "certfile",
    "keyfile",
    "max_connections",
    "read_timeout",
    "idle_timeout",
];

impl SocketServerOptions {
    pub(super) fn validate(&self) -> Result<(), SocketServerError> {
        let positive = |name: &'static str, value: f64| {
            if value.is_finite() && value > 0.0 && value < 1e9 {
                Ok(())
            } else {
                Err(SocketServerError::Option {
                    name,
                    message: format!("must be a positive number of seconds, got {value}"),
                })
            }
        };
        positive("read_timeout", self.read_timeout)?;
        positive("idle_timeout", self.idle_timeout)?;
        if self.max_connections == 0 || self.max_connections > 100_000 {
            return Err(SocketServerError::Option {
                name: "max_connections",
                message: format!("must be between 1 and 100000, got {}", self.max_connections),
            });
        }
        Ok(())
    }

    /// The token in force: the option, else [`TOKEN_ENV`]; empty means none.
    pub fn resolved_token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|token| !token.is_empty())
    }

    pub(super) fn read_timeout(&self) -> Duration {
        load_density_core::task::options::saturating_seconds(self.read_timeout)
    }

    pub(super) fn idle_timeout(&self) -> Duration {
        load_density_core::task::options::saturating_seconds(self.idle_timeout)
    }
}
