//! A task list written as for the Python LoadDensity (spec §2.2): a plain list of steps with
//! `timeout` in seconds (as a number or a string), an empty `name` (not used), `expect` as a
//! substring, and `verify` as an integer. It runs unchanged.

mod common;

use common::{assert_success, factory, Harness};
use load_density_testkit::WsEchoServer;
use serde_json::json;

#[tokio::test]
async fn a_python_task_list_runs_unchanged() {
    let server = WsEchoServer::start().await.expect("start");
    let url = server.url("/chat");
    let f = factory(
        json!([
            {"method": "connect", "url": url, "timeout": 5, "verify": 0},
            {"method": "send", "payload": "hello", "timeout": 5},
            {"method": "recv", "expect": "hello", "timeout": "5"},
            {"method": "sendrecv", "payload": "again", "expect": "again", "name": ""},
            {"method": "close"}
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&f);
    let events = h.all(5).await;
    for event in &events {
        assert_success(event);
    }
    let names: Vec<&str> = events.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["/chat", "send", "recv", "sendrecv", "close"]);
    assert_eq!(events[3].response_length, 10);
}
