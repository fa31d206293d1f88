//! The Python report commands' files, byte for byte against hand-written expected files
//! (runner/tests/fixtures/reports), for a small fixed record set; empty stores and records
//! past the cap; the commands through the executor.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use load_density::core::{RequestEvent, TestRecord};
use load_density::reports::{csv, html_fragments, json, junit, xml};

fn event(
    method: &str,
    url: &str,
    name: &str,
    status: Option<u16>,
    us: u64,
    length: u64,
    error: Option<&str>,
) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from(method),
        name: Arc::from(name),
        url: Arc::from(url),
        status,
        response_time: Duration::from_micros(us),
        response_length: length,
        error: error.map(Arc::from),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

fn fixed_records() -> TestRecord {
    let store = TestRecord::default();
    store.record_events(&[
        event(
            "GET",
            "http://127.0.0.1/a",
            "/a",
            Some(200),
            12_500,
            42,
            None,
        ),
        event(
            "POST",
            "http://127.0.0.1/login",
            "login \"é\"",
            Some(503),
            1_500,
            5,
            Some("HTTP 503"),
        ),
        event(
            "GET",
            "http://127.0.0.1/q?x=1,2",
            "",
            Some(200),
            20_000,
            0,
            None,
        ),
        event(
            "WS",
            "ws://127.0.0.1/s",
            "<ws>",
            None,
            0,
            0,
            Some("it's <closed> & gone"),
        ),
    ]);
    store
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reports")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_same(written: &Path, expected: &str) {
    let got = std::fs::read(written).expect("report written");
    let want = fixture(expected);
    assert!(
        got == want,
        "{} differs from {expected}:\n--- got ---\n{}\n--- expected ---\n{}",
        written.display(),
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
}

fn base(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

#[test]
fn json_files_match_python_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (success, failure) =
        json::generate_json_report(&fixed_records(), &base(&dir, "records")).expect("written");
    assert_eq!(success, PathBuf::from(base(&dir, "records_success.json")));
    assert_same(&success, "records_success.json");
    assert_same(&failure, "records_failure.json");
}

#[test]
fn xml_files_match_python_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (success, failure) =
        xml::generate_xml_report(&fixed_records(), &base(&dir, "records")).expect("written");
    assert_same(&success, "records_success.xml");
    assert_same(&failure, "records_failure.xml");
}

#[test]
fn csv_file_matches_python_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = csv::generate_csv_report(&fixed_records(), &base(&dir, "records")).expect("written");
    assert_same(&path, "records.csv");
}

#[test]
fn junit_file_matches_python_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = junit::generate_junit_report(&fixed_records(), &base(&dir, "records_junit"))
        .expect("written");
    assert_same(&path, "records_junit.xml");
}

#[test]
fn in_memory_forms_have_python_shapes() {
    let store = fixed_records();
    let (success, failure) = json::generate_json(&store);
    let expected: serde_json::Value =
        serde_json::from_slice(&fixture("records_success.json")).expect("fixture JSON");
    assert_eq!(success, expected);
    assert_eq!(failure["Failure_Test2"]["status_code"], "None");

    let (_, failure_xml) = xml::generate_xml(&store);
    assert_eq!(
        failure_xml,
        "<xml_data><Failure_Test1><Method>POST</Method><test_url>http://127.0.0.1/login</test_url>\
         <name>login \"é\"</name><status_code>503</status_code><error>HTTP 503</error>\
         </Failure_Test1><Failure_Test2><Method>WS</Method><test_url>ws://127.0.0.1/s</test_url>\
         <name>&lt;ws&gt;</name><status_code>None</status_code><error>it's &lt;closed&gt; &amp; \
         gone</error></Failure_Test2></xml_data>"
    );

    let (s, f) = html_fragments::generate_html(&store);
    assert_eq!((s.len(), f.len()), (2, 2));
    assert_eq!(s[0].as_bytes(), fixture("records_success_fragment1.html"));
    assert_eq!(f[1].as_bytes(), fixture("records_failure_fragment2.html"));
}

#[test]
fn an_empty_store_gives_empty_reports_rather_than_an_error() {
    let store = TestRecord::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = json::generate_json_report(&store, &base(&dir, "empty")).expect("json");
    assert_eq!(std::fs::read_to_string(s).expect("read"), "{}");
    assert_eq!(std::fs::read_to_string(f).expect("read"), "{}");
    let (s, _) = xml::generate_xml_report(&store, &base(&dir, "empty")).expect("xml");
    assert_eq!(
        std::fs::read_to_string(s).expect("read"),
        "<?xml version=\"1.0\" ?>\n<xml_data/>\n"
    );
    assert_eq!(xml::generate_xml(&store).0, "<xml_data />");
    let path = csv::generate_csv_report(&store, &base(&dir, "empty")).expect("csv");
    assert_eq!(
        std::fs::read_to_string(path).expect("read"),
        "outcome,Method,test_url,name,status_code,response_time_ms,response_length,error\r\n"
    );
    let path = junit::generate_junit_report(&store, &base(&dir, "empty_junit")).expect("junit");
    assert_eq!(
        std::fs::read_to_string(path).expect("read"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><testsuite name=\"loaddensity\" tests=\"0\" \
         failures=\"0\"></testsuite>"
    );
}

#[test]
fn records_past_the_cap_are_counted_in_every_report() {
    let store = TestRecord::with_capacity(2);
    store.record_events(&[
        event("GET", "u", "/a", Some(200), 1000, 1, None),
        event("GET", "u", "/a", Some(200), 1000, 1, None),
        event("GET", "u", "/a", Some(200), 1000, 1, None),
        event("GET", "u", "/a", Some(500), 1000, 1, Some("HTTP 500")),
    ]);
    assert_eq!(store.dropped(), 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = json::generate_json_report(&store, &base(&dir, "cap")).expect("json");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s).expect("read")).expect("json");
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f).expect("read")).expect("json");
    assert_eq!(s["Dropped_Records"], "1");
    assert_eq!(f["Dropped_Records"], "1");
    assert_eq!(f.as_object().map(|o| o.len()), Some(1));
    let (s, _) = xml::generate_xml_report(&store, &base(&dir, "cap")).expect("xml");
    assert!(std::fs::read_to_string(s)
        .expect("read")
        .contains("\t<Dropped_Records>1</Dropped_Records>\n</xml_data>"));
    let path = csv::generate_csv_report(&store, &base(&dir, "cap")).expect("csv");
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.ends_with("dropped,,,,,,,2 records (1 successes and 1 failures) were counted but not kept: the record store was full\r\n"), "{text}");
    let path = junit::generate_junit_report(&store, &base(&dir, "cap_junit")).expect("junit");
    assert!(std::fs::read_to_string(path)
        .expect("read")
        .contains("<property name=\"dropped_records\" value=\"2\"/>"));
}

#[test]
fn an_empty_name_is_an_error() {
    let store = fixed_records();
    let error = csv::generate_csv_report(&store, "").expect_err("empty name");
    assert_eq!(error.to_string(), "the report name is empty");
}

#[test]
fn an_unwritable_path_is_an_error_naming_the_file() {
    let store = fixed_records();
    let error = json::generate_json_report(&store, "/nonexistent-dir/x").expect_err("no dir");
    assert!(
        error
            .to_string()
            .contains("/nonexistent-dir/x_success.json"),
        "{error}"
    );
}
