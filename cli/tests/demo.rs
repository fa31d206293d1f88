//! `load-density demo` against its in-process server: 2 users for 2 seconds.

use std::process::Command;

#[test]
fn demo_counts_agree() {
    let output = Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(["demo", "--users", "2", "--spawn-rate", "2", "--time", "2"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("server counted "))
        .unwrap_or_else(|| panic!("no count line in {stdout}"));
    // "server counted N requests; LoadDensity recorded M"
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a count"))
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0], numbers[1], "{line}");
    // Two users, four tasks per iteration, 0.1-0.2 s waits: dozens of requests in 2 s.
    assert!(numbers[0] >= 8, "{line}");
    assert!(
        stderr.contains("/status/503 (expected failure)"),
        "the final table (on stderr) lists the failing task: {stderr}"
    );
}
