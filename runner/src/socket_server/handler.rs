//! One connection: TLS handshake, one request, its replies.

use std::net::SocketAddr;

use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wire::{self, Limits, ReadError};
use super::{Shared, TERMINATOR};
use crate::executor::{self, error_chain, ActionResult};
use crate::run_slot;

/// Serves one connection to its end.
pub(super) async fn connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    match &shared.tls {
        None => serve(stream, peer, shared).await,
        Some(acceptor) => {
            let idle = shared.options.idle_timeout();
            match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve(tls, peer, shared).await,
                Ok(Err(error)) => {
                    tracing::warn!(%peer, %error, "control socket: TLS handshake failed");
                }
                Err(_) => {
                    tracing::warn!(%peer, "control socket: TLS handshake timed out after {idle:?}");
                }
            }
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    shared: &Shared,
) {
    let framed = shared.options.framed;
    let limits = Limits {
        idle: shared.options.idle_timeout(),
        read: shared.options.read_timeout(),
    };
    let replies = match wire::read_request(&mut stream, framed, limits).await {
        Ok(None) => return,
        Ok(Some(request)) => {
            tracing::info!(%peer, bytes = request.len(), "control socket: command received");
            respond(&request, peer, shared).await
        }
        Err(error) => {
            tracing::warn!(%peer, %error, "control socket: bad request");
            if matches!(error, ReadError::Io(_)) {
                return;
            }
            vec![format!("Error: {error}\n"), TERMINATOR.to_owned()]
        }
    };
    let write = wire::write_messages(&mut stream, framed, &replies);
    match tokio::time::timeout(limits.read, write).await {
        Ok(Ok(())) => {
            let _ = stream.shutdown().await;
        }
        Ok(Err(error)) => tracing::debug!(%peer, %error, "control socket: reply not sent"),
        Err(_) => tracing::warn!(%peer, "control socket: the client did not read its reply"),
    }
}

fn line(text: impl Into<String>) -> String {
    let mut text = text.into();
    text.push('\n');
    text
}

/// The reply messages for one request.
async fn respond(request: &[u8], peer: SocketAddr, shared: &Shared) -> Vec<String> {
    let text = String::from_utf8_lossy(request);
    let text = text.trim();
    if text == "quit_server" {
        if shared.token.is_some() {
            return vec![line("Error: token required")];
        }
        shared.quit();
        return vec![line("Server shutting down")];
    }
    let payload: Value = match serde_json::from_str(text) {
        Ok(payload) => payload,
        Err(error) => return vec![line(format!("Error: {error}")), TERMINATOR.to_owned()],
    };
    let command = match envelope(&payload) {
        Some(envelope) => {
            if !token_matches(shared.token.as_deref(), envelope.get("token")) {
                tracing::warn!(%peer, "control socket: wrong or missing token");
                return vec![line("Error: unauthorised")];
            }
            if envelope.get("op").and_then(Value::as_str) == Some("quit") {
                shared.quit();
                return vec![line("Server shutting down")];
            }
            envelope.get("command").cloned().unwrap_or(Value::Null)
        }
        None if shared.token.is_some() => return vec![line("Error: token required")],
        None => payload,
    };
    if command.is_null() {
        return vec![TERMINATOR.to_owned()];
    }
    let guard = if run_slot::may_start_a_test(&command) {
        match run_slot::try_start(format!("control socket client {peer}")) {
            Ok(guard) => Some(guard),
            Err(busy) => return vec![line(format!("Error: {busy}")), TERMINATOR.to_owned()],
        }
    } else {
        None
    };
    let mut replies = execute(command, guard).await;
    replies.push(TERMINATOR.to_owned());
    replies
}

/// An object with a `token`, `command` or `op` key (the Python server knew the first two; an
/// object with only `op` is taken as an envelope too, so `{"op": "quit"}` works without a
/// token).
fn envelope(payload: &Value) -> Option<&Map<String, Value>> {
    payload.as_object().filter(|map| {
        ["token", "command", "op"]
            .iter()
            .any(|k| map.contains_key(*k))
    })
}

/// Passes without a server token; otherwise the client's must be the same string, compared in
/// constant time.
fn token_matches(expected: Option<&str>, supplied: Option<&Value>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    match supplied.and_then(Value::as_str) {
        Some(supplied) => bool::from(expected.as_bytes().ct_eq(supplied.as_bytes())),
        None => false,
    }
}

/// Runs the document on a thread of its own (`LD_start_test` builds its own runtime), holding
/// the run slot until it ends, even when the client has gone.
async fn execute(document: Value, guard: Option<run_slot::RunGuard>) -> Vec<String> {
    let (done, result) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("ld-socket-document".to_owned())
        .spawn(move || {
            let replies = match executor::execute_document(&document) {
                Ok(results) => results.iter().map(reply_line).collect(),
                Err(error) => vec![line(format!("Error: {}", error_chain(&error)))],
            };
            drop(guard);
            let _ = done.send(replies);
        });
    if let Err(error) = spawned {
        return vec![line(format!("Error: cannot start a thread: {error}"))];
    }
    result
        .await
        .unwrap_or_else(|_| vec![line("Error: the document's thread ended without a result")])
}

/// One action's line: a string as is, any other value as JSON, a failure as `Error: ...`.
fn reply_line(result: &ActionResult) -> String {
    match &result.outcome {
        Ok(Value::String(text)) => line(text.as_str()),
        Ok(value) => line(value.to_string()),
        Err(error) => line(format!(
            "Error: action {} ({}): {}",
            result.index,
            result.command.as_deref().unwrap_or("?"),
            error_chain(error)
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{envelope, token_matches};

    #[test]
    fn tokens_must_be_equal_strings() {
        assert!(token_matches(None, None));
        assert!(token_matches(None, Some(&json!("anything"))));
        assert!(token_matches(Some("abc"), Some(&json!("abc"))));
        assert!(!token_matches(Some("abc"), Some(&json!("abd"))));
        assert!(!token_matches(Some("abc"), Some(&json!("ab"))));
        assert!(!token_matches(Some("abc"), Some(&json!(["abc"]))));
        assert!(!token_matches(Some("abc"), None));
    }

    #[test]
    fn envelopes_have_a_token_command_or_op() {
        assert!(envelope(&json!({"token": "x"})).is_some());
        assert!(envelope(&json!({"command": []})).is_some());
        assert!(envelope(&json!({"op": "quit"})).is_some());
        assert!(envelope(&json!({"load_density": []})).is_none());
        assert!(envelope(&json!([["LD_summary"]])).is_none());
    }
}
