//! The control socket against a Python standard-library client (as existing clients are): both
//! modes, with and without a token, quit, concurrent clients, every bad input, TLS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use load_density::run_slot;
use load_density::socket_server::{
    SocketServer, SocketServerError, SocketServerOptions, TERMINATOR,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/control/socket_client.py")
}

/// Runs the Python client with `spec` (host and port filled in) and returns its messages.
async fn client(server: &SocketServer, mut spec: Value) -> Vec<String> {
    let addr = server.local_addr();
    spec["host"] = json!(addr.ip().to_string());
    spec["port"] = json!(addr.port());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script())
            .arg(spec.to_string())
            .output()
    })
    .await
    .expect("join")
    .expect("python3 runs (it is needed by this test)");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: Value = serde_json::from_slice(&output.stdout).expect("client prints JSON");
    reply["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m.as_str().expect("text").to_owned())
        .collect()
}

fn options() -> SocketServerOptions {
    SocketServerOptions {
        host: "127.0.0.1".into(),
        port: 0,
        idle_timeout: 1.5,
        read_timeout: 20.0,
        ..SocketServerOptions::default()
    }
}

async fn start(options: SocketServerOptions) -> SocketServer {
    SocketServer::bind(options).await.expect("server starts")
}

const DOC: &str = r#"[["LD_clear_resolver"], ["LD_no_such_command"]]"#;

fn assert_doc_reply(messages: &[String]) {
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0], "{\"status\":\"cleared\"}\n");
    assert!(
        messages[1].starts_with("Error: action 1 (LD_no_such_command): unknown command"),
        "{messages:?}"
    );
    assert_eq!(messages[2], TERMINATOR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_mode_without_a_token_runs_documents_and_envelopes() {
    let server = start(options()).await;
    assert_doc_reply(&client(&server, json!({"send": DOC})).await);
    let envelope = json!({"command": serde_json::from_str::<Value>(DOC).expect("json")});
    assert_doc_reply(&client(&server, json!({"send": envelope.to_string()})).await);
    // A null command gets the terminator only.
    assert_eq!(
        client(&server, json!({"send": "{\"command\": null}"})).await,
        [TERMINATOR]
    );
    server.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framed_mode_with_a_token() {
    let server = start(SocketServerOptions {
        framed: true,
        token: Some("s3cret".into()),
        ..options()
    })
    .await;
    let doc: Value = serde_json::from_str(DOC).expect("json");
    let good = json!({"token": "s3cret", "command": doc});
    assert_doc_reply(&client(&server, json!({"framed": true, "send": good.to_string()})).await);
    let wrong = json!({"token": "s3creT", "command": doc});
    assert_eq!(
        client(&server, json!({"framed": true, "send": wrong.to_string()})).await,
        ["Error: unauthorised\n"]
    );
    assert_eq!(
        client(&server, json!({"framed": true, "send": DOC})).await,
        ["Error: token required\n"]
    );
    assert_eq!(
        client(&server, json!({"framed": true, "send": "quit_server"})).await,
        ["Error: token required\n"]
    );
    let quit_wrong = json!({"token": "nope", "op": "quit"});
    assert_eq!(
        client(
            &server,
            json!({"framed": true, "send": quit_wrong.to_string()})
        )
        .await,
        ["Error: unauthorised\n"]
    );
    // Still serving after all that.
    assert_doc_reply(&client(&server, json!({"framed": true, "send": good.to_string()})).await);
    server.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_mode_with_a_token_and_framed_mode_without() {
    let legacy = start(SocketServerOptions {
        token: Some("t".into()),
        ..options()
    })
    .await;
    assert_eq!(
        client(&legacy, json!({"send": DOC})).await,
        ["Error: token required\n"]
    );
    let doc: Value = serde_json::from_str(DOC).expect("json");
    let good = json!({"token": "t", "command": doc});
    assert_doc_reply(&client(&legacy, json!({"send": good.to_string()})).await);
    legacy.quit();

    let framed = start(SocketServerOptions {
        framed: true,
        ..options()
    })
    .await;
    assert_doc_reply(&client(&framed, json!({"framed": true, "send": DOC})).await);
    framed.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_takes_effect_at_once() {
    for request in [json!({"op": "quit"}).to_string(), "quit_server".to_owned()] {
        let server = start(options()).await;
        let addr = server.local_addr();
        assert_eq!(
            client(&server, json!({"send": request})).await,
            ["Server shutting down\n"]
        );
        // No further connection is needed for the server to stop.
        tokio::time::timeout(Duration::from_secs(10), server.wait())
            .await
            .expect("the server stops without another connection");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "nothing listens any more"
        );
    }
    let server = start(SocketServerOptions {
        token: Some("k".into()),
        ..options()
    })
    .await;
    let quit = json!({"token": "k", "op": "quit"}).to_string();
    assert_eq!(
        client(&server, json!({"send": quit})).await,
        ["Server shutting down\n"]
    );
    tokio::time::timeout(Duration::from_secs(10), server.wait())
        .await
        .expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_each_get_their_own_replies() {
    let server = start(options()).await;
    let replies = futures_like_join(&server, 8).await;
    for (i, messages) in replies.iter().enumerate() {
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(messages[0], "{\"status\":\"cleared\"}\n");
        assert!(
            messages[1].contains(&format!("\"LD_client_{i}\"")),
            "client {i}: {messages:?}"
        );
        assert_eq!(messages[2], TERMINATOR);
    }
    server.quit();
}

async fn futures_like_join(server: &SocketServer, clients: usize) -> Vec<Vec<String>> {
    let mut tasks = tokio::task::JoinSet::new();
    let addr = server.local_addr();
    for i in 0..clients {
        let spec = json!({
            "host": addr.ip().to_string(), "port": addr.port(),
            "send": format!("[[\"LD_clear_records\"], [\"LD_client_{i}\"]]"),
        });
        tasks.spawn_blocking(move || {
            let output = Command::new("python3")
                .arg(script())
                .arg(spec.to_string())
                .output()
                .expect("python3 runs");
            let reply: Value = serde_json::from_slice(&output.stdout).expect("JSON");
            let messages: Vec<String> = reply["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| m.as_str().expect("text").to_owned())
                .collect();
            (i, messages)
        });
    }
    let mut replies = vec![Vec::new(); clients];
    while let Some(joined) = tasks.join_next().await {
        let (i, messages) = joined.expect("join");
        replies[i] = messages;
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_their_error_and_the_server_keeps_serving() {
    let framed = start(SocketServerOptions {
        framed: true,
        ..options()
    })
    .await;
    // An oversized frame length: the error, then the terminator, each framed.
    let oversized = client(&framed, json!({"framed": true, "raw_hex": "00200000"})).await;
    assert_eq!(
        oversized,
        [
            "Error: invalid frame length 2097152 (must be 1 to 1048576 bytes)\n",
            TERMINATOR
        ]
    );
    let zero = client(&framed, json!({"framed": true, "raw_hex": "00000000"})).await;
    assert_eq!(
        zero[0],
        "Error: invalid frame length 0 (must be 1 to 1048576 bytes)\n"
    );
    let invalid = client(&framed, json!({"framed": true, "send": "[[\"LD_summary\""})).await;
    assert!(
        invalid[0].starts_with("Error: EOF while parsing"),
        "{invalid:?}"
    );
    assert_eq!(invalid[1], TERMINATOR);
    // Half-open: a frame announced and never sent; the idle timeout closes it with an error.
    let half = client(&framed, json!({"framed": true, "raw_hex": "0000001000"})).await;
    assert!(half[0].starts_with("Error: no data for"), "{half:?}");
    assert_doc_reply(&client(&framed, json!({"framed": true, "send": DOC})).await);
    framed.quit();

    let legacy = start(options()).await;
    let invalid = client(&legacy, json!({"send": "[[\"LD_summary\"]]]"})).await;
    assert!(
        invalid[0].starts_with("Error: trailing characters"),
        "{invalid:?}"
    );
    assert_eq!(invalid[1], TERMINATOR);
    // More than 1 MiB that never becomes complete JSON.
    let big = json!({"repeat": {"text": "[", "count": (1 << 20) + 1}});
    let too_big = client(&legacy, big).await;
    assert_eq!(
        too_big,
        ["Error: request larger than 1048576 bytes\n", TERMINATOR]
    );
    // Half-open in the legacy mode: incomplete JSON, then silence.
    let half = client(&legacy, json!({"send": "[[\"LD_summary\""})).await;
    assert!(half[0].starts_with("Error: no data for"), "{half:?}");
    // A legacy request split over several writes is read to its end.
    let mut stream = tokio::net::TcpStream::connect(legacy.local_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"[[\"LD_clear_resolver\"],")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream
        .write_all(b" [\"LD_no_such_command\"]]")
        .await
        .expect("write");
    let mut reply = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut reply)
        .await
        .expect("read");
    assert!(reply.ends_with(TERMINATOR), "{reply}");
    assert!(reply.contains("LD_no_such_command"), "{reply}");
    assert_doc_reply(&client(&legacy, json!({"send": DOC})).await);
    legacy.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_with_an_error() {
    let server = start(SocketServerOptions {
        max_connections: 1,
        idle_timeout: 3.0,
        ..options()
    })
    .await;
    // Holds the only slot: connected, silent.
    let holder = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = client(&server, json!({"send": DOC})).await;
    assert_eq!(
        refused,
        [
            "Error: too many connections (at most 1); try again later\n",
            TERMINATOR
        ]
    );
    drop(holder);
    // The slot comes back once the holder is gone.
    let mut served = Vec::new();
    for _ in 0..50 {
        served = client(&server, json!({"send": DOC})).await;
        if served.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_doc_reply(&served);
    server.quit();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_test_is_reported_not_started() {
    let server = start(options()).await;
    let guard = loop {
        // Another test of this binary may hold the slot for a moment; none does here.
        match run_slot::try_start("the test suite") {
            Ok(guard) => break guard,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let doc = json!([["LD_start_test", {"user_detail_dict": {"user": "fast_http_user"},
                                        "test_time": 1, "host": "http://127.0.0.1:9"}]]);
    let reply = client(&server, json!({"send": doc.to_string()})).await;
    assert!(
        reply[0].starts_with("Error: a test is already running (started by the test suite"),
        "{reply:?}"
    );
    assert_eq!(reply[1], TERMINATOR);
    drop(guard);
    server.quit();
}

/// Writes a fresh self-signed certificate for localhost and its key.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_in_both_modes_and_a_plaintext_client_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    for framed in [false, true] {
        let server = start(SocketServerOptions {
            framed,
            token: Some("tls-token".into()),
            certfile: Some(cert.clone()),
            keyfile: Some(key.clone()),
            ..options()
        })
        .await;
        let doc: Value = serde_json::from_str(DOC).expect("json");
        let good = json!({"token": "tls-token", "command": doc}).to_string();
        let tls = json!({"framed": framed, "send": good, "tls_ca": cert});
        assert_doc_reply(&client(&server, tls.clone()).await);
        // A plaintext client: the handshake fails, it gets no reply, the server goes on.
        let plain = client(&server, json!({"framed": framed, "send": good})).await;
        assert!(
            !plain.iter().any(|m| m.contains("Return_Data_Over_JE")),
            "{plain:?}"
        );
        assert_doc_reply(&client(&server, tls).await);
        server.quit();
    }
}

#[tokio::test]
async fn a_certificate_without_its_key_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(dir.path());
    let error = SocketServer::bind(SocketServerOptions {
        certfile: Some(cert),
        ..options()
    })
    .await
    .expect_err("refused");
    assert!(matches!(
        error,
        SocketServerError::TlsIncomplete { given: "certfile" }
    ));
    let error = SocketServer::bind(SocketServerOptions {
        keyfile: Some(key.clone()),
        ..options()
    })
    .await
    .expect_err("refused");
    assert!(
        error.to_string().contains("only keyfile was given"),
        "{error}"
    );
    let error = SocketServer::bind(SocketServerOptions {
        certfile: Some(key.clone()),
        keyfile: Some(key),
        ..options()
    })
    .await
    .expect_err("refused");
    assert!(error.to_string().contains("no CERTIFICATE"), "{error}");
}
