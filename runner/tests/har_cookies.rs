//! HAR cookie correlation: a cookie a recorded response set is left to the replaying user's
//! cookie jar, never replayed with its recorded (stale) value. The target (testkit's
//! `/app/cookie-login` and `/app/cookie-api`) gives each login a fresh random session in
//! `Set-Cookie` and rejects API calls without a session it issued. The HAR is shaped as
//! Chromium's DevTools export writes one: `Set-Cookie` among the response headers and in the
//! response `cookies`, the `Cookie` header and the request `cookies` on later requests.

mod har_support;

use std::sync::{Mutex, MutexGuard};

use har_support::replay;
use load_density::import::har::{self, HarOptions};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

/// The record store is process-wide: the tests take turns.
fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A recording: a login that set `sid` (and `theme`), then two API calls sending them back,
/// plus a `consent` cookie the browser had before the recording.
fn recording(target: &HttpTarget) -> Value {
    let stale = "sess-recorded-0000000000000000";
    let cookie = format!("consent=yes; sid={stale}; theme=dark");
    let request_cookies = json!([
        {"name": "consent", "value": "yes"},
        {"name": "sid", "value": stale},
        {"name": "theme", "value": "dark"}
    ]);
    let api = |n: u32| {
        json!({
            "request": {"method": "GET", "url": target.url(&format!("/app/cookie-api?page={n}")),
                "httpVersion": "HTTP/1.1",
                "headers": [
                    {"name": "Host", "value": "127.0.0.1"},
                    {"name": "Accept", "value": "application/json"},
                    {"name": "Cookie", "value": cookie}
                ],
                "cookies": request_cookies, "queryString": [], "headersSize": -1, "bodySize": 0},
            "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
                "headers": [{"name": "Content-Type", "value": "application/json"}],
                "cookies": [],
                "content": {"size": 22, "mimeType": "application/json",
                            "text": "{\"items\":[\"a\",\"b\"]}"}}
        })
    };
    json!({"log": {"version": "1.2", "creator": {"name": "fixture", "version": "1"}, "entries": [
        {"request": {"method": "GET", "url": target.url("/app/cookie-login"),
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Host", "value": "127.0.0.1"}, {"name": "Cookie", "value": "consent=yes"}],
            "cookies": [{"name": "consent", "value": "yes"}],
            "queryString": [], "headersSize": -1, "bodySize": 0},
         "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1",
            "headers": [
                {"name": "Content-Type", "value": "application/json"},
                {"name": "Set-Cookie", "value": format!("sid={stale}; Path=/; HttpOnly")}
            ],
            "cookies": [
                {"name": "sid", "value": stale, "path": "/", "httpOnly": true},
                {"name": "theme", "value": "dark", "path": "/"}
            ],
            "content": {"size": 11, "mimeType": "application/json", "text": "{\"ok\":true}"}}},
        api(1),
        api(2)
    ]}})
}

fn served(target: &HttpTarget, path: &str) -> u64 {
    target
        .path_counts()
        .into_iter()
        .find(|(p, _)| p == path)
        .map_or(0, |(_, n)| n)
}

#[test]
fn session_cookies_are_left_to_the_jar_and_the_rest_kept() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let har_value = recording(&target);
    let tasks = har::har_to_tasks(&har_value, &[], &[], &HarOptions::default())?;
    assert_eq!(tasks.len(), 3);
    // The login's own Cookie (set before the recording) is kept.
    assert_eq!(tasks[0]["headers"]["Cookie"], "consent=yes", "{}", tasks[0]);
    for task in &tasks[1..] {
        assert_eq!(
            task["headers"]["Cookie"], "consent=yes",
            "sid and theme were set by the login's response: {task}"
        );
    }
    // keep_cookies replays them as recorded (Python's behaviour).
    let literal = HarOptions {
        keep_cookies: true,
        ..HarOptions::default()
    };
    let tasks = har::har_to_tasks(&har_value, &[], &[], &literal)?;
    assert_eq!(
        tasks[1]["headers"]["Cookie"],
        "consent=yes; sid=sess-recorded-0000000000000000; theme=dark"
    );
    // A HAR whose cookies came only from before the recording keeps them all.
    let mut no_set = har_value.clone();
    no_set["log"]["entries"][0]["response"]["headers"] = json!([]);
    no_set["log"]["entries"][0]["response"]["cookies"] = json!([]);
    let tasks = har::har_to_tasks(&no_set, &[], &[], &HarOptions::default())?;
    assert_eq!(
        tasks[2]["headers"]["Cookie"],
        "consent=yes; sid=sess-recorded-0000000000000000; theme=dark"
    );
    // The same cookie set by a response the filters left out is not replayed, so it is kept.
    let tasks = har::har_to_tasks(
        &har_value,
        &[],
        &["cookie-login".to_owned()],
        &HarOptions::default(),
    )?;
    assert_eq!(
        tasks[0]["headers"]["Cookie"],
        "consent=yes; sid=sess-recorded-0000000000000000; theme=dark"
    );
    Ok(())
}

#[test]
fn a_cookie_session_replays_with_each_users_own_cookie() -> anyhow::Result<()> {
    let _turn = global_lock();
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let har_value = recording(&target);

    // fast_http_user is asked (the default), but it keeps no cookies: the plan uses http_user.
    let plan = har::har_to_action_json(
        &har_value,
        "fast_http_user",
        2,
        10.0,
        2.0,
        &[],
        &[],
        &HarOptions::default(),
    )?;
    assert_eq!(
        plan["load_density"][0][1]["user_detail_dict"]["user"],
        "http_user"
    );
    target.reset_counts();
    let (requests, failures) = replay(plan, 2)?;
    let (logins, apis) = (
        served(&target, "/app/cookie-login"),
        served(&target, "/app/cookie-api"),
    );
    assert!(
        apis >= 2,
        "the API was replayed: {:?}",
        target.path_counts()
    );
    assert_eq!(requests, logins + apis, "{:?}", target.path_counts());
    assert_eq!(
        failures, 0,
        "every API call carried its user's own session cookie"
    );

    // Replaying the recorded cookie (no correlation) sends a session the server never issued.
    let plan = har::har_to_action_json(
        &har_value,
        "http_user",
        2,
        10.0,
        1.0,
        &[],
        &[],
        &HarOptions {
            keep_cookies: true,
            ..HarOptions::default()
        },
    )?;
    target.reset_counts();
    let (requests, failures) = replay(plan, 1)?;
    let apis = served(&target, "/app/cookie-api");
    assert!(apis >= 2, "{:?}", target.path_counts());
    // http_user's own Cookie header wins over its jar's cookie of the same name, so the
    // recorded sid goes out and every API call is refused.
    assert_eq!(
        failures, apis,
        "{requests} requests: every API call with the recorded cookie is a 401"
    );
    Ok(())
}
