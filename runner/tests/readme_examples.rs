//! Every example of README.md runs as shown: each JSON code block is run by the executor, with
//! only what ties it to one machine changed (the target `http://127.0.0.1:8080` becomes the
//! testkit's, the web UI port 8089 a free one, run lengths one second), and the Rust quick
//! start runs against the testkit target. (Its own test binary: the examples use the
//! process-wide record store and output directory.)

use load_density::executor::execute_document;
use load_density_testkit::HttpTarget;
use serde_json::Value;

const README: &str = include_str!("../../README.md");

/// The code blocks of README.md tagged `lang`.
fn blocks(lang: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{lang}") => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                found.extend(current.take());
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    found
}

/// Ties an example to this machine: the testkit target, a free UI port, one-second runs.
fn localise(value: &mut Value, base: &str) {
    match value {
        Value::String(text) if text.contains("http://127.0.0.1:8080") => {
            *text = text.replace("http://127.0.0.1:8080", base);
        }
        Value::Object(map) => {
            if map.contains_key("test_time") {
                map.insert("test_time".into(), Value::from(1));
            }
            if map.get("port").and_then(Value::as_u64) == Some(8089) {
                map.insert("port".into(), Value::from(0));
            }
            for child in map.values_mut() {
                localise(child, base);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| localise(item, base)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_example_runs() {
    let target = HttpTarget::start().await.expect("testkit target");
    let out = tempfile::tempdir().expect("temp dir");
    load_density::output_dir::set_output_dir(Some(out.path().to_path_buf()));
    let examples = blocks("json");
    assert!(
        examples.len() >= 2,
        "the README's JSON examples: {examples:?}"
    );
    for example in examples {
        let mut doc: Value = serde_json::from_str(&example)
            .unwrap_or_else(|e| panic!("a README JSON example is not JSON ({e}):\n{example}"));
        // A lone action (`["LD_start_test", {...}]`) is shown as one line of a document.
        if doc.get(0).is_some_and(Value::is_string) {
            doc = Value::Array(vec![doc]);
        }
        localise(&mut doc, &target.base_url());
        let results = tokio::task::spawn_blocking(move || execute_document(&doc))
            .await
            .expect("the executor thread")
            .expect("an action document");
        for result in &results {
            assert!(result.is_ok(), "{example}\n{result:?}");
        }
    }
    // The quick start's requests are named by their paths, and its report was written.
    let records = load_density::core::test_record_instance().stats();
    assert!(
        records.entry("GET", "/get").is_some(),
        "{:?}",
        records.entries()
    );
    assert!(records.entry("POST", "/post").is_some());
    assert!(out.path().join("summary.json").is_file());
    load_density::output_dir::set_output_dir(None);
}

#[test]
fn the_rust_quick_start_runs() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let target = runtime
        .block_on(HttpTarget::start())
        .expect("testkit target");
    let example = blocks("rust,no_run").concat();
    assert!(example.contains("start_test(config)?"), "{example}");
    // The example's own code, with its host and length localised.
    use load_density::{start_test, StartTest};
    let config: StartTest = serde_json::from_value(serde_json::json!({
        "user_detail_dict": {"user": "http_user"},
        "user_count": 10,
        "spawn_rate": 5,
        "test_time": 1,
        "host": target.base_url(),
        "tasks": [{"method": "get", "request_url": "/"}]
    }))
    .expect("config");
    let summary = start_test(config).expect("the run");
    assert!(summary.totals.requests > 0);
    println!(
        "{} requests, p95 {} ms",
        summary.totals.requests, summary.totals.p95_ms
    );
}
