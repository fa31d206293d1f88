//! The one registration of `fast_http_user`.

use crate::protocol::FastHttpProtocol;

load_density_core::register_user! {
    name: "fast_http_user",
    description: "HTTP/1.1 keep-alive client built for requests per CPU-second: one connection per user, over TCP or TLS",
    protocol: FastHttpProtocol,
}
