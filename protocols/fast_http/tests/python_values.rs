//! A task list written as for the Python LoadDensity (spec §2.1): integers for the booleans
//! `allow_redirects` and `verify`, query parameters as a list of pairs, an empty `name` (used
//! only when not empty), the method in any case, `auth` with its type in upper case. It runs
//! unchanged, with the Python version's meaning.

use load_density_core::variables::Variables;
use load_density_testkit::harness::Group;
use load_density_testkit::HttpTarget;
use serde_json::json;

// Name the crate so its registration is linked in.
use load_density_fast_http as _;

#[tokio::test]
async fn a_python_task_list_runs_unchanged() {
    let target = HttpTarget::start().await.expect("testkit target");
    let tasks = json!([
        {"method": "GET", "request_url": target.url("/get"), "params": [["a", "1"], ["b", "2"]],
         "allow_redirects": 1, "verify": 0, "timeout": 10, "name": ""},
        {"method": "post", "url": target.url("/post"), "json": {"hello": "world"},
         "headers": {"X-Test": "1"}, "auth": {"type": "BASIC", "username": "u", "password": "p"},
         "timeout": "10s"},
        {"method": "get", "request_url": target.url("/redirect/1"), "allow_redirects": 0,
         "assertions": [{"type": "status_code", "value": 302}]}
    ]);
    let mut h = Group::new("fast_http_user", tasks)
        .harness(Variables::default())
        .await;
    let get = h.ok(0).await;
    assert_eq!(&*get.name, "/get?a=1&b=2", "an empty name is not used");
    let post = h.ok(1).await;
    assert_eq!(&*post.request_type, "POST");
    let redirect = h.ok(2).await;
    assert_eq!(redirect.status, Some(302), "allow_redirects 0 is false");
    h.stop().await;
}
