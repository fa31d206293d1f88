//! The real `load-density` binary: exit statuses, stdout lines and stderr messages.

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;

fn load_density(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is JSON"))
        .collect()
}

#[test]
fn run_with_an_unknown_command_fails_with_the_message_on_stderr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("actions.json");
    fs::write(&file, r#"[["LD_clear_records"], ["LD_frobnicate", {}]]"#).expect("write");
    let output = load_density(&["run", file.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "action 1 (LD_frobnicate): unknown command \"LD_frobnicate\"; known commands: "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("LD_summary"),
        "lists the known commands: {stderr}"
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "every action still runs and prints");
    assert_eq!(lines[0]["ok"]["status"], "cleared");
    assert_eq!(lines[0]["file"], file.display().to_string());
    assert_eq!(lines[1]["index"], 1);
    assert_eq!(lines[1]["command"], "LD_frobnicate");
    assert!(lines[1]["error"]
        .as_str()
        .expect("error text")
        .starts_with("unknown command"));
}

#[test]
fn run_str_with_register_variable_and_summary_succeeds() {
    let output = load_density(&[
        "run-str",
        r#"[["LD_register_variable", {"name": "token", "value": "abc"}], ["LD_summary"]]"#,
    ]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0],
        serde_json::json!({"index": 0, "command": "LD_register_variable", "ok": null})
    );
    assert_eq!(lines[1]["command"], "LD_summary");
    assert_eq!(lines[1]["ok"]["totals"]["requests"], 0);
}

#[test]
fn malformed_and_missing_files_exit_1_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join("broken.json");
    fs::write(&broken, "[\n[\"LD_summary\"\n").expect("write");
    let missing = dir.path().join("missing.json");
    let output = load_density(&[
        "run",
        broken.to_str().expect("utf-8 path"),
        missing.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: invalid JSON at line 3, column 0",
            broken.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot read action file {}", missing.display())),
        "{stderr}"
    );
    // The error result lines reach stdout too, one per file.
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["file"], broken.display().to_string());
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON")),
        "{lines:?}"
    );
    assert_eq!(lines[1]["file"], missing.display().to_string());
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(load_density(&[]).status.code(), Some(2));
    assert_eq!(
        load_density(&["run"]).status.code(),
        Some(2),
        "run needs a file"
    );
    assert_eq!(load_density(&["frobnicate"]).status.code(), Some(2));
    let help = load_density(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for subcommand in ["run", "run-dir", "run-str", "demo"] {
        assert!(text.contains(subcommand), "{text}");
    }
}

#[test]
fn run_dir_runs_every_file_and_fails_on_an_empty_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(dir.path().join("1.json"), r#"[["LD_clear_records"]]"#).expect("write");
    fs::write(
        dir.path().join("2.json"),
        r#"{"load_density": [["LD_summary"]]}"#,
    )
    .expect("write");
    let output = load_density(&["run-dir", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(0));
    let commands: Vec<Value> = stdout_lines(&output)
        .into_iter()
        .map(|line| line["command"].clone())
        .collect();
    assert_eq!(commands, ["LD_clear_records", "LD_summary"]);

    let empty = tempfile::tempdir().expect("temp dir");
    let output = load_density(&["run-dir", empty.path().to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no *.json action files"));
}

#[test]
fn run_dir_skips_its_own_reports_and_reports_go_to_the_output_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    fs::write(
        dir.path().join("run.json"),
        r#"[["LD_generate_summary_report", {"report_name": "summary"}],
            ["LD_generate_summary_report", {"report_name": "report.html", "output_dir": "elsewhere"}]]"#,
    )
    .expect("write");
    // A report of an earlier run, and a plan: JSON, but no action documents.
    fs::write(
        dir.path().join("summary.json"),
        r#"{"totals": {"requests": 0}}"#,
    )
    .expect("write");
    fs::write(dir.path().join("plan.json"), r#"{"user_count": 1}"#).expect("write");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_load-density"))
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run load-density")
    };
    for _ in 0..2 {
        let output = run(&["--output-dir", "out", "run-dir", "."]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("skipped: not an action document"),
            "{stderr}"
        );
        assert!(!stderr.contains('\u{1b}'), "no colour on a pipe: {stderr}");
        let lines = stdout_lines(&output);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["ok"], "out/summary.json");
        assert_eq!(lines[1]["ok"], "elsewhere/report.html");
    }
    assert!(out.join("summary.json").is_file());
    assert!(dir.path().join("elsewhere/report.html").is_file());
    assert!(!dir.path().join("elsewhere/report.html.json").exists());
}
