//! HAR import: the Python conversion rules (spec §11), the options it lacks (escaping `${`,
//! correlation), bad input, and the commands.

use load_density::executor::{self, error_chain, ActionResult};
use load_density::import::har::{self, HarOptions};
use serde_json::{json, Value};

fn recorded() -> Value {
    json!({"log": {"version": "1.2", "entries": [
        {"request": {"method": "POST", "url": "http://127.0.0.1:9/login?next=%2F",
            "headers": [
                {"name": "Host", "value": "127.0.0.1:9"},
                {"name": ":authority", "value": "127.0.0.1:9"},
                {"name": "Content-Length", "value": "31"},
                {"name": " Accept ", "value": "first"},
                {"name": "accept", "value": "second"},
                {"name": "Cookie", "value": "a=1"},
                {"name": "  ", "value": "blank"}
            ],
            "postData": {"mimeType": "application/json; charset=utf-8",
                         "text": "{\"user\": \"alice\", \"note\": \"${literal}\"}"}},
         "response": {"status": 200,
            "headers": [{"name": "X-Session", "value": "sess-0123456789"},
                        {"name": "Date", "value": "Mon, 01 Jan 2026 00:00:00 GMT"}],
            "content": {"mimeType": "application/json",
                        "text": "{\"token\": \"tok-abcdef123456\", \"user\": {\"id\": 7}}"}}},
        {"request": {"method": "GET", "url": "http://127.0.0.1:9/api/items?token=tok-abcdef123456",
            "headers": [{"name": "Authorization", "value": "Bearer tok-abcdef123456"},
                        {"name": "X-Session", "value": "sess-0123456789"}]},
         "response": {"status": 0}},
        {"request": {"method": "post", "url": "http://127.0.0.1:9/form",
            "postData": {"mimeType": "application/x-www-form-urlencoded",
                         "params": [{"name": "a", "value": "1"}, {"value": "nameless"}]}},
         "response": {"status": 302}},
        {"request": {"method": "PUT", "url": "http://127.0.0.1:9/raw",
            "postData": {"mimeType": "application/json", "text": "not json"}},
         "response": {"status": 204}},
        {"request": {"method": "GET", "url": "http://127.0.0.1:9/static/app.js"},
         "response": {"status": 200}},
        {"request": {"url": "http://127.0.0.1:9/no-method"}},
        {"request": {"method": "GET", "url": "http://127.0.0.1:9"}, "response": {"status": 200}}
    ]}})
}

#[test]
fn entries_become_tasks_as_in_python() -> anyhow::Result<()> {
    let tasks = har::har_to_tasks(&recorded(), &[], &[], &HarOptions::default())?;
    assert_eq!(tasks.len(), 6, "the entry without a method is dropped");
    assert_eq!(
        tasks[0],
        json!({"method": "post", "request_url": "http://127.0.0.1:9/login?next=%2F",
               "name": "POST /login?next=%2F",
               "headers": {"Accept": "first", "accept": "second", "Cookie": "a=1"},
               "json": {"user": "alice", "note": "${literal}"},
               "assertions": [{"type": "status_code", "value": 200}]})
    );
    assert!(
        tasks[1].get("assertions").is_none(),
        "status 0: no assertion"
    );
    assert_eq!(tasks[2]["data"], json!({"a": "1"}));
    assert_eq!(tasks[2]["name"], "POST /form");
    assert_eq!(tasks[3]["data"], "not json");
    assert_eq!(tasks[5]["name"], "GET /");

    let filtered = har::har_to_tasks(
        &recorded(),
        &["127\\.0\\.0\\.1".to_owned()],
        &["\\.js$".to_owned(), "/form".to_owned()],
        &HarOptions::default(),
    )?;
    let names: Vec<_> = filtered.iter().map(|t| t["name"].clone()).collect();
    assert_eq!(
        names,
        [
            "POST /login?next=%2F",
            "GET /api/items?token=tok-abcdef123456",
            "PUT /raw",
            "GET /"
        ]
    );
    let error = har::har_to_tasks(&recorded(), &["(".to_owned()], &[], &HarOptions::default())
        .expect_err("a bad regex");
    assert!(
        error.to_string().starts_with("include pattern \"(\""),
        "{error}"
    );
    assert!(har::har_to_tasks(&json!({"log": {}}), &[], &[], &HarOptions::default())?.is_empty());
    Ok(())
}

#[test]
fn escaping_and_correlation() -> anyhow::Result<()> {
    let options = HarOptions {
        escape_placeholders: true,
        correlate: true,
        exclude_headers: vec!["cookie".to_owned()],
        keep_cookies: false,
    };
    let tasks = har::har_to_tasks(&recorded(), &[], &[], &options)?;
    assert_eq!(tasks[0]["json"]["note"], "$${literal}");
    assert!(tasks[0]["headers"].get("Cookie").is_none());
    assert_eq!(
        tasks[0]["extract"],
        json!([{"var": "corr_1", "from": "json_path", "path": "token"},
               {"var": "corr_2", "from": "header", "name": "x-session"}])
    );
    assert_eq!(
        tasks[1]["request_url"],
        "http://127.0.0.1:9/api/items?token=${var.corr_1}"
    );
    assert_eq!(tasks[1]["headers"]["Authorization"], "Bearer ${var.corr_1}");
    assert_eq!(tasks[1]["headers"]["X-Session"], "${var.corr_2}");
    assert!(tasks[1].get("extract").is_none());
    Ok(())
}

#[test]
fn bad_files_are_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let not_json = dir.path().join("broken.har");
    std::fs::write(&not_json, "{\"log\": [")?;
    let error = har::load_har(&not_json).expect_err("not JSON");
    let text = error.to_string();
    assert!(
        text.contains("broken.har") && text.contains("HAR JSON does not parse"),
        "{text}"
    );
    assert!(text.contains("line 1"), "{text}");

    let bom = dir.path().join("bom.har");
    std::fs::write(&bom, format!("\u{feff}{}", json!({"log": {"entries": []}})))?;
    let har = har::load_har(&bom)?;
    let error = har::har_to_action_json(
        &har,
        "fast_http_user",
        1,
        1.0,
        1.0,
        &[],
        &[],
        &HarOptions::default(),
    )
    .expect_err("no entries");
    assert_eq!(
        error.to_string(),
        "the HAR has no entries (log.entries is missing or empty)"
    );
    let no_log = dir.path().join("nolog.har");
    std::fs::write(&no_log, "[]")?;
    assert!(har::load_har(&no_log)
        .expect_err("no log")
        .to_string()
        .contains("no \"log\" object"));
    Ok(())
}

fn ok_value(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

#[test]
fn commands_load_and_convert() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("r.har");
    std::fs::write(&file, recorded().to_string())?;
    let path = file.display().to_string();
    let results = executor::execute_document(&json!([
        ["LD_load_har", {"file_path": path}],
        ["LD_har_to_tasks", {"har": recorded(), "include": "/form"}],
        ["LD_har_to_action_json", {"har": recorded(), "user": "http_user", "user_count": 3,
                                   "exclude": ["static"], "correlate": true}],
        ["LD_load_har", [dir.path().join("missing.har").display().to_string()]]
    ]))?;
    assert_eq!(ok_value(&results[0]), &recorded());
    assert_eq!(ok_value(&results[1]).as_array().map(Vec::len), Some(1));
    let plan = ok_value(&results[2]);
    let start = &plan["load_density"][0];
    assert_eq!(start[0], "LD_start_test");
    assert_eq!(start[1]["user_detail_dict"], json!({"user": "http_user"}));
    assert_eq!(start[1]["user_count"], 3);
    assert_eq!(start[1]["tasks"]["mode"], "sequence");
    assert_eq!(start[1]["tasks"]["tasks"].as_array().map(Vec::len), Some(5));
    let missing = match &results[3].outcome {
        Err(error) => error_chain(error),
        Ok(value) => panic!("loaded a missing file: {value}"),
    };
    assert!(
        missing.starts_with("LD_load_har: cannot read "),
        "{missing}"
    );
    Ok(())
}
