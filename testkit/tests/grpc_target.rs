//! The gRPC test server, driven by a raw HTTP/2 client (hyper) so its wire behaviour is
//! checked independently of the `grpc_user` that the protocol crate tests with it.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use load_density_testkit::{grpc, GrpcTarget};
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use tokio::net::TcpStream;

/// One gRPC frame around `message`.
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).expect("small message"));
    out.put_slice(message);
    out.freeze()
}

/// The grpc-status and the first response message of a call.
async fn call(server: &GrpcTarget, path: &str, message: &[u8]) -> (String, Bytes) {
    let stream = TcpStream::connect(server.addr()).await.expect("connect");
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{}{path}", server.addr()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-probe", "yes")
        .body(Full::new(frame(message)))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), send.send_request(request))
        .await
        .expect("answered in time")
        .expect("response");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = trailers
        .get("grpc-status")
        .or_else(|| headers.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("missing")
        .to_owned();
    let body = collected.to_bytes();
    let message = if body.len() >= 5 {
        body.slice(5..)
    } else {
        Bytes::new()
    };
    (status, message)
}

fn pool() -> DescriptorPool {
    DescriptorPool::decode(
        grpc::loadtest_descriptor_set()
            .expect("descriptors")
            .as_slice(),
    )
    .expect("a valid descriptor set")
}

#[tokio::test]
async fn a_raw_unary_call_is_echoed_and_counted() {
    let server = GrpcTarget::start().await.expect("start");
    // EchoRequest { message: "raw", id: 9 }
    let (status, reply) = call(&server, "/loadtest.Echo/Unary", b"\x0a\x03raw\x10\x09").await;
    assert_eq!(status, "0");
    let reply = DynamicMessage::decode(
        pool()
            .get_message_by_name("loadtest.EchoReply")
            .expect("EchoReply"),
        reply,
    )
    .expect("an EchoReply");
    assert_eq!(
        reply.get_field_by_name("message").as_deref(),
        Some(&Value::String("raw".to_owned()))
    );
    assert_eq!(
        reply.get_field_by_name("id").as_deref(),
        Some(&Value::I32(9))
    );
    let metadata = reply.get_field_by_name("metadata").expect("metadata");
    let metadata = metadata.as_map().expect("a map");
    assert_eq!(
        metadata.len(),
        1,
        "only x- metadata is echoed: {metadata:?}"
    );
    assert_eq!(server.calls(), 1);
    assert_eq!(server.calls_to("Unary"), 1);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn failures_and_unknown_methods_carry_their_status() {
    let server = GrpcTarget::start().await.expect("start");
    // FailRequest { code: 7, message: "no" }
    let (status, _) = call(&server, "/loadtest.Echo/Fail", b"\x08\x07\x12\x02no").await;
    assert_eq!(status, "7");
    let (status, _) = call(&server, "/loadtest.Echo/Nope", b"").await;
    assert_eq!(status, "12");
    let (status, _) = call(&server, "/other.Service/Call", b"").await;
    assert_eq!(status, "12");
    // Not a valid EchoRequest.
    let (status, _) = call(&server, "/loadtest.Echo/Unary", b"\xff\xff").await;
    assert_eq!(status, "3");
    assert_eq!(
        server.calls(),
        3,
        "calls to loadtest.Echo are counted, whatever the outcome"
    );
}

#[tokio::test]
async fn stop_refuses_and_restart_serves_on_the_same_port() {
    let server = GrpcTarget::start().await.expect("start");
    let addr = server.addr();
    assert!(server.is_running());
    server.stop().await;
    assert!(!server.is_running());
    let refused = TcpStream::connect(addr).await.expect_err("nothing listens");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    server.stop().await; // idempotent
    server.restart().await.expect("restart");
    assert_eq!(server.addr(), addr);
    let (status, _) = call(&server, "/loadtest.Echo/Unary", b"").await;
    assert_eq!(status, "0");
    server.restart().await.expect("a no-op while running");
}

#[test]
fn the_descriptor_set_describes_the_echo_service() {
    let pool = pool();
    let service = pool
        .get_service_by_name("loadtest.Echo")
        .expect("loadtest.Echo");
    let methods: Vec<(String, bool, bool)> = service
        .methods()
        .map(|m| {
            (
                m.name().to_owned(),
                m.is_client_streaming(),
                m.is_server_streaming(),
            )
        })
        .collect();
    assert_eq!(
        methods,
        [
            ("Unary".to_owned(), false, false),
            ("ServerStream".to_owned(), false, true),
            ("ClientStream".to_owned(), true, false),
            ("Bidi".to_owned(), true, true),
            ("Fail".to_owned(), false, false),
        ]
    );
    assert!(pool
        .get_file_by_name("google/protobuf/timestamp.proto")
        .is_some());
    assert!(grpc::loadtest_proto().is_file());
}
