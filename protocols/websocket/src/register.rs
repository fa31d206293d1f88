//! The one registration of `websocket_user`.

use crate::protocol::WebSocketProtocol;

load_density_core::register_user! {
    name: "websocket_user",
    description: "WebSocket client (ws:// and wss://): one connection per user, kept across iterations; connect, send, recv, sendrecv and close tasks",
    protocol: WebSocketProtocol,
}
