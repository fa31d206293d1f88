//! The web UI's listening socket.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::TcpListener;

/// Listens on `host:port`. `*` means every interface: a dual-stack `[::]` socket, so the UI
/// answers over IPv4 and IPv6 alike (or `0.0.0.0` on a host without IPv6), as the master does.
pub(crate) async fn listen(host: &str, port: u16) -> io::Result<TcpListener> {
    if host != "*" {
        return TcpListener::bind((host, port)).await;
    }
    let any_v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let any_v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let listener = listen_on(any_v6, true).or_else(|_| listen_on(any_v4, false))?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

fn listen_on(addr: SocketAddr, dual_stack: bool) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
