//! A task list written as for the Python LoadDensity (spec §2.3), as far as gRPC allows: the
//! Python version imports generated stubs (`stub_path`), which a Rust process cannot, so the
//! service is named by `service` (described by the group's .proto files). The values are the
//! Python version's: `host` for the target, `timeout` as a whole number, `metadata` as a list
//! of pairs whose values are numbers and booleans (sent as Python's `str()` writes them), and
//! flags as integers.

mod common;

use common::{assert_success, harness, proto_options};
use load_density_testkit::GrpcTarget;
use serde_json::json;

#[tokio::test]
async fn a_python_task_list_runs_unchanged() {
    let server = GrpcTarget::start().await.expect("grpc target");
    let tasks = json!([
        {"host": server.target(), "service": "loadtest.Echo", "method": "Unary",
         "payload": {"message": "hi"}, "metadata": [["x-attempt", 1], ["x-debug", true]],
         "timeout": 10, "verify": 0, "name": "echo"},
        {"host": server.target(), "service": "loadtest.Echo", "method": "ServerStream",
         "payload": {"message": "s", "count": 2}, "each_message_event": 0, "timeout": "10s"}
    ]);
    let mut user = harness(tasks, proto_options()).await;
    let unary = user.once(0).await;
    assert_success(&unary);
    assert_eq!(&*unary.name, "echo");
    let stream = user.once(1).await;
    assert_success(&stream);
    user.stop().await;
}
