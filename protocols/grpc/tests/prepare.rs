//! Bad tasks and options are rejected by `prepare`, naming the task index and the field.

mod common;

use common::{merge, plan_error, prepare, proto_options};
use load_density_core::{registry, PlanError, COMMON_OPTION_NAMES};
use load_density_testkit::{unused_local_port, GrpcReflection, GrpcTarget};
use serde_json::{json, Value};

#[test]
fn grpc_user_is_registered_with_its_options() {
    let registration = registry::lookup("grpc_user").expect("registered");
    assert_eq!(registration.name(), load_density_grpc::USER_TYPE);
    assert!(registration.description().contains("gRPC"));
    let mut options = registration.protocol().option_names().to_vec();
    options.sort_unstable();
    assert_eq!(
        options,
        [
            "ca_file",
            "compression",
            "descriptor_set",
            "import_paths",
            "proto_files",
            "reflection",
            "share_channel",
            "target",
            "timeout",
            "verify"
        ]
    );
    for common in COMMON_OPTION_NAMES {
        assert!(options.contains(common), "{common} is declared");
    }
}

const T: &str = "127.0.0.1:1";

fn unary(extra: Value) -> Value {
    merge(json!({"call": "loadtest.Echo/Unary", "target": T}), extra)
}

#[tokio::test]
async fn bad_tasks_name_the_index_and_field() {
    let ok = unary(json!({}));
    let cases: Vec<(Value, &str)> = vec![
        (json!([ok.clone(), {"call": "loadtest.Nope/Unary", "target": T}]),
         "task 1 (tasks[1].call): unknown service \"loadtest.Nope\" (known services: loadtest.Echo)"),
        (json!([{"service": "Nope", "method": "Unary", "target": T}]),
         "task 0 (tasks[0].service): unknown service \"Nope\""),
        (json!([{"service": "loadtest.Echo", "method": "Nope", "target": T}]),
         "task 0 (tasks[0].method): service loadtest.Echo has no method \"Nope\" (methods: Bidi, ClientStream, Fail, ServerStream, Unary)"),
        (json!([{"call": "loadtest.Echo/Nope", "target": T}]),
         "task 0 (tasks[0].call): service loadtest.Echo has no method \"Nope\""),
        (json!([{"call": "loadtest.Echo", "target": T}]),
         "task 0 (tasks[0].call): expected \"package.Service/Method\""),
        (json!([{"call": "loadtest.Echo/Unary", "service": "loadtest.Echo", "target": T}]),
         "task 0 (tasks[0].service): give either \"call\" or \"service\" and \"method\""),
        (json!([{"service": "loadtest.Echo", "target": T}]), "task 0 (tasks[0].method): \"service\" needs \"method\""),
        (json!([{"target": T}]), "task 0 (tasks[0]): a grpc task needs \"call\""),
        (json!([unary(json!({"bogus": 1}))]), "task 0 (tasks[0].bogus): unknown field `bogus`"),
        // Payloads, converted with the message descriptor.
        (json!([ok.clone(), ok.clone(), unary(json!({"payload": {"mesage": "x"}}))]),
         "task 2 (tasks[2].payload.mesage): unknown field `mesage`"),
        (json!([unary(json!({"payload": {"id": "abc"}}))]), "task 0 (tasks[0].payload.id): "),
        (json!([unary(json!({"payload": {"inner": {"value": true}}}))]), "task 0 (tasks[0].payload.inner.value): "),
        (json!([unary(json!({"payload": {"mood": "MOOD_SAD"}}))]), "task 0 (tasks[0].payload.mood): "),
        (json!([unary(json!({"payload": {"tags": "a"}}))]), "task 0 (tasks[0].payload.tags): "),
        (json!([unary(json!({"payload": [1]}))]), "task 0 (tasks[0].payload): a payload must be a JSON object (the fields of loadtest.EchoRequest), got a list"),
        (json!([unary(json!({"payload": {"mesage": "${var.x}"}}))]),
         "task 0 (tasks[0].payload.mesage): unknown field `mesage` in message loadtest.EchoRequest (fields: message, id, tags, inner, labels, mood, delay_ms, sent_at)"),
        (json!([unary(json!({"payload": {"inner": {"valu": "${var.x}"}}}))]),
         "task 0 (tasks[0].payload.inner.valu): unknown field `valu` in message loadtest.Inner"),
        (json!([{"call": "loadtest.Echo/ClientStream", "target": T, "messages": [{"value": 1}, {"vale": 2}]}]),
         "task 0 (tasks[0].messages[1].vale): unknown field `vale`"),
        (json!([{"call": "loadtest.Echo/ClientStream", "target": T, "messages": [{"value": "x"}]}]),
         "task 0 (tasks[0].messages[0].value): "),
        // Keys that do not fit the call's kind.
        (json!([unary(json!({"messages": [{}]}))]), "task 0 (tasks[0].messages): loadtest.Echo.Unary is a unary call"),
        (json!([unary(json!({"count": 2}))]), "task 0 (tasks[0].count): loadtest.Echo.Unary is a unary call"),
        (json!([unary(json!({"each_message_event": true}))]), "task 0 (tasks[0].each_message_event): loadtest.Echo.Unary is a unary call"),
        (json!([{"call": "loadtest.Echo/ClientStream", "target": T, "each_message_event": true}]), "(tasks[0].each_message_event): loadtest.Echo.ClientStream is a client-streaming call"),
        (json!([{"call": "loadtest.Echo/Bidi", "target": T, "messages": [], "payload": {}}]), "task 0 (tasks[0].messages): give either"),
        (json!([{"call": "loadtest.Echo/Bidi", "target": T, "messages": [], "count": 2}]), "task 0 (tasks[0].count): "),
        (json!([{"call": "loadtest.Echo/Bidi", "target": T, "count": -1}]), "tasks[0].count"),
        (json!([{"call": "loadtest.Echo/Bidi", "target": T, "count": 100_001}]), "task 0 (tasks[0].count): count must be at most 100000"),
        // Other keys.
        (json!([unary(json!({"timeout": 0}))]), "task 0 (tasks[0].timeout): timeout must be a positive number"),
        (json!([unary(json!({"timeout": "x"}))]), "tasks[0].timeout"),
        (json!([unary(json!({"compression": "br"}))]), "task 0 (tasks[0].compression): unsupported compression \"br\""),
        (json!([unary(json!({"target": "ftp://h:1"}))]), "task 0 (tasks[0].target): unsupported scheme \"ftp\""),
        (json!([unary(json!({"target": "localhost"}))]), "task 0 (tasks[0].target): target \"localhost\" has no port"),
        (json!([unary(json!({"target": "http://h:1/x"}))]), "task 0 (tasks[0].target): target \"http://h:1/x\" has a path"),
        (json!([unary(json!({"metadata": {"grpc-timeout": "1S"}}))]), "task 0 (tasks[0].metadata.grpc-timeout): \"grpc-timeout\" is reserved by the gRPC protocol (use \"timeout\")"),
        (json!([unary(json!({"metadata": {"bad name": "x"}}))]), "task 0 (tasks[0].metadata.bad name): invalid metadata name"),
        (json!([unary(json!({"metadata": {"x-a": "a\nb"}}))]), "task 0 (tasks[0].metadata.x-a): invalid metadata value"),
        (json!([unary(json!({"metadata": {"x-a": {"b": 1}}}))]), "task 0 (tasks[0].metadata.x-a): a metadata value must be"),
        (json!([unary(json!({"metadata": [["x-a"]]}))]), "task 0 (tasks[0].metadata[0]): expected a [name, value] pair"),
        (json!([unary(json!({"metadata": "x"}))]), "task 0 (tasks[0].metadata): metadata must be an object"),
        (json!([unary(json!({"verify": "yes"}))]), "tasks[0].verify"),
        (json!([unary(json!({"name": ""}))]), "task 0 (tasks[0].name)"),
    ];
    for (tasks, expected) in cases {
        let error = plan_error(tasks.clone(), proto_options()).await;
        assert!(
            error.contains(expected),
            "{tasks}\n  got: {error}\n  expected: {expected}"
        );
    }
}

/// The longest timeout a `grpc-timeout` header carries: 99999999 hours.
#[tokio::test]
async fn a_huge_timeout_is_a_plan_error_naming_the_key() {
    let too_large = "is too large: 1e+20 seconds (at most ";
    let tasks = json!([unary(json!({})), unary(json!({ "timeout": 1e20 }))]);
    match prepare(&tasks, None, proto_options()).await {
        Err(PlanError::Task {
            index,
            path,
            message,
        }) => {
            assert_eq!((index, path.as_str()), (1, "timeout"), "{message}");
            assert!(
                message.starts_with(&format!("timeout {too_large}")),
                "{message}"
            );
        }
        Err(other) => panic!("expected a task error, got {other}"),
        Ok(_) => panic!("a 1e20 s timeout must be refused"),
    }
    let options = merge(proto_options(), json!({ "timeout": 1e20 }));
    match prepare(&json!([unary(json!({}))]), None, options).await {
        Err(PlanError::Config(message)) => assert!(
            message.starts_with(&format!("option \"timeout\" {too_large}")),
            "{message}"
        ),
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("a 1e20 s timeout option must be refused"),
    }
}

#[tokio::test]
async fn the_longest_timeout_is_accepted_and_the_call_runs() {
    // Core's largest timeout goes out as a `grpc-timeout` header without a panic.
    let server = GrpcTarget::start().await.expect("start");
    let tasks = json!([{"call": "loadtest.Echo/Unary", "target": server.target(),
                        "payload": {"message": "far"},
                        "timeout": load_density_core::task::options::MAX_SECONDS}]);
    let mut user = common::harness(tasks, proto_options()).await;
    let event = user.once(0).await;
    common::assert_success(&event);
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn payload_type_errors_carry_the_field_and_the_reason() {
    let error = plan_error(
        json!([unary(json!({"payload": {"id": "abc"}}))]),
        proto_options(),
    )
    .await;
    assert!(
        error.contains("tasks[0].payload.id") && error.contains("loadtest.EchoRequest"),
        "{error}"
    );
    let error = plan_error(
        json!([unary(json!({"payload": {"mood": "MOOD_SAD"}}))]),
        proto_options(),
    )
    .await;
    assert!(error.contains("MOOD_SAD"), "{error}");
}

#[tokio::test]
async fn bad_options_are_config_errors() {
    let tasks = json!([{"call": "loadtest.Echo/Unary", "target": T}]);
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.proto");
    std::fs::write(&broken, "syntax = \"proto3\";\nmessage A { int32 x = 1 }\n").expect("write");
    let garbage = dir.path().join("garbage.protoset");
    std::fs::write(&garbage, b"\xff\xff not a descriptor set").expect("write");
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({}),
            "grpc_user needs service descriptors: set the option \"proto_files\"",
        ),
        (
            json!({"proto_files": ["/nonexistent/x.proto"]}),
            "option \"proto_files\": proto file \"/nonexistent/x.proto\" does not exist",
        ),
        (
            json!({"proto_files": [broken.display().to_string()]}),
            "option \"proto_files\": cannot compile",
        ),
        (
            json!({"proto_files": 5}),
            "option \"proto_files\" must be a path or a list of paths",
        ),
        (
            json!({"import_paths": ["/tmp"]}),
            "option \"import_paths\" needs \"proto_files\"",
        ),
        (
            json!({"descriptor_set": "/nonexistent.protoset"}),
            "option \"descriptor_set\": cannot read \"/nonexistent.protoset\"",
        ),
        (
            json!({"descriptor_set": garbage.display().to_string()}),
            "is not a valid FileDescriptorSet",
        ),
        (
            json!({"reflection": "yes"}),
            "option \"reflection\" must be true or false",
        ),
        (
            merge(proto_options(), json!({"timeout": 0})),
            "option \"timeout\" must be a positive number of seconds",
        ),
        (
            merge(proto_options(), json!({"verify": "yes"})),
            "option \"verify\" must be true or false",
        ),
        (
            merge(proto_options(), json!({"share_channel": "no"})),
            "option \"share_channel\" must be true or false",
        ),
        (
            merge(proto_options(), json!({"compression": "zstd"})),
            "option \"compression\": unsupported compression \"zstd\"",
        ),
        (
            merge(proto_options(), json!({"ca_file": "/nonexistent.pem"})),
            "option \"ca_file\": cannot read",
        ),
    ];
    for (options, expected) in cases {
        let error = prepare(&tasks, None, options.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{options} must be rejected"))
            .to_string();
        assert!(
            error.contains(expected),
            "{options}\n  got: {error}\n  expected: {expected}"
        );
    }
    // A syntax error names the file and the place.
    let error = prepare(
        &tasks,
        None,
        json!({"proto_files": [broken.display().to_string()]}),
    )
    .await
    .err()
    .expect("broken proto")
    .to_string();
    assert!(
        error.contains("broken.proto") && error.contains("2:"),
        "{error}"
    );
    // Without a task target, the group's host must be a valid target.
    let error = prepare(
        &json!([{"call": "loadtest.Echo/Unary"}]),
        Some("ftp://x".to_owned()),
        proto_options(),
    )
    .await
    .err()
    .expect("bad host")
    .to_string();
    assert!(
        error.starts_with("target: unsupported scheme \"ftp\""),
        "{error}"
    );
}

#[tokio::test]
async fn reflection_errors_name_the_target_and_the_services() {
    let server = GrpcTarget::start().await.expect("start");
    let error = plan_error(
        json!([{"call": "loadtest.Echo/Unary", "target": server.target()},
               {"call": "loadtest.Missing/Unary", "target": server.target()}]),
        json!({"reflection": true}),
    )
    .await;
    assert!(
        error.starts_with("task 1 (tasks[1].call): unknown service \"loadtest.Missing\": the server's reflection lists grpc.reflection.v1.ServerReflection, loadtest.Echo"),
        "{error}"
    );
    let error = plan_error(
        json!([{"call": "loadtest.Echo/Nope", "target": server.target()}]),
        json!({"reflection": true}),
    )
    .await;
    assert!(
        error.contains("tasks[0].call): service loadtest.Echo has no method \"Nope\""),
        "{error}"
    );

    let refused = format!("127.0.0.1:{}", unused_local_port());
    let error = plan_error(
        json!([{"call": "loadtest.Echo/Unary", "target": refused}]),
        json!({"reflection": true}),
    )
    .await;
    assert!(
        error.contains("option \"reflection\"")
            && error.contains("UNAVAILABLE: connection refused"),
        "{error}"
    );

    let without = GrpcTarget::builder()
        .reflection(GrpcReflection::Disabled)
        .start()
        .await
        .expect("start");
    let error = plan_error(
        json!([{"call": "loadtest.Echo/Unary", "target": without.target()}]),
        json!({"reflection": true}),
    )
    .await;
    assert!(
        error.contains("server reflection (v1 and v1alpha): UNIMPLEMENTED"),
        "{error}"
    );
    assert_eq!(
        server.calls() + without.calls(),
        0,
        "reflection is not a call"
    );
}
