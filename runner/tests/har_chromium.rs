//! A HAR recorded from a real headless Chromium (Debian package `chromium`, which
//! `.ci/install-deps` installs; without it this test fails, it never skips), converted to
//! tasks and replayed against the server it was recorded from.
//!
//! Chromium has no command-line switch that writes a HAR, so this test records the way
//! DevTools' own HAR export does: it drives Chromium over the DevTools protocol (a WebSocket
//! on `--remote-debugging-port`), collects the page's `Network.*` events and response bodies,
//! and writes them as HAR 1.2. The page (testkit's `/app`) logs in and calls an API with the
//! session the login returned; the replay only succeeds when the conversion correlated that
//! session (an extractor on the login, a placeholder in the API call).

mod har_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use har_support::replay;
use load_density::import::har::{self, HarOptions};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A headless Chromium we started; killed (by its PID) when dropped.
struct Chromium {
    child: Child,
    ws_url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("LOAD_DENSITY_CHROMIUM") {
        return PathBuf::from(path);
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("chromium is not installed (or set LOAD_DENSITY_CHROMIUM): run .ci/install-deps")
        })
}

fn start_chromium() -> anyhow::Result<Chromium> {
    let profile = tempfile::tempdir()?;
    let mut child = Command::new(chromium_binary())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start chromium")?;
    let stderr = child.stderr.take().context("chromium's stderr")?;
    // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID".
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = sender.send(url.trim().to_owned());
            }
        }
    });
    let mut chromium = Chromium {
        child,
        ws_url: String::new(),
        _profile: profile,
    };
    chromium.ws_url = receiver
        .recv_timeout(Duration::from_secs(60))
        .context("chromium did not print its DevTools address within 60 s")?;
    Ok(chromium)
}

/// A DevTools protocol connection: commands by id, events buffered.
struct Cdp {
    ws: Ws,
    next_id: u64,
    events: Vec<Value>,
}

impl Cdp {
    async fn read(&mut self) -> anyhow::Result<Value> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .context("no DevTools message for 30 s")?
                .context("the DevTools connection closed")??;
            if let Message::Text(text) = message {
                return Ok(serde_json::from_str(&text)?);
            }
        }
    }

    async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(message.to_string())).await?;
        loop {
            let message = self.read().await?;
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    bail!("{method}: {error}");
                }
                return Ok(message["result"].clone());
            }
            self.events.push(message);
        }
    }

    async fn next_event(&mut self) -> anyhow::Result<Value> {
        if !self.events.is_empty() {
            return Ok(self.events.remove(0));
        }
        self.read().await
    }
}

fn har_headers(headers: &Value) -> Value {
    let mut list = Vec::new();
    for (name, value) in headers.as_object().into_iter().flatten() {
        // DevTools joins repeated headers with a newline.
        for line in value.as_str().unwrap_or_default().split('\n') {
            list.push(json!({"name": name, "value": line}));
        }
    }
    Value::Array(list)
}

/// What DevTools reported about one request.
#[derive(Default)]
struct Exchange {
    request: Value,
    sent_headers: Option<Value>,
    response: Value,
    finished: bool,
    started: f64,
}

/// Loads `url` in a new tab and records its network traffic as a HAR.
async fn record_har(chromium: &Chromium, url: &str) -> anyhow::Result<Value> {
    let (ws, _) = tokio_tungstenite::connect_async(chromium.ws_url.as_str()).await?;
    let mut cdp = Cdp {
        ws,
        next_id: 0,
        events: Vec::new(),
    };
    let target = cdp
        .call(None, "Target.createTarget", json!({"url": "about:blank"}))
        .await?;
    let attached = cdp
        .call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await?;
    let session = attached["sessionId"]
        .as_str()
        .context("a session id")?
        .to_owned();
    let s = Some(session.as_str());
    cdp.call(s, "Network.enable", json!({})).await?;
    cdp.call(s, "Page.enable", json!({})).await?;
    cdp.call(s, "Page.navigate", json!({"url": url})).await?;

    let mut exchanges: BTreeMap<String, Exchange> = BTreeMap::new();
    let mut order = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            bail!("the page's API call did not finish within 60 s");
        }
        let event = cdp.next_event().await?;
        let params = &event["params"];
        let id = params["requestId"].as_str().unwrap_or_default().to_owned();
        match event["method"].as_str().unwrap_or_default() {
            "Network.requestWillBeSent" => {
                order.push(id.clone());
                let exchange = exchanges.entry(id).or_default();
                exchange.request = params["request"].clone();
                exchange.started = params["wallTime"].as_f64().unwrap_or_default();
            }
            "Network.requestWillBeSentExtraInfo" => {
                exchanges.entry(id).or_default().sent_headers = Some(params["headers"].clone());
            }
            "Network.responseReceived" => {
                exchanges.entry(id).or_default().response = params["response"].clone();
            }
            "Network.loadingFinished" => {
                let exchange = exchanges.entry(id).or_default();
                exchange.finished = true;
                let done = exchange.request["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("/app/api"));
                if done {
                    break;
                }
            }
            _ => {}
        }
    }

    let mut entries = Vec::new();
    for id in order {
        let Some(exchange) = exchanges.get(&id) else {
            continue;
        };
        if !exchange.finished {
            continue;
        }
        let request = &exchange.request;
        let mut post_data = request["postData"].as_str().map(str::to_owned);
        if post_data.is_none() && request["hasPostData"] == true {
            let body = cdp
                .call(s, "Network.getRequestPostData", json!({"requestId": id}))
                .await?;
            post_data = body["postData"].as_str().map(str::to_owned);
        }
        let body = cdp
            .call(s, "Network.getResponseBody", json!({"requestId": id}))
            .await?;
        let headers = exchange
            .sent_headers
            .as_ref()
            .unwrap_or(&request["headers"]);
        let request_headers = har_headers(headers);
        let mime = |headers: &Value| {
            headers
                .as_object()
                .into_iter()
                .flatten()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let mut har_request = json!({
            "method": request["method"],
            "url": request["url"],
            "httpVersion": exchange.response["protocol"].as_str().unwrap_or("http/1.1"),
            "headers": request_headers,
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": post_data.as_ref().map_or(0, String::len),
        });
        if let Some(text) = post_data {
            har_request["postData"] = json!({"mimeType": mime(headers), "text": text});
        }
        let response = &exchange.response;
        entries.push(json!({
            "startedDateTime": format!("{}", exchange.started),
            "time": 0,
            "request": har_request,
            "response": {
                "status": response["status"],
                "statusText": response["statusText"],
                "httpVersion": response["protocol"],
                "headers": har_headers(&response["headers"]),
                "cookies": [],
                "content": {
                    "size": body["body"].as_str().map_or(0, str::len),
                    "mimeType": response["mimeType"],
                    "text": body["body"],
                    "encoding": if body["base64Encoded"] == true { json!("base64") } else { Value::Null },
                },
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": -1,
            },
            "cache": {},
            "timings": {"send": 0, "wait": 0, "receive": 0},
        }));
    }
    Ok(json!({"log": {
        "version": "1.2",
        "creator": {"name": "load-density har_chromium test (DevTools protocol)", "version": "1"},
        "entries": entries,
    }}))
}

#[test]
fn a_har_recorded_by_chromium_replays_with_its_session_correlated() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let chromium = start_chromium()?;
    let har_value = runtime.block_on(record_har(&chromium, &target.url("/app")))?;
    drop(chromium);
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("recorded.har");
    std::fs::write(&file, serde_json::to_string_pretty(&har_value)?)?;

    let har_value = har::load_har(&file)?;
    let urls: Vec<&str> = har_value["log"]["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["request"]["url"].as_str())
        .collect();
    for path in ["/app", "/app/login", "/app/api"] {
        assert!(
            urls.iter().any(|u| u.ends_with(path)),
            "{path} not recorded: {urls:?}"
        );
    }

    let options = HarOptions {
        escape_placeholders: true,
        correlate: true,
        exclude_headers: Vec::new(),
        keep_cookies: false,
    };
    let exclude = ["favicon".to_owned()];
    let tasks = har::har_to_tasks(&har_value, &[], &exclude, &options)?;
    let names: Vec<&str> = tasks.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["GET /app", "POST /app/login", "GET /app/api"]);
    let login = &tasks[1];
    assert_eq!(
        login["json"]["password"], "pa$${ss}word",
        "escaped: {login}"
    );
    assert_eq!(
        login["extract"],
        json!([{"var": "corr_1", "from": "json_path", "path": "session"}])
    );
    assert_eq!(tasks[2]["headers"]["Authorization"], "Bearer ${var.corr_1}");
    assert!(tasks[0]["headers"].get("Host").is_none(), "{}", tasks[0]);

    // The recorded session is forgotten: only a correlated replay gets through.
    let plan = har::har_to_action_json(
        &har_value,
        "fast_http_user",
        2,
        10.0,
        2.0,
        &[],
        &exclude,
        &options,
    )?;
    target.forget_sessions();
    target.reset_counts();
    let (requests, failures) = replay(plan, 2)?;
    let served = |path: &str| {
        target
            .path_counts()
            .into_iter()
            .find(|(p, _)| p == path)
            .map_or(0, |(_, n)| n)
    };
    let (page, logins, apis) = (served("/app"), served("/app/login"), served("/app/api"));
    assert!(apis > 0, "the API was replayed: {:?}", target.path_counts());
    assert_eq!(requests, page + logins + apis, "{:?}", target.path_counts());
    assert_eq!(failures, 0, "every replayed API call had its own session");
    // Each user runs the three in sequence; the end of the run may cut one sequence short.
    assert!(
        page >= logins && logins >= apis && page - apis <= 2 * 2,
        "{page} {logins} {apis}"
    );

    // Without correlation, the API calls send the recorded (forgotten) session: 401s.
    let plain = har::har_to_action_json(
        &har_value,
        "fast_http_user",
        2,
        10.0,
        1.0,
        &[],
        &exclude,
        &HarOptions::default(),
    )?;
    target.reset_counts();
    let (_, failures) = replay(plain, 1)?;
    assert!(
        failures > 0 && failures == served("/app/api"),
        "uncorrelated: {failures}"
    );
    runtime.block_on(target.shutdown());
    Ok(())
}
