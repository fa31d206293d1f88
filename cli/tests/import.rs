//! `load-density har FILE` and `load-density openapi SPEC`: the real binary prints an action
//! document; bad input is an error on stderr with exit status 1.

use std::process::Command;

use serde_json::{json, Value};

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_load-density"))
}

#[test]
fn har_and_openapi_print_action_documents() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let har = dir.path().join("r.har");
    std::fs::write(
        &har,
        json!({"log": {"entries": [
            {"request": {"method": "GET", "url": "http://127.0.0.1:9/a?x=${y}"},
             "response": {"status": 200}}
        ]}})
        .to_string(),
    )?;
    let output = binary()
        .arg("har")
        .arg(&har)
        .args(["--user-count", "3", "--escape-placeholders"])
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout)?;
    let start = &plan["load_density"][0][1];
    assert_eq!(start["user_count"], 3);
    assert_eq!(
        start["tasks"]["tasks"][0]["request_url"],
        "http://127.0.0.1:9/a?x=$${y}"
    );

    let spec = dir.path().join("api.json");
    std::fs::write(
        &spec,
        json!({"openapi": "3.0.0", "servers": [{"url": "http://127.0.0.1:9"}],
        "paths": {"/items/{id}": {"get": {"parameters": [
            {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}
        ]}}}})
        .to_string(),
    )?;
    let output = binary().arg("openapi").arg(&spec).output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: Value = serde_json::from_slice(&output.stdout)?;
    let start = &plan["load_density"][0][1];
    assert_eq!(start["variables"], json!({"id": 1}));
    assert_eq!(
        start["tasks"][0]["request_url"],
        "http://127.0.0.1:9/items/${var.id}"
    );

    let empty = dir.path().join("empty.har");
    std::fs::write(&empty, "{\"log\": {}}")?;
    let output = binary().arg("har").arg(&empty).output()?;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("the HAR has no entries"), "{stderr}");
    Ok(())
}
