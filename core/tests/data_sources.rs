//! CSV data sources: binding, cycling, exhaustion, per-user rows, and errors that name file
//! and line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use load_density_core::data::{DataError, DataSourceSpec, DataSources, OnEnd};
use load_density_core::template::{JsonTemplate, Template};
use load_density_core::variables::{UserVariables, Variables};
use serde_json::json;

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).expect("write csv");
    path
}

fn user(data: &Arc<DataSources>, id: u64) -> UserVariables {
    UserVariables::with_data(Arc::new(Variables::new()), data.clone(), id)
}

fn open(specs: Vec<DataSourceSpec>) -> Arc<DataSources> {
    Arc::new(DataSources::open(specs).expect("open"))
}

const USERS: &str = "email,password\na@x,1\nb@x,2\nc@x,3\n";

#[test]
fn columns_of_one_task_come_from_the_same_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "users.csv", USERS.as_bytes());
    let data = open(vec![DataSourceSpec::new("users", &path)]);
    let login = Template::parse("${csv.users.email}/${csv.users.password}");
    let again = Template::parse("${csv.users.password}");
    let mut v = user(&data, 0);
    v.begin_task();
    assert_eq!(login.render(&v), "a@x/1");
    assert_eq!(again.render(&v), "1", "still the same task, same row");
    v.begin_task();
    assert_eq!(again.render(&v), "2", "a new task takes the next row");
    assert_eq!(login.render(&v), "b@x/2");
}

#[test]
fn cycling_source_starts_again_after_the_last_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "users.csv",
        b"email,password\r\na@x,1\r\nb@x,2\r\n",
    );
    let data = open(vec![DataSourceSpec::new("users", &path)]);
    let t = Template::parse("${csv.users.email}:${csv.users.password}");
    let mut v = user(&data, 0);
    let mut seen = Vec::new();
    for _ in 0..5 {
        v.begin_task();
        seen.push(t.render(&v).into_owned());
    }
    assert_eq!(seen, ["a@x:1", "b@x:2", "a@x:1", "b@x:2", "a@x:1"]);
    assert_eq!(v.take_exhausted(), None);
}

#[test]
fn non_cycling_source_reports_its_on_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "users.csv", USERS.as_bytes());
    for on_end in [OnEnd::StopUser, OnEnd::StopRun] {
        let data = open(vec![DataSourceSpec::new("users", &path)
            .with_cycle(false)
            .with_on_end(on_end)]);
        let t = Template::parse("${csv.users.email}");
        let mut v = user(&data, 0);
        for expected in ["a@x", "b@x", "c@x"] {
            v.begin_task();
            assert_eq!(t.render(&v), expected);
            assert_eq!(v.take_exhausted(), None);
        }
        v.begin_task();
        assert_eq!(t.render(&v), "${csv.users.email}", "stays as written");
        assert_eq!(v.take_exhausted(), Some(on_end));
        assert_eq!(v.take_exhausted(), None, "taking clears it");
        // Another user meets the same end.
        let mut other = user(&data, 1);
        other.begin_task();
        assert_eq!(t.render(&other), "${csv.users.email}");
        assert_eq!(other.take_exhausted(), Some(on_end));
    }
}

#[test]
fn on_end_stop_run_wins_over_stop_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "one.csv", b"id\n1\n");
    let data = open(vec![
        DataSourceSpec::new("a", &path).with_cycle(false),
        DataSourceSpec::new("b", &path)
            .with_cycle(false)
            .with_on_end(OnEnd::StopRun),
    ]);
    let t = Template::parse("${csv.a.id}${csv.b.id}${csv.a.id}");
    let mut v = user(&data, 0);
    v.begin_task();
    assert_eq!(t.render(&v), "111");
    v.begin_task();
    assert_eq!(t.render(&v), "${csv.a.id}${csv.b.id}${csv.a.id}");
    assert_eq!(v.take_exhausted(), Some(OnEnd::StopRun));
}

#[test]
fn per_user_rows_are_distinct_and_kept_for_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "users.csv", USERS.as_bytes());
    let data = open(vec![
        DataSourceSpec::new("accounts", &path).with_per_user(true),
        DataSourceSpec::new("tasks", &path),
    ]);
    assert!(!data.spec("accounts").expect("spec").cycle());
    assert!(data.spec("tasks").expect("spec").cycle());
    let t = Template::parse("${csv.accounts.email}|${csv.tasks.email}");
    let mut users: Vec<_> = (0..3).map(|id| user(&data, id)).collect();
    let mut first = Vec::new();
    for v in &mut users {
        v.begin_task();
        first.push(t.render(v).into_owned());
    }
    // Per-user rows: one each, distinct. Per-task rows are shared out across users too.
    assert_eq!(first, ["a@x|a@x", "b@x|b@x", "c@x|c@x"]);
    for (v, was) in users.iter_mut().zip(&first) {
        for _ in 0..4 {
            v.begin_task();
            let now = t.render(v).into_owned();
            assert_eq!(now.split('|').next(), was.split('|').next());
        }
    }
    // A fourth user finds no row left: stop_user by default.
    let mut late = user(&data, 3);
    late.begin_task();
    assert!(t.render(&late).starts_with("${csv.accounts.email}|"));
    assert_eq!(late.take_exhausted(), Some(OnEnd::StopUser));
    late.begin_task();
    let _ = t.render(&late);
    assert_eq!(
        late.take_exhausted(),
        Some(OnEnd::StopUser),
        "reported again each task"
    );

    // With an explicit cycle, later users reuse rows from the top.
    let data = open(vec![DataSourceSpec::new("accounts", &path)
        .with_per_user(true)
        .with_cycle(true)]);
    let t = Template::parse("${csv.accounts.email}");
    let got: Vec<_> = (0..4)
        .map(|id| {
            let mut v = user(&data, id);
            v.begin_task();
            t.render(&v).into_owned()
        })
        .collect();
    assert_eq!(got, ["a@x", "b@x", "c@x", "a@x"]);
}

#[test]
fn concurrent_users_never_share_a_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut content = String::from("id\n");
    for i in 0..4000 {
        content.push_str(&format!("{i}\n"));
    }
    let path = write(dir.path(), "ids.csv", content.as_bytes());
    let data = open(vec![DataSourceSpec::new("ids", &path).with_cycle(false)]);
    let t = Arc::new(Template::parse("${csv.ids.id}"));
    let handles: Vec<_> = (0..4)
        .map(|id| {
            let data = data.clone();
            let t = t.clone();
            std::thread::spawn(move || {
                let mut v = user(&data, id);
                let mut got = Vec::new();
                loop {
                    v.begin_task();
                    let value = t.render(&v).into_owned();
                    if v.take_exhausted().is_some() {
                        return got;
                    }
                    got.push(value);
                }
            })
        })
        .collect();
    let mut all = HashSet::new();
    let mut total = 0;
    for handle in handles {
        for value in handle.join().expect("thread") {
            total += 1;
            assert!(all.insert(value.clone()), "{value} bound twice");
        }
    }
    assert_eq!(total, 4000);
}

#[test]
fn bom_is_stripped_and_header_names_trimmed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "bom.csv",
        "\u{feff}id, email\n1,a@x\n2,b@x\n".as_bytes(),
    );
    let data = open(vec![DataSourceSpec::new("s", &path)]);
    assert_eq!(
        data.columns("s").expect("columns"),
        ["id".to_owned(), "email".to_owned()]
    );
    let t = Template::parse("${csv.s.id}-${csv.s.email}");
    let mut v = user(&data, 0);
    for expected in ["1-a@x", "2-b@x", "1-a@x"] {
        v.begin_task();
        assert_eq!(t.render(&v), expected, "cycling seeks past the BOM");
    }
}

#[test]
fn quoted_fields_keep_commas_quotes_and_newlines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "q.csv",
        b"name,note\n\"Doe, Jane\",\"said \"\"hi\"\"\nthen left\"\nbob,x\nragged\n",
    );
    let data = open(vec![DataSourceSpec::new("q", &path)]);
    let t = Template::parse("${csv.q.name}|${csv.q.note}");
    let mut v = user(&data, 0);
    v.begin_task();
    assert_eq!(t.render(&v), "Doe, Jane|said \"hi\"\nthen left");
    v.begin_task();
    assert_eq!(t.render(&v), "bob|x");
    v.begin_task();
    let _ = t.render(&v);
    // The quoted field spans lines 2-3, so the ragged row is on line 5.
    let errors = data.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .to_string()
            .ends_with("q.csv line 5: 1 field, expected 2 (name, note)"),
        "{}",
        errors[0]
    );
}

#[test]
fn open_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = |name: &str, content: &[u8]| {
        let path = write(dir.path(), name, content);
        DataSources::open([DataSourceSpec::new("s", &path)])
            .expect_err("should not open")
            .to_string()
    };
    let text = error("users.csv", b"");
    assert!(text.ends_with("users.csv line 1: empty header"), "{text}");
    let text = error("blank.csv", "\u{feff}".as_bytes());
    assert!(text.ends_with("blank.csv line 1: empty header"), "{text}");
    let text = error("only_header.csv", b"id,email\n");
    assert!(
        text.ends_with("only_header.csv line 1: no data rows after the header"),
        "{text}"
    );
    let text = error("dup.csv", b"id,id\n1,2\n");
    assert!(
        text.ends_with("dup.csv line 1: duplicate header column \"id\""),
        "{text}"
    );
    let text = error("empty_col.csv", b"id,,x\n1,2,3\n");
    assert!(
        text.ends_with("empty_col.csv line 1: header column 2 has an empty name"),
        "{text}"
    );
    let text = error("bad_header.csv", b"id,\xff\n1,2\n");
    assert!(
        text.ends_with("bad_header.csv line 1: header column 2 is not valid UTF-8"),
        "{text}"
    );

    let missing = dir.path().join("nope.csv");
    let err = DataSources::open([DataSourceSpec::new("users", &missing)]).expect_err("missing");
    let text = err.to_string();
    assert!(matches!(err, DataError::Open { .. }));
    assert!(
        text.starts_with("data source \"users\": cannot open ") && text.contains("nope.csv"),
        "{text}"
    );

    let path = write(dir.path(), "ok.csv", USERS.as_bytes());
    let text = DataSources::open([
        DataSourceSpec::new("s", &path),
        DataSourceSpec::new("s", &path),
    ])
    .expect_err("duplicate")
    .to_string();
    assert!(text.contains("two data sources are named \"s\""), "{text}");
    let text = DataSources::open([DataSourceSpec::new("a.b", &path)])
        .expect_err("dot")
        .to_string();
    assert!(text.contains("must not contain '.'"), "{text}");
}

#[test]
fn check_template_names_source_column_and_known_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "users.csv", USERS.as_bytes());
    let data = open(vec![DataSourceSpec::new("users", &path)]);
    data.check_template(&Template::parse("${csv.users.email} ${csv.users.password}"))
        .expect("valid");
    let text = data
        .check_template(&Template::parse("x ${csv.users.mail}"))
        .expect_err("missing column")
        .to_string();
    assert!(
        text.starts_with("${csv.users.mail}: data source \"users\" (")
            && text.contains("users.csv) has no column \"mail\" (columns: email, password)"),
        "{text}"
    );
    let text = data
        .check_template(&Template::parse("${csv.people.email}"))
        .expect_err("unknown source")
        .to_string();
    assert_eq!(
        text,
        "${csv.people.email}: unknown data source \"people\" (known sources: users)"
    );
    let json = JsonTemplate::new(json!({"a": ["${csv.users.email}", "${csv.users.pw}"]}));
    let text = data
        .check_json_template(&json)
        .expect_err("json")
        .to_string();
    assert!(text.contains("no column \"pw\""), "{text}");
    let text = DataSources::empty()
        .check_template(&Template::parse("${csv.users.email}"))
        .expect_err("no sources")
        .to_string();
    assert!(text.contains("(known sources: none)"), "{text}");
}

#[test]
fn ragged_and_invalid_rows_are_skipped_reported_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "users.csv",
        b"email,password\na@x,1\nb@x,2,extra\nc@x,\xff\xfe\nd@x,4\n",
    );
    let data = open(vec![DataSourceSpec::new("users", &path)]);
    let t = Template::parse("${csv.users.email}");
    let mut v = user(&data, 0);
    let mut got = Vec::new();
    for _ in 0..4 {
        v.begin_task();
        got.push(t.render(&v).into_owned());
    }
    assert_eq!(got, ["a@x", "d@x", "a@x", "d@x"]);
    let errors: Vec<_> = data.errors().iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].ends_with("users.csv line 3: 3 fields, expected 2 (email, password)"),
        "{errors:?}"
    );
    assert!(
        errors[1].ends_with("users.csv line 4: invalid UTF-8 in column \"password\""),
        "{errors:?}"
    );
    // Reported once, counted every time the row is skipped.
    assert_eq!(data.skipped_rows(), 4);
}

#[test]
fn a_source_with_no_good_row_ends_instead_of_spinning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "bad.csv", b"a,b\n1\n2\n3,4,5\n");
    let data = open(vec![DataSourceSpec::new("bad", &path)]);
    let mut v = user(&data, 0);
    v.begin_task();
    assert_eq!(Template::parse("${csv.bad.a}").render(&v), "${csv.bad.a}");
    assert_eq!(v.take_exhausted(), Some(OnEnd::StopUser));
    assert_eq!(data.errors().len(), 3);
}

#[test]
fn unknown_source_or_column_uses_up_no_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "users.csv", USERS.as_bytes());
    let data = open(vec![DataSourceSpec::new("users", &path)]);
    let mut v = user(&data, 0);
    v.begin_task();
    assert_eq!(
        Template::parse("${csv.users.nope}${csv.other.email}").render(&v),
        "${csv.users.nope}${csv.other.email}"
    );
    assert_eq!(Template::parse("${csv.users.email}").render(&v), "a@x");
    assert_eq!(v.take_exhausted(), None);
    // Without data sources at all, the placeholder stays.
    let plain = UserVariables::new(Arc::new(Variables::new()));
    assert_eq!(
        Template::parse("${csv.users.email}").render(&plain),
        "${csv.users.email}"
    );
}

#[test]
fn specs_parse_from_json_with_defaults_and_located_errors() {
    let specs = DataSourceSpec::list_from_json(&json!([
        {"name": "a", "file_path": "a.csv"},
        {"name": "b", "file_path": "b.csv", "cycle": false, "on_end": "stop_run", "per_user": true},
    ]))
    .expect("specs");
    assert!(specs[0].cycle() && !specs[0].per_user());
    assert_eq!(specs[0].on_end(), OnEnd::StopUser);
    assert!(!specs[1].cycle() && specs[1].per_user());
    assert_eq!(specs[1].on_end(), OnEnd::StopRun);
    assert!(DataSourceSpec::list_from_json(&json!(null))
        .expect("null")
        .is_empty());
    let text = DataSourceSpec::list_from_json(&json!([
        {"name": "a", "file_path": "a.csv"},
        {"name": "b", "file_path": "b.csv", "on_end": "explode"},
    ]))
    .expect_err("bad on_end")
    .to_string();
    assert!(
        text.starts_with("csv_sources[1].on_end: unknown variant `explode`"),
        "{text}"
    );
    let text = DataSourceSpec::list_from_json(&json!([{"name": "a"}]))
        .expect_err("no path")
        .to_string();
    assert!(
        text.contains("csv_sources[0]") && text.contains("file_path"),
        "{text}"
    );
    let text = DataSourceSpec::list_from_json(&json!({"name": "a"}))
        .expect_err("not a list")
        .to_string();
    assert!(text.starts_with("csv_sources: "), "{text}");
}
