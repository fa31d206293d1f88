//! The one registration of this crate.

use crate::protocol::HttpProtocol;

load_density_core::register_user! {
    name: "http_user",
    description: "full-featured HTTP/1.1 and HTTP/2 user on reqwest: cookie jar per user, redirects, timeouts, TLS verification",
    protocol: HttpProtocol,
}
