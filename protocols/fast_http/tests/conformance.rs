//! The shared protocol conformance suite, for `fast_http_user`.

use std::sync::Arc;

use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::json;

// Name the crate so its registration is linked into this test binary.
use load_density_fast_http as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_http_user_conforms() {
    let target = Arc::new(HttpTarget::start().await.expect("start the HTTP target"));
    let counted = target.clone();
    let case = ConformanceCase::new(
        "fast_http_user",
        json!([
            {"method": "get", "request_url": "/get"},
            {"method": "post", "request_url": "/post", "json": {"n": 1}},
        ]),
        move || counted.served(),
        json!([{"method": "get", "request_url": format!("http://127.0.0.1:{}/", unused_local_port())}]),
    )
    .host(target.base_url())
    // The options every HTTP user reads: declared, or the runner would reject them.
    .options(json!({"timeout": 5, "verify": true}));
    let report = assert_protocol_conformance(case).await;
    assert_eq!(report.requests(), target.served());
    assert_eq!(
        target.served_path("/get") + target.served_path("/post"),
        report.requests()
    );
}
