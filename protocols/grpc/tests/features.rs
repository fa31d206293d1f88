//! Metadata, gzip compression, and the channel a user keeps (or shares).

mod common;

use common::{assert_success, harness, harness_with, merge, proto_options};
use load_density_core::Variables;
use load_density_testkit::GrpcTarget;
use serde_json::json;

#[tokio::test]
async fn metadata_is_sent_with_placeholders_rendered() {
    let server = GrpcTarget::start().await.expect("start");
    let mut variables = Variables::new();
    variables.insert("who", json!("ada"));
    let mut user = harness_with(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "metadata": {"x-user": "${var.who}", "X-Static": "s", "x-number": 7},
             "assertions": [{"type": "json_path", "path": "metadata.x-user", "value": "ada"},
                            {"type": "json_path", "path": "metadata.x-static", "value": "s"},
                            {"type": "json_path", "path": "metadata.x-number", "value": "7"}]},
            {"call": "loadtest.Echo/Bidi", "target": server.target(),
             "metadata": [["x-pair", "p"]], "payload": {}, "count": 2,
             "assertions": [{"type": "json_path", "path": "1.metadata.x-pair", "value": "p"}]},
        ]),
        proto_options(),
        variables,
    )
    .await;
    assert_success(&user.once(0).await);
    assert_success(&user.once(1).await);
}

#[tokio::test]
async fn gzip_compresses_requests() {
    let server = GrpcTarget::start().await.expect("start");
    let mut user = harness(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.target(), "payload": {"message": "zip"},
             "compression": "gzip",
             "assertions": [{"type": "json_path", "path": "message", "value": "zip"}]},
            {"call": "loadtest.Echo/Unary", "target": server.target(), "payload": {"message": "plain"}},
            {"call": "loadtest.Echo/ClientStream", "target": server.target(),
             "messages": [{"value": 5}, {"value": 6}], "compression": "gzip",
             "assertions": [{"type": "json_path", "path": "total", "value": "11"}]},
        ]),
        proto_options(),
    )
    .await;
    for index in 0..3 {
        assert_success(&user.once(index).await);
    }
    assert_eq!(server.calls(), 3);
    assert_eq!(server.compressed_calls(), 2);

    // The group option sets the default; a task may turn it off.
    let mut user = harness(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.target()},
            {"call": "loadtest.Echo/Unary", "target": server.target(), "compression": "identity"},
        ]),
        merge(proto_options(), json!({"compression": "gzip"})),
    )
    .await;
    assert_success(&user.once(0).await);
    assert_success(&user.once(1).await);
    assert_eq!(server.compressed_calls(), 3);
}

#[tokio::test]
async fn each_user_has_its_channel_unless_shared() {
    let server = GrpcTarget::start().await.expect("start");
    let tasks = json!([{"call": "loadtest.Echo/Unary", "target": server.target()}]);
    let mut first = harness(tasks.clone(), proto_options()).await;
    let mut second = harness(tasks.clone(), proto_options()).await;
    for _ in 0..3 {
        assert_success(&first.once(0).await);
        assert_success(&second.once(0).await);
    }
    assert_eq!(server.connections(), 2);
    // A stopped user closes its channel; running again opens a new one.
    first.stop().await;
    assert_success(&first.once(0).await);
    assert_eq!(server.connections(), 3);

    let factory = common::prepare(
        &tasks,
        None,
        merge(proto_options(), json!({"share_channel": true})),
    )
    .await
    .expect("prepare");
    let bus = std::sync::Arc::new(load_density_core::EventBus::new(1));
    for user_id in 0..5 {
        let mut ctx = load_density_core::UserContext::new(
            user_id,
            bus.clone(),
            load_density_core::UserVariables::default(),
            load_density_core::context::StopHandle::new().signal(),
        );
        let mut user = factory.new_user(user_id);
        user.run_task(0, &mut ctx).await;
        user.run_task(0, &mut ctx).await;
        user.on_stop(&mut ctx).await;
    }
    assert_eq!(bus.pending(), 10);
    assert_eq!(server.connections(), 4, "five users shared one new channel");
}

#[tokio::test]
async fn messages_larger_than_the_flow_control_windows_go_through_both_ways() {
    let server = GrpcTarget::start().await.expect("start");
    // 3 MiB each way: more than either side's initial stream window (64 KiB to 2 MiB), so the
    // call completes only if both sides open their windows as the data is consumed.
    let big = "x".repeat(3 << 20);
    // 40 replies of 256 KiB on one stream: 10 MiB, twice the connection window.
    let chunk = "y".repeat(256 << 10);
    let mut user = harness(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "payload": {"message": big},
             "assertions": [{"type": "json_path", "path": "message", "value": big}]},
            {"call": "loadtest.Echo/ServerStream", "target": server.target(),
             "payload": {"message": chunk, "count": 40}},
        ]),
        proto_options(),
    )
    .await;
    let unary = user.once(0).await;
    assert_success(&unary);
    assert!(
        unary.response_length >= 3 << 20,
        "{}",
        unary.response_length
    );
    let streamed = user.once(1).await;
    assert_success(&streamed);
    assert!(
        streamed.response_length >= 40 * (256 << 10),
        "{}",
        streamed.response_length
    );
}
