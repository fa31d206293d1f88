//! Requests against the testkit target and a capturing raw server: counts, keep-alive,
//! what reaches the server, relative URLs, auth, variables, redirects.

mod common;

use common::{ok, prepare, Harness, RawServer, Reply};
use load_density_core::variables::Variables;
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test]
async fn n_requests_make_n_events_over_one_connection() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([{"method": "get", "request_url": "/get"}, {"method": "get", "request_url": "/bytes/3000"}]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    h.run(0, 40).await;
    h.run(1, 10).await;
    h.stop().await;
    let events = h.take();
    assert_eq!(events.len(), 50);
    assert_eq!(target.served(), 50);
    assert_eq!(target.served_path("/get"), 40);
    assert!(events
        .iter()
        .all(|e| e.is_success() && e.status == Some(200)));
    let get = &events[0];
    assert_eq!(&*get.request_type, "GET");
    assert_eq!(&*get.name, "/get");
    assert_eq!(&*get.url, target.url("/get"));
    assert!(get.response_length > 0);
    assert_eq!(events[49].response_length, 3000);

    // The same against a server that counts connections: one per user.
    let raw = RawServer::start(|_| Reply::keep(ok("hello"))).await;
    let factory = prepare(
        json!([{"method": "get", "url": "/a"}, {"method": "post", "url": "/b", "data": "x"}]),
        Some(raw.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    for _ in 0..25 {
        h.run(0, 1).await;
        h.run(1, 1).await;
    }
    let events = h.take();
    assert_eq!(events.len(), 50);
    assert!(events
        .iter()
        .all(|e| e.is_success() && e.response_length == 5));
    assert_eq!(raw.requests().len(), 50);
    assert_eq!(
        raw.connections(),
        1,
        "keep-alive: one connection for 50 requests"
    );
}

#[tokio::test]
async fn requests_reach_the_server_as_written() {
    let raw = RawServer::start(|_| Reply::keep(ok("{}"))).await;
    let factory = prepare(
        json!([
            {"method": "get", "request_url": "/search", "params": {"q": "a b", "n": 2},
             "headers": {"X-Trace": "t-1", "Accept": "application/json"}, "name": "search"},
            {"method": "post", "request_url": "/post", "json": {"id": 7, "tags": ["x"]}},
            {"method": "put", "request_url": "/form", "data": {"a": "1", "b": "x y"}},
            {"method": "patch", "request_url": "/raw", "data": "raw body",
             "headers": [["Content-Type", "text/plain"]]},
            {"method": "delete", "request_url": "/basic",
             "auth": {"type": "basic", "username": "user", "password": "pass"}},
            {"method": "options", "request_url": "/bearer", "auth": {"type": "Bearer", "token": "tok"},
             "cookies": {"session": "s1", "theme": "dark"}},
            {"method": "post", "request_url": "/empty"},
        ]),
        Some(raw.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    for index in 0..7 {
        h.run(index, 1).await;
    }
    let events = h.take();
    assert_eq!(events.len(), 7);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    assert_eq!(&*events[0].name, "search");
    assert_eq!(
        &*events[0].url,
        format!("{}/search?q=a+b&n=2", raw.base_url())
    );
    assert_eq!(&*events[4].request_type, "DELETE");

    let seen = raw.requests();
    let host = raw.addr.to_string();

    assert_eq!(seen[0].request_line(), "GET /search?q=a+b&n=2 HTTP/1.1");
    assert_eq!(seen[0].header("host"), Some(host.as_str()));
    assert_eq!(seen[0].header("x-trace"), Some("t-1"));
    assert_eq!(seen[0].header("accept"), Some("application/json"));
    assert!(seen[0]
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("load-density/")));
    assert_eq!(seen[0].header("content-length"), None);

    assert_eq!(seen[1].request_line(), "POST /post HTTP/1.1");
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).expect("json body");
    assert_eq!(body, json!({"id": 7, "tags": ["x"]}));
    assert_eq!(
        seen[1].header("content-length"),
        Some(seen[1].body.len().to_string().as_str())
    );

    assert_eq!(seen[2].request_line(), "PUT /form HTTP/1.1");
    assert_eq!(
        seen[2].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen[2].body, b"a=1&b=x+y");

    assert_eq!(seen[3].request_line(), "PATCH /raw HTTP/1.1");
    assert_eq!(seen[3].header("content-type"), Some("text/plain"));
    assert_eq!(seen[3].body, b"raw body");

    assert_eq!(seen[4].request_line(), "DELETE /basic HTTP/1.1");
    assert_eq!(seen[4].header("authorization"), Some("Basic dXNlcjpwYXNz"));

    assert_eq!(seen[5].request_line(), "OPTIONS /bearer HTTP/1.1");
    assert_eq!(seen[5].header("authorization"), Some("Bearer tok"));
    assert_eq!(seen[5].header("cookie"), Some("session=s1; theme=dark"));

    assert_eq!(seen[6].request_line(), "POST /empty HTTP/1.1");
    assert_eq!(seen[6].header("content-length"), Some("0"));
    assert!(seen[6].body.is_empty());
}

#[tokio::test]
async fn auth_is_accepted_by_the_testkit_target() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([
            {"method": "get", "url": "/basic-auth/alice/s3cret",
             "auth": {"type": "basic", "username": "alice", "password": "s3cret"}},
            {"method": "get", "url": "/basic-auth/alice/s3cret",
             "auth": {"type": "basic", "username": "alice", "password": "wrong"}},
            {"method": "get", "url": "/bearer", "auth": {"type": "bearer", "token": "t0k"}},
            {"method": "get", "url": "/bearer"},
            {"method": "post", "url": "/post", "json": {"a": 1}},
            {"method": "post", "url": "/post", "data": {"a": "1"}},
            {"method": "head", "url": "/bytes/500"},
        ]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let outcomes: Vec<_> = {
        let mut v = Vec::new();
        for index in 0..7 {
            let e = h.once(index).await;
            v.push((
                e.status,
                e.error.as_deref().map(str::to_owned),
                e.response_length,
            ));
        }
        v
    };
    assert_eq!(outcomes[0], (Some(200), None, outcomes[0].2));
    assert_eq!(outcomes[1].0, Some(401));
    assert_eq!(outcomes[1].1.as_deref(), Some("HTTP 401 Unauthorized"));
    assert_eq!(outcomes[2].0, Some(200));
    assert_eq!(outcomes[2].1, None);
    assert_eq!(outcomes[3].0, Some(401));
    assert_eq!(outcomes[4].0, Some(200));
    assert_eq!(outcomes[5].0, Some(200));
    // HEAD: the headers announce 500 bytes, no body follows, the connection stays usable.
    assert_eq!(outcomes[6], (Some(200), None, 0));
    h.run(0, 3).await;
    assert!(h.take().iter().all(|e| e.is_success()));
    assert_eq!(target.served(), 10);
}

#[tokio::test]
async fn relative_urls_resolve_against_host_and_variables_render() {
    let raw = RawServer::start(|_| Reply::keep(ok("ok"))).await;
    let factory = prepare(
        json!([
            {"method": "get", "url": "items/1"},
            {"method": "get", "url": "/abs?x=1"},
            {"method": "get", "url": format!("{}/full", raw.base_url())},
            {"method": "post", "url": "/users/${var.id}", "name": "user ${var.id}",
             "json": {"id": "${var.id}"}, "headers": {"X-Id": "${var.id}"}},
        ]),
        Some(format!("{}/api/", raw.base_url())),
        json!({}),
    )
    .await
    .expect("prepare");
    let variables: Variables = [("id".to_owned(), json!(42))].into_iter().collect();
    let mut h = Harness::with_variables(&factory, variables);
    for index in 0..4 {
        h.run(index, 1).await;
    }
    let events = h.take();
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    assert_eq!(&*events[0].url, format!("{}/api/items/1", raw.base_url()));
    assert_eq!(&*events[3].name, "user 42");
    assert_eq!(&*events[3].url, format!("{}/users/42", raw.base_url()));
    let seen = raw.requests();
    assert_eq!(seen[0].request_line(), "GET /api/items/1 HTTP/1.1");
    assert_eq!(seen[1].request_line(), "GET /abs?x=1 HTTP/1.1");
    assert_eq!(seen[2].request_line(), "GET /full HTTP/1.1");
    assert_eq!(seen[3].request_line(), "POST /users/42 HTTP/1.1");
    assert_eq!(seen[3].header("x-id"), Some("42"));
    assert_eq!(seen[3].body, br#"{"id":42}"#);
    assert_eq!(raw.connections(), 1);
}

#[tokio::test]
async fn a_task_to_another_origin_replaces_the_connection() {
    let a = RawServer::start(|_| Reply::keep(ok("a"))).await;
    let b = RawServer::start(|_| Reply::keep(ok("b"))).await;
    let factory = prepare(
        json!([
            {"method": "get", "url": format!("{}/", a.base_url())},
            {"method": "get", "url": format!("{}/", b.base_url())},
        ]),
        None,
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    h.run(0, 3).await;
    h.run(1, 3).await;
    h.run(0, 1).await;
    assert_eq!(h.take().len(), 7);
    assert_eq!(a.requests().len(), 4);
    assert_eq!(b.requests().len(), 3);
    assert_eq!(a.connections(), 2);
    assert_eq!(b.connections(), 1);
}

#[tokio::test]
async fn redirects_are_followed_up_to_the_limit() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([
            {"method": "get", "url": "/redirect/4"},
            {"method": "get", "url": "/redirect/5"},
            {"method": "get", "url": "/redirect/2", "allow_redirects": false},
        ]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);

    // 5 redirects: /redirect/4 .. /redirect/0 -> /get.
    let e = h.once(0).await;
    assert!(e.is_success(), "{e:?}");
    assert_eq!(e.status, Some(200));
    assert_eq!(&*e.name, "/redirect/4");
    assert!(e.response_length > 0);
    assert_eq!(target.served(), 6);

    let e = h.once(1).await;
    assert_eq!(e.error.as_deref(), Some("too many redirects (more than 5)"));
    assert_eq!(e.status, Some(302));

    target.reset_counts();
    let e = h.once(2).await;
    assert!(e.is_success());
    assert_eq!(e.status, Some(302));
    assert_eq!(target.served(), 1);
}

#[tokio::test]
async fn a_redirected_post_becomes_a_get_without_its_body() {
    let raw = RawServer::start(|seen| {
        if seen.request_line().starts_with("POST /old") {
            Reply::keep(
                "HTTP/1.1 302 Found\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n".as_bytes(),
            )
        } else {
            Reply::keep(ok("landed"))
        }
    })
    .await;
    let factory = prepare(
        json!([{"method": "post", "url": "/old", "json": {"a": 1},
                "auth": {"type": "bearer", "token": "t"}}]),
        Some(raw.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let e = h.once(0).await;
    assert!(e.is_success(), "{e:?}");
    assert_eq!(e.response_length, 6);
    let seen = raw.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].request_line(), "GET /new HTTP/1.1");
    assert_eq!(seen[1].header("content-type"), None);
    assert_eq!(seen[1].header("authorization"), Some("Bearer t"));
    assert!(seen[1].body.is_empty());
    assert_eq!(raw.connections(), 1);
}
