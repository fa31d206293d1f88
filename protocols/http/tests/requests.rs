//! Plain-HTTP behaviour against the testkit target: counting, cookies, redirects, echoed
//! request parts and failures.

mod common;

use common::{prepare, run, run_one, Recorder};
use load_density_core::variables::UserVariables;
use load_density_core::{GroupPlan, TaskList};
use load_density_http::HttpProtocol;
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::{json, Map, Value};

#[tokio::test]
async fn n_requests_make_exactly_n_events() -> anyhow::Result<()> {
    let target = HttpTarget::start().await?;
    let factory = prepare(
        json!([
            {"method": "get", "url": "/get"},
            {"method": "post", "url": "/post", "name": "create", "json": {"n": 1}},
        ]),
        Some(target.base_url()),
        Map::new(),
    )
    .await?;
    let recorder = Recorder::new();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    const ROUNDS: usize = 25;
    for _ in 0..ROUNDS {
        run(user.as_mut(), 0, &mut ctx).await;
        run(user.as_mut(), 1, &mut ctx).await;
    }
    user.on_stop(&mut ctx).await;
    let events = recorder.take();
    assert_eq!(events.len(), 2 * ROUNDS);
    assert_eq!(target.served(), 2 * ROUNDS as u64);
    assert_eq!(target.served_path("/get"), ROUNDS as u64);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    let get = &events[0];
    assert_eq!(&*get.request_type, "GET");
    assert_eq!(&*get.name, "/get");
    assert_eq!(&*get.url, target.url("/get"));
    assert_eq!(get.status, Some(200));
    assert!(get.response_length > 0);
    let post = &events[1];
    assert_eq!(&*post.request_type, "POST");
    assert_eq!(&*post.name, "create");
    Ok(())
}

#[tokio::test]
async fn cookies_stay_with_their_user() -> anyhow::Result<()> {
    let target = HttpTarget::start().await?;
    let tasks = json!([
        {"method": "get", "url": "/cookies/set?a=1"},
        {"method": "get", "url": "/cookies"},
        {"method": "get", "url": "/cookies", "cookies": {"b": "2", "a": "task"}},
    ]);
    let factory = HttpProtocol
        .prepare_group(
            &GroupPlan::new("http_user", TaskList::from_json(&tasks)?)
                .with_host(Some(target.base_url())),
        )
        .await?;
    let vars = UserVariables::default();
    let mut first = factory.user(1);
    let mut second = factory.user(2);

    // The set request redirects to /cookies, which already sees the new cookie.
    let set = first.send(0, &vars).await?;
    assert_eq!(set.status_code(), 200);
    assert_eq!(cookies(&set.text())?, json!({"a": "1"}));

    let seen = first.send(1, &vars).await?;
    assert_eq!(cookies(&seen.text())?, json!({"a": "1"}));

    // A task's own cookies are merged with the jar's; the task's value wins.
    let merged = first.send(2, &vars).await?;
    assert_eq!(cookies(&merged.text())?, json!({"b": "2", "a": "task"}));
    // ... and they are not stored in the jar.
    let again = first.send(1, &vars).await?;
    assert_eq!(cookies(&again.text())?, json!({"a": "1"}));

    let other = second.send(1, &vars).await?;
    assert_eq!(cookies(&other.text())?, json!({}), "jar per user");

    // Through the runner's path too: the event of the cookie-less user succeeds.
    let recorder = Recorder::new();
    let mut third = factory.user(3);
    let mut ctx = recorder.context(3);
    let event = run_one(&mut third, 0, &mut ctx, &recorder).await;
    assert_eq!(event.status, Some(200));
    assert_eq!(&*event.url, target.url("/cookies/set?a=1"));
    Ok(())
}

fn cookies(body: &str) -> anyhow::Result<Value> {
    let value: Value = serde_json::from_str(body)?;
    Ok(value["cookies"].clone())
}

#[tokio::test]
async fn redirects_are_followed_unless_the_task_says_not_to() -> anyhow::Result<()> {
    let target = HttpTarget::start().await?;
    let tasks = json!([
        {"method": "get", "url": "/redirect/2"},
        {"method": "get", "url": "/redirect/2", "allow_redirects": false},
        {"method": "get", "url": "/redirect/11"},
        {"method": "get", "url": "/cookies/set?k=v", "allow_redirects": false},
        {"method": "get", "url": "/cookies"},
    ]);
    let factory = HttpProtocol
        .prepare_group(
            &GroupPlan::new("http_user", TaskList::from_json(&tasks)?)
                .with_host(Some(target.base_url())),
        )
        .await?;
    let recorder = Recorder::new();
    let mut user = factory.user(1);
    let mut ctx = recorder.context(1);

    let followed = run_one(&mut user, 0, &mut ctx, &recorder).await;
    assert_eq!(followed.status, Some(200));
    assert!(followed.is_success());
    assert_eq!(&*followed.url, target.url("/redirect/2"), "the task's URL");
    // /redirect/2 -> /redirect/1 -> /redirect/0 -> /get
    assert_eq!(target.served_path("/redirect/"), 3);
    assert_eq!(target.served_path("/get"), 1);
    assert_eq!(user.open_clients(), 1);

    let stopped = run_one(&mut user, 1, &mut ctx, &recorder).await;
    assert_eq!(stopped.status, Some(302));
    assert!(stopped.is_success(), "a 3xx is not a failure: {stopped:?}");
    assert_eq!(target.served_path("/redirect/"), 4);
    assert_eq!(user.open_clients(), 2, "a second, non-following client");

    let too_many = run_one(&mut user, 2, &mut ctx, &recorder).await;
    let reason = too_many.error.as_deref().expect("too many redirects fail");
    assert!(reason.starts_with("redirect failed"), "{reason}");
    assert_eq!(too_many.status, None);

    // The non-following client shares the jar with the following one.
    let set = run_one(&mut user, 3, &mut ctx, &recorder).await;
    assert_eq!(set.status, Some(302));
    let response = user.send(4, &UserVariables::default()).await?;
    assert_eq!(cookies(&response.text())?, json!({"k": "v"}));
    Ok(())
}

#[tokio::test]
async fn request_parts_reach_the_server() -> anyhow::Result<()> {
    let target = HttpTarget::start().await?;
    let tasks = json!([
        {"method": "post", "url": "/post", "json": {"n": 1, "s": "x"}},
        {"method": "put", "url": "/put", "data": {"field": "a b", "other": 2}},
        {"method": "get", "url": "/get", "params": {"q": "1 2", "r": "z"}},
        {"method": "get", "url": "/headers", "headers": {"X-Custom": "yes", "User-Agent": "mine"}},
        {"method": "get", "url": "/basic-auth/alice/secret",
         "auth": {"type": "basic", "username": "alice", "password": "secret"}},
        {"method": "get", "url": "/bearer", "auth": {"type": "Bearer", "token": "tok-1"}},
        {"method": "patch", "url": "/patch", "data": "raw text"},
        {"method": "get", "url": "/basic-auth/alice/secret",
         "auth": {"type": "basic", "username": "alice", "password": "wrong"}},
        {"method": "get", "url": "/headers"},
    ]);
    let factory = HttpProtocol
        .prepare_group(
            &GroupPlan::new("http_user", TaskList::from_json(&tasks)?)
                .with_host(Some(target.base_url())),
        )
        .await?;
    let vars = UserVariables::default();
    let mut user = factory.user(1);
    let body = |r: &load_density_http::HttpResponse| -> anyhow::Result<Value> {
        Ok(serde_json::from_slice(r.bytes())?)
    };

    let json_body = body(&user.send(0, &vars).await?)?;
    assert_eq!(json_body["json"], json!({"n": 1, "s": "x"}));
    assert_eq!(json_body["headers"]["content-type"], "application/json");

    let form = body(&user.send(1, &vars).await?)?;
    assert_eq!(form["form"], json!({"field": "a b", "other": "2"}));
    assert_eq!(form["method"], "PUT");

    let params = body(&user.send(2, &vars).await?)?;
    assert_eq!(params["args"], json!({"q": "1 2", "r": "z"}));

    let headers = body(&user.send(3, &vars).await?)?;
    assert_eq!(headers["headers"]["x-custom"], "yes");
    assert_eq!(headers["headers"]["user-agent"], "mine");

    let basic = user.send(4, &vars).await?;
    assert_eq!(basic.status_code(), 200);
    assert_eq!(body(&basic)?["user"], "alice");

    let bearer = user.send(5, &vars).await?;
    assert_eq!(bearer.status_code(), 200);
    assert_eq!(body(&bearer)?["token"], "tok-1");

    let raw = body(&user.send(6, &vars).await?)?;
    assert_eq!(raw["data"], "raw text");

    let default_headers = body(&user.send(8, &vars).await?)?;
    let agent = default_headers["headers"]["user-agent"]
        .as_str()
        .expect("a default user agent");
    assert!(agent.starts_with("load-density/"), "{agent}");

    // The same through run_task: the event says whether authentication worked.
    let recorder = Recorder::new();
    let mut ctx = recorder.context(1);
    let ok = run_one(&mut user, 4, &mut ctx, &recorder).await;
    assert_eq!((ok.status, ok.is_success()), (Some(200), true));
    let denied = run_one(&mut user, 7, &mut ctx, &recorder).await;
    assert_eq!(denied.status, Some(401));
    assert_eq!(denied.error.as_deref(), Some("HTTP 401 Unauthorized"));
    Ok(())
}

#[tokio::test]
async fn failures_are_recorded_and_the_user_keeps_working() -> anyhow::Result<()> {
    let target = HttpTarget::start().await?;
    let refused = format!("http://127.0.0.1:{}/get", unused_local_port());
    let tasks = json!([
        {"method": "get", "url": "/get"},
        {"method": "get", "request_url": refused},
        {"method": "get", "url": "/delay/2000", "timeout": 0.2},
        {"method": "get", "url": "/status/503"},
        {"method": "get", "url": "/status/404", "name": "missing"},
        {"method": "get", "url": "${var.where}"},
    ]);
    let factory = prepare(tasks, Some(target.base_url()), Map::new()).await?;
    let recorder = Recorder::new();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);

    let ok = |event: &load_density_core::RequestEvent| {
        assert!(event.is_success(), "{event:?}");
        assert_eq!(event.status, Some(200));
    };

    ok(&run_one(user.as_mut(), 0, &mut ctx, &recorder).await);

    let refused_event = run_one(user.as_mut(), 1, &mut ctx, &recorder).await;
    let reason = refused_event
        .error
        .as_deref()
        .expect("refused is a failure");
    assert!(reason.starts_with("connection failed"), "{reason}");
    assert!(reason.to_lowercase().contains("refused"), "{reason}");
    assert!(
        !reason.contains("127.0.0.1"),
        "no URL in the reason: {reason}"
    );
    assert_eq!(refused_event.status, None);
    assert_eq!(refused_event.response_length, 0);
    assert_eq!(&*refused_event.url, refused);
    ok(&run_one(user.as_mut(), 0, &mut ctx, &recorder).await);

    let started = std::time::Instant::now();
    let timed_out = run_one(user.as_mut(), 2, &mut ctx, &recorder).await;
    assert_eq!(timed_out.error.as_deref(), Some("timed out after 0.2s"));
    assert_eq!(timed_out.status, None);
    assert!(started.elapsed() < std::time::Duration::from_millis(1500));
    assert!(timed_out.response_time >= std::time::Duration::from_millis(200));
    ok(&run_one(user.as_mut(), 0, &mut ctx, &recorder).await);

    let unavailable = run_one(user.as_mut(), 3, &mut ctx, &recorder).await;
    assert_eq!(unavailable.status, Some(503));
    assert_eq!(
        unavailable.error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    ok(&run_one(user.as_mut(), 0, &mut ctx, &recorder).await);

    let missing = run_one(user.as_mut(), 4, &mut ctx, &recorder).await;
    assert_eq!(missing.status, Some(404));
    assert_eq!(&*missing.name, "missing");
    assert_eq!(missing.error.as_deref(), Some("HTTP 404 Not Found"));

    // A variable that renders to a URL the user cannot request: recorded, not dropped.
    ctx.variables_mut()
        .set("where", json!("ftp://127.0.0.1/file"));
    let unrenderable = run_one(user.as_mut(), 5, &mut ctx, &recorder).await;
    let reason = unrenderable.error.as_deref().expect("a failure");
    assert!(
        reason.starts_with("task 5: unsupported URL scheme"),
        "{reason}"
    );
    assert_eq!(&*unrenderable.name, "tasks[5]");
    assert_eq!(&*unrenderable.request_type, "GET");
    ok(&run_one(user.as_mut(), 0, &mut ctx, &recorder).await);

    assert_eq!(target.served_path("/get"), 5);
    assert_eq!(target.served_path("/status/"), 2);
    user.on_stop(&mut ctx).await;
    Ok(())
}
