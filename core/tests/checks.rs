//! Assertions and extractors, end to end through the scenario and `UserContext::record_response`
//! with a fake protocol.

mod support;

use std::time::Duration;

use load_density_core::checks::TaskChecks;
use load_density_core::task::TaskList;
use load_density_core::variables::UserVariables;
use serde_json::{json, Value};
use support::{outcome, outcome_with, scenario, FakeResponse, FakeUser, Harness};

fn task_with(assertion: Value) -> Value {
    json!({"method": "get", "assertions": [assertion]})
}

#[tokio::test]
async fn each_assertion_type_passes_and_fails_with_its_message() {
    let json_body = r#"{"data": {"id": 5, "tags": ["a", "b"], "gone": null}}"#;
    let cases: Vec<(Value, FakeResponse, FakeResponse, &str)> = vec![
        (
            json!({"type": "status_code", "value": 201}),
            FakeResponse::status(201, ""),
            FakeResponse::status(200, ""),
            "status_code expected 201, got 200",
        ),
        (
            json!({"type": "STATUS_CODE", "value": "201"}),
            FakeResponse::status(201, ""),
            FakeResponse::default(),
            "status_code expected 201, got none",
        ),
        (
            json!({"type": "contains", "value": "abc"}),
            FakeResponse::ok("xxabcxx"),
            FakeResponse::ok("xxabxx"),
            "body does not contain 'abc'",
        ),
        (
            json!({"type": "contains", "value": 42}),
            FakeResponse::ok("answer: 42"),
            FakeResponse::ok("answer: 4"),
            "body does not contain '42'",
        ),
        (
            json!({"type": "not_contains", "value": "error"}),
            FakeResponse::ok("all good"),
            FakeResponse::ok("an error happened"),
            "body unexpectedly contains 'error'",
        ),
        (
            json!({"type": "json_path", "path": "data.id", "value": 5}),
            FakeResponse::ok(json_body),
            FakeResponse::ok(r#"{"data": {}}"#),
            "json_path data.id expected 5, got null",
        ),
        (
            json!({"type": "json_path", "path": "$.data.tags[-1]", "value": "b"}),
            FakeResponse::ok(json_body),
            FakeResponse::ok(r#"{"data": {"tags": ["b", "a"]}}"#),
            r#"json_path $.data.tags[-1] expected "b", got "a""#,
        ),
        (
            json!({"type": "json_path", "path": "data.gone", "value": null}),
            FakeResponse::ok(json_body),
            FakeResponse::ok(r#"{"data": {"gone": [1]}}"#),
            "json_path data.gone expected null, got [1]",
        ),
        (
            json!({"type": "json_path", "path": "data", "value": {"id": 5.0}}),
            FakeResponse::ok(r#"{"data": {"id": 5}}"#),
            FakeResponse::ok("not json"),
            r#"json_path data expected {"id":5.0}, got null"#,
        ),
        (
            json!({"type": "header", "name": "X-Id", "value": "a"}),
            FakeResponse::ok("").header("x-id", "a"),
            FakeResponse::ok("").header("X-ID", "b"),
            r#"header X-Id expected "a", got "b""#,
        ),
        (
            json!({"type": "header", "name": "X-Id", "value": "a"}),
            FakeResponse::ok("").header("X-Id", "a"),
            FakeResponse::ok("").header("X-Other", "a"),
            r#"header X-Id expected "a", got none"#,
        ),
        (
            json!({"type": "regex", "pattern": r"id=\d+$"}),
            FakeResponse::ok("user id=123"),
            FakeResponse::ok("user id=abc"),
            r"body does not match regex 'id=\d+$'",
        ),
    ];
    for (assertion, passing, failing, message) in cases {
        assert_eq!(
            outcome(task_with(assertion.clone()), passing).await,
            None,
            "{assertion} should pass"
        );
        assert_eq!(
            outcome(task_with(assertion.clone()), failing)
                .await
                .as_deref(),
            Some(message),
            "{assertion} should fail"
        );
    }
}

#[tokio::test]
async fn max_response_time_uses_the_recorded_response_time() {
    let harness = Harness::new(&[]);
    let scenario = scenario(&json!([
        {"assertions": [{"type": "max_response_time_ms", "value": 10000}]},
        {"assertions": [{"type": "max_response_time_ms", "value": 5}]},
    ]));
    let mut ctx = harness.context(0);
    let mut user = FakeUser::new(vec![FakeResponse::ok("")]);
    user.delay = Duration::from_millis(30);
    scenario.run_iteration(&mut user, &mut ctx).await;
    let events = harness.take_events();
    assert_eq!(events[0].error, None);
    let error = events[1].error.as_deref().expect("too slow");
    assert!(
        error.starts_with("response time ") && error.ends_with(" ms exceeds 5 ms"),
        "{error}"
    );
    let shown: f64 = error["response time ".len()..error.len() - " ms exceeds 5 ms".len()]
        .parse()
        .expect("a number of ms");
    assert!(shown >= 30.0, "{error}");
    assert!(
        (shown - events[1].response_time.as_secs_f64() * 1000.0).abs() < 0.1,
        "the assertion sees the recorded time: {error} vs {:?}",
        events[1].response_time
    );

    // The exact message, with a known response time.
    let list = TaskList::from_json(&json!([
        {"assertions": [{"type": "max_response_time_ms", "value": 500}]},
        {"assertions": [{"type": "max_response_time_ms", "value": "${var.limit}"}]},
    ]))
    .expect("tasks");
    let mut vars = UserVariables::default();
    let checks = TaskChecks::compile(&list.tasks()[0]).expect("checks");
    let slow = Duration::from_micros(812_300);
    assert_eq!(
        checks
            .verdict(&FakeResponse::ok(""), slow, &mut vars)
            .as_deref(),
        Some("response time 812.3 ms exceeds 500 ms")
    );
    assert_eq!(
        checks.verdict(&FakeResponse::ok(""), Duration::from_millis(500), &mut vars),
        None
    );
    let dynamic = TaskChecks::compile(&list.tasks()[1]).expect("checks");
    vars.set("limit", json!(250.5));
    assert_eq!(
        dynamic
            .verdict(&FakeResponse::ok(""), slow, &mut vars)
            .as_deref(),
        Some("response time 812.3 ms exceeds 250.5 ms")
    );
    vars.set("limit", json!("soon"));
    assert_eq!(
        dynamic
            .verdict(&FakeResponse::ok(""), slow, &mut vars)
            .as_deref(),
        Some("max_response_time_ms value 'soon' is not a number")
    );
}

#[tokio::test]
async fn assertion_values_render_the_users_variables() {
    let vars = [
        ("code", json!(201)),
        ("word", json!("hello")),
        ("id", json!(7)),
        ("id_text", json!("7")),
        ("etag", json!("v1")),
    ];
    let body = r#"{"id": 7, "greeting": "hello world"}"#;
    let response = || FakeResponse::status(201, body).header("ETag", "v1");
    let passing = [
        json!({"type": "status_code", "value": "${var.code}"}),
        json!({"type": "contains", "value": "${var.word} world"}),
        json!({"type": "json_path", "path": "id", "value": "${var.id}"}),
        json!({"type": "header", "name": "etag", "value": "${var.etag}"}),
    ];
    for assertion in passing {
        let (error, _) = outcome_with(task_with(assertion.clone()), response(), &vars).await;
        assert_eq!(error, None, "{assertion}");
    }
    // A lone placeholder keeps the variable's type: the string "7" is not the number 7.
    let (error, _) = outcome_with(
        task_with(json!({"type": "json_path", "path": "id", "value": "${var.id_text}"})),
        response(),
        &vars,
    )
    .await;
    assert_eq!(
        error.as_deref(),
        Some(r#"json_path id expected "7", got 7"#)
    );
    // A missing variable stays as written, and the message shows it.
    let (error, _) = outcome_with(
        task_with(json!({"type": "contains", "value": "${var.missing}"})),
        response(),
        &vars,
    )
    .await;
    assert_eq!(
        error.as_deref(),
        Some("body does not contain '${var.missing}'")
    );
}

#[tokio::test]
async fn status_names_compare_with_the_protocols_status_name() {
    let named = |name: Option<&str>| FakeResponse {
        status: Some(5),
        status_name: name.map(str::to_owned),
        ..FakeResponse::default()
    };
    let task = task_with(json!({"type": "status_code", "value": "NOT_FOUND"}));
    assert_eq!(outcome(task.clone(), named(Some("not_found"))).await, None);
    assert_eq!(
        outcome(task.clone(), named(Some("UNAVAILABLE")))
            .await
            .as_deref(),
        Some("status_code expected NOT_FOUND, got UNAVAILABLE")
    );
    assert_eq!(
        outcome(task, named(None)).await.as_deref(),
        Some("status_code expected NOT_FOUND, got 5")
    );
    // Numbers still compare with the numeric status.
    let task = task_with(json!({"type": "status_code", "value": 5}));
    assert_eq!(outcome(task, named(Some("NOT_FOUND"))).await, None);
}

#[tokio::test]
async fn a_protocol_failure_stays_a_failure_unless_the_status_is_asserted() {
    let not_found = || FakeResponse::status(404, r#"{"token": "t"}"#);
    // No checks at all: the protocol decides, as before.
    assert_eq!(
        outcome(json!({"method": "get"}), not_found())
            .await
            .as_deref(),
        Some("HTTP 404")
    );
    // Passing body assertions do not turn a 404 into a success.
    let task = task_with(json!({"type": "contains", "value": "token"}));
    assert_eq!(
        outcome(task, not_found()).await.as_deref(),
        Some("HTTP 404")
    );
    // The protocol's verdict comes first even when an assertion fails too.
    let task = task_with(json!({"type": "contains", "value": "absent"}));
    assert_eq!(
        outcome(task, not_found()).await.as_deref(),
        Some("HTTP 404")
    );
    // Asserting the status takes the decision over.
    let task = json!({"assertions": [
        {"type": "status_code", "value": 404},
        {"type": "contains", "value": "token"},
    ]});
    assert_eq!(outcome(task, not_found()).await, None);
    let task = task_with(json!({"type": "status_code", "value": 200}));
    assert_eq!(
        outcome(task, not_found()).await.as_deref(),
        Some("status_code expected 200, got 404")
    );
    // A 5xx with only extractors: still a failure, and nothing is extracted.
    let task = json!({"extract": [{"var": "token", "path": "token"}]});
    let (error, vars) =
        outcome_with(task, FakeResponse::status(500, r#"{"token": "t"}"#), &[]).await;
    assert_eq!(error.as_deref(), Some("HTTP 500"));
    assert_eq!(vars.get("token"), None);
}

#[tokio::test]
async fn the_first_failing_assertion_is_the_error() {
    let task = json!({"assertions": [
        {"type": "contains", "value": "a"},
        {"type": "contains", "value": "b"},
        {"type": "contains", "value": "c"},
    ]});
    assert_eq!(
        outcome(task.clone(), FakeResponse::ok("a"))
            .await
            .as_deref(),
        Some("body does not contain 'b'")
    );
    assert_eq!(outcome(task, FakeResponse::ok("cab")).await, None);
}

#[tokio::test]
async fn extractors_write_typed_values_to_the_users_scope() {
    let task = json!({"extract": [
        {"var": "id", "path": "data.id"},
        {"var": "user", "from": "json_path", "path": "$.data.user"},
        {"var": "admin", "path": "data.admin"},
        {"var": "first_tag", "path": "data.tags.0"},
        {"var": "session", "from": "header", "name": "x-session"},
        {"var": "code", "from": "STATUS_CODE"},
        {"var": "csrf", "from": "regex", "pattern": r#"csrf=(\w+)"#},
        {"var": "kept", "path": "data.missing"},
        {"var": "kept_too", "path": "data.nothing"},
        {"var": "kept_three", "from": "header", "name": "X-Absent"},
        {"var": "kept_four", "from": "regex", "pattern": "nomatch=(\\d+)"},
    ]});
    let body = r#"{"data": {"id": 42, "user": {"name": "ann"}, "admin": false,
                   "tags": ["x"], "nothing": null}, "html": "csrf=abc123;"}"#;
    let response = FakeResponse::status(201, body).header("X-Session", "s-1");
    let previous = [
        ("kept", json!("old")),
        ("kept_too", json!(1)),
        ("kept_three", json!(true)),
        ("kept_four", json!([1])),
    ];
    let (error, vars) = outcome_with(task, response, &previous).await;
    assert_eq!(error, None);
    assert_eq!(vars.get("id"), Some(&json!(42)));
    assert_eq!(vars.get("user"), Some(&json!({"name": "ann"})));
    assert_eq!(vars.get("admin"), Some(&json!(false)));
    assert_eq!(vars.get("first_tag"), Some(&json!("x")));
    assert_eq!(vars.get("session"), Some(&json!("s-1")));
    assert_eq!(vars.get("code"), Some(&json!(201)));
    assert_eq!(vars.get("csrf"), Some(&json!("abc123")));
    // No value: the previous value stays.
    assert_eq!(vars.get("kept"), Some(&json!("old")));
    assert_eq!(vars.get("kept_too"), Some(&json!(1)));
    assert_eq!(vars.get("kept_three"), Some(&json!(true)));
    assert_eq!(vars.get("kept_four"), Some(&json!([1])));
}

#[tokio::test]
async fn extractors_run_only_when_every_assertion_passed() {
    let task = json!({
        "assertions": [{"type": "contains", "value": "passed"}],
        "extract": [{"var": "token", "path": "token"}],
    });
    let (error, vars) =
        outcome_with(task.clone(), FakeResponse::ok(r#"{"token": "t1"}"#), &[]).await;
    assert_eq!(error.as_deref(), Some("body does not contain 'passed'"));
    assert_eq!(vars.get("token"), None);
    let (error, vars) = outcome_with(
        task,
        FakeResponse::ok(r#"{"token": "t2", "status": "passed"}"#),
        &[],
    )
    .await;
    assert_eq!(error, None);
    assert_eq!(vars.get("token"), Some(&json!("t2")));
}

#[tokio::test]
async fn two_users_extracting_different_values_each_keep_their_own() {
    let harness = Harness::new(&[("token", json!("shared"))]);
    let scenario = scenario(&json!([
        {"extract": [{"var": "token", "path": "token"}]},
        {"assertions": [{"type": "header", "name": "X-Echo", "value": "${var.token}"}]},
    ]));
    let user = |name: &str| {
        FakeUser::new(vec![
            FakeResponse::ok(&format!(r#"{{"token": "{name}"}}"#)),
            FakeResponse::ok("").header("X-Echo", name),
        ])
    };
    let (mut alice, mut bob) = (user("alice"), user("bob"));
    let (mut alice_ctx, mut bob_ctx) = (harness.context(1), harness.context(2));
    // Interleave the users: each runs a whole iteration after the other extracted.
    for _ in 0..2 {
        scenario.run_iteration(&mut alice, &mut alice_ctx).await;
        scenario.run_iteration(&mut bob, &mut bob_ctx).await;
    }
    assert_eq!(alice_ctx.variables().get("token"), Some(&json!("alice")));
    assert_eq!(bob_ctx.variables().get("token"), Some(&json!("bob")));
    assert_eq!(harness.run_vars.get("token"), Some(&json!("shared")));
    let fresh = harness.context(3);
    assert_eq!(fresh.variables().get("token"), Some(&json!("shared")));
    let events = harness.take_events();
    assert_eq!(events.len(), 8);
    assert!(
        events.iter().all(|e| e.error.is_none()),
        "{:?}",
        events.iter().map(|e| &e.error).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_context_knows_the_running_tasks_checks() {
    let harness = Harness::new(&[]);
    let scenario = scenario(&json!([
        {"assertions": [{"type": "status_code", "value": 200}]},
        {"assertions": [{"type": "contains", "value": "x"}]},
        {"extract": [{"var": "v", "from": "regex", "pattern": "(x)"}]},
        {"extract": [{"var": "v", "from": "header", "name": "h"}]},
        {},
    ]));
    assert!(scenario.checks(0).expect("task 0").asserts_status());
    assert!(!scenario.checks(1).expect("task 1").asserts_status());
    assert!(scenario.checks(4).expect("task 4").is_empty());
    assert!(scenario.checks(5).is_none());
    let mut ctx = harness.context(0);
    let mut user = FakeUser::new(vec![FakeResponse::ok("x")]);
    assert!(ctx.task_checks().is_none());
    scenario.run_iteration(&mut user, &mut ctx).await;
    let needs_body: Vec<bool> = user
        .ran
        .lock()
        .expect("ran")
        .iter()
        .map(|r| r.needs_body)
        .collect();
    assert_eq!(needs_body, [false, true, true, false, false]);
    // Between tasks, no checks apply (on_start / on_stop requests).
    assert!(ctx.task_checks().is_none());
    assert!(!ctx.needs_body());
}
