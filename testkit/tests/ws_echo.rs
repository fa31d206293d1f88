//! Integration tests for [`WsEchoServer`]: echo, the special frames, handshake recording,
//! rejection, counters, TLS and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use load_density_testkit::{WsEchoServer, WsFrame};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const STEP: Duration = Duration::from_secs(10);

async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    ws
}

async fn next_data(ws: &mut Ws) -> Option<Message> {
    loop {
        let next = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a frame or the end in time");
        match next {
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(message)) => return Some(message),
            Some(Err(_)) | None => return None,
        }
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn echoes_text_and_binary_and_counts() {
    let server = WsEchoServer::start().await.expect("start");
    assert!(server.addr().ip().is_loopback());
    assert!(!server.is_tls());
    assert_eq!(server.url("/x"), format!("ws://{}/x", server.addr()));
    let mut ws = connect(&server.url("/echo")).await;
    ws.send(Message::text("héllo")).await.expect("send text");
    assert_eq!(next_data(&mut ws).await, Some(Message::text("héllo")));
    let binary = Bytes::from_static(&[0, 1, 2, 255, 254]);
    ws.send(Message::Binary(binary.clone()))
        .await
        .expect("send binary");
    assert_eq!(next_data(&mut ws).await, Some(Message::Binary(binary)));
    ws.send(Message::Ping(Bytes::from_static(b"p")))
        .await
        .expect("ping");
    ws.send(Message::text("after ping")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Some(Message::text("after ping")));
    // Pings are not data frames.
    assert_eq!(server.messages(), 3);
    assert_eq!(
        server.frames(),
        [
            WsFrame::Text("héllo".to_owned()),
            WsFrame::Binary(vec![0, 1, 2, 255, 254]),
            WsFrame::Text("after ping".to_owned()),
        ]
    );
    assert_eq!(server.connections(), 1);
    assert_eq!(server.open_connections(), 1);
    ws.close(None).await.expect("close");
    while next_data(&mut ws).await.is_some() {}
    wait_for("the connection to close", || server.open_connections() == 0).await;
    server.reset_counts();
    assert_eq!((server.messages(), server.connections()), (0, 0));
    assert!(server.handshakes().is_empty());
    assert!(server.frames().is_empty());
}

#[tokio::test]
async fn delay_silent_and_close_me() {
    let server = WsEchoServer::start().await.expect("start");
    let mut ws = connect(&server.url("/")).await;
    let started = Instant::now();
    ws.send(Message::text("delay:300:slow"))
        .await
        .expect("send");
    assert_eq!(
        next_data(&mut ws).await,
        Some(Message::text("delay:300:slow"))
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    ws.send(Message::text("silent")).await.expect("send");
    let nothing = tokio::time::timeout(Duration::from_millis(300), ws.next()).await;
    assert!(nothing.is_err(), "silent must get no reply: {nothing:?}");

    ws.send(Message::text("close-me")).await.expect("send");
    match next_data(&mut ws).await {
        Some(Message::Close(_)) | None => {}
        other => panic!("expected the server to close, got {other:?}"),
    }
    assert_eq!(server.messages(), 3);
    wait_for("the server to drop the connection", || {
        server.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn records_handshakes_and_answers_the_first_subprotocol() {
    let server = WsEchoServer::start().await.expect("start");
    let mut request = server
        .url("/chat?room=7")
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("x-trace", "abc".parse().expect("value"));
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "chat.v2, chat.v1".parse().expect("value"),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connect");
    assert_eq!(
        response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("chat.v2")
    );
    ws.close(None).await.expect("close");
    let handshakes = server.handshakes();
    assert_eq!(handshakes.len(), 1);
    let handshake = &handshakes[0];
    assert_eq!(handshake.path(), "/chat?room=7");
    assert_eq!(handshake.header("X-Trace"), Some("abc"));
    assert_eq!(handshake.offered_subprotocols(), ["chat.v2", "chat.v1"]);
    assert_eq!(handshake.selected_subprotocol(), Some("chat.v2"));
    assert!(handshake.headers().iter().any(|(n, _)| n == "host"));
}

#[tokio::test]
async fn status_paths_reject_the_handshake() {
    let server = WsEchoServer::start().await.expect("start");
    let error = tokio_tungstenite::connect_async(server.url("/status/403"))
        .await
        .expect_err("rejected");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("expected an HTTP rejection, got {other}"),
    }
    assert_eq!(server.connections(), 0);
    assert_eq!(server.handshakes().len(), 1);
}

#[tokio::test]
async fn tls_server_trusts_only_its_own_certificate() {
    let server = WsEchoServer::start_tls().await.expect("start");
    assert!(server.is_tls());
    assert!(server.url("/").starts_with("wss://127.0.0.1:"));
    let pem = server
        .ca_cert_pem()
        .expect("a TLS server has a certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("add root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        server.url("/"),
        None,
        true,
        Some(Connector::Rustls(Arc::new(config))),
    )
    .await
    .expect("wss connect trusting the server's certificate");
    ws.send(Message::text("secure")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Some(Message::text("secure")));

    // Trusting nothing: the handshake fails and the server counts no connection.
    let untrusting = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let failed = tokio_tungstenite::connect_async_tls_with_config(
        server.url("/"),
        None,
        true,
        Some(Connector::Rustls(Arc::new(untrusting))),
    )
    .await;
    assert!(failed.is_err(), "an unknown issuer must fail");
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn shutdown_closes_open_connections() {
    let server = WsEchoServer::start().await.expect("start");
    let mut ws = connect(&server.url("/")).await;
    ws.send(Message::text("hi")).await.expect("send");
    assert_eq!(next_data(&mut ws).await, Some(Message::text("hi")));
    let addr = server.addr();
    tokio::time::timeout(STEP, server.shutdown())
        .await
        .expect("shutdown in time");
    match next_data(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        None => {}
        other => panic!("expected a going-away close, got {other:?}"),
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
}
