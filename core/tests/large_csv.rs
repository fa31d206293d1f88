//! Proof that CSV sources stream: rendering through a ~200 MB file, and past its end, keeps
//! the process's resident memory (VmRSS) within a small bound.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use load_density_core::data::{DataSourceSpec, DataSources};
use load_density_core::template::Template;
use load_density_core::variables::{UserVariables, Variables};

const TARGET_BYTES: u64 = 200 * 1024 * 1024;
const MAX_GROWTH_KB: u64 = 50 * 1024;

/// Resident set size in KiB, from /proc/self/status.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

#[test]
fn a_200_mb_source_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.csv");
    let padding = "x".repeat(120);
    let mut rows = 0u64;
    {
        let mut out =
            BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("create"));
        out.write_all(b"id,email,padding\n").expect("write");
        let mut written = 0u64;
        let mut line = String::with_capacity(200);
        while written < TARGET_BYTES {
            line.clear();
            line.push_str(&rows.to_string());
            line.push_str(",user");
            line.push_str(&rows.to_string());
            line.push_str("@example.com,");
            line.push_str(&padding);
            line.push('\n');
            out.write_all(line.as_bytes()).expect("write");
            written += line.len() as u64;
            rows += 1;
        }
        out.flush().expect("flush");
    }
    let size = std::fs::metadata(&path).expect("metadata").len();
    assert!(size >= TARGET_BYTES, "{size}");

    let before = rss_kb();
    let data = Arc::new(DataSources::open([DataSourceSpec::new("big", &path)]).expect("open"));
    let template = Template::parse("${csv.big.id}:${csv.big.email}");
    let mut vars = UserVariables::with_data(Arc::new(Variables::new()), data.clone(), 0);
    let mut peak = rss_kb();
    let mut last = String::new();
    // Every row once, then 10 more after starting again at the top.
    for i in 0..rows + 10 {
        vars.begin_task();
        let rendered = template.render(&vars);
        if i % 100_000 == 0 {
            peak = peak.max(rss_kb());
        }
        if i == rows - 1 || i == rows {
            last = rendered.into_owned();
            if i == rows - 1 {
                let expected = format!("{i}:user{i}@example.com");
                assert_eq!(last, expected);
            }
        }
    }
    peak = peak.max(rss_kb());
    assert_eq!(last, "0:user0@example.com", "wrapped to the first row");
    assert_eq!(vars.take_exhausted(), None);
    assert!(data.errors().is_empty(), "{:?}", data.errors());
    let growth = peak.saturating_sub(before);
    eprintln!(
        "{rows} rows, {} MiB: VmRSS {before} kB before open, peak {peak} kB, growth {growth} kB",
        size / (1024 * 1024)
    );
    assert!(
        growth < MAX_GROWTH_KB,
        "VmRSS grew by {growth} kB while streaming a {size}-byte file"
    );
}
