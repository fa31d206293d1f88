//! Every call kind (unary, server-, client- and bidi-streaming), with the descriptors from
//! `.proto` files, from a descriptor set, and from server reflection (v1, and v1alpha only).

mod common;

use common::{assert_success, harness, harness_with, merge, proto_options};
use load_density_testkit::{GrpcReflection, GrpcTarget};
use prost::Message as _;
use serde_json::{json, Value};

/// One task per call kind, each with assertions on the response JSON.
fn tasks(target: &str) -> Value {
    json!([
        {"call": "loadtest.Echo/Unary", "target": target,
         "payload": {"message": "hi", "id": 7, "tags": ["a", "b"], "inner": {"value": "12", "flag": true},
                     "mood": "MOOD_HAPPY", "labels": {"k": "v"}, "sentAt": "2024-01-02T03:04:05Z"},
         "assertions": [
            {"type": "status_code", "value": "OK"},
            {"type": "status_code", "value": 0},
            {"type": "json_path", "path": "message", "value": "hi"},
            {"type": "json_path", "path": "id", "value": 7},
            {"type": "json_path", "path": "mood", "value": "MOOD_HAPPY"},
            {"type": "json_path", "path": "tags.1", "value": "b"},
            {"type": "json_path", "path": "inner.value", "value": "12"},
            {"type": "json_path", "path": "index", "value": 0}
         ]},
        {"service": "loadtest.Echo", "method": "ServerStream", "target": target,
         "payload": {"message": "s", "count": 5},
         "assertions": [{"type": "json_path", "path": "4.index", "value": 4},
                        {"type": "json_path", "path": "0.message", "value": "s"},
                        {"type": "json_path", "path": "5", "value": null}]},
        {"call": "loadtest.Echo/ClientStream", "target": target,
         "messages": [{"value": 1}, {"value": 2}, {"value": "39"}],
         "assertions": [{"type": "json_path", "path": "total", "value": "42"},
                        {"type": "json_path", "path": "count", "value": 3}]},
        {"call": "Echo/Bidi", "target": target, "payload": {"message": "b"}, "count": 4,
         "assertions": [{"type": "json_path", "path": "3.index", "value": 3},
                        {"type": "json_path", "path": "-1.message", "value": "b"}]},
        {"call": "/loadtest.Echo/ServerStream", "target": target, "payload": {"count": 3},
         "each_message_event": true, "name": "stream3",
         "assertions": [{"type": "json_path", "path": "2.index", "value": 2}]},
    ])
}

async fn exercise(server: &GrpcTarget, options: Value, how: &str) {
    let before = server.calls();
    let mut user = harness(tasks(&server.target()), options).await;
    for (index, method) in ["Unary", "ServerStream", "ClientStream", "Bidi"]
        .into_iter()
        .enumerate()
    {
        let event = user.once(index).await;
        assert_success(&event);
        assert_eq!(&*event.request_type, "GRPC", "{how}");
        assert_eq!(
            event.name.as_ref(),
            format!("/loadtest.Echo/{method}"),
            "{how}"
        );
        assert_eq!(
            event.url.as_ref(),
            format!("http://{}/loadtest.Echo/{method}", server.target()),
            "{how}"
        );
        assert_eq!(event.status, Some(0), "{how}");
        assert!(event.response_length > 0, "{how}: {event:?}");
    }
    user.run(4, 1).await;
    let events = user.take();
    assert_eq!(
        events.len(),
        4,
        "{how}: 3 messages and the call: {events:?}"
    );
    for event in &events[..3] {
        assert_success(event);
        assert_eq!(&*event.request_type, "GRPC_MSG", "{how}");
        assert_eq!(&*event.name, "stream3", "{how}");
    }
    let call = &events[3];
    assert_success(call);
    assert_eq!(
        (&*call.request_type, &*call.name),
        ("GRPC", "stream3"),
        "{how}"
    );
    let message_bytes: u64 = events[..3].iter().map(|e| e.response_length).sum();
    assert_eq!(call.response_length, message_bytes, "{how}");
    assert_eq!(server.calls() - before, 5, "{how}");
    user.stop().await;
}

#[tokio::test]
async fn every_call_kind_with_proto_files() {
    let server = GrpcTarget::start().await.expect("start");
    exercise(&server, proto_options(), "proto files").await;
    assert_eq!(server.calls_to("Unary"), 1);
    assert_eq!(server.calls_to("ServerStream"), 2);
    assert_eq!(server.calls_to("ClientStream"), 1);
    assert_eq!(server.calls_to("Bidi"), 1);
    // One connection, kept across the calls of the user.
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn every_call_kind_with_a_descriptor_set() {
    let server = GrpcTarget::start().await.expect("start");
    let set = protox::compile(
        [load_density_testkit::grpc::loadtest_proto()],
        [load_density_testkit::grpc::loadtest_proto_dir()],
    )
    .expect("loadtest.proto compiles");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("loadtest.protoset");
    std::fs::write(&path, set.encode_to_vec()).expect("write the descriptor set");
    exercise(
        &server,
        json!({"descriptor_set": path.display().to_string()}),
        "descriptor set",
    )
    .await;
}

#[tokio::test]
async fn every_call_kind_with_reflection_v1() {
    let server = GrpcTarget::start().await.expect("start");
    exercise(&server, json!({"reflection": true}), "reflection v1").await;
}

#[tokio::test]
async fn every_call_kind_with_reflection_v1alpha_only() {
    let server = GrpcTarget::builder()
        .reflection(GrpcReflection::V1AlphaOnly)
        .start()
        .await
        .expect("start");
    exercise(&server, json!({"reflection": true}), "reflection v1alpha").await;
}

#[tokio::test]
async fn the_group_target_and_host_are_defaults() {
    let server = GrpcTarget::start().await.expect("start");
    // Target from the group option.
    let mut user = harness(
        json!([{"call": "loadtest.Echo/Unary", "payload": {"message": "x"}}]),
        merge(proto_options(), json!({"target": server.url()})),
    )
    .await;
    assert_success(&user.once(0).await);
    // Target from the group's host.
    let factory = common::prepare(
        &json!([{"call": "loadtest.Echo/Unary"}]),
        Some(server.target()),
        proto_options(),
    )
    .await
    .expect("prepare with a host");
    drop(factory);
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn dynamic_payloads_are_rendered_per_call() {
    let server = GrpcTarget::start().await.expect("start");
    let mut variables = load_density_core::Variables::new();
    variables.insert("who", json!("ada"));
    variables.insert("n", json!(41));
    let mut user = harness_with(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "payload": {"message": "hello ${var.who}", "id": "${var.n}"},
             "assertions": [{"type": "json_path", "path": "message", "value": "hello ada"},
                            {"type": "json_path", "path": "id", "value": 41}],
             "extract": [{"var": "got", "path": "message"}]},
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "payload": {"message": "${var.got}!"},
             "assertions": [{"type": "json_path", "path": "message", "value": "hello ada!"}]},
            {"call": "loadtest.Echo/ClientStream", "target": server.target(),
             "payload": {"value": "${randint(1,1)}"}, "count": 5,
             "assertions": [{"type": "json_path", "path": "total", "value": "5"}]},
            // Renders into a wrong type: a failure event, not a prepare error.
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "payload": {"id": "${var.who}"}},
        ]),
        proto_options(),
        variables,
    )
    .await;
    for index in 0..3 {
        assert_success(&user.once(index).await);
    }
    let bad = user.once(3).await;
    let error = common::error_of(&bad);
    assert!(
        error.starts_with("INVALID_ARGUMENT: payload: id: "),
        "{error}"
    );
    assert_eq!(bad.status, None);
    assert_eq!(server.calls(), 3, "the bad payload was never sent");
}
