//! The floor under any Tokio-based generator: `USERS` tasks on one worker thread, each with
//! one connection doing bare round trips (see `ld_bench_targets::floor`), with nothing
//! recorded or timed. Prints what they did as one JSON line (the caller measures the
//! process's CPU time). Run by the drivers in `bench/` against 127.0.0.1.
//!
//! ```text
//! ld-bench-floor ws://127.0.0.1:PORT/echo SECONDS USERS                # bare frames
//! ld-bench-floor ws://127.0.0.1:PORT/echo SECONDS USERS --tungstenite  # through tokio-tungstenite
//! ld-bench-floor ws://127.0.0.1:PORT/echo SECONDS USERS --tungstenite --measured  # timed, recorded
//! ld-bench-floor http://127.0.0.1:PORT/index.html SECONDS USERS        # bare HTTP/1.1 GETs
//! ld-bench-floor http://127.0.0.1:PORT/index.html SECONDS USERS --measured  # parsed, timed, recorded
//! ```
//!
//! The JSON line: `{"messages": N, "wall_s": S}` for WebSocket, `{"requests": N, "wall_s": S}`
//! for HTTP.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ld_bench_targets::floor::{self, Target, Work};

const USAGE: &str =
    "usage: ld-bench-floor (ws|http)://127.0.0.1:PORT/PATH SECONDS USERS [--tungstenite] [--measured]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, seconds, users, flags) = match args.as_slice() {
        [url, seconds, users, flags @ ..] => (url, seconds, users, flags),
        _ => bail!(USAGE),
    };
    let mut tungstenite = false;
    let mut work = Work::Bare;
    for flag in flags {
        match flag.as_str() {
            "--tungstenite" => tungstenite = true,
            "--measured" => work = Work::Measured,
            other => bail!("unknown option {other}; {USAGE}"),
        }
    }
    let seconds: f64 = seconds.parse().context("SECONDS")?;
    let users: usize = users.parse().context("USERS")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = started + Duration::try_from_secs_f64(seconds).context("SECONDS")?;
    let (unit, done) = if url.starts_with("http://") {
        if tungstenite {
            bail!("--tungstenite is for ws:// targets");
        }
        let target = Target::parse(url, "http")?;
        let done = runtime.block_on(floor::run_users(users, until, |count| {
            floor::http(target.clone(), work, until, count)
        }))?;
        ("requests", done)
    } else {
        let target = Target::parse(url, "ws")?;
        let done = if tungstenite {
            runtime.block_on(floor::run_users(users, until, |count| {
                floor::ws_tungstenite(target.clone(), work, until, count)
            }))?
        } else if work == Work::Bare {
            runtime.block_on(floor::run_users(users, until, |count| {
                floor::ws_bare(target.clone(), until, count)
            }))?
        } else {
            bail!("--measured on ws:// needs --tungstenite (the bare floor reads no frame)");
        };
        ("messages", done)
    };
    println!(
        "{{\"{unit}\": {done}, \"wall_s\": {:.3}}}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
