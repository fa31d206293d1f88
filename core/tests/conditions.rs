//! `run_if` / `skip_if` through the scenario, in every mode, with a fake protocol.

mod support;

use std::time::Duration;

use load_density_core::scenario::run_user;
use load_density_core::UserTemplate;
use serde_json::{json, Value};
use support::{scenario, FakeResponse, FakeUser, Harness};

fn run_vars() -> Vec<(&'static str, Value)> {
    vec![
        ("on", json!(true)),
        ("off", json!(false)),
        ("zero", json!(0)),
        ("zero_text", json!("0")),
        ("false_text", json!("false")),
        ("name", json!("ann")),
        ("status", json!("200")),
        ("roles", json!(["reader", "writer"])),
    ]
}

/// Which tasks of a one-iteration sequence run with the test's run variables.
async fn ran(tasks: Value) -> Vec<usize> {
    let harness = Harness::new(&run_vars());
    let scenario = scenario(&tasks);
    let mut ctx = harness.context(0);
    let mut user = FakeUser::new(vec![FakeResponse::ok("")]);
    let count = scenario.run_iteration(&mut user, &mut ctx).await;
    let indexes = user.ran_indexes();
    assert_eq!(count, indexes.len());
    assert_eq!(harness.take_events().len(), count, "one event per task run");
    indexes
}

#[tokio::test]
async fn run_if_and_skip_if_truth_table() {
    let conditions = [
        (json!(true), true),
        (json!(false), false),
        (json!(1), true),
        (json!(0), false),
        (json!("${var.on}"), true),
        (json!("${var.off}"), false),
        (json!("${var.zero}"), false),
        (json!("${var.zero_text}"), false),
        (json!("${var.false_text}"), false),
        (json!("false"), false),
        (json!("0"), false),
        (json!(""), false),
        (json!("${var.missing}"), false),
        (json!("${var.name}"), true),
        (json!({"equals": ["${var.status}", 200]}), true),
        (json!({"equals": ["${var.name}", "bob"]}), false),
        (json!({"not_equals": ["${var.missing}", "x"]}), true),
        (json!({"in": ["writer", "${var.roles}"]}), true),
        (json!({"in": ["admin", "${var.roles}"]}), false),
        (json!({"truthy": "${var.missing}"}), false),
    ];
    for (condition, holds) in conditions {
        let run_if = ran(json!([{"run_if": condition.clone()}, {}])).await;
        let expected: &[usize] = if holds { &[0, 1] } else { &[1] };
        assert_eq!(run_if, expected, "run_if {condition}");
        let skip_if = ran(json!([{"skip_if": condition.clone()}, {}])).await;
        let expected: &[usize] = if holds { &[1] } else { &[0, 1] };
        assert_eq!(skip_if, expected, "skip_if {condition}");
    }
    // Both: runs only when run_if holds and skip_if does not.
    assert_eq!(
        ran(json!([
            {"run_if": true, "skip_if": true},
            {"run_if": false, "skip_if": false},
            {"run_if": true, "skip_if": false},
        ]))
        .await,
        [2]
    );
}

#[tokio::test]
async fn conditions_apply_in_every_mode() {
    for mode in ["sequence", "conditional", "SEQUENCE"] {
        let indexes = ran(json!({"mode": mode, "tasks": [
            {"run_if": "${var.missing}"}, {}, {"skip_if": "${var.on}"}
        ]}))
        .await;
        assert_eq!(indexes, [1], "{mode}");
    }
}

#[tokio::test]
async fn weighted_mode_picks_by_weight_then_applies_conditions() {
    let harness = Harness::new(&run_vars());
    let scenario = scenario(&json!({"mode": "weighted", "tasks": [
        {"weight": 1, "run_if": "${var.off}"},
        {"weight": 1},
        {"weight": 0},
    ]}));
    let mut ctx = harness.context(0);
    let mut user = FakeUser::new(vec![FakeResponse::ok("")]);
    let mut total = 0;
    for _ in 0..400 {
        let count = scenario.run_iteration(&mut user, &mut ctx).await;
        assert!(count <= 1);
        total += count;
    }
    let indexes = user.ran_indexes();
    assert_eq!(indexes.len(), total);
    assert!(indexes.iter().all(|&i| i == 1), "{indexes:?}");
    // Task 0 is picked about half the time and then skipped: no other task runs instead.
    assert!(
        (120..=280).contains(&total),
        "{total} of 400 iterations ran a task"
    );
}

#[tokio::test]
async fn a_later_task_sees_what_an_earlier_one_extracted() {
    let harness = Harness::new(&[]);
    let scenario = scenario(&json!([
        {"run_if": "${var.token}"},
        {"skip_if": "${var.token}", "extract": [{"var": "token", "path": "token"}]},
        {"run_if": {"equals": ["${var.token}", "abc"]}},
    ]));
    let mut ctx = harness.context(0);
    let mut user = FakeUser::new(vec![FakeResponse::ok(r#"{"token": "abc"}"#)]);
    scenario.run_iteration(&mut user, &mut ctx).await;
    assert_eq!(user.ran_indexes(), [1, 2]);
    scenario.run_iteration(&mut user, &mut ctx).await;
    assert_eq!(user.ran_indexes(), [1, 2, 0, 2]);
}

#[tokio::test]
async fn a_user_whose_tasks_are_all_skipped_idles_and_stops() {
    let harness = Harness::new(&[]);
    let scenario = std::sync::Arc::new(scenario(
        &json!([{"run_if": false}, {"run_if": "${var.x}"}]),
    ));
    let user = FakeUser::new(vec![FakeResponse::ok("")]);
    let ran = user.ran.clone();
    let ctx = harness.context(0);
    let handle = tokio::spawn(run_user(
        Box::new(user) as Box<dyn UserTemplate>,
        ctx,
        scenario,
        load_density_core::Pacing::None,
    ));
    tokio::time::sleep(Duration::from_millis(50)).await;
    harness.stop.stop();
    tokio::time::timeout(Duration::from_secs(2), handle)
        .await
        .expect("the user stops promptly")
        .expect("the user task ends cleanly");
    assert!(ran.lock().expect("ran").is_empty());
    assert!(harness.take_events().is_empty());
}
