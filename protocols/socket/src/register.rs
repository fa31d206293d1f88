//! The one registration of `socket_user`.

use crate::protocol::SocketProtocol;

load_density_core::register_user! {
    name: "socket_user",
    description: "raw TCP and UDP request/reply: one kept-alive connection (or socket) per user and target, IPv4 and IPv6",
    protocol: SocketProtocol,
}
