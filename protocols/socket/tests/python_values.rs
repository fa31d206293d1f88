//! A task list written as for the Python LoadDensity (spec §2.5): a number and a boolean as
//! payloads (sent as their text, as Python's `str()` writes them), `expect_bytes` and
//! `timeout` as numbers, `keep_alive` as an integer. It runs unchanged.

mod common;

use common::{factory, Harness};
use load_density_testkit::{TcpEchoServer, UdpEchoServer};
use serde_json::json;

#[tokio::test]
async fn a_python_task_list_runs_unchanged() {
    let tcp = TcpEchoServer::start().await.expect("tcp echo");
    let udp = UdpEchoServer::start().await.expect("udp echo");
    let f = factory(json!([
        {"protocol": "tcp", "target": tcp.target(), "payload": 12345,
         "expect_bytes": 5, "expect_substring": "123", "timeout": 5, "keep_alive": 0},
        {"protocol": "TCP", "target": tcp.target(), "payload": true,
         "expect_bytes": 4, "timeout": 5.0},
        {"protocol": "udp", "target": udp.target(), "payload": "hex:0001ff",
         "expect_bytes": 3, "timeout": 5, "name": "udp:echo"}
    ]))
    .await;
    let mut h = Harness::new(&f);
    let number = h.ok(0).await;
    assert_eq!(
        number.response_length, 10,
        "5 bytes sent, 5 read: {number:?}"
    );
    let boolean = h.ok(1).await;
    assert_eq!(boolean.response_length, 8, "\"True\" sent and read back");
    let datagram = h.ok(2).await;
    assert_eq!(&*datagram.name, "udp:echo");
    assert_eq!(datagram.response_length, 6);
    h.stop().await;
}
