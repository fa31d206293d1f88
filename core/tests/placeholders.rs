//! Every placeholder kind and JSON types kept (unknown ones reported once: placeholder_warnings.rs).

use std::sync::Arc;

use load_density_core::data::{DataSourceSpec, DataSources};
use load_density_core::template::{JsonTemplate, Placeholder, Template};
use load_density_core::variables::{UserVariables, Variables};
use serde_json::json;

fn vars() -> UserVariables {
    let mut run = Variables::new();
    run.insert("base", json!("http://h"));
    run.insert("n", json!(5));
    run.insert("flag", json!(true));
    run.insert("obj", json!({"a": [1, "x"]}));
    run.insert("nothing", json!(null));
    UserVariables::new(Arc::new(run))
}

#[test]
fn variables_user_scope_first_then_run_non_strings_as_json() {
    let mut v = vars();
    assert_eq!(
        Template::parse("${var.base}/${base}/${ n }").render(&v),
        "http://h/http://h/5"
    );
    assert_eq!(
        Template::parse("${VAR.flag} ${obj}").render(&v),
        r#"true {"a":[1,"x"]}"#
    );
    v.set("base", json!("mine"));
    assert_eq!(Template::parse("${var.base}").render(&v), "mine");
    // null counts as missing in text.
    assert_eq!(
        Template::parse("${var.nothing}").render(&v),
        "${var.nothing}"
    );
}

#[test]
fn env_functions_and_faker_resolve() {
    let v = vars();
    std::env::set_var("LD_PLACEHOLDER_TEST_ENV", "from-env");
    assert_eq!(
        Template::parse("<${env.LD_PLACEHOLDER_TEST_ENV}>").render(&v),
        "<from-env>"
    );
    assert_eq!(
        Template::parse("${Env.LD_PLACEHOLDER_TEST_UNSET}").render(&v),
        "${Env.LD_PLACEHOLDER_TEST_UNSET}"
    );

    let uuid = Template::parse("${uuid()}");
    let a = uuid.render(&v).into_owned();
    let b = Template::parse("${UUID()}").render(&v).into_owned();
    assert_ne!(a, b);
    for id in [&a, &b] {
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(id.as_bytes()[14], b'4', "{id}");
        assert_eq!(id.to_lowercase(), *id);
    }

    let now = Template::parse("${Now()}").render(&v).into_owned();
    let parsed = chrono_like_parse(&now);
    assert!(parsed, "{now} is not ISO-8601 with an offset");

    let randint = Template::parse("${randint(-2, 2)}");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let n: i64 = randint.render(&v).parse().expect("an integer");
        assert!((-2..=2).contains(&n));
        seen.insert(n);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(
        Template::parse("${RANDINT(7,7)}").render(&v),
        "7",
        "case-insensitive, inclusive"
    );

    for method in [
        "name",
        "first_name",
        "last_name",
        "email",
        "safe_email",
        "user_name",
        "phone_number",
        "city",
        "country",
        "street_address",
        "company_name",
        "company",
        "word",
        "sentence",
        "uuid",
    ] {
        let template = Template::parse(&format!("${{faker.{method}}}"));
        assert!(
            matches!(template.placeholders().next(), Some(Placeholder::Faker(_))),
            "{method}"
        );
        let value = template.render(&v);
        assert!(
            !value.is_empty() && !value.contains("${"),
            "{method}: {value}"
        );
    }
    assert!(Template::parse("${faker.email}").render(&v).contains('@'));
    assert!(Template::parse("${FAKER.Email}").render(&v).contains('@'));
}

/// `YYYY-MM-DDTHH:MM:SS+HH:MM` (or `-HH:MM`).
fn chrono_like_parse(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 25
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && (bytes[19] == b'+' || bytes[19] == b'-')
        && bytes[22] == b':'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 22) || c.is_ascii_digit())
}

#[test]
fn escapes_and_malformed_text_stay_literal() {
    let v = vars();
    assert_eq!(Template::parse("$${var.base}").render(&v), "${var.base}");
    assert_eq!(Template::parse("a $5 {x} ${").render(&v), "a $5 {x} ${");
    assert_eq!(Template::parse("${}").render(&v), "${}");
    assert!(Template::parse("$${x}").as_constant().is_some());
}

#[test]
fn bad_function_calls_are_unknown_and_listed_never_a_panic() {
    let v = vars();
    for (text, reason) in [
        ("${randint(1)}", "exactly 2 arguments"),
        ("${randint(1,2,3)}", "exactly 2 arguments"),
        ("${randint(a,2)}", "not a 64-bit integer"),
        ("${randint(1.5,2)}", "not a 64-bit integer"),
        ("${randint(9,1)}", "less than a"),
        ("${randint(1,99999999999999999999)}", "not a 64-bit integer"),
        ("${uuid(1)}", "no arguments"),
        ("${frobnicate()}", "unknown function"),
        ("${faker.no_such_thing}", "unknown faker method"),
        ("${csv.only_source}", "${csv.SOURCE.COLUMN}"),
        ("${http.x}", "unknown prefix"),
        ("${ }", "empty placeholder"),
    ] {
        let template = Template::parse(&format!("x={text};"));
        let unknown: Vec<_> = template.unknown_placeholders().collect();
        assert_eq!(unknown.len(), 1, "{text}");
        assert_eq!(unknown[0].raw(), text);
        assert!(unknown[0].reason().contains(reason), "{text}: {unknown:?}");
        assert_eq!(template.render(&v), format!("x={text};"));
        // Nothing can change: rendering borrows.
        assert_eq!(template.as_constant(), Some(format!("x={text};").as_str()));
    }
    let fine = Template::parse("${var.x} ${uuid()} ${randint(1,2)} ${faker.name} ${csv.a.b}");
    assert_eq!(fine.unknown_placeholders().count(), 0);
}

#[test]
fn json_single_placeholder_keeps_its_type() {
    let mut run = Variables::new();
    run.insert("n", json!(5));
    run.insert("list", json!([1, 2]));
    run.insert("nothing", json!(null));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ids.csv");
    std::fs::write(&path, "id\n42\n").expect("write");
    let data = Arc::new(DataSources::open([DataSourceSpec::new("ids", &path)]).expect("open"));
    let mut v = UserVariables::with_data(Arc::new(run), data, 0);
    v.begin_task();
    let template = JsonTemplate::new(json!({
        "n": "${var.n}",
        "list": "${list}",
        "null": "${var.nothing}",
        "r": "${randint(3,3)}",
        "r_text": "r=${randint(3,3)}",
        "csv": "${csv.ids.id}",
        "uuid": "${uuid()}",
        "nested": [{"n": "${var.n}"}, 1, false],
        "escaped": "$${var.n}",
        "missing": "${var.missing_json}",
    }));
    assert!(template.is_dynamic());
    let rendered = template.render(&v).into_owned();
    assert_eq!(rendered["n"], json!(5));
    assert_eq!(rendered["list"], json!([1, 2]));
    assert_eq!(rendered["null"], json!(null));
    assert_eq!(rendered["r"], json!(3));
    assert_eq!(rendered["r_text"], json!("r=3"));
    assert_eq!(rendered["csv"], json!("42"));
    assert!(rendered["uuid"].is_string());
    assert_eq!(rendered["nested"], json!([{"n": 5}, 1, false]));
    assert_eq!(rendered["escaped"], json!("${var.n}"));
    assert_eq!(rendered["missing"], json!("${var.missing_json}"));
    assert_eq!(
        template.templates().len(),
        9,
        "every string with a placeholder"
    );

    let fixed = JsonTemplate::new(json!({"a": "$${x}", "b": "${nope.x}"}));
    assert!(!fixed.is_dynamic());
    assert_eq!(
        fixed.render(&v).into_owned(),
        json!({"a": "${x}", "b": "${nope.x}"})
    );
    assert_eq!(fixed.unknown_placeholders().len(), 1);
}

#[test]
fn user_variables_stay_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UserVariables>();
    assert_send_sync::<DataSources>();
    assert_send_sync::<Template>();
    assert_send_sync::<JsonTemplate>();
}
