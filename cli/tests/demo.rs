//! `load-density demo` against its in-process servers: 5 users (one per protocol group and a
//! second HTTP user) for 2 seconds.

use std::process::Command;

#[test]
fn demo_counts_agree() {
    let output = Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args(["demo", "--users", "5", "--spawn-rate", "20", "--time", "2"])
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
        .find(|l| l.starts_with("servers counted "))
        .unwrap_or_else(|| panic!("no count line in {stdout}"));
    // "servers counted N requests and messages; LoadDensity recorded M"
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("a count"))
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0], numbers[1], "{line}");
    assert!(numbers[0] >= 100, "{line}");
    for row in [
        "/status/503 (expected failure)",
        "WS       echo",
        "TCP      tcp echo",
        "UDP      udp echo",
    ] {
        assert!(
            stderr.contains(row),
            "the final table (on stderr) lists {row:?}: {stderr}"
        );
    }
}
