//! The real binary's control surfaces: `commands`, `init` (then `run-dir` on what it wrote),
//! and `serve` with the token from the environment.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn load_density(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs")
}

#[test]
fn commands_lists_built_in_and_crate_commands_with_parameters() {
    let output = load_density(&["commands", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let commands: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let find = |name: &str| {
        commands
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
            .clone()
    };
    assert_eq!(find("LD_execute_files")["params"][0], "execute_files_list");
    assert_eq!(find("LD_start_socket_server")["params"][5], "keyfile");
    // Registered by the CLI crate through register_command!, like any plugin.
    let demo = find("LD_start_demo_target");
    assert!(
        demo["provider"]
            .as_str()
            .expect("provider")
            .starts_with("load-density-cli ("),
        "{demo}"
    );
    let table = load_density(&["commands"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("LD_register_csv_source(name, file_path, cycle)"),
        "{text}"
    );
}

#[test]
fn init_writes_a_project_that_run_dir_runs_and_does_not_overwrite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("utf-8 path");
    let output = load_density(&["init", path]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let root = dir.path().join("LoadDensity");
    for file in [
        "keyword/keyword1.json",
        "keyword/keyword2.json",
        "README.md",
        "run.sh",
    ] {
        assert!(root.join(file).is_file(), "{file} written");
    }
    let keyword1: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("keyword/keyword1.json")).expect("read"),
    )
    .expect("JSON");
    assert_eq!(keyword1[1][1]["user_detail_dict"]["user"], "fast_http_user");
    let run_sh = std::fs::read_to_string(root.join("run.sh")).expect("read");
    assert!(run_sh.contains("run-dir keyword"), "{run_sh}");

    // run.sh, with the binary under test: both documents run against the demo target.
    let run = Command::new("sh")
        .arg(root.join("run.sh"))
        .env("LOAD_DENSITY", env!("CARGO_BIN_EXE_load-density"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("sh runs");
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|line| line["command"] == "LD_start_test")
        .collect();
    assert_eq!(summaries.len(), 2, "{lines:?}");
    for summary in summaries {
        let totals = &summary["ok"]["totals"];
        assert!(
            totals["requests"].as_u64().expect("requests") > 0,
            "{summary}"
        );
        assert_eq!(totals["failures"], 0, "{summary}");
    }

    let again = load_density(&["init", path]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    std::fs::write(root.join("README.md"), "mine").expect("write");
    let forced = load_density(&["init", "--force", path]);
    assert_eq!(forced.status.code(), Some(0));
    assert_ne!(
        std::fs::read_to_string(root.join("README.md")).expect("read"),
        "mine"
    );
}

#[test]
fn run_dir_on_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    let output = load_density(&["run-dir", missing.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read action directory"));
}

/// Sends `request` (legacy mode) and reads the whole reply.
fn ask(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
}

/// Kills the server if the test fails before it quits.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn serve_takes_the_token_from_the_environment_and_quits_at_once() {
    let mut child = Reap(
        Command::new(env!("CARGO_BIN_EXE_load-density"))
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .env("LOAD_DENSITY_SOCKET_TOKEN", "from-env")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts"),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("first line");
    let addr = line
        .trim()
        .strip_prefix("Server started on ")
        .unwrap_or_else(|| panic!("announces its address: {line:?}"))
        .to_owned();

    assert_eq!(ask(&addr, r#"[["LD_summary"]]"#), "Error: token required\n");
    let reply = ask(
        &addr,
        r#"{"token": "from-env", "command": [["LD_clear_resolver"]]}"#,
    );
    assert_eq!(reply, "{\"status\":\"cleared\"}\nReturn_Data_Over_JE\n");
    assert_eq!(
        ask(&addr, r#"{"token": "from-env", "op": "quit"}"#),
        "Server shutting down\n"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "serve exits after quit");
        // A plain test thread, not a runtime worker.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("read");
    assert!(rest.contains("Server shutdown complete"), "{rest}");
}

#[test]
fn legacy_flags_run_in_the_python_order_and_exit_codes_match() {
    let none = load_density(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("argparse received invalid data"));

    let dir = tempfile::tempdir().expect("temp dir");
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).expect("mkdir");
    std::fs::write(docs.join("d.json"), r#"[["LD_clear_resolver"]]"#).expect("write");
    let file = dir.path().join("f.json");
    std::fs::write(&file, r#"[["LD_clear_records"]]"#).expect("write");
    let project = dir.path().join("p");
    // Written in the opposite order; run as file, dir, string, project.
    let output = load_density(&[
        "-c",
        project.to_str().expect("utf-8"),
        "--execute_str",
        r#"[["LD_summary"]]"#,
        "-d",
        docs.to_str().expect("utf-8"),
        "-e",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{stdout}");
    assert!(lines[0].contains("LD_clear_records"), "{stdout}");
    assert!(lines[1].contains("LD_clear_resolver"), "{stdout}");
    assert!(lines[2].contains("LD_summary"), "{stdout}");
    assert!(lines[3].ends_with("keyword1.json"), "{stdout}");
    assert!(project.join("LoadDensity/run.sh").is_file());

    let missing = load_density(&["-e", dir.path().join("nope.json").to_str().expect("utf-8")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read action file"));
    // Hidden from the help.
    let help = load_density(&["--help"]);
    assert!(!String::from_utf8_lossy(&help.stdout).contains("execute_file"));
}
