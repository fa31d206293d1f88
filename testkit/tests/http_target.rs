//! Integration tests for [`HttpTarget`]: every route, exact request counting,
//! HTTP/2, TLS and shutdown behaviour.

use std::time::{Duration, Instant};

use load_density_testkit::{unused_local_port, HttpTarget};
use reqwest::{header, redirect, Client, StatusCode, Version};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A reqwest builder (no proxy) with the ring provider installed as rustls'
/// process default (reqwest is built with `rustls-no-provider`).
fn builder() -> reqwest::ClientBuilder {
    // Err only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder().no_proxy()
}

fn client() -> Client {
    builder().build().expect("build reqwest client")
}

fn no_redirect_client() -> Client {
    builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("build reqwest client")
}

async fn get_json(client: &Client, url: &str) -> (StatusCode, Value) {
    let resp = client.get(url).send().await.expect("request");
    let status = resp.status();
    (status, resp.json().await.expect("json body"))
}

#[tokio::test]
async fn root_returns_ok_and_counts() {
    let target = HttpTarget::start().await.expect("start");
    assert!(target.addr().ip().is_loopback());
    assert_eq!(
        target.base_url(),
        format!("http://127.0.0.1:{}", target.addr().port())
    );
    assert_eq!(target.url("/x"), format!("{}/x", target.base_url()));
    assert!(!target.is_tls());
    assert_eq!(target.ca_cert_pem(), None);
    assert_eq!(target.ca_cert_der(), None);
    assert!(target.client_tls_config().is_none());
    assert_eq!(target.served(), 0);

    let resp = client().get(target.url("/")).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("body"), "ok");
    assert_eq!(target.served(), 1);
    assert_eq!(target.served_path("/"), 1);
    assert_eq!(target.path_counts(), vec![("/".to_owned(), 1)]);
    target.shutdown().await;
}

#[tokio::test]
async fn get_reports_args_headers_method_url() {
    let target = HttpTarget::start().await.expect("start");
    let resp = client()
        .get(target.url("/get?a=1&b=two%20words&a=3"))
        .header("X-Custom", "hello")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii"),
        "application/json"
    );
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["url"], "/get?a=1&b=two%20words&a=3");
    assert_eq!(body["args"], json!({"a": ["1", "3"], "b": "two words"}));
    assert_eq!(body["headers"]["x-custom"], "hello");
    assert_eq!(
        body["headers"]["host"],
        format!("127.0.0.1:{}", target.addr().port())
    );

    // Any method is accepted and reported.
    let resp = client()
        .delete(target.url("/get"))
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["method"], "DELETE");
    assert_eq!(body["args"], json!({}));

    assert_eq!(target.served_path("/get"), 2);
    assert_eq!(target.served(), 2);
}

#[tokio::test]
async fn echo_routes_echo_body_form_and_cookies() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();

    // JSON body.
    let resp = client
        .post(target.url("/post?q=1"))
        .json(&json!({"hello": "world", "n": 3}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["args"], json!({"q": "1"}));
    assert_eq!(body["json"], json!({"hello": "world", "n": 3}));
    assert_eq!(body["data"], r#"{"hello":"world","n":3}"#);
    assert_eq!(body["form"], json!({}));
    assert_eq!(body["cookies"], json!({}));
    assert_eq!(body["headers"]["content-type"], "application/json");

    // Form body.
    let resp = client
        .put(target.url("/put"))
        .form(&[("name", "a b"), ("x", "1")])
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["form"], json!({"name": "a b", "x": "1"}));
    assert_eq!(body["data"], "name=a+b&x=1");
    assert_eq!(body["json"], Value::Null);

    // Plain text body.
    let resp = client
        .patch(target.url("/patch"))
        .body("not json")
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["method"], "PATCH");
    assert_eq!(body["data"], "not json");
    assert_eq!(body["json"], Value::Null);

    // No body.
    let (status, body) = {
        let resp = client
            .delete(target.url("/delete"))
            .send()
            .await
            .expect("request");
        (resp.status(), resp.json::<Value>().await.expect("json"))
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["method"], "DELETE");
    assert_eq!(body["data"], "");
    assert_eq!(body["json"], Value::Null);

    // /anything and /anything/{*rest}, with cookies.
    let resp = client
        .request(reqwest::Method::OPTIONS, target.url("/anything"))
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["method"], "OPTIONS");

    let resp = client
        .post(target.url("/anything/deep/path?k=v"))
        .header(header::COOKIE, "session=abc; theme=dark")
        .body("[1,2,3]")
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["url"], "/anything/deep/path?k=v");
    assert_eq!(body["json"], json!([1, 2, 3]));
    assert_eq!(body["cookies"], json!({"session": "abc", "theme": "dark"}));
    assert_eq!(body["args"], json!({"k": "v"}));

    assert_eq!(target.served_path("/post"), 1);
    assert_eq!(target.served_path("/put"), 1);
    assert_eq!(target.served_path("/patch"), 1);
    assert_eq!(target.served_path("/delete"), 1);
    assert_eq!(target.served_path("/anything"), 2);
    assert_eq!(target.served_path("/anything/"), 1);
    assert_eq!(target.served(), 6);
}

#[tokio::test]
async fn status_route_returns_requested_code() {
    let target = HttpTarget::start().await.expect("start");
    let client = no_redirect_client();
    let codes = [
        200u16, 201, 204, 301, 302, 400, 404, 418, 429, 500, 503, 599,
    ];
    for code in codes {
        let resp = client
            .get(target.url(&format!("/status/{code}")))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), code);
        assert!(resp.bytes().await.expect("body").is_empty());
    }
    for invalid in ["abc", "600", "99", "-1", "70000"] {
        let resp = client
            .get(target.url(&format!("/status/{invalid}")))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "/status/{invalid}");
    }
    // hyper cannot send a final 1xx response; it substitutes a 500.
    let resp = client
        .get(target.url("/status/100"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(target.served_path("/status/"), codes.len() as u64 + 6);
    assert_eq!(target.served_path("/status/404"), 1);
    assert_eq!(target.served(), codes.len() as u64 + 6);
}

#[tokio::test]
async fn delay_sleeps_and_counts_on_arrival() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();

    let started = Instant::now();
    let (status, body) = get_json(&client, &target.url("/delay/200")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"delay_ms": 200}));
    assert!(started.elapsed() >= Duration::from_millis(200));

    // The request is counted as soon as it arrives, before the delay elapses.
    target.reset_counts();
    let url = target.url("/delay/1500");
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status()) }
    });
    let deadline = Instant::now() + Duration::from_secs(1);
    while target.served_path("/delay/") == 0 {
        assert!(
            Instant::now() < deadline,
            "delay request was not counted on arrival"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!pending.is_finished());
    assert_eq!(target.served(), 1);
    assert_eq!(
        pending.await.expect("join").expect("request"),
        StatusCode::OK
    );

    let resp = client
        .get(target.url("/delay/soon"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(target.served_path("/delay/"), 2);
}

#[tokio::test]
async fn bytes_returns_deterministic_content() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();
    for n in [0usize, 1, 10, 256, 65_536, 300_001] {
        let resp = client
            .get(target.url(&format!("/bytes/{n}")))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.content_length(), Some(n as u64));
        let body = resp.bytes().await.expect("body");
        assert_eq!(body.len(), n);
        assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8));
    }
    let resp = client
        .get(target.url("/bytes/lots"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(target.served_path("/bytes/"), 7);
}

#[tokio::test]
async fn headers_route_lists_request_headers() {
    let target = HttpTarget::start().await.expect("start");
    let resp = client()
        .get(target.url("/headers"))
        .header("X-Trace-Id", "abc-123")
        .header("user-agent", "testkit-test")
        .send()
        .await
        .expect("request");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["headers"]["x-trace-id"], "abc-123");
    assert_eq!(body["headers"]["user-agent"], "testkit-test");
    assert_eq!(target.served_path("/headers"), 1);
}

#[tokio::test]
async fn cookies_set_and_read_back() {
    let target = HttpTarget::start().await.expect("start");

    // Without following redirects: a 302 with one Set-Cookie per pair.
    let resp = no_redirect_client()
        .get(target.url("/cookies/set?a=1&b=two"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()[header::LOCATION], "/cookies");
    let set_cookies: Vec<&str> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(set_cookies, ["a=1; Path=/", "b=two; Path=/"]);

    // With a cookie store: the redirect lands on /cookies with the cookies sent.
    let jar_client = builder().cookie_store(true).build().expect("client");
    let (status, body) = get_json(&jar_client, &target.url("/cookies/set?session=xyz&n=5")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"cookies": {"session": "xyz", "n": "5"}}));

    let (_, body) = get_json(&client(), &target.url("/cookies")).await;
    assert_eq!(body, json!({"cookies": {}}));

    assert_eq!(target.served_path("/cookies/set"), 2);
    assert_eq!(target.served_path("/cookies"), 4);
    assert_eq!(target.served(), 4);
}

#[tokio::test]
async fn redirect_chain_ends_at_get() {
    let target = HttpTarget::start().await.expect("start");

    let resp = no_redirect_client()
        .get(target.url("/redirect/2"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()[header::LOCATION], "/redirect/1");
    let resp = no_redirect_client()
        .get(target.url("/redirect/0"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(resp.headers()[header::LOCATION], "/get");
    target.reset_counts();
    assert_eq!(target.served(), 0);
    assert_eq!(target.path_counts(), vec![]);

    let resp = client()
        .get(target.url("/redirect/3"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.url().path(), "/get");
    // /redirect/3, /2, /1, /0, then /get.
    assert_eq!(target.served_path("/redirect/"), 4);
    assert_eq!(target.served_path("/get"), 1);
    assert_eq!(target.served(), 5);
    assert_eq!(
        target.path_counts(),
        vec![
            ("/get".to_owned(), 1),
            ("/redirect/0".to_owned(), 1),
            ("/redirect/1".to_owned(), 1),
            ("/redirect/2".to_owned(), 1),
            ("/redirect/3".to_owned(), 1),
        ]
    );
}

#[tokio::test]
async fn basic_auth_checks_credentials() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();
    let url = target.url("/basic-auth/alice/s3cret");

    let resp = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body, json!({"authenticated": true, "user": "alice"}));

    let resp = client
        .get(&url)
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));

    let resp = client.get(&url).send().await.expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = client
        .get(&url)
        .bearer_auth("alice:s3cret")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(target.served_path("/basic-auth/"), 4);
}

#[tokio::test]
async fn bearer_requires_token() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();

    let resp = client
        .get(target.url("/bearer"))
        .bearer_auth("abc.def")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body, json!({"authenticated": true, "token": "abc.def"}));

    let resp = client
        .get(target.url("/bearer"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let resp = client
        .get(target.url("/bearer"))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(target.served_path("/bearer"), 3);
}

#[tokio::test]
async fn token_is_unique_and_echoed() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();

    let mut tokens = Vec::new();
    for _ in 0..3 {
        let resp = client
            .post(target.url("/token"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), StatusCode::OK);
        let header_token = resp.headers()["x-token"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["token"], header_token.as_str());
        assert!(header_token.starts_with("tok-"));
        tokens.push(header_token);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3);

    let (_, body) = {
        let resp = client
            .get(target.url("/echo-token"))
            .header("X-Token", "tok-42")
            .send()
            .await
            .expect("request");
        (resp.status(), resp.json::<Value>().await.expect("json"))
    };
    assert_eq!(body, json!({"token": "tok-42"}));

    let (status, body) = get_json(&client, &target.url("/echo-token?token=tok-7")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"token": "tok-7"}));

    let (status, body) = get_json(&client, &target.url("/echo-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"token": null}));

    assert_eq!(target.served_path("/token"), 3);
    assert_eq!(target.served_path("/echo-token"), 3);
    assert_eq!(target.served(), 6);
}

#[tokio::test]
async fn unknown_path_is_404_and_counted() {
    let target = HttpTarget::start().await.expect("start");
    let resp = client()
        .get(target.url("/nope?x=1"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(target.served(), 1);
    assert_eq!(target.served_path("/nope"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_counted_exactly() {
    let target = HttpTarget::start().await.expect("start");
    let client = client();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..20 {
        let client = client.clone();
        let base = target.base_url();
        tasks.spawn(async move {
            for i in 0..25 {
                let path = if (worker + i) % 2 == 0 {
                    "/get"
                } else {
                    "/status/204"
                };
                let resp = client
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .expect("request");
                assert!(resp.status().is_success());
                resp.bytes().await.expect("body");
            }
        });
    }
    while let Some(res) = tasks.join_next().await {
        res.expect("worker");
    }
    assert_eq!(target.served(), 500);
    assert_eq!(target.served_path("/get"), 250);
    assert_eq!(target.served_path("/status/"), 250);
    target.shutdown().await;
}

#[tokio::test]
async fn http1_keep_alive_serves_many_requests_per_connection() {
    let target = HttpTarget::start().await.expect("start");
    let mut stream = tokio::net::TcpStream::connect(target.addr())
        .await
        .expect("connect");
    for i in 0..3 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.ends_with(b"\r\n\r\nok") {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed after {i} responses");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
    assert_eq!(target.served(), 3);
}

#[tokio::test]
async fn plain_http2_with_prior_knowledge() {
    let target = HttpTarget::start().await.expect("start");
    let client = builder().http2_prior_knowledge().build().expect("client");
    let resp = client
        .get(target.url("/get?h=2"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.version(), Version::HTTP_2);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["args"], json!({"h": "2"}));
    assert_eq!(
        body["headers"]["host"],
        format!("127.0.0.1:{}", target.addr().port())
    );
    assert_eq!(target.served_path("/get"), 1);
}

fn tls_client(target: &HttpTarget, alpn: Option<&[u8]>) -> Client {
    let mut config = target.client_tls_config().expect("tls target");
    if let Some(alpn) = alpn {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    builder()
        .use_preconfigured_tls(config)
        .resolve("localhost", target.addr())
        .build()
        .expect("client")
}

#[tokio::test]
async fn tls_target_serves_h2_and_http1() {
    let target = HttpTarget::start_tls().await.expect("start_tls");
    assert!(target.is_tls());
    assert_eq!(
        target.base_url(),
        format!("https://127.0.0.1:{}", target.addr().port())
    );
    let pem = target.ca_cert_pem().expect("pem");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(!target.ca_cert_der().expect("der").is_empty());

    // ALPN h2 by default.
    let resp = tls_client(&target, None)
        .post(target.url("/post"))
        .json(&json!({"tls": true}))
        .send()
        .await
        .expect("h2 request");
    assert_eq!(resp.version(), Version::HTTP_2);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["json"], json!({"tls": true}));

    // HTTP/1.1 when only http/1.1 is offered.
    let resp = tls_client(&target, Some(b"http/1.1"))
        .get(target.url("/status/201"))
        .send()
        .await
        .expect("http1 request");
    assert_eq!(resp.version(), Version::HTTP_11);
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The certificate is valid for the "localhost" name as well.
    let port = target.addr().port();
    let resp = tls_client(&target, None)
        .get(format!("https://localhost:{port}/"))
        .send()
        .await
        .expect("localhost request");
    assert_eq!(resp.text().await.expect("body"), "ok");

    // A client that does not trust the certificate fails the handshake
    // (and is not counted).
    let err = client()
        .get(target.url("/"))
        .send()
        .await
        .expect_err("untrusted certificate must fail");
    assert!(err.is_connect() || err.is_request(), "{err:?}");

    assert_eq!(target.served(), 3);
    assert_eq!(target.served_path("/post"), 1);
    assert_eq!(target.served_path("/status/"), 1);
    target.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let target = HttpTarget::start().await.expect("start");
    let addr = target.addr();
    let url = target.url("/delay/300");
    let pending = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status()) });
    let deadline = Instant::now() + Duration::from_secs(2);
    while target.served() == 0 {
        assert!(Instant::now() < deadline, "request never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    target.shutdown().await;
    assert_eq!(
        pending.await.expect("join").expect("in-flight request"),
        StatusCode::OK
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn drop_stops_the_server() {
    let target = HttpTarget::start().await.expect("start");
    let addr = target.addr();
    // An idle keep-alive connection must not keep the server alive.
    let client = client();
    client
        .get(target.url("/"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    drop(target);

    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still accepting after drop"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let res = client.get(format!("http://{addr}/")).send().await;
    assert!(res.is_err(), "pooled connection still served after drop");
}

#[tokio::test]
async fn unused_local_port_refuses_connections() {
    let port = unused_local_port();
    assert_ne!(port, 0);
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
}
