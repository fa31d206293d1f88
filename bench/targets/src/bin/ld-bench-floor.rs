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

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ld_bench_targets::floor::{self, Target, Work};

/// How long after the end a user may still wait for its last reply.
const GRACE: Duration = Duration::from_secs(5);

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
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::try_from_secs_f64(seconds).context("SECONDS")?;
    let unit = if url.starts_with("http://") {
        if tungstenite {
            bail!("--tungstenite is for ws:// targets");
        }
        let target = Target::parse(url, "http")?;
        runtime.block_on(run(users, until, |_| {
            floor::http(target.clone(), work, until, count.clone())
        }))?;
        "requests"
    } else {
        let target = Target::parse(url, "ws")?;
        if tungstenite {
            runtime.block_on(run(users, until, |_| {
                floor::ws_tungstenite(target.clone(), work, until, count.clone())
            }))?;
        } else if work == Work::Bare {
            runtime.block_on(run(users, until, |_| {
                floor::ws_bare(target.clone(), until, count.clone())
            }))?;
        } else {
            bail!("--measured on ws:// needs --tungstenite (the bare floor reads no frame)");
        }
        "messages"
    };
    println!(
        "{{\"{unit}\": {}, \"wall_s\": {:.3}}}",
        count.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Spawns `users` tasks made by `user` and waits for them all; a server that stops
/// answering cannot keep the process alive past `until` and a grace period.
async fn run<F>(users: usize, until: Instant, user: impl Fn(usize) -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let tasks: Vec<_> = (0..users)
        .map(|i| tokio::spawn(tokio::time::timeout_at((until + GRACE).into(), user(i))))
        .collect();
    for task in tasks {
        task.await?
            .context("a user was still waiting for a reply after the run")??;
    }
    Ok(())
}
